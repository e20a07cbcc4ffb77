package pygate.declarative_test

import data.pygate.declarative

_user := {"id": "u1", "role": "analyst", "account_status": "active", "transaction_limit": 1000}

_policy(conditions) := {
	"id": "T-1",
	"set": "s",
	"reason": "refused",
	"action": "log_refusal",
	"conditions": conditions,
}

# _run evaluates refusals for set "s" with exactly the given policies.
_run(policies, output, user) := _both(["s"], policies, output, user)

# _both is refusals_for with exactly the given policies, once scanned (no
# index) and once through their index (index_test.rego); it is undefined,
# failing the test, unless both ways give the same refusals.
_both(sets, policies, output, user) := refusals if {
	refusals := declarative.refusals_for(sets, output, user) with data.pygate.config.declarative_policies as policies
		with data.pygate.config.declarative_index as null
	index := index_of(policies)
	indexed := declarative.refusals_for(sets, output, user) with data.pygate.config.declarative_policies as policies
		with data.pygate.config.declarative_index as index
	indexed == refusals
}

_ids(policies, output, user) := {r.policy_id | some r in _run(policies, output, user)}

_invalid_reasons(policies) := reasons if {
	reasons := {r.reason | some r in declarative.invalid} with data.pygate.config.declarative_policies as policies
}

test_valid_refusal_shape_with_defaults if {
	_run([_policy([{"type": "field_in", "field": "type", "values": ["transfer"]}])], {"type": "transfer"}, _user) == {{
		"policy_id": "T-1",
		"title": "T-1",
		"description": "",
		"reason": "refused",
		"action": "log_refusal",
		"priority": 100,
		"policy_set": "s",
		"source": "data",
		"why": [{"field": "output.type", "op": "in", "value": "transfer", "bound": ["transfer"]}],
		"would_pass": [{"field": "output.type", "op": "not in", "bound": ["transfer"]}],
	}}
}

test_valid_refusal_shape_with_all_fields if {
	policy := object.union(_policy([{"type": "field_compare", "field": "amount", "op": "gt", "value": 10}]), {
		"title": "Big",
		"description": "Big amounts",
		"priority": 5,
		"reason": "Amount {{.output.amount}} for {{.user.id}} is big",
		"suggestion": "Try under {{.output.amount}}",
		"message": "Sorry",
	})
	_run([policy], {"amount": 11}, _user) == {{
		"policy_id": "T-1",
		"title": "Big",
		"description": "Big amounts",
		"reason": "Amount 11 for u1 is big",
		"action": "log_refusal",
		"priority": 5,
		"policy_set": "s",
		"source": "data",
		"suggestion": "Try under 11",
		"hint": "Try under 11",
		"message": "Sorry",
		"why": [{"field": "output.amount", "op": ">", "value": 11, "bound": 10}],
		"would_pass": [{"field": "output.amount", "op": "<=", "bound": 10}],
	}}
}

test_all_conditions_must_hold if {
	policy := _policy([
		{"type": "field_in", "field": "type", "values": ["transfer"]},
		{"type": "field_compare", "field": "amount", "op": "gt", "value": 10},
	])
	_ids([policy], {"type": "transfer", "amount": 11}, _user) == {"T-1"}
	count(_run([policy], {"type": "transfer", "amount": 10}, _user)) == 0
	count(_run([policy], {"type": "text", "amount": 11}, _user)) == 0
}

test_policy_of_other_set_ignored if {
	policy := object.union(_policy([{"type": "field_in", "field": "type", "values": ["x"]}]), {"set": "other"})
	count(_run([policy], {"type": "x"}, _user)) == 0
}

test_refusals_for_accepts_a_set_of_names if {
	policy := _policy([{"type": "field_in", "field": "type", "values": ["x"]}])
	rs := _both({"s", "t"}, [policy], {"type": "x"}, _user)
	count(rs) == 1
}

test_no_policies_no_refusals if {
	count(declarative.refusals_for(["s"], {}, _user)) == 0 with data.pygate.config as {}
	count(declarative.invalid) == 0 with data.pygate.config as {}
}

test_shipped_policies_are_valid if {
	count(declarative.invalid) == 0
}

test_shipped_crypto_policy if {
	rs := declarative.refusals_for(["finance"], {"type": "transfer", "currency": "BTC", "amount": 20000}, _user)
	{r.policy_id | some r in rs} == {"FIN-DATA-001"}
	count(declarative.refusals_for(["finance"], {"type": "transfer", "currency": "USD", "amount": 20000}, _user)) == 0
	count(declarative.refusals_for(["assistant"], {"type": "transfer", "currency": "BTC", "amount": 20000}, _user)) == 0
}

test_shipped_credential_policy if {
	rs := declarative.refusals_for(["assistant"], {"type": "text", "text": "api_key = sk_live_abcdefgh1234"}, _user)
	{r.policy_id | some r in rs} == {"AST-DATA-001"}
	count(declarative.refusals_for(["assistant"], {"type": "text", "text": "keys are secret"}, _user)) == 0
}

# Invalid policies: every one refuses, with a reason naming what is wrong.

test_invalid_policy_not_object if {
	rs := _run([5], {}, _user)
	rs == {{
		"policy_id": "invalid-policy",
		"title": "Invalid declarative policy",
		"description": "A declarative policy failed validation, so it refuses instead of being skipped.",
		"reason": "invalid policy declarative_policies[0]: not an object",
		"action": "log_refusal",
		"priority": 0,
		"policy_set": "*",
		"source": "data",
		"invalid": true,
		"message": "I can't do that right now because of a configuration problem on our side.",
		"hint": "Do not retry; the operator must fix the policy data first.",
	}}
}

test_invalid_policy_missing_id if {
	policy := object.remove(_policy([{"type": "field_in", "field": "type", "values": ["x"]}]), ["id"])
	some r in _run([{}, policy], {}, _user)
	r.policy_id == "invalid-policy"
	r.reason == "invalid policy declarative_policies[1]: missing 'id'"
	r.policy_set == "s"
}

test_invalid_policy_empty_id if {
	policy := object.union(_policy([{"type": "field_in", "field": "type", "values": ["x"]}]), {"id": ""})
	_invalid_reasons([policy]) == {"invalid policy declarative_policies[0]: 'id' must be a non-empty string"}
}

test_invalid_policy_missing_reason_and_action if {
	policy := object.remove(_policy([{"type": "field_in", "field": "type", "values": ["x"]}]), ["reason", "action"])
	_invalid_reasons([policy]) == {"invalid policy T-1: missing 'action'; missing 'reason'"}
}

test_invalid_policy_wrong_types if {
	policy := object.union(_policy([{"type": "field_in", "field": "type", "values": ["x"]}]), {
		"action": 1,
		"priority": "high",
		"title": ["t"],
		"suggestion": null,
	})
	_invalid_reasons([policy]) == {concat("", [
		"invalid policy T-1: 'action' must be a non-empty string; 'priority' must be a number; ",
		"'suggestion' must be a non-empty string; 'title' must be a non-empty string",
	])}
}

test_invalid_policy_empty_conditions if {
	_invalid_reasons([_policy([])]) == {"invalid policy T-1: 'conditions' must be a non-empty array"}
}

test_invalid_policy_conditions_not_array if {
	_invalid_reasons([_policy({"type": "field_in"})]) == {"invalid policy T-1: 'conditions' must be a non-empty array"}
}

test_invalid_policy_missing_conditions if {
	_invalid_reasons([object.remove(_policy([]), ["conditions"])]) == {"invalid policy T-1: missing 'conditions'"}
}

test_invalid_condition_not_object if {
	_invalid_reasons([_policy(["field_in"])]) == {"invalid policy T-1: condition 0 is not an object"}
}

test_invalid_condition_without_type if {
	_invalid_reasons([_policy([{"field": "x"}])]) == {"invalid policy T-1: condition 0: 'type' must be a non-empty string"}
}

test_invalid_condition_type_not_string if {
	_invalid_reasons([_policy([{"type": 3}])]) == {"invalid policy T-1: condition 0: 'type' must be a non-empty string"}
}

test_invalid_condition_unknown_type if {
	_invalid_reasons([_policy([{"type": "amount_over"}])]) == {"invalid policy T-1: condition 0: unknown type 'amount_over'"}
}

test_invalid_policy_refuses_even_when_conditions_would_not_hold if {
	policy := _policy([{"type": "field_in", "field": "type", "values": ["x"]}, {"type": "nope"}])
	_ids([policy], {"type": "other"}, _user) == {"T-1"}
}

test_invalid_policy_reports_every_problem if {
	policy := {"id": "T-9", "reason": "r", "action": "a", "conditions": [
		{"type": "field_compare", "field": "a", "op": "over"},
		{"type": "text_matches", "field": "t", "pattern": "("},
	]}
	_invalid_reasons([policy]) == {concat("; ", [
		"invalid policy T-9: condition 0 (field_compare): 'op' must be one of eq, gt, gte, lt, lte, neq",
		"condition 0 (field_compare): missing 'value'",
		"condition 1 (text_matches): 'pattern' must be a valid RE2 regular expression",
		"missing 'set'",
	])}
}

test_invalid_policy_without_set_applies_to_every_set if {
	policy := object.remove(_policy([{"type": "nope"}]), ["set"])
	every sets in [["finance"], ["assistant"], ["anything"]] {
		rs := _both(sets, [policy], {}, _user)
		{[r.policy_id, r.policy_set] | some r in rs} == {["T-1", "*"]}
	}
}

test_invalid_policy_with_non_string_set_applies_to_every_set if {
	policy := object.union(_policy([{"type": "field_in", "field": "type", "values": ["x"]}]), {"set": ["s"]})
	rs := _both(["other"], [policy], {}, _user)
	{r.policy_id | some r in rs} == {"T-1"}
}

test_invalid_policy_with_set_stays_in_its_set if {
	policy := _policy([{"type": "nope"}])
	_ids([policy], {}, _user) == {"T-1"}
	rs := _both(["other"], [policy], {}, _user)
	count(rs) == 0
}

test_policies_not_an_array_refuse_everywhere if {
	rs := declarative.refusals_for(["anything"], {}, _user) with data.pygate.config.declarative_policies as {"id": "T-1"}
		with data.pygate.config.declarative_index as null
	rs == {{
		"policy_id": "invalid-policy",
		"title": "Invalid declarative policy",
		"description": "A declarative policy failed validation, so it refuses instead of being skipped.",
		"reason": "invalid policy declarative_policies: not an array",
		"action": "log_refusal",
		"priority": 0,
		"policy_set": "*",
		"source": "data",
		"invalid": true,
		"message": "I can't do that right now because of a configuration problem on our side.",
		"hint": "Do not retry; the operator must fix the policy data first.",
	}}
}

test_policies_not_an_array_listed_as_invalid if {
	_invalid_reasons("oops") == {"invalid policy declarative_policies: not an array"}
}

test_invalid_does_not_hide_valid_policies if {
	valid := object.union(_policy([{"type": "field_in", "field": "type", "values": ["x"]}]), {"id": "T-2"})
	_ids([_policy([{"type": "nope"}]), valid], {"type": "x"}, _user) == {"T-1", "T-2"}
}

test_invalid_lists_only_invalid_policies if {
	valid := _policy([{"type": "field_in", "field": "type", "values": ["x"]}])
	invalid := object.union(valid, {"id": "T-2", "conditions": [{"type": "nope"}]})
	ids := {r.policy_id | some r in declarative.invalid} with data.pygate.config.declarative_policies as [valid, invalid]
	ids == {"T-2"}
}

# _valid and _condition_valid are the per-query checks; they must agree with
# the checks that build the messages, on valid and invalid shapes alike.
test_fast_validation_agrees_with_problems if {
	base := _policy([{"type": "field_in", "field": "type", "values": ["x"]}])
	policies := [
		base, 5, "p", [], {}, object.remove(base, ["id"]), object.union(base, {"id": ""}),
		object.union(base, {"set": 3}), object.remove(base, ["reason", "action"]),
		object.union(base, {"priority": "high"}), object.union(base, {"priority": 2.5}),
		object.union(base, {"title": ""}), object.union(base, {"title": null}), object.union(base, {"message": "m", "suggestion": ["s"]}),
		object.union(base, {"description": "d", "extra": 1}), object.union(base, {"conditions": []}),
		object.union(base, {"conditions": {"type": "field_in"}}), object.remove(base, ["conditions"]),
		data.pygate.config.declarative_policies[0], data.pygate.config.declarative_policies[1],
	]
	every policy in policies {
		_fast_agrees(policy)
	}
	conditions := [
		{"type": "account_status", "in": []}, {"type": "account_status", "in": "x"}, {"type": "account_status"},
		{"type": "amount_exceeds_limit"}, {"type": "amount_exceeds_limit", "field": ""}, {"type": "amount_exceeds_limit", "field": 1},
		{"type": "asset_restricted", "field": "a"}, {"type": "asset_restricted", "field": null},
		{"type": "role_not_in", "roles": ["a"]}, {"type": "role_not_in", "roles": "a"},
		{"type": "field_compare", "field": "a", "op": "gt", "value": 1}, {"type": "field_compare", "field": "a", "op": "over", "value": 1},
		{"type": "field_compare", "field": "", "op": "gt", "value": 1}, {"type": "field_compare", "field": "a", "op": "gt", "value": "1"},
		{"type": "field_in", "field": "a", "values": []}, {"type": "field_in", "field": "a"}, {"type": "field_not_in", "field": "a", "values": [1]},
		{"type": "field_not_in", "field": 2, "values": [1]}, {"type": "user_attribute_in", "attribute": "r", "values": ["a"]},
		{"type": "user_attribute_in", "attribute": "", "values": ["a"]}, {"type": "text_matches", "field": "t", "pattern": "a+"},
		{"type": "text_matches", "field": "t", "pattern": "("}, {"type": "text_matches", "field": "t", "pattern": 5},
		{"type": "moon"}, {"type": 3}, {"field": "x"}, "field_in", 7, null,
	]
	every condition in conditions {
		_fast_agrees(_policy([condition]))
	}
}

_fast_agrees(policy) if {
	declarative._valid(policy)
	count(declarative._policy_problems(policy)) == 0
}

_fast_agrees(policy) if {
	not declarative._valid(policy)
	count(declarative._policy_problems(policy)) > 0
}

# A policy equal to its checked copy (pygate/policy/_checked.py) is not
# validated again; one that differs from its copy is.
test_a_checked_policy_is_trusted_and_a_stale_copy_is_not if {
	good := {"id": "P", "set": "s", "reason": "r", "action": "log_refusal", "conditions": [{"type": "field_in", "field": "type", "values": ["x"]}]}
	bad := object.union(good, {"priority": "high"})
	declarative._valid_at(good, 0) with data.pygate.config.checked.declarative_policies as [good]
	declarative._valid_at(good, 0) with data.pygate.config.checked.declarative_policies as [null]
	not declarative._valid_at(bad, 0) with data.pygate.config.checked.declarative_policies as [good]
	not declarative._valid_at(bad, 0) with data.pygate.config.checked as {}
}
