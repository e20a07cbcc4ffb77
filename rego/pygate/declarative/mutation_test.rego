# Tests that kill the survivors of scripts/rego-mutation.py on the declarative package
# (issue 18).
#
# The mutants that survive are equivalent (no input tells them from the original):
# - index.rego, _index_ok's second body: `n > 0` (dropped or `>= 0`): with n = 0,
#   _policy_at(-1) fails, so only the first body can accept an empty index.
# - index.rego, _placed's third body: `type_name != null`: with null the second body
#   already holds whenever the third could.
# - declarative.rego, defines_set: `_index_ok` (first body), `not _index_ok` and
#   `_no_index` (second body): each dropped guard lets a body hold only where another
#   body (or the same answer from the index) holds already; a broken index holds for
#   every name.
# - declarative.rego, _relevant's third body: `is_object(policy)`: the second body
#   already makes every non-object relevant.
# - declarative.rego, _valid: the priority default 0 -> 1 (any number); and
#   _policy_problems' `is_object(policy)` (object.get fails on anything else).
# - declarative.rego, _problems_or_unknown: `count(problems) > 0`: _valid and
#   _policy_problems agree (test_fast_validation_agrees_with_problems), so the
#   problems of a policy _valid refused are never empty.
# - declarative.rego, _refusal's optional fields: `is_string(policy[key])`: _valid
#   already requires suggestion and message to be non-empty strings.
# - explain.rego, _hint: `is_string(policy.hint)`: a valid policy's hint is a string,
#   and without one render(policy.hint) is undefined, so the else applies.
# - explain.rego, _restricted_symbols: `is_object(lib.config("assets", null))`: the
#   bound is only built for an asset_restricted condition that held, which needs
#   assets to be an object.
# - conditions.rego, text_matches: `is_string(text)`: regex.match fails on anything
#   else (accepted: it keeps the condition false rather than a query error under
#   strict builtin errors).
package pygate.declarative_mutation_test

import data.pygate.declarative

_policy := {"id": "N-1", "set": "notes", "reason": "r", "action": "log_refusal", "conditions": [{"type": "field_in", "field": "type", "values": ["text"]}]}

_ids(policies, index) := ids if {
	ids := {r.policy_id | some r in declarative.refusals_for(["notes"], {"type": "text"}, {"id": "u"})} with data.pygate.config.declarative_policies as policies
		with data.pygate.config.declarative_index as index
}

_reasons(policies, index) := reasons if {
	reasons := {r.reason | some r in declarative.refusals_for(["notes"], {"type": "text"}, {"id": "u"})} with data.pygate.config.declarative_policies as policies
		with data.pygate.config.declarative_index as index
}

# An index that counts no policy while there are some is stale: it refuses instead of
# hiding them.
test_an_empty_index_over_policies_refuses if {
	_ids([_policy], null) == {"N-1"}
	_reasons([_policy], {"count": 0, "sets": {}, "unscoped": []}) == {"invalid policy declarative_index: count must be the number of declarative_policies (rebuild it with `pygate policy index`)"}
}

# An empty index still needs an unscoped array.
test_an_empty_index_needs_an_unscoped_array if {
	_ids([], {"count": 0, "sets": {}, "unscoped": []}) == set()
	_reasons([], {"count": 0, "sets": {}, "unscoped": "x"}) == {"invalid policy declarative_index: unscoped must be an array (rebuild it with `pygate policy index`)"}
}

_typed(condition) := object.union(_policy, {"conditions": [condition]})

_by_type := {"count": 1, "sets": {"notes": {"all": [], "by_type": {"text": [0]}}}, "unscoped": []}

# A policy filed under a type must have a field_in condition on the output's type that
# names it; any other condition (another kind, another field) makes it misfiled, and
# the index refuses as a whole: invalid-policy, for every set.
test_a_policy_filed_under_a_type_it_does_not_name_refuses if {
	every condition in [
		{"type": "field_not_in", "field": "type", "values": ["text"]},
		{"type": "field_in", "field": "kind", "values": ["text"]},
	] {
		refusals := declarative.refusals_for(["notes"], {"type": "text"}, {"id": "u"}) with data.pygate.config.declarative_policies as [_typed(condition)]
			with data.pygate.config.declarative_index as _by_type
		{[r.policy_id, r.policy_set, r.reason] | some r in refusals} == {[
			"invalid-policy", "*",
			"invalid policy declarative_index: position 0 is filed under sets.notes.by_type.text, where it does not belong (rebuild it with `pygate policy index`)",
		]}
	}
}

# A policy's hint is rendered with the output and the user.
test_a_hint_is_rendered_with_the_output_and_the_user if {
	policy := object.union(_policy, {"hint": "{{.user.id}} sent {{.output.type}}"})
	refusals := declarative.refusals_for(["notes"], {"type": "text"}, {"id": "u"}) with data.pygate.config.declarative_policies as [policy]
		with data.pygate.config.declarative_index as null
	[r.hint | some r in refusals] == ["u sent text"]
}

# conditions.rego

_invalid_reason(condition) := reason if {
	policy := object.union(_policy, {"conditions": [condition]})
	[reason] := [r.reason | some r in declarative.refusals_for(["notes"], {"type": "text"}, {"id": "u"})] with data.pygate.config.declarative_policies as [policy]
		with data.pygate.config.declarative_index as null
}

# Each parameter of each condition type is checked against its kind, and the refusal
# names each one that is wrong.
test_each_condition_parameter_is_named_when_wrong if {
	_invalid_reason({"type": "account_status", "in": "x"}) == "invalid policy N-1: condition 0 (account_status): 'in' must be an array"
	_invalid_reason({"type": "amount_exceeds_limit", "field": 5}) == "invalid policy N-1: condition 0 (amount_exceeds_limit): 'field' must be a non-empty string"
	_invalid_reason({"type": "asset_restricted", "field": ""}) == "invalid policy N-1: condition 0 (asset_restricted): 'field' must be a non-empty string"
	_invalid_reason({"type": "role_not_in", "roles": "x"}) == "invalid policy N-1: condition 0 (role_not_in): 'roles' must be an array"
	_invalid_reason({"type": "field_compare", "field": 1, "op": "big", "value": "1"}) == concat("; ", [
		"invalid policy N-1: condition 0 (field_compare): 'field' must be a non-empty string",
		"condition 0 (field_compare): 'op' must be one of eq, gt, gte, lt, lte, neq",
		"condition 0 (field_compare): 'value' must be a number",
	])
	every type in ["field_in", "field_not_in"] {
		_invalid_reason({"type": type, "field": 1, "values": "x"}) == sprintf("invalid policy N-1: condition 0 (%s): 'field' must be a non-empty string; condition 0 (%s): 'values' must be an array", [type, type])
		_invalid_reason({"type": type}) == sprintf("invalid policy N-1: condition 0 (%s): missing 'field'; condition 0 (%s): missing 'values'", [type, type])
	}
	_invalid_reason({"type": "user_attribute_in", "attribute": 1, "values": "x"}) == "invalid policy N-1: condition 0 (user_attribute_in): 'attribute' must be a non-empty string; condition 0 (user_attribute_in): 'values' must be an array"
	_invalid_reason({"type": "text_matches", "field": 1, "pattern": "("}) == "invalid policy N-1: condition 0 (text_matches): 'field' must be a non-empty string; condition 0 (text_matches): 'pattern' must be a valid RE2 regular expression"
}

# One wrong name parameter alone makes a condition invalid (the fast check agrees with
# the messages): a policy whose field is not a non-empty string would otherwise never
# hold, a policy that silently never refuses.
test_a_wrong_field_alone_makes_the_condition_invalid if {
	every field in [1, ""] {
		every condition in [
			{"type": "field_compare", "field": field, "op": "gt", "value": 1},
			{"type": "field_in", "field": field, "values": []},
			{"type": "field_not_in", "field": field, "values": []},
			{"type": "text_matches", "field": field, "pattern": "a"},
		] {
			_invalid_reason(condition) == sprintf("invalid policy N-1: condition 0 (%s): 'field' must be a non-empty string", [condition.type])
		}
		_invalid_reason({"type": "user_attribute_in", "attribute": field, "values": []}) == "invalid policy N-1: condition 0 (user_attribute_in): 'attribute' must be a non-empty string"
	}
}

# declarative.rego

# One wrong field alone makes a policy invalid, and its refusal names the field (the
# fast check _valid agrees with the messages; a policy it let through would be
# evaluated with a broken id, set, reason, action or conditions).
test_a_single_wrong_policy_field_is_named if {
	cases := [
		[{"set": ""}, "'set' must be a non-empty string"],
		[{"reason": 5}, "'reason' must be a non-empty string"],
		[{"reason": ""}, "'reason' must be a non-empty string"],
		[{"action": 5}, "'action' must be a non-empty string"],
		[{"action": ""}, "'action' must be a non-empty string"],
		[{"conditions": {"a": 1}}, "'conditions' must be a non-empty array"],
		[{"conditions": {"a": {"type": "field_in", "field": "type", "values": ["text"]}}}, "'conditions' must be a non-empty array"],
		[{"description": 5}, "'description' must be a non-empty string"],
		[{"message": 5}, "'message' must be a non-empty string"],
		[{"title": ""}, "'title' must be a non-empty string"],
		[{"hint": 5}, "'hint' must be a non-empty string"],
		[{"priority": "1"}, "'priority' must be a number"],
	]
	every case in cases {
		policy := object.union(_policy, case[0])
		reasons := [r.reason | some r in declarative.refusals_for(["notes", "*"], {"type": "text"}, {"id": "u"})] with data.pygate.config.declarative_policies as [policy]
			with data.pygate.config.declarative_index as null
		reasons == [concat("", ["invalid policy N-1: ", case[1]])]
	}
	id_reasons := [r.reason | some r in declarative.refusals_for(["notes"], {"type": "text"}, {"id": "u"})] with data.pygate.config.declarative_policies as [object.union(_policy, {"id": 5})]
		with data.pygate.config.declarative_index as null
	id_reasons == ["invalid policy declarative_policies[0]: 'id' must be a non-empty string"]
}

# sets names only the string sets that policies mention.
test_sets_names_only_string_sets if {
	names := declarative.sets with data.pygate.config.declarative_policies as [_policy, object.union(_policy, {"set": 3})]
	names == {"notes"}
}

# An invalid policy without a usable id refuses as invalid-policy, and one without a
# usable set as "*" (every service): never under the broken value.
test_an_invalid_policy_without_a_usable_id_or_set if {
	by_id := declarative.refusals_for(["notes"], {"type": "text"}, {"id": "u"}) with data.pygate.config.declarative_policies as [object.union(_policy, {"id": 5})]
		with data.pygate.config.declarative_index as null
	[[r.policy_id, r.policy_set] | some r in by_id] == [["invalid-policy", "notes"]]
	by_set := declarative.refusals_for(["notes"], {"type": "text"}, {"id": "u"}) with data.pygate.config.declarative_policies as [object.union(_policy, {"set": ""})]
		with data.pygate.config.declarative_index as null
	[[r.policy_id, r.policy_set] | some r in by_set] == [["N-1", "*"]]
}
