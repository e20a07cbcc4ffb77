package pygate.gate_test

import data.pygate.gate

# A candidate policy: transfers over 100 (the live limit is 1000).
_candidate(shadow) := {
	"id": "FIN-CAND-1",
	"set": "finance",
	"reason": "Transfer of {{.output.amount}} is over the candidate limit",
	"action": "log_refusal",
	"message": "That is more than the new limit.",
	"shadow": shadow,
	"conditions": [{"type": "field_compare", "field": "amount", "op": "gt", "value": 100}],
}

_with_policies(doc, policies) := d if {
	d := gate.decision with input as doc
		with data.pygate.config.declarative_policies as policies
		with data.pygate.config.declarative_index as null
}

test_shadow_policy_never_refuses if {
	d := _with_policies(_finance(_transfer(500)), [_candidate(true)])
	d.allowed == true
	d.refusals == []
	d.primary == null
	[r.policy_id | some r in d.shadow_refusals] == ["FIN-CAND-1"]
	d.shadow_refusals[0].shadow == true
	d.shadow_refusals[0].why == [{"field": "output.amount", "op": ">", "value": 500, "bound": 100}]
}

test_shadow_policy_cannot_lift_an_enforcing_refusal if {
	d := _with_policies(_finance(_transfer(5000)), [_candidate(true)])
	d.allowed == false
	_ids(d) == ["FIN-002"]
	[r.policy_id | some r in d.shadow_refusals] == ["FIN-CAND-1"]
}

# Even a shadow policy that reuses the enforcing policy's id lifts nothing:
# refusals are told apart by where they came from.
test_shadow_policy_with_an_enforcing_id_lifts_nothing if {
	d := _with_policies(_finance(_transfer(5000)), [object.union(_candidate(true), {"id": "FIN-002"})])
	_ids(d) == ["FIN-002"]
	d.refusals[0].source == "rego"
	[r.source | some r in d.shadow_refusals] == ["data"]
}

test_promotion_is_removing_the_mark if {
	d := _with_policies(_finance(_transfer(500)), [object.remove(_candidate(true), ["shadow"])])
	d.allowed == false
	_ids(d) == ["FIN-CAND-1"]
	not d.shadow_refusals
}

test_a_mark_that_is_not_true_enforces if {
	every mark in ["true", 1, null, false] {
		d := _with_policies(_finance(_transfer(500)), [_candidate(mark)])
		_ids(d) == ["FIN-CAND-1"]
	}
}

test_no_shadow_key_without_shadow_refusals if {
	d := _with_policies(_finance(_transfer(50)), [_candidate(true)])
	d.allowed == true
	not d.shadow_refusals
}

# A service marks a set or package it lists as shadow.
test_service_mark_puts_a_set_in_shadow if {
	d := _decide(_finance(_transfer(5000))) with data.pygate.config.services.finance.shadow as ["finance"]
	d.allowed == true
	[r.policy_id | some r in d.shadow_refusals] == ["FIN-002"]
	d.shadow_refusals[0].policy_set == "finance"
}

test_gate_refusals_never_shadow if {
	# an undeclared action is refused by contracts (GATE-010, policy_set "gate")
	d := _decide(_finance({"type": "wire", "amount": 5})) with data.pygate.config.services.finance.shadow as ["finance", "gate"]
	_ids(d) == ["GATE-010"]
}

test_malformed_service_mark_enforces if {
	every mark in ["finance", {"finance": true}, true] {
		d := _decide(_finance(_transfer(5000))) with data.pygate.config.services.finance.shadow as mark
		_ids(d) == ["FIN-002"]
	}
}

test_invalid_shadow_policy_enforces if {
	bad := object.remove(_candidate(true), ["reason"])
	d := _with_policies(_finance(_transfer(500)), [bad])
	_ids(d) == ["FIN-CAND-1"]
	d.refusals[0].invalid == true
}

test_rego_refusal_claiming_shadow_is_not_believed if {
	refusal := {"policy_id": "X-1", "reason": "r", "action": "a", "priority": 3, "shadow": true}
	d := _decide(_finance(_transfer(1))) with data.pygate.policies.finance.refusals as [refusal]
	_ids(d) == ["X-1"]
}

test_shadow_require_review_waits_for_nobody if {
	doc := {"output": {"type": "tool_call", "action": "delete_records"}, "user": _analyst, "context": {"service": "assistant", "usage_today": 1}}
	d := _decide(doc) with data.pygate.config.services.assistant.shadow as ["assistant"]
	d.review.policy_ids == ["GATE-011"] # the contract's own review, not the shadow one
	[r.policy_id | some r in d.shadow_refusals] == ["AST-002"]
}

test_input_refusal_has_no_shadow if {
	d := _decide({"output": 5, "user": _analyst, "context": {"service": "finance"}}) with data.pygate.config.services.finance.shadow as ["finance"]
	_ids(d) == ["GATE-002"]
	not d.shadow_refusals
}

test_batch_carries_shadow_refusals if {
	b := gate.batch with input as {"items": [_finance(_transfer(500))]}
		with data.pygate.config.declarative_policies as [_candidate(true)]
		with data.pygate.config.declarative_index as null
	[r.policy_id | some r in b.decisions[0].shadow_refusals] == ["FIN-CAND-1"]
}
