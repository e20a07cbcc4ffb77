# Tests that kill the survivors of scripts/rego-mutation.py on gate.rego and shadow.rego
# (issue 18): each pins a field or condition of the decision that no other test told
# from its mutant.
#
# The mutants that survive are equivalent (no input tells them from the original):
# - decision, first body: dropping `r.action == "require_review"` from _review_pending
#   only sends more inputs to the else body, which gives the same answer for every input
#   (the first body is the fast path).
# - _action_doc: `is_object(action.arguments)`: pygate.canonical builds or checks an
#   object for the arguments of every shape, so the else never applies.
# - _decided_actions: `_output_ok`: a non-object output already reads as no action, and
#   a missing one leaves canonical.actions undefined, so the else gives [] either way.
# - _entry_ok: `is_object(entry)`, `is_array(sets)`, `is_array(pkgs)`: object.get and
#   array.concat fail on any other type, so the body fails anyway (GATE-006).
# - _first_or_null: `count(refusals) > 0` (dropped or `>= 0`): refusals[0] of [] is
#   undefined and the else gives null.
# - _input_doc: `_input_is_object`: it is read only with the input refusals, never a
#   require_review one, so approvals find nothing to read in it.
# - _user_ok: `is_object(input.user)`: input.user.id is undefined for any other type.
# - GATE-005, GATE-008, GATE-016: `_input_is_object`: each also needs
#   input.context.service (through _service_given or _service_ok), undefined when the
#   input is not an object.
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
# checked copy: the same sets with packages that are not an array (here an object whose
# value names a loaded package) are still checked, and refused.
test_an_entry_with_the_checked_sets_but_other_packages_is_checked if {
	entry := object.union(data.pygate.config.services.finance, {"packages": {"x": "acme.pay"}})
	d := gate.decision with input as _finance(_transfer)
		with data.pygate.config.services as {"finance": entry}
		with data.pygate.packages.deny as {"acme.pay": set()}
		with data.pygate.packages.refusals as {}
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

# An input refusal tells the user and the model nothing they could change.
test_an_input_refusal_has_the_fixed_message_and_hint if {
	d := gate.decision with input as {"output": _transfer, "user": {}, "context": {"service": "finance"}}
	d.primary.message == "I can't do that right now because of a problem on our side."
	d.primary.hint == "Do not retry; the application or its policy configuration must be fixed first."
}

# A garbage input is refused as such (GATE-001), even when the services data is
# broken too: nothing about a service is reported for an input that names none.
test_garbage_input_is_refused_alone_when_services_are_broken_too if {
	every doc in ["finance", 42, []] {
		d := gate.decision with input as doc with data.pygate.config.services as null
		_ids(d) == ["GATE-001"]
	}
}

# A set or package that is defined (a Rego set without declarative policies, a
# declarative-only set, a loaded package) is not reported unknown, even when the
# input fails for another reason.
test_defined_sets_and_packages_are_not_unknown_when_the_input_fails if {
	no_user := {"output": _transfer, "user": {}, "context": {"service": "finance"}}
	rego_only := gate.decision with input as no_user
		with data.pygate.config.declarative_policies as []
		with data.pygate.config.declarative_index as null
	_ids(rego_only) == ["GATE-003"]
	notes := {"id": "N-1", "set": "notes", "reason": "r", "action": "log_refusal", "conditions": [{"type": "field_in", "field": "type", "values": ["code"]}]}
	declarative_only := gate.decision with input as object.union(no_user, {"context": {"service": "notes"}})
		with data.pygate.config.services as {"notes": {"policy_sets": ["notes"], "actions": {"text": {"arguments": {"text": {"type": "string"}}}}}}
		with data.pygate.config.declarative_policies as [notes]
		with data.pygate.config.declarative_index as null
	_ids(declarative_only) == ["GATE-003"]
	listed := gate.decision with input as {"output": {"type": "x"}, "user": {}, "context": {"service": "pay"}}
		with data.pygate.config.services as _pay_services
		with data.pygate.packages.deny as {"acme.pay": set()}
		with data.pygate.packages.refusals as {}
	_ids(listed) == ["GATE-003"]
}

test_an_unknown_package_is_named_with_its_service if {
	d := gate.decision with input as _pay
		with data.pygate.config.services as _pay_services
		with data.pygate.packages.deny as {}
		with data.pygate.packages.refusals as {}
	d.primary.reason == "service 'pay' lists package 'acme.pay', which is not loaded or has no deny/refusals rule"
}

# shadow.rego

_candidate := {
	"id": "FIN-CAND-1", "set": "finance", "reason": "over {{.output.amount}}", "action": "log_refusal",
	"shadow": true, "conditions": [{"type": "field_compare", "field": "amount", "op": "gt", "value": 1}],
}

_with_policies(doc, policies) := d if {
	d := gate.decision with input as doc
		with data.pygate.config.declarative_policies as policies
		with data.pygate.config.declarative_index as null
}

# A rules-as-data policy that calls itself GATE-* cannot put itself in shadow.
test_a_data_policy_with_a_gate_id_cannot_be_shadow if {
	d := _with_policies(_finance(_transfer), [object.union(_candidate, {"id": "GATE-CAND"})])
	_ids(d) == ["GATE-CAND"]
	not d.shadow_refusals
}

# An invalid policy of a set the service marks shadow still enforces.
test_an_invalid_policy_of_a_shadow_set_enforces if {
	d := _with_policies(_finance(_transfer), [object.remove(_candidate, ["reason", "shadow"])])
		with data.pygate.config.services.finance.shadow as ["finance"]
	_ids(d) == ["FIN-CAND-1"]
	d.refusals[0].invalid == true
}

# A shadow mark that is an object is not a list of names, whatever its values.
test_an_object_shadow_mark_enforces if {
	d := gate.decision with input as _finance({"type": "transfer", "amount": 5000, "to": "acct-2"})
		with data.pygate.config.services.finance.shadow as {"x": "finance"}
	_ids(d) == ["FIN-002"]
	not d.shadow_refusals
}

# A refused input carries no shadow refusals, even when a shadow policy would refuse
# its output.
test_a_refused_input_carries_no_shadow_refusals if {
	d := _with_policies({"output": _transfer, "user": {}, "context": {"service": "finance"}}, [_candidate])
	_ids(d) == ["GATE-003"]
	not d.shadow_refusals
}
