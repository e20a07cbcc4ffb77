package pygate.canonical_test

import data.pygate.canonical

_calls(output) := [[a.kind, a.name, a.arguments, a.source] | some a in canonical.read(output).actions]

_problems(output) := canonical.read(output).problems

_args := {"amount": 5, "to": "a"}

test_seed_shapes if {
	_calls({"type": "transfer", "amount": 5, "to": "a"}) == [["action", "transfer", _args, "typed"]]
	_calls({"type": "Transfer", "amount": 5, "to": "a"}) == [["action", "transfer", _args, "typed"]]
	_calls({"type": "recommendation", "asset": "ACME"}) == [["action", "recommendation", {"asset": "ACME"}, "typed"]]
	_calls({"type": "text", "text": "hi"}) == [["answer", "text", {"text": "hi"}, "text"]]
	_calls({"text": "hi"}) == [["answer", "text", {"text": "hi"}, "text"]]
	_calls({"action": "analyze", "text": "x"}) == [["tool_call", "analyze", {"text": "x"}, "action"]]
	_calls({"type": "tool_call", "action": "recommend_transfer", "amount": 20}) == [["tool_call", "recommend_transfer", {"amount": 20}, "pygate.tool_call"]]
}

test_guard_shape if {
	# What Gate.guard sends (pygate/_gate.py _tool_output).
	out := {"type": "tool_call", "action": "transfer", "arguments": _args}
	_calls(out) == [["tool_call", "transfer", _args, "pygate.tool_call"]]
	_problems({"type": "tool_call", "action": "transfer", "arguments": _args, "amount": 9}) != []
	_problems({"type": "tool_call", "action": "transfer", "arguments": "{}"}) != []
}

test_openai_chat_tool_calls if {
	call := {"id": "c", "type": "function", "function": {"name": "transfer", "arguments": `{"amount": 5, "to": "a"}`}}
	message := {"role": "assistant", "content": null, "tool_calls": [call, call]}
	_calls(message) == [["tool_call", "transfer", _args, "openai.chat.tool_call"], ["tool_call", "transfer", _args, "openai.chat.tool_call"]]
	completion := {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}], "usage": {"total_tokens": 3}}
	count(_calls(completion)) == 2
	_problems(completion) == []
}

test_openai_arguments_must_be_a_json_object if {
	every raw in ["", "{", "[1]", "5", "null", `"x"`, 5, ["a"]] {
		count(_problems({"type": "function", "function": {"name": "transfer", "arguments": raw}})) == 1
	}
	_problems({"type": "function", "function": {"name": "transfer"}}) != []
	_problems({"type": "function", "function": {"name": "t", "arguments": "{}", "x": 1}}) != []
	_problems({"type": "function", "name": "transfer"}) != []
}

test_openai_responses_function_call if {
	item := {"type": "function_call", "name": "transfer", "arguments": `{"amount": 5, "to": "a"}`, "call_id": "c"}
	_calls(item) == [["tool_call", "transfer", _args, "openai.responses.function_call"]]
	response := {"id": "r", "object": "response", "status": "completed", "output": [
		{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok", "annotations": []}]},
		item,
	]}
	_calls(response) == [["answer", "text", {"text": "ok"}, "text"], ["tool_call", "transfer", _args, "openai.responses.function_call"]]
}

test_anthropic_tool_use if {
	block := {"type": "tool_use", "id": "t", "name": "transfer", "input": _args}
	_calls(block) == [["tool_call", "transfer", _args, "anthropic.tool_use"]]
	message := {"id": "m", "type": "message", "role": "assistant", "content": [{"type": "text", "text": "Sure"}, block], "stop_reason": "tool_use"}
	_calls(message) == [["answer", "text", {"text": "Sure"}, "text"], ["tool_call", "transfer", _args, "anthropic.tool_use"]]
	_problems({"type": "tool_use", "name": "transfer", "input": "x"}) != []
}

test_mcp_tools_call if {
	_calls({"name": "transfer", "arguments": _args}) == [["tool_call", "transfer", _args, "mcp.tools_call"]]
	_calls({"name": "explain"}) == [["tool_call", "explain", {}, "mcp.tools_call"]]
	request := {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "transfer", "arguments": _args}}
	_calls(request) == [["tool_call", "transfer", _args, "mcp.jsonrpc"]]
	_problems({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}) != []
	_problems({"jsonrpc": "2.0", "method": "tools/call", "params": "transfer"}) != []
	_problems({"name": "transfer", "arguments": _args, "extra": 1}) != []
}

test_content_strings_are_answers if {
	_calls({"role": "assistant", "content": "hello"}) == [["answer", "text", {"text": "hello"}, "content"]]
	_calls({"role": "assistant", "content": ["a", "b"]}) == [["answer", "text", {"text": "a"}, "content"], ["answer", "text", {"text": "b"}, "content"]]
}

test_names_are_lower_cased_and_otherwise_validated if {
	canonical.read({"type": "TRANSFER", "amount": 1}).actions[0].name == "transfer"
	every name in [" transfer", "transfer ", "tr\u0430nsfer", "trans\u200bfer", "1transfer", "", "transfer()", concat("", ["a" | some _ in numbers.range(1, 65)])] {
		count(_problems({"type": "tool_call", "action": name})) == 1
	}
	every raw in [5, null, ["transfer"], {"name": "transfer"}, true] {
		count(_problems({"type": "tool_call", "action": raw})) == 1
	}
	count(_problems({"type": 5, "amount": 1})) == 1
	canonical.valid_name(concat("", ["a" | some _ in numbers.range(1, 64)]))
	not canonical.valid_name(concat("", ["a" | some _ in numbers.range(1, 65)]))
}

test_unknown_shapes_are_problems if {
	every output in [
		{},
		{"amount": 5000},
		{"data": {"type": "transfer"}},
		{"role": "assistant", "content": [5]},
		{"choices": "x"},
		{"role": "assistant", "extra": {"type": "transfer"}},
		{"type": "text"},
		{"type": "text", "text": 5},
		{"actions": [true]},
		{"type": "tool_call", "action": "x", "arguments": 5},
	] {
		count(_problems(output)) > 0
	}
	canonical.read("text") == {"actions": [], "problems": ["the output must be an object"]}
	canonical.read(null).problems != []
}

test_nested_problems_are_reported_once if {
	_problems({"actions": [{"type": "tool_call", "action": {"name": "analyze"}}]}) == [`output.actions[0]: {"name":"analyze"} is not a valid action name (ASCII letters, digits, '_', '.', '-', starting with a letter, at most 64)`]
}

test_metadata_is_skipped if {
	_problems({"role": "assistant", "content": "x", "usage": {"anything": [1, {"type": "transfer"}]}, "logprobs": null}) == []
}

test_strings_cover_values_and_keys if {
	a := canonical.read({"type": "tool_call", "action": "analyze", "arguments": {"q": ["x", {"deep": "y"}], "n": 1}}).actions[0]
	sort(canonical.strings_in(a.arguments)) == sort(["q", "x", "deep", "y", "n"])
	canonical.strings == {"q", "x", "deep", "y", "n"} with input as {"output": {"action": "analyze", "q": ["x", {"deep": "y"}], "n": 1}}
}

test_result_reads_input if {
	canonical.actions == [{"kind": "action", "name": "transfer", "arguments": {"amount": 1}, "source": "typed", "path": []}] with input as {"output": {"type": "transfer", "amount": 1}}
	canonical.problems == [] with input as {"output": {"type": "transfer", "amount": 1}}
}
