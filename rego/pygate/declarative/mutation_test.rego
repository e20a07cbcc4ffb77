# Tests that kill the survivors of scripts/rego-mutation.py on the declarative package
# (issue 18).
#
# The mutants that survive in index.rego are equivalent:
# - _index_ok's second body: `n > 0` (dropped or `>= 0`): with n = 0, _policy_at(-1)
#   fails, so only the first body can accept an empty index.
# - _placed's third body: `type_name != null`: with null the second body already holds
#   whenever the third could.
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
