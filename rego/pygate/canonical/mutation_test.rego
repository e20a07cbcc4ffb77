# Tests that kill the survivors of scripts/rego-mutation.py on canonical.rego (issue 18):
# each pins a key or a branch of the reading that no other test told from its mutant.
#
# The mutants that survive are equivalent (no output tells them from the original):
# - read, first body: `c.what == "action"` (4 mutants): the fast path for an output
#   that is one action; the general body reads it the same.
# - _reached: `c.what != "skip"` (2): read keeps only actions and problems of it.
# - _last_or_null and strings_in: `count(path) > 0` (dropped or `>= 0`): path[-1] is
#   undefined, and the else (null) or the comprehension's skip applies.
# - _is_text_place: `count(path) > 1` (3): a numeric last key means a list, and the
#   output itself is an object, so such a path has two keys or more.
# - _type: `is_string(x.type)`: lower() fails on anything else.
# - _typed_class("function"): `is_object(x.function)` (_keys_within checks it again).
# - _jsonrpc: `is_object(x.params)`: object.get fails on anything else and the else
#   reports the same problem.
# - _seed_call: `_has(x, "arguments")`: is_object(x.arguments) fails without it.
# - _keys_within: `is_object(x)`: object.keys fails on anything else.
# - _arguments: `is_string(raw)`, `json.is_valid(raw)`: json.is_valid is false for a
#   non-string and json.unmarshal fails on invalid JSON, so the body fails either way
#   (accepted: the guard keeps a bad argument string a reported problem, not a query
#   error, should OPA run with strict builtin errors).
package pygate.canonical_mutation_test

import data.pygate.canonical

_transfer := {"type": "transfer", "amount": 5}

_names(output) := [a.name | some a in canonical.read(output).actions]

# Every metadata key of the envelopes pygate reads (chat completion, choice, message,
# Responses, Anthropic message, JSON-RPC) holds a scalar that is neither an action nor
# a problem, beside the actions it wraps.
test_each_scalar_envelope_key_is_metadata if {
	every key in ["created", "created_at", "finish_reason", "id", "index", "jsonrpc", "model", "object", "refusal", "role", "service_tier", "status", "stop_reason", "stop_sequence"] {
		every value in ["x", 1] {
			canonical.read({"actions": [_transfer], key: value}) == {"actions": [{"kind": "action", "name": "transfer", "arguments": {"amount": 5}, "source": "typed", "path": ["actions", 0]}], "problems": []}
		}
	}
}

# Real envelopes, with every key their APIs send, read as their tool calls alone.
test_full_envelopes_read_as_their_calls if {
	chat := {
		"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o",
		"system_fingerprint": "fp_1", "service_tier": "default",
		"usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
		"choices": [{
			"index": 0, "finish_reason": "tool_calls", "logprobs": null,
			"message": {"role": "assistant", "content": null, "refusal": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "transfer", "arguments": `{"amount": 5}`}}]},
		}],
	}
	canonical.read(chat).problems == []
	_names(chat) == ["transfer"]
	anthropic := {
		"id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "stop_reason": "tool_use",
		"stop_sequence": "END", "usage": {"input_tokens": 1, "output_tokens": 1},
		"content": [{"type": "tool_use", "id": "toolu_1", "name": "transfer", "input": {"amount": 5}}],
	}
	canonical.read(anthropic).problems == []
	_names(anthropic) == ["transfer"]
	responses := {
		"id": "resp_1", "object": "response", "created_at": 1700000000, "status": "completed", "model": "gpt-4o",
		"output": [{"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "transfer", "arguments": `{"amount": 5}`, "status": "completed"}],
	}
	canonical.read(responses).problems == []
	_names(responses) == ["transfer"]
}

# Only the list keys of the envelopes (actions, choices, content, output, tool_calls)
# may hold an array: an array anywhere else is a problem, even an empty one.
test_an_array_under_a_scalar_key_is_a_problem if {
	canonical.read({"actions": [_transfer], "model": []}).problems == ["output.model: cannot read a array here"]
	canonical.read({"actions": [_transfer], "role": [null]}).problems == ["output.role: cannot read a array here"]
}

# A bare string is text only directly under content (or in a content list): in any
# other list it is a problem, not an answer.
test_a_string_in_a_list_other_than_content_is_a_problem if {
	canonical.read({"actions": ["hi"]}) == {"actions": [], "problems": ["output.actions[0]: cannot read a string here"]}
	canonical.read({"content": ["hi"]}).actions == [{"kind": "answer", "name": "text", "arguments": {"text": "hi"}, "source": "content", "path": ["content", 0]}]
}

# A type that is not a string is a problem, never read as an untyped object (which
# could make it an action or an envelope).
test_a_type_that_is_not_a_string_is_a_problem if {
	canonical.read({"type": 5}) == {"actions": [], "problems": ["output: 'type' must be a string"]}
	canonical.read({"type": 5, "action": "transfer", "amount": 5}) == {"actions": [], "problems": ["output: 'type' must be a string"]}
}

# A streamed OpenAI tool call carries its index; a function that is not an object is
# reported as what it is.
test_openai_tool_call_index_and_bad_function if {
	_names({"tool_calls": [{"index": 0, "id": "c", "type": "function", "function": {"name": "transfer", "arguments": "{}"}}]}) == ["transfer"]
	canonical.read({"type": "function", "function": "transfer"}).problems == ["output: OpenAI tool call without a function {name, arguments}"]
}

# Every key the documented call shapes may carry is read: Anthropic's cache_control,
# MCP's _meta in a JSON-RPC request, the guard's id.
test_each_documented_call_key_is_read if {
	_names({"type": "tool_use", "id": "t", "name": "transfer", "input": {}, "cache_control": {"type": "ephemeral"}}) == ["transfer"]
	_names({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "transfer", "arguments": {}, "_meta": {}}}) == ["transfer"]
	_names({"type": "tool_call", "action": "transfer", "arguments": {"amount": 5}, "id": "c1"}) == ["transfer"]
	canonical.read({"type": "tool_call", "action": "transfer", "arguments": {"amount": 5}, "id": "c1"}).problems == []
}

# Plain text is exactly {"text": <string>}; anything more or other is a problem.
test_plain_text_is_exactly_one_string if {
	canonical.read({"text": "hi", "extra": 1}) == {"actions": [], "problems": [`output: cannot read an object with keys ["extra","text"]`]}
	canonical.read({"text": 5}) == {"actions": [], "problems": [`output: cannot read an object with keys ["text"]`]}
}

# Only a well-formed tools/call request is a call: another method, or a request with
# keys JSON-RPC does not have, is a problem.
test_only_a_well_formed_tools_call_request_is_a_call if {
	canonical.read({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"name": "transfer"}}) == {"actions": [], "problems": [`output: cannot read a JSON-RPC request for method "tools/list"`]}
	canonical.read({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "transfer"}, "extra": 1}) == {"actions": [], "problems": [`output: cannot read a JSON-RPC request for method "tools/call"`]}
}

# A call with unknown keys is reported for its keys, a call with bad arguments for its
# arguments.
test_a_bad_call_says_what_is_wrong if {
	canonical.read({"type": "tool_use", "name": "transfer", "input": {}, "extra": 1}).problems == [`output: cannot read the anthropic.tool_use call: unknown keys ["extra"]`]
	canonical.read({"type": "tool_use", "name": "transfer", "input": "x"}).problems == ["output: the anthropic.tool_use call's arguments are not a JSON object"]
}
