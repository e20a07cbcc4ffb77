package pygate.canonical_test

import data.pygate.canonical

# The chat-completion fast path (canonical._chat_actions) must give exactly
# what the walk gives, and must be taken for plain completions only.

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
