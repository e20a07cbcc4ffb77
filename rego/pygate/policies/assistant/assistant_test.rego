package pygate.policies.assistant_test

import data.pygate.canonical
import data.pygate.policies.assistant

_analyst := {"id": "u1", "role": "analyst"}

_developer := {"id": "u2", "role": "developer"}

_text(text) := {"type": "text", "text": text}

_refusals(output, user, usage) := refusals if {
	refusals := assistant.refusals with input as {
		"output": output,
		"user": user,
		"context": {"service": "assistant", "usage_today": usage},
	}
}

_ids(output, user, usage) := {r.policy_id | some r in _refusals(output, user, usage)}

test_plain_text_allowed if {
	count(_refusals(_text("The capital of France is Paris."), _analyst, 3)) == 0
}

test_code_output_refused_for_analyst if {
	_refusals({"type": "code", "text": "def f(): ..."}, _analyst, 3) == {{
		"policy_id": "AST-001",
		"title": "Code generation needs a code role",
		"description": "Output that contains code is only released to users whose role is in code_roles: an action the service declares with a code-meaning argument, or any string of any canonical action that a code pattern matches.",
		"reason": "Code generation is limited to the roles developer, admin",
		"action": "log_refusal",
		"priority": 10,
		"message": "I can help explain this, but code generation needs a developer role",
		"hint": "Answer in prose without code (no code blocks, no function definitions).",
		"why": [{"field": "user.role", "op": "not in", "value": "analyst", "bound": ["developer", "admin"]}],
		"would_pass": [{"field": "user.role", "op": "in", "bound": ["developer", "admin"]}],
		"source": "rego",
	}}
}

test_code_type_without_text_refused if {
	_ids({"type": "code"}, _analyst, 3) == {"AST-001"}
}

test_fenced_code_in_text_refused if {
	_ids(_text("```python\nimport os\n```"), _analyst, 3) == {"AST-001"}
}

test_code_patterns_detect_common_languages if {
	every text in [
		"Here you go:\ndef handler(event):\n    return 1",
		"import os",
		"from os import path",
		"function add(a, b) { return a + b }",
		"class Foo:\n    pass",
		"#include <stdio.h>",
		"SELECT name, email FROM users",
		"select * from users",
		"const x = 1;",
		"public static void main(String[] args)",
		"<script>alert(1)</script>",
		"#!/bin/sh\nrm -rf /",
	] {
		_ids(_text(text), _analyst, 3) == {"AST-001"}
	}
}

test_prose_is_not_code if {
	every text in [
		"Select the best option from the list.",
		"Let me explain how imports work in Python.",
		"The class was fun: we learned a lot.",
		"Define your function's purpose before writing it.",
	] {
		count(_refusals(_text(text), _analyst, 3)) == 0
	}
}

test_code_allowed_for_developer if {
	count(_refusals({"type": "code", "text": "def f(): ..."}, _developer, 3)) == 0
}

test_code_allowed_for_admin if {
	count(_refusals(_text("```\nx\n```"), {"id": "u3", "role": "admin"}, 3)) == 0
}

test_code_refused_when_role_missing if {
	_ids({"type": "code", "text": "x"}, {"id": "u4"}, 3) == {"AST-001"}
}

test_code_roles_read_from_data if {
	_ids({"type": "code"}, _developer, 3) == {"AST-001"} with data.pygate.config.code_roles as ["admin"]
}

test_builtin_patterns_used_without_data if {
	_ids(_text("def f(x):"), _analyst, 3) == {"AST-001"} with data.pygate.config as {}
}

test_tool_call_outside_allowlist_refused if {
	_refusals({"type": "tool_call", "action": "delete_records"}, _analyst, 3) == {{
		"policy_id": "AST-002",
		"title": "Tool call needs review",
		"description": "A tool call (in any shape: pygate, OpenAI, Anthropic, MCP) whose canonical name is not on the action allowlist waits for human approval. The allowlist compares names exactly.",
		"reason": "Action 'delete_records' needs review",
		"action": "require_review",
		"priority": 20,
		"message": "I can help with this, but I need approval first",
		"hint": "Wait for a person to approve this call, or use a tool from the allowlist instead of delete_records.",
		"why": [{"field": "action.name", "op": "not in", "value": "delete_records", "bound": ["analyze", "explain", "recommend_review"]}],
		"would_pass": [
			{"field": "action.name", "op": "in", "bound": ["analyze", "explain", "recommend_review"]},
			{"field": "approval", "op": "granted", "bound": null},
		],
		"source": "rego",
	}}
}

test_tool_call_on_allowlist_allowed if {
	every action in ["analyze", "explain", "recommend_review"] {
		count(_refusals({"type": "tool_call", "action": action}, _analyst, 3)) == 0
	}
}

# A tool call whose name cannot be read is not the assistant's to judge:
# the canonical reading reports it and the gate refuses (GATE-009).
test_tool_call_without_readable_action_is_a_canonical_problem if {
	every output in [{"type": "tool_call"}, {"type": "tool_call", "action": ["analyze"]}, {"type": "tool_call", "action": {"name": "analyze"}}] {
		count(_refusals(output, _analyst, 3)) == 0
		count(canonical.read(output).problems) == 1
	}
}

test_allowlist_read_from_data if {
	_ids({"type": "tool_call", "action": "analyze"}, _analyst, 3) == {"AST-002"} with data.pygate.config.action_allowlist as []
}

test_quota_reached_refused if {
	_refusals(_text("hi"), _analyst, 100) == {{
		"policy_id": "AST-003",
		"title": "Daily quota reached",
		"description": "A user who has reached the daily quota gets no more model output today.",
		"reason": "You have reached your daily quota of 100 requests",
		"action": "show_quota",
		"priority": 5,
		"suggestion": "Try again tomorrow",
		"message": "You have used all of today's requests. Please try again tomorrow.",
		"hint": "Do not retry today; tell the user the daily quota is used up.",
		"why": [{"field": "context.usage_today", "op": ">=", "value": 100, "bound": 100}],
		"would_pass": [{"field": "context.usage_today", "op": "<", "bound": 100}],
		"source": "rego",
	}}
}

test_quota_exceeded_refused if {
	_ids(_text("hi"), _analyst, 150) == {"AST-003"}
}

test_below_quota_allowed if {
	count(_refusals(_text("hi"), _analyst, 99)) == 0
}

test_quota_read_from_data if {
	count(_refusals(_text("hi"), _analyst, 150)) == 0 with data.pygate.config.daily_quota as 200
}

test_usage_missing_refused if {
	refusals := assistant.refusals with input as {"output": _text("hi"), "user": _analyst, "context": {"service": "assistant"}}
	{r.policy_id | some r in refusals} == {"AST-004"}
}

test_context_missing_refused if {
	refusals := assistant.refusals with input as {"output": _text("hi"), "user": _analyst}
	{r.policy_id | some r in refusals} == {"AST-004"}
}

test_usage_not_number_refused if {
	some r in _refusals(_text("hi"), _analyst, "99")
	r.policy_id == "AST-004"
	r.action == "log_refusal"
}

test_quota_malformed_refused if {
	some r in _refusals(_text("hi"), _analyst, 1) with data.pygate.config.daily_quota as "100"
	r.policy_id == "AST-005"
	r.reason == "Required policy data is missing or malformed: daily_quota must be a number"
}

test_invalid_code_pattern_refused if {
	some r in _refusals(_text("hi"), _analyst, 1) with data.pygate.config.code_patterns as ["ok", "("]
	r.reason == "Required policy data is missing or malformed: code_patterns[1] is not a valid RE2 regex"
}

test_code_patterns_not_array_refused if {
	_ids(_text("hi"), _analyst, 1) == {"AST-005"} with data.pygate.config.code_patterns as "def"
}

test_allowlist_malformed_refused if {
	_ids(_text("hi"), _analyst, 1) == {"AST-005"} with data.pygate.config.action_allowlist as {"analyze": true}
}

test_code_roles_malformed_refused if {
	_ids(_text("hi"), _developer, 1) == {"AST-005"} with data.pygate.config.code_roles as "developer"
}

test_code_roles_malformed_still_refuses_code if {
	_ids({"type": "code"}, _analyst, 1) == {"AST-001", "AST-005"} with data.pygate.config.code_roles as [1, 2]
}
