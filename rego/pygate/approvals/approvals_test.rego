package pygate.approvals_test

import data.pygate.approvals
import data.pygate.gate

_tool := {"type": "tool_call", "action": "delete_records", "table": "users"}

_user := {"id": "ana", "role": "analyst"}

_approval(overrides) := object.union(
	{
		"approval_id": "ap-1",
		"status": "approved",
		"approved_by": "rita",
		"user_id": "ana",
		"output_hash": approvals.output_hash(_tool),
		"policy_ids": ["AST-002", "GATE-011"],
		"expires_at_ns": 2000,
	},
	overrides,
)

_decide(output, list) := d if {
	d := gate.decision with input as {
		"output": output,
		"user": _user,
		"context": {"service": "assistant", "usage_today": 0, "approvals": list},
	}
		with time.now_ns as 1000
}

test_unapproved_review_refusal_says_what_to_approve if {
	d := _decide(_tool, [])
	not d.allowed
	d.primary.policy_id == "AST-002"
	d.review == {"output_hash": crypto.sha256(json.marshal(_tool)), "policy_ids": ["AST-002", "GATE-011"]}
	not d.approvals_applied
}

test_output_hash_is_sha256_of_sorted_json if {
	approvals.output_hash({"b": 1, "a": [true, null]}) == crypto.sha256(`{"a":[true,null],"b":1}`)
}

test_approval_lifts_the_review_refusal if {
	d := _decide(_tool, [_approval({})])
	d.allowed
	d.refusals == []
	d.approvals_applied == [{"approval_id": "ap-1", "approved_by": "rita"}]
	not d.review
}

test_expired_approval_does_not_lift if {
	d := _decide(_tool, [_approval({"expires_at_ns": 1000})])
	not d.allowed
	d.primary.policy_id == "AST-002"
}

test_approval_must_match_everything if {
	every bad in [
		{"user_id": "bob"},
		{"output_hash": approvals.output_hash({"type": "tool_call", "action": "delete_records"})},
		{"policy_ids": ["FIN-DATA-001"]},
		{"status": "pending"},
		{"status": "rejected"},
		{"expires_at_ns": "2000"},
		{"approved_by": null},
		{"approval_id": 7},
	] {
		d := _decide(_tool, [_approval(bad)])
		not d.allowed
		d.primary.policy_id == "AST-002"
	}
}

test_approvals_not_a_list_lift_nothing if {
	d := _decide(_tool, {"ap-1": _approval({})})
	not d.allowed
}

test_other_refusals_are_never_lifted if {
	code := {"type": "code", "text": "x = 1"}
	d := _decide(code, [_approval({"output_hash": approvals.output_hash(code), "policy_ids": ["AST-001"]})])
	not d.allowed
	d.primary.policy_id == "AST-001"
	not d.review
}

test_lifted_but_still_refused_reports_both if {
	d := gate.decision with input as {
		"output": _tool,
		"user": _user,
		"context": {"service": "assistant", "usage_today": 100, "approvals": [_approval({})]},
	}
		with time.now_ns as 1000
	not d.allowed
	[r.policy_id | some r in d.refusals] == ["AST-003"]
	d.approvals_applied == [{"approval_id": "ap-1", "approved_by": "rita"}]
}
