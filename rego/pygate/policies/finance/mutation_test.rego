# Tests that kill the survivors of scripts/rego-mutation.py (issue 18): each pins a
# boundary or condition of the finance policies that no other test told from its mutant.
package pygate.policies.finance_mutation_test

import data.pygate.policies.finance

_user := {"id": "u1", "role": "analyst", "account_status": "active", "transaction_limit": 1000}

_reasons(output, user) := reasons if {
	reasons := {[r.policy_id, r.reason] | some r in finance.refusals} with input as {
		"output": output,
		"user": user,
		"context": {"service": "finance"},
	}
}

# A zero amount moves nothing and is malformed: `amount > 0`, not `>= 0`.
test_a_zero_amount_is_malformed if {
	_reasons({"type": "transfer", "amount": 0, "to": "acct-2"}, _user) == {["FIN-003", "Malformed transfer: amount must be a positive number"]}
	_reasons({"type": "transfer", "amount": 0.01, "to": "acct-2"}, _user) == set()
}

# An empty string names no asset: refused as malformed and as an invalid identifier.
test_an_empty_asset_is_malformed if {
	_reasons({"type": "recommendation", "asset": ""}, _user) == {
		["FIN-006", `asset of recommendation is not a valid asset identifier: ""`],
		["FIN-003", "Malformed recommendation: asset must be a non-empty string"],
	}
}

# A malformed amount is reported for the action that holds it, not for every action of
# the output.
test_a_malformed_amount_is_reported_for_its_own_action_only if {
	output := {"actions": [{"type": "transfer", "amount": 0, "to": "acct-2"}, {"type": "recommendation", "asset": "GLOBEX"}]}
	_reasons(output, _user) == {["FIN-003", "Malformed transfer: amount must be a positive number"]}
}

# An optional money argument given as null names no amount: nothing to check, no refusal
# (a required one is checked by presence, see test_a_zero_amount_is_malformed).
test_an_optional_null_amount_is_not_malformed if {
	_reasons({"type": "buy", "asset_id": "GLOBEX", "quantity": 1, "amount": null}, _user) == set()
}

# Each data check is scoped to the meaning that needs the data: an unusable limit does not
# block a recommendation, an invalid asset pattern does not block a transfer.
test_a_data_problem_blocks_only_the_actions_that_need_the_data if {
	no_limit := object.union(_user, {"transaction_limit": "lots"})
	_reasons({"type": "recommendation", "asset": "GLOBEX"}, no_limit) == set()
	_reasons({"type": "transfer", "amount": 5, "to": "acct-2"}, no_limit) == {["FIN-005", "Required policy data is missing or malformed: no usable transaction limit for this user"]}
	transfer := {r.policy_id | some r in finance.refusals} with input as {
		"output": {"type": "transfer", "amount": 5, "to": "acct-2"},
		"user": _user,
		"context": {"service": "finance"},
	}
		with data.pygate.config.identifiers.asset.pattern as "("
	transfer == set()
}
