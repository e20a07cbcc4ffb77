# Tests that kill the survivors of scripts/rego-mutation.py (issue 18): each pins a
# condition of the assistant policies that no other test could tell apart from its mutant.
package pygate.policies.assistant_mutation_test

import data.pygate.policies.assistant

_ask := {"type": "text", "text": "hello"}

_ids(usage) := ids if {
	ids := {r.policy_id | some r in assistant.refusals} with input as {
		"output": _ask,
		"user": {"id": "u1", "role": "analyst"},
		"context": {"service": "assistant", "usage_today": usage},
	}
}

# A usage that is not a number is "unknown" (AST-004) and never compared with the quota:
# a string orders above every number in Rego, so without is_number(usage) it would also
# count as "quota reached".
test_non_numeric_usage_is_unknown_not_over_quota if {
	_ids("500") == {"AST-004"}
	_ids(true) == {"AST-004"}
}

# A quota that is not a number is malformed data (AST-005), not a quota: null and booleans
# order below every number, so without is_number(quota) every usage would be "over" it.
test_non_numeric_quota_is_malformed_data_not_a_quota if {
	ids := {r.policy_id | some r in assistant.refusals} with input as {
		"output": _ask,
		"user": {"id": "u1", "role": "analyst"},
		"context": {"service": "assistant", "usage_today": 3},
	}
		with data.pygate.config.daily_quota as false
	ids == {"AST-005"}
}

# Without daily_quota in policy data the quota is 100: 99 passes, 100 is refused.
test_default_quota_is_100 if {
	config := object.remove(data.pygate.config, ["daily_quota"])
	under := {r.policy_id | some r in assistant.refusals} with input as {
		"output": _ask,
		"user": {"id": "u1", "role": "analyst"},
		"context": {"service": "assistant", "usage_today": 99},
	}
		with data.pygate.config as config
	at := {r.policy_id | some r in assistant.refusals} with input as {
		"output": _ask,
		"user": {"id": "u1", "role": "analyst"},
		"context": {"service": "assistant", "usage_today": 100},
	}
		with data.pygate.config as config
	under == set()
	at == {"AST-003"}
}

# code_patterns that are not an array are malformed even when they count as empty ("" and
# {} have no elements, so only the is_array check in _data_ok tells them from []).
test_empty_non_array_code_patterns_are_malformed_data if {
	every patterns in ["", {}] {
		ids := {r.policy_id | some r in assistant.refusals} with input as {
			"output": _ask,
			"user": {"id": "u1", "role": "analyst"},
			"context": {"service": "assistant", "usage_today": 3},
		}
			with data.pygate.config.code_patterns as patterns
		ids == {"AST-005"}
	}
}

# Each malformed piece of policy data is reported once, by its own message, and nothing else
# is: a message whose condition were dropped would show up beside another one.
test_each_data_problem_is_reported_alone if {
	assistant._data_problems == {"daily_quota must be a number"} with data.pygate.config.daily_quota as "x"
	assistant._data_problems == {"code_roles must be an array of strings"} with data.pygate.config.code_roles as {"r": "analyst"}
	assistant._data_problems == {"action_allowlist must be an array of strings"} with data.pygate.config.action_allowlist as "explain"
	assistant._data_problems == {"code_patterns must be an array of strings"} with data.pygate.config.code_patterns as {"k": "("}
	assistant._data_problems == {
		"code_patterns must be an array of strings",
		"code_patterns[2] is not a valid RE2 regex",
	} with data.pygate.config.code_patterns as [5, "ok", "("]
	count(assistant._data_problems) == 0
}
