# METADATA
# title: Assistant policies
# description: >-
#   Refusals for a general assistant: code only for code roles, tool calls
#   only from the allowlist, and a daily quota. Lists and the quota are policy
#   data (data.pygate.config).
package pygate.policies.assistant

import data.pygate.canonical
import data.pygate.contracts
import data.pygate.lib

# METADATA
# title: Daily quota reached
# description: A user who has reached the daily quota gets no more model output today.
# custom:
#   id: AST-003
#   reason: You have reached your daily quota of {{.quota}} requests
#   action: show_quota
#   priority: 5
#   suggestion: Try again tomorrow
#   message: You have used all of today's requests. Please try again tomorrow.
#   hint: Do not retry today; tell the user the daily quota is used up.
refusals contains r if {
	usage := input.context.usage_today
	is_number(usage)
	quota := _quota
	is_number(quota)
	usage >= quota
	r := lib.explained(
		rego.metadata.chain(), {"quota": quota, "usage": usage},
		[lib.condition("context.usage_today", ">=", usage, quota)],
		[lib.change("context.usage_today", "<", quota)],
	)
}

# METADATA
# title: Usage unknown
# description: Without today's usage count the quota cannot be checked, so the output is refused.
# custom:
#   id: AST-004
#   reason: "Today's usage is unknown: context.usage_today must be a number"
#   action: log_refusal
#   priority: 5
#   message: I can't do that right now because of a problem on our side.
#   hint: Do not retry; the application must send today's usage count.
refusals contains r if {
	not _usage_known
	r := lib.explained(
		rego.metadata.chain(), {},
		[lib.condition("context.usage_today", "is", object.get(input, ["context", "usage_today"], null), "number")],
		[lib.change("context.usage_today", "is", "number")],
	)
}

# METADATA
# title: Code generation needs a code role
# description: >-
#   Output that contains code is only released to users whose role is in
#   code_roles: an action the service declares with a code-meaning argument,
#   or any string of any canonical action that a code pattern matches.
# custom:
#   id: AST-001
#   reason: Code generation is limited to the roles {{.roles}}
#   action: log_refusal
#   priority: 10
#   message: I can help explain this, but code generation needs a developer role
#   hint: Answer in prose without code (no code blocks, no function definitions).
refusals contains r if {
	_contains_code
	not _has_code_role
	roles := lib.config("code_roles", [])
	r := lib.explained(
		rego.metadata.chain(), {"roles": _display(roles)},
		[lib.condition("user.role", "not in", object.get(input, ["user", "role"], null), roles)],
		[lib.change("user.role", "in", roles)],
	)
}

# METADATA
# title: Tool call needs review
# description: >-
#   A tool call (in any shape: pygate, OpenAI, Anthropic, MCP) whose canonical
#   name is not on the action allowlist waits for human approval. The
#   allowlist compares names exactly.
# custom:
#   id: AST-002
#   reason: Action '{{.action}}' needs review
#   action: require_review
#   priority: 20
#   message: I can help with this, but I need approval first
#   hint: "Wait for a person to approve this call, or use a tool from the allowlist instead of {{.action}}."
refusals contains r if {
	some a in canonical.actions
	a.kind == "tool_call"
	not _allowlisted(a.name)
	allowlist := lib.config("action_allowlist", [])
	r := lib.explained(
		rego.metadata.chain(), {"action": a.name},
		[lib.condition("action.name", "not in", a.name, allowlist)],
		[lib.change("action.name", "in", allowlist), lib.change("approval", "granted", null)],
	)
}

_allowlisted(name) if name in lib.config("action_allowlist", [])

# METADATA
# title: Assistant policy data missing or malformed
# description: >-
#   The quota, role list, allowlist or code patterns are malformed, so the
#   checks that use them cannot run and the output is refused.
# custom:
#   id: AST-005
#   reason: "Required policy data is missing or malformed: {{.problem}}"
#   action: log_refusal
#   priority: 0
#   message: I can't do that right now because of a configuration problem on our side.
#   hint: Do not retry; the operator must fix the policy data first.
refusals contains r if {
	not _data_ok
	some problem in _data_problems
	r := lib.refusal(rego.metadata.chain(), {"problem": problem})
}

_quota := lib.config("daily_quota", 100)

# Negated checks go through these helper rules on purpose: OPA hoists refs out
# of a `not` expression (opa#1877), so `not is_number(input.context.x)` is
# undefined, not true, when x is missing, and the refusal would vanish.
_usage_known if is_number(input.context.usage_today)

_has_code_role if input.user.role in lib.config("code_roles", [])

# Without data the built-in list still catches the obvious cases.
_code_patterns := lib.config("code_patterns", ["```", `\bdef\s+\w+\s*\(`, `(?m)^\s*import\s+\w`])

_contains_code if {
	some a in canonical.actions
	count(contracts.meaning_fields(a.name, "code")) > 0
}

_contains_code if {
	some s in canonical.strings
	some pattern in _code_patterns
	regex.match(pattern, s)
}

# Every pattern is matched once per query against "": an invalid or
# non-string pattern makes regex.match undefined, so its result is missing
# and the data check below refuses.
_pattern_matches := [regex.match(pattern, "") | some pattern in _code_patterns]

# _data_ok holds exactly when _data_problems is empty; the messages are only
# built when it does not.
_data_ok if {
	is_number(_quota)
	_string_array(lib.config("code_roles", []))
	_string_array(lib.config("action_allowlist", []))
	is_array(_code_patterns)
	count(_pattern_matches) == count(_code_patterns)
}

# _display turns a value into text for a reason without ever failing, so the
# refusal that quotes it is always built.
_display(x) := x if {
	is_string(x)
} else := "(none)" if {
	x == null
} else := concat(", ", x) if {
	_string_array(x)
} else := json.marshal(x)

# A malformed list or quota would make its check silently pass (an invalid
# regex never matches; "x in 5" is never true), so each is refused instead.
_data_problems contains "daily_quota must be a number" if not is_number(_quota)

_data_problems contains "code_roles must be an array of strings" if not _string_array(lib.config("code_roles", []))

_data_problems contains "action_allowlist must be an array of strings" if {
	not _string_array(lib.config("action_allowlist", []))
}

_data_problems contains "code_patterns must be an array of strings" if not _string_array(_code_patterns)

_data_problems contains sprintf("code_patterns[%d] is not a valid RE2 regex", [i]) if {
	is_array(_code_patterns)
	some i, pattern in _code_patterns
	is_string(pattern)
	not lib.valid_regex(pattern)
}

_string_array(x) if {
	is_array(x)
	every item in x {
		is_string(item)
	}
}
