package pygate.canonical_test

import data.pygate.canonical

# The envelope fast paths (canonical._envelope_actions) must give exactly
# what the walk gives, and must be taken for plain envelopes only.
#
# Mutation (scripts/rego-mutation.py --lines over the fast paths): 61 mutants
# of the fast-path lines after these tests, 7 survive, all equivalent:
# - read's second body, `c.what == "action"` flipped, emptied or dropped (4):
#   an output that is one action then takes the walk, which reads it the same;
# - `c.what == "action"` dropped in _response_item, _block_actions and
#   _chat_calls (3): c.action is undefined for every other class, so the
#   comprehension or the array skips it anyway.

_call(name, args) := {"id": "c", "type": "function", "function": {"name": name, "arguments": args}}

_completion(messages) := {
	"id": "cc", "object": "chat.completion", "created": 1, "model": "m",
	"choices": [{"index": i, "finish_reason": "tool_calls", "message": m} | some i, m in messages],
	"usage": {"total_tokens": 3, "nested": {"type": "transfer", "amount": 1}},
}

_plain := [
	_completion([{"role": "assistant", "content": null, "tool_calls": [_call("transfer", `{"amount": 5, "to": "a"}`)]}]),
	_completion([{"role": "assistant", "content": "Sure, sending it.", "tool_calls": [_call("Transfer", `{"amount": 5}`), _call("analyze", "{}")]}]),
	_completion([{"tool_calls": [_call("transfer", `{"amount": 1}`)], "content": "text after calls?", "role": "assistant"}]),
	_completion([{"role": "assistant", "content": "just text"}]),
	_completion([{"role": "assistant", "content": null, "tool_calls": null, "refusal": "no"}]),
	_completion([
		{"role": "assistant", "content": "a", "tool_calls": [_call("transfer", `{"amount": 2}`)]},
		{"role": "assistant", "content": null, "tool_calls": [_call("buy", `{"asset": "ACME"}`), _call("sell", {"asset": "X"})]},
	]),
	_completion([]),
	object.union(_completion([{"role": "assistant", "content": "x"}]), {"system_fingerprint": {"any": ["thing"]}, "service_tier": "default"}),
	{"choices": [{"message": {"content": "minimal"}}]},
	{"choices": [{"message": {"tool_calls": [{"type": "function", "function": {"name": "t", "arguments": "{}"}, "index": 0}]}, "logprobs": {"content": [{"type": "transfer"}]}}]},
]

# Shapes the fast path must leave to the walk (a problem, an action hidden in
# metadata, content parts, a type spelled another way, unknown keys ...).
_not_plain := [
	_completion([{"role": "assistant", "content": null, "tool_calls": [_call("transfer", "{not json")]}]),
	_completion([{"role": "assistant", "content": null, "tool_calls": [_call("trans fer", "{}")]}]),
	_completion([{"role": "assistant", "content": null, "tool_calls": [_call("transfer", "[1]")]}]),
	_completion([{"role": "assistant", "content": [{"type": "text", "text": "parts"}]}]),
	_completion([{"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "Function", "function": {"name": "transfer", "arguments": "{}"}}]}]),
	_completion([{"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "transfer", "arguments": "{}", "extra": 1}}]}]),
	_completion([{"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "transfer", "arguments": "{}"}, "extra": 1}]}]),
	_completion([{"role": {"type": "transfer", "amount": 9}, "content": null}]),
	_completion([{"role": "assistant", "content": null, "name": "bob"}]),
	_completion([{"role": "assistant", "content": 5}]),
	_completion([{"role": "assistant", "content": null, "tool_calls": {"0": _call("transfer", "{}")}}]),
	object.union(_completion([{"role": "assistant", "content": "x"}]), {"model": {"type": "transfer", "amount": 9}}),
	object.union(_completion([{"role": "assistant", "content": "x"}]), {"extra": 1}),
	object.union(_completion([{"role": "assistant", "content": "x"}]), {"type": "transfer"}),
	{"choices": [{"message": {"content": "x"}, "index": [0]}]},
	{"choices": [{"message": {"content": "x"}, "extra": 1}]},
	{"choices": [{"message": "not an object"}]},
	{"choices": ["x"]},
	{"choices": {"0": {"message": {"content": "x"}}}},
]

test_fast_path_equals_the_walk if {
	every output in array.concat(_plain, _not_plain) {
		canonical.read(output) == canonical.read_walked(output)
	}
}

test_fast_path_taken_for_plain_completions_only if {
	every output in _plain {
		_ := canonical._chat_actions(output)
	}
	every output in _not_plain {
		not canonical._chat_actions(output)
	}
}

test_fast_path_keeps_order_and_paths if {
	out := _plain[5]
	[[a.name, a.path] | some a in canonical.read(out).actions] == [
		["text", ["choices", 0, "message", "content"]],
		["transfer", ["choices", 0, "message", "tool_calls", 0]],
		["buy", ["choices", 1, "message", "tool_calls", 0]],
		["sell", ["choices", 1, "message", "tool_calls", 1]],
	]
}

_use(name, input_args) := {"type": "tool_use", "id": "t", "name": name, "input": input_args}

_anthropic(blocks) := {
	"id": "m", "type": "message", "role": "assistant", "model": "claude", "content": blocks,
	"stop_reason": "tool_use", "stop_sequence": null, "usage": {"input_tokens": 1, "nested": {"type": "transfer"}},
}

_fc(name, args) := {"type": "function_call", "id": "fc", "call_id": "c", "name": name, "arguments": args, "status": "completed"}

_response(items) := {"id": "r", "object": "response", "created_at": 1, "status": "completed", "model": "m", "output": items, "usage": {"total_tokens": 3}}

_msg(blocks) := {"type": "message", "id": "msg", "role": "assistant", "status": "completed", "content": blocks}

_plain_envelopes := [
	_anthropic([{"type": "text", "text": "Sure"}, _use("transfer", {"amount": 5, "to": "a"})]),
	_anthropic([_use("Transfer", {"amount": 5}), _use("buy", {"asset": "ACME"})]),
	_anthropic([{"type": "text", "text": "only text", "citations": [{"type": "transfer", "amount": 9}]}]),
	_anthropic([]),
	_anthropic([_use("transfer", "{}")]), # a JSON-string input is parsed, as everywhere
	{"type": "message", "content": [{"type": "text", "text": "minimal", "cache_control": {"type": "ephemeral"}}]},
	_response([_fc("transfer", `{"amount": 5, "to": "a"}`)]),
	_response([_msg([{"type": "output_text", "text": "ok", "annotations": []}]), _fc("analyze", "{}"), _fc("buy", {"asset": "X"})]),
	_response([]),
	{"output": [_msg([{"type": "output_text", "text": "a"}, {"type": "text", "text": "b"}])]},
]

_not_plain_envelopes := [
	_anthropic([{"type": "thinking", "thinking": "hmm"}, _use("transfer", {"amount": 5})]),
	_anthropic([{"type": "Text", "text": "capital type"}]),
	_anthropic([{"type": "text", "text": 5}]),
	_anthropic([_use("trans fer", {})]),
	_anthropic([object.union(_use("transfer", {}), {"extra": 1})]),
	_anthropic(["a bare string block"]),
	_anthropic("content as a string"),
	object.union(_anthropic([]), {"type": "Message"}),
	object.union(_anthropic([]), {"model": {"type": "transfer", "amount": 9}}),
	object.union(_anthropic([]), {"container": null}),
	_response([_fc("transfer", "{not json")]),
	_response([object.union(_fc("transfer", "{}"), {"extra": 1})]),
	_response([{"type": "reasoning", "id": "rs", "summary": []}]),
	_response([_msg([{"type": "refusal", "refusal": "no"}])]),
	_response([object.union(_msg([]), {"role": {"type": "transfer"}})]),
	_response([_msg("text")]),
	object.union(_response([]), {"instructions": "be nice"}),
	object.union(_response([]), {"status": ["done"]}),
	object.union(_response([]), {"type": "response"}),
	{"output": "text"},
	{"output": [["nested"]]},
]

test_envelope_fast_paths_equal_the_walk if {
	every output in array.concat(_plain_envelopes, _not_plain_envelopes) {
		canonical.read(output) == canonical.read_walked(output)
	}
}

test_envelope_fast_paths_taken_for_plain_envelopes_only if {
	every output in _plain_envelopes {
		_ := canonical._envelope_actions(output)
	}
	every output in _not_plain_envelopes {
		not canonical._envelope_actions(output)
	}
}

# An action hidden under any metadata key of an envelope is found by the walk
# (it is an object where a scalar belongs), so the fast path must leave every
# such envelope to the walk; each key is tried on its own.
_hidden := {"type": "transfer", "amount": 9, "to": "x"}

_plain_chat := _completion([{"role": "assistant", "content": "x", "refusal": null}])

_plain_anthropic := _anthropic([{"type": "text", "text": "x"}])

_plain_response := _response([_msg([{"type": "output_text", "text": "x"}])])

_hidden_variants := array.concat(
	array.concat(
		[object.union(_plain_chat, {key: _hidden}) | some key in ["id", "object", "created", "model", "service_tier"]],
		[object.union(_plain_anthropic, {key: _hidden}) | some key in ["id", "role", "model", "stop_reason", "stop_sequence"]],
	),
	array.concat(
		array.concat(
			[object.union(_plain_response, {key: _hidden}) | some key in ["id", "object", "created_at", "status", "model"]],
			[_response([object.union(_msg([{"type": "output_text", "text": "x"}]), {key: _hidden})]) | some key in ["id", "role", "status"]],
		),
		array.concat(
			[_completion([{"role": "assistant", "content": "x", "refusal": _hidden}])],
			[{"choices": [{"message": {"content": "x"}, "finish_reason": _hidden}]}],
		),
	),
)

# Containers that are objects where the API sends lists, items of other
# types that carry a call's or a message's keys, and a message with a key
# the walk does not know.
_other_shapes := [
	{"type": "message", "content": {"0": {"type": "text", "text": "x"}}},
	{"output": {"0": _fc("transfer", "{}")}},
	_response([_fc("transfer", "{}"), {"type": "reasoning", "id": "r", "name": "transfer", "arguments": "{}"}]),
	_response([{"type": "reasoning", "id": "rs", "content": [{"type": "output_text", "text": "x"}]}]),
	_response([{"type": "message", "id": "m", "content": {"0": {"type": "output_text", "text": "x"}}}]),
	_response([object.union(_msg([{"type": "output_text", "text": "x"}]), {"foo": 1})]),
]

test_hidden_actions_leave_the_fast_path if {
	every output in array.concat(_hidden_variants, _other_shapes) {
		not canonical._envelope_actions(output)
		canonical.read(output) == canonical.read_walked(output)
	}

	# the walk does find the hidden transfer in each
	every output in _hidden_variants {
		"transfer" in {a.name | some a in canonical.read(output).actions}
	}
}
