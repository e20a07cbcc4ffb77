# Tests that kill the survivors of scripts/rego-mutation.py on gate.rego and shadow.rego
# (issue 18): each pins a field or condition of the decision that no other test told
# from its mutant.
package pygate.gate_mutation_test

import data.pygate.gate

_analyst := {"id": "u1", "role": "analyst", "account_status": "active", "transaction_limit": 1000}

_finance(output) := {"output": output, "user": _analyst, "context": {"service": "finance"}}

_transfer := {"type": "transfer", "amount": 5, "to": "acct-2"}

_transfer_action := {"kind": "action", "name": "transfer", "arguments": {"amount": 5, "to": "acct-2"}, "source": "typed", "path": []}

_ids(d) := [r.policy_id | some r in d.refusals]

# The general body of decision (here: the input refusal of a missing user id) still
# reports the canonical actions it read, under "actions".
test_a_refused_decision_names_its_actions if {
	d := gate.decision with input as {"output": _transfer, "user": {}, "context": {"service": "finance"}}
	_ids(d) == ["GATE-003"]
	d.actions == [_transfer_action]
}

_undefined(_, _, _) := x if {
	x := input.never_defined
}

# The safety net decides no action and has exactly the fields of every decision.
test_the_safety_net_decides_no_action if {
	d := gate.decision with input as _finance(_transfer)
		with data.pygate.declarative.refusals_for as _undefined
	_ids(d) == ["GATE-000"]
	d.actions == []
	object.keys(d) == {"allowed", "service", "refusals", "primary", "actions"}
}

# A service name that is not a string is reported as null, never echoed.
test_a_service_name_that_is_not_a_string_is_reported_as_null if {
	d := gate.decision with input as {"output": _transfer, "user": _analyst, "context": {"service": 7}}
	_ids(d) == ["GATE-004"]
	d.service == null
}

# An entry is trusted only when both its policy_sets and its packages equal the
# checked copy: the same sets with malformed packages are still checked (and refused).
test_an_entry_with_the_checked_sets_but_other_packages_is_checked if {
	d := gate.decision with input as _finance(_transfer)
		with data.pygate.config.services as {"finance": {"policy_sets": ["finance"], "packages": 5}}
	_ids(d) == ["GATE-006"]
	d.allowed == false
}

# A refusal object needs a string policy_id and a string action, not only a reason
# and a priority.
test_a_refusal_with_a_non_string_id_or_action_is_malformed if {
	junk := [
		{"policy_id": 1, "reason": "r", "action": "a", "priority": 1},
		{"policy_id": "X-1", "reason": "r", "action": 1, "priority": 1},
	]
	d := gate.decision with input as _finance(_transfer)
		with data.pygate.policies.finance.refusals as junk
	_ids(d) == ["GATE-007", "GATE-007"]
}

_pay_services := {"pay": {"packages": ["acme.pay"], "actions": {"x": {"arguments": {}}}}}

_pay := {"output": {"type": "x"}, "user": {"id": "u1"}, "context": {"service": "pay"}}

# Only the packages a service lists are asked: another loaded package that refuses
# everything (by deny or by refusals) has no say over this service.
test_a_package_the_service_does_not_list_is_not_asked if {
	by_deny := gate.decision with input as _pay
		with data.pygate.config.services as _pay_services
		with data.pygate.packages.deny as {"acme.pay": set(), "acme.other": {"no"}}
		with data.pygate.packages.refusals as {}
	by_deny.allowed == true
	by_refusals := gate.decision with input as _pay
		with data.pygate.config.services as _pay_services
		with data.pygate.packages.deny as {"acme.pay": set()}
		with data.pygate.packages.refusals as {"acme.other": ["no"]}
	by_refusals.allowed == true
}
