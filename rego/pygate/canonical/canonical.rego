# METADATA
# title: Canonical actions
# description: >-
#   Reads a model output, in any shape real systems send, as a list of
#   canonical actions, so that every policy sees one form and the model
#   cannot pick which checks apply by picking a spelling.
package pygate.canonical

# A canonical action:
#   {"kind":      "tool_call" (a named call: pygate's guard, OpenAI, Anthropic, MCP)
#               | "action"    (the seed's typed object {"type": <name>, ...})
#               | "answer"    (text for the user; name "text"),
#    "name":      the action name in canonical form (see valid_name),
#    "arguments": an object (a JSON-string argument is parsed),
#    "source":    which shape it was read from,
#    "path":      where in the output it was found (an array of keys)}
# strings_in(action.arguments) lists every string in the arguments, nested
# keys included; the rule strings holds them for all actions of the query.
#
# read(output) is {"actions": [...], "problems": [...]}. A problem is a part
# of the output that could not be read (an unknown shape, a bad name, an
# argument string that is not a JSON object); the gate refuses on any
# problem, so a shape this package does not know never passes unchecked.
#
# Envelopes are read at any depth: an OpenAI chat completion (choices,
# message, tool_calls), an OpenAI Responses output list, an Anthropic message
# (content blocks), a JSON-RPC tools/call request, or {"actions": [...]}.
# Every object outside the arguments of an action must be an action or a
# known envelope; every other value must sit under a known envelope key.

# result is the reading of this query's output; the gate and the policies
# read it from here, so it is computed once per query.
result := read(input.output)

actions := result.actions

problems := result.problems

# The common cases skip the walk: a plain OpenAI chat completion, Anthropic
# message or OpenAI Responses object (_envelope_actions; none is an action
# itself) and an output that is itself one action. Each gives exactly what
# the walk gives for that output (canonical_test compares them on every
# shape it knows, read_walked being the walk alone).
read(output) := {"actions": actions, "problems": []} if {
	actions := _envelope_actions(output)
} else := {"actions": [a], "problems": []} if {
	c := _classify_node(output, [], null)
	c.what == "action"
	a := c.action
} else := read_walked(output)

# read_walked reads output by walking every node of it: the general case.
read_walked(output) := {"actions": [c.action | some c in cls], "problems": [_problem_text(c) | some c in cls; c.what == "problem"]} if {
	is_object(output)
	cls := _reached(output)
} else := {"actions": [], "problems": ["the output must be an object"]}

# The three envelope shapes are disjoint (a chat completion has choices and
# no type, an Anthropic message has type "message", a Responses object has
# output and no type), so at most one of these is defined for an output.
_envelope_actions(output) := _chat_actions(output)

_envelope_actions(output) := _anthropic_actions(output)

_envelope_actions(output) := _responses_actions(output)

# _anthropic_actions: a plain Anthropic message, {"type": "message", "content":
# [text and tool_use blocks], ...}, every metadata value a scalar (usage,
# skipped by the walk, may hold anything) and every block read as an action.
_anthropic_actions(output) := actions if {
	output.type == "message"
	_keys_within(output, {"id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"})
	every key in {"id", "role", "model", "stop_reason", "stop_sequence"} {
		_scalar(object.get(output, key, null))
	}
	is_array(output.content)
	actions := _block_actions(output.content, ["content"])
	count(actions) == count(output.content)
}

# _responses_actions: a plain OpenAI Responses object, {"output": [items],
# ...}, each item a function_call or a message of output_text/text blocks,
# everything read as an action.
_responses_actions(output) := [a | some per in per_item; some a in per] if {
	is_array(output.output)
	_keys_within(output, {"id", "object", "created_at", "status", "model", "output", "usage"})
	every key in {"id", "object", "created_at", "status", "model"} {
		_scalar(object.get(output, key, null))
	}
	per_item := [_response_item(item, i) | some i, item in output.output]
	count(per_item) == count(output.output)
}

_response_item(item, i) := [c.action] if {
	item.type == "function_call"
	c := _call_or_problem("openai.responses.function_call", object.get(item, "name", null), object.get(item, "arguments", null), item, {"type", "name", "arguments", "call_id", "id", "status"}, ["output", i])
	c.what == "action"
} else := actions if {
	item.type == "message"
	_keys_within(item, {"id", "type", "role", "status", "content"})
	every key in {"id", "role", "status"} {
		_scalar(object.get(item, key, null))
	}
	is_array(item.content)
	actions := _block_actions(item.content, ["output", i, "content"])
	count(actions) == count(item.content)
}

# The actions of content blocks that the walk reads as actions (text and
# tool_use blocks); the callers require every block to be one.
_block_actions(blocks, prefix) := [c.action |
	some k, block in blocks
	c := _block_class(block, array.concat(prefix, [k]))
	c.what == "action"
]

_block_class(block, path) := _action("answer", "text", object.remove(block, {"type", "annotations", "logprobs", "citations"}), "text", path) if {
	block.type in {"text", "output_text"}
	is_string(block.text)
} else := _call_or_problem("anthropic.tool_use", object.get(block, "name", null), object.get(block, "input", null), block, {"type", "id", "name", "input", "cache_control"}, path) if {
	block.type == "tool_use"
}

# _chat_actions is the actions of a plain OpenAI chat completion, read
# without the walk; undefined for anything else (which then takes the walk).
# Plain means: only the keys the API sends, every metadata value a scalar
# (usage, logprobs and system_fingerprint, skipped by the walk, may hold
# anything), message content null or a string, and every tool call {"id",
# "type": "function", "function": {"name", "arguments"}, "index"} with a
# valid name and arguments that are a JSON object. Then the walk would find,
# per choice in order, the content as text (keys are visited sorted: content
# before tool_calls) and then each tool call, with no problem.
_chat_actions(output) := [a | some per in per_choice; some a in per] if {
	is_array(output.choices)
	_keys_within(output, {"id", "object", "created", "model", "choices", "usage", "system_fingerprint", "service_tier"})
	every key in {"id", "object", "created", "model", "service_tier"} {
		_scalar(object.get(output, key, null))
	}
	per_choice := [_choice_actions(choice, i) | some i, choice in output.choices]
	count(per_choice) == count(output.choices)
}

_scalar(value) if {
	not is_object(value)
	not is_array(value)
}

# The actions of one plain choice; undefined when the choice is not plain.
_choice_actions(choice, i) := array.concat(_chat_text(message, i), calls) if {
	_keys_within(choice, {"index", "message", "finish_reason", "logprobs"})
	_scalar(object.get(choice, "index", null))
	_scalar(object.get(choice, "finish_reason", null))
	message := choice.message
	_keys_within(message, {"role", "content", "refusal", "tool_calls"})
	_scalar(object.get(message, "role", null))
	_scalar(object.get(message, "refusal", null))
	_plain_content(object.get(message, "content", null))
	raw_calls := _calls_of(message)
	calls := _chat_calls(raw_calls, i)
	count(calls) == count(raw_calls)
}

_plain_content(null)

_plain_content(content) if is_string(content)

_calls_of(message) := message.tool_calls if {
	is_array(message.tool_calls)
} else := [] if {
	object.get(message, "tool_calls", null) == null
}

_chat_text(message, i) := [_action("answer", "text", {"text": message.content}, "content", ["choices", i, "message", "content"]).action] if {
	is_string(message.content)
} else := []

# Only the tool calls the walk would read as actions; _choice_actions
# requires all of them to be, so a call that would be a problem takes the walk.
_chat_calls(raw_calls, i) := [c.action |
	some j, call in raw_calls
	_keys_within(call, {"id", "type", "function", "index"})
	call.type == "function"
	_keys_within(call.function, {"name", "arguments"})
	c := _named("tool_call", object.get(call.function, "name", null), _arguments(object.get(call.function, "arguments", null)), "openai.chat.tool_call", ["choices", i, "message", "tool_calls", j])
	c.what == "action"
]

# The classified nodes of output that no action or skipped key covers, in
# walk order: the actions and problems of the output. Envelope nodes (most
# of an API response) are dropped as they are classified: they neither
# cover a node nor are reported.
_reached(output) := reached if {
	nodes := [[p, c] |
		walk(output, [p, v])
		c := _classify(v, p)
		c.what in {"action", "skip", "problem"}
	]
	stops := {p | some [p, _] in nodes}
	reached := [c |
		some [p, c] in nodes
		c.what != "skip"
		not _covered(p, stops)
	]
}

# A node is covered when a proper prefix of its path is a problem (already
# refused), an action (its
# arguments are data, not more output) or a skipped metadata key.
_covered(path, stops) if {
	count(path) > 0
	some i in numbers.range(0, count(path) - 1)
	array.slice(path, 0, i) in stops
}

# valid_name holds for a canonical action name: ASCII, starting with a
# letter, 1 to 64 characters. Names are lower-cased first and never
# otherwise normalised: whitespace, invisible characters and look-alike
# letters make a name invalid (refused) rather than equal to a declared one.
# (The length is counted, not written as {0,63}: a counted repetition makes
# RE2 compile 64 states.)
valid_name(name) if {
	count(name) <= 64
	regex.match(`^[a-z][a-z0-9_.-]*$`, name)
}

canonical_name(raw) := lower(raw) if is_string(raw)

# Keys of an envelope object (chat completion, choice, message, Responses
# output, Anthropic message, JSON-RPC request).
_envelope_keys := {
	"actions", "choices", "content", "created", "created_at", "finish_reason", "id",
	"index", "jsonrpc", "message", "model", "object", "output", "refusal", "role",
	"status", "stop_reason", "stop_sequence", "system_fingerprint", "service_tier",
	"tool_calls", "type", "usage", "logprobs",
}

# Envelope keys whose value is metadata: skipped whole.
_skip_keys := {"usage", "logprobs", "annotations", "audio", "metadata", "system_fingerprint"}

# Envelope keys whose scalar value is metadata (strings here are not text).
_scalar_keys := {
	"created", "created_at", "finish_reason", "id", "index", "jsonrpc", "model",
	"object", "refusal", "role", "service_tier", "status", "stop_reason",
	"stop_sequence", "type",
}

# The last key of a path, null for the output itself: computed once per node.
_last_or_null(path) := path[count(path) - 1] if {
	count(path) > 0
} else := null

# _classify(x, path) says what one node of the output is:
#   {"what": "action", "action": ...}, {"what": "envelope"}, {"what": "skip"}
#   or {"what": "problem", "problem": text}.
# It is total: a node that no branch reads is a problem, never a gap.
_classify(x, path) := c if {
	c := _classify_node(x, path, _last_or_null(path))
} else := _problem(path, "cannot read this part")

_classify_node(x, path, last) := {"what": "skip"} if {
	last in _skip_keys
} else := _object_class(x, path) if {
	is_object(x)
} else := {"what": "envelope"} if {
	is_array(x)
	last in {"actions", "choices", "content", "output", "tool_calls"}
} else := _text_class(x, path) if {
	is_string(x)
	_is_text_place(path, last)
} else := {"what": "envelope"} if {
	last in _scalar_keys
	not is_array(x)
} else := {"what": "envelope"} if {
	x == null
} else := _problem(path, sprintf("cannot read a %s here", [type_name(x)]))

_is_text_place(_, last) if last == "content"

_is_text_place(path, last) if {
	is_number(last)
	count(path) > 1
	path[count(path) - 2] == "content"
}

_text_class(x, path) := _action("answer", "text", {"text": x}, "content", path)

# A problem names where it is only when it is reported: most problems are
# nodes inside an action's arguments (data, not output), which are dropped.
_problem(path, text) := {"what": "problem", "path": path, "text": text}

_problem_text(c) := sprintf("%s: %s", [_where(c.path), c.text])

_where(path) := "output" if {
	count(path) == 0
} else := concat("", ["output", concat("", [_step(s) | some s in path])])

_step(s) := sprintf("[%d]", [s]) if is_number(s)

_step(s) := sprintf(".%s", [s]) if is_string(s)

# The type of an object, lower-cased; "" when it has none; "(invalid)" when
# type is there but not a string.
_type(x) := lower(x.type) if {
	is_string(x.type)
} else := "" if {
	not _has(x, "type")
} else := "(invalid)"

_has(x, key) if _ = x[key]

_object_class(x, path) := c if {
	t := _type(x)
	c := _typed_class(t, x, path)
}

# OpenAI Chat Completions: {"type": "function", "function": {"name", "arguments": "<json>"}}
_typed_class("function", x, path) := _call_or_problem(
	"openai.chat.tool_call", object.get(x.function, "name", null), object.get(x.function, "arguments", null), x, {"id", "type", "function", "index"},
	path,
) if {
	is_object(x.function)
	_keys_within(x.function, {"name", "arguments"})
} else := _problem(path, "OpenAI tool call without a function {name, arguments}") if {
	_type(x) == "function"
}

# OpenAI Responses: {"type": "function_call", "name", "arguments": "<json>", "call_id"}
_typed_class("function_call", x, path) := _call_or_problem(
	"openai.responses.function_call", object.get(x, "name", null), object.get(x, "arguments", null), x,
	{"type", "name", "arguments", "call_id", "id", "status"}, path,
)

# Anthropic Messages: {"type": "tool_use", "id", "name", "input": {...}}
_typed_class("tool_use", x, path) := _call_or_problem(
	"anthropic.tool_use", object.get(x, "name", null), object.get(x, "input", null), x,
	{"type", "id", "name", "input", "cache_control"}, path,
)

# pygate's guard {"type": "tool_call", "action", "arguments": {...}} and the
# seed's {"type": "tool_call", "action", <arguments inline>}.
_typed_class("tool_call", x, path) := _seed_call(x, "pygate.tool_call", path)

# Text: the seed's {"type": "text", "text"}, Anthropic text blocks and
# Responses output_text parts.
_typed_class(t, x, path) := _action("answer", "text", object.remove(x, {"type", "annotations", "logprobs", "citations"}), "text", path) if {
	t in {"text", "output_text"}
	is_string(x.text)
} else := _problem(path, "text without a string 'text'") if {
	t in {"text", "output_text"}
}

_typed_class("message", x, path) := _envelope(x, path)

_typed_class("(invalid)", _, path) := _problem(path, "'type' must be a string")

# No type: an action object, a tools/call request, an MCP call, plain text
# or an envelope.
_typed_class("", x, path) := _untyped(x, path)

# Any other type is the seed's typed action: {"type": "transfer", "amount": ...}.
_typed_class(t, x, path) := _named("action", t, object.remove(x, {"type"}), "typed", path) if {
	not t in _special_types
}

_special_types := {"", "(invalid)", "function", "function_call", "tool_use", "tool_call", "text", "output_text", "message"}

_untyped(x, path) := _seed_call(x, "action", path) if {
	_has(x, "action")
} else := _jsonrpc(x, path) if {
	_has(x, "method")
} else := _call_or_problem("mcp.tools_call", object.get(x, "name", null), object.get(x, "arguments", {}), x, {"name", "arguments", "_meta"}, path) if {
	_has(x, "name")
} else := _action("answer", "text", x, "text", path) if {
	object.keys(x) == {"text"}
	is_string(x.text)
} else := _envelope(x, path)

_jsonrpc(x, path) := _call_or_problem(
	"mcp.jsonrpc", object.get(x.params, "name", null), object.get(x.params, "arguments", {}), x.params,
	{"name", "arguments", "_meta"}, path,
) if {
	x.method == "tools/call"
	_keys_within(x, {"jsonrpc", "id", "method", "params"})
	is_object(x.params)
} else := _problem(path, sprintf("cannot read a JSON-RPC request for method %s", [json.marshal(x.method)]))

_envelope(x, path) := {"what": "envelope"} if {
	_keys_within(x, _envelope_keys)
	count(x) > 0
} else := _problem(path, sprintf("cannot read an object with keys %s", [json.marshal(sort(object.keys(x)))]))

# {"type": "tool_call"|absent, "action": name, ...}: arguments are the
# "arguments" object when given (and then nothing else may be inline),
# else the other keys.
_seed_call(x, source, path) := _named("tool_call", object.get(x, "action", null), x.arguments, source, path) if {
	_has(x, "arguments")
	is_object(x.arguments)
	_keys_within(x, {"type", "action", "arguments", "id"})
} else := _problem(path, "a tool call with both an 'arguments' object and inline arguments, or arguments that are not an object") if {
	_has(x, "arguments")
} else := _named("tool_call", object.get(x, "action", null), object.remove(x, {"type", "action"}), source, path)

# A named call whose arguments may be a JSON string (OpenAI) or an object.
_call_or_problem(source, name, raw_args, x, allowed_keys, path) := _named("tool_call", name, args, source, path) if {
	_keys_within(x, allowed_keys)
	args := _arguments(raw_args)
} else := _problem(path, sprintf("cannot read the %s call: unknown keys %s", [source, json.marshal(sort(object.keys(x) - allowed_keys))])) if {
	not _keys_within(x, allowed_keys)
} else := _problem(path, sprintf("the %s call's arguments are not a JSON object", [source]))

_arguments(raw) := raw if {
	is_object(raw)
} else := parsed if {
	is_string(raw)
	json.is_valid(raw)
	parsed := json.unmarshal(raw)
	is_object(parsed)
}

_keys_within(x, allowed) if {
	is_object(x)
	count(object.keys(x) - allowed) == 0
}

_named(kind, raw_name, args, source, path) := _action(kind, name, args, source, path) if {
	name := canonical_name(raw_name)
	valid_name(name)
} else := _problem(path, sprintf("%s is not a valid action name (ASCII letters, digits, '_', '.', '-', starting with a letter, at most 64)", [json.marshal(raw_name)]))

_action(kind, name, args, source, path) := {"what": "action", "action": {
	"kind": kind,
	"name": name,
	"arguments": args,
	"source": source,
	"path": path,
}}

# strings_in lists every string in x, and the keys of every object in it.
strings_in(x) := array.concat(
	[v | walk(x, [_, v]); is_string(v)],
	[k | walk(x, [p, _]); count(p) > 0; k := p[count(p) - 1]; is_string(k)],
)

# strings is every string of every action of this query's output (values and
# keys, nested, in lists): what the code check reads. Computed only when a
# policy reads it, so a finance decision does not pay for it.
strings contains s if {
	some a in actions
	some s in strings_in(a.arguments)
}
