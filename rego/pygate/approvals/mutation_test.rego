# Tests that kill the survivors of scripts/rego-mutation.py on approvals.rego (issue 18).
package pygate.approvals_mutation_test

import data.pygate.approvals

_output := {"type": "tool_call", "action": "delete_records", "table": "users"}

_inp(policy_ids) := {
	"output": _output,
	"user": {"id": "ana"},
	"context": {"approvals": [{
		"approval_id": "ap-1", "status": "approved", "approved_by": "rita", "user_id": "ana",
		"output_hash": approvals.output_hash(_output), "policy_ids": policy_ids, "expires_at_ns": 2000,
	}]},
}

_review := {"policy_id": "AST-002", "action": "require_review"}

_limit := {"policy_id": "FIN-002", "action": "show_user_limit"}

# An approval lifts only a require_review refusal, even when it names another one.
test_an_approval_never_lifts_a_refusal_that_is_not_a_review if {
	approvals.lifted({_review, _limit}, _inp(["AST-002", "FIN-002"])) == {_review} with time.now_ns as 1000
}

# One lifted refusal is reported as applied (not only two or more).
test_a_single_lifted_refusal_is_reported if {
	approvals.extras({_review}, set(), _inp(["AST-002"])) == {"approvals_applied": [{"approval_id": "ap-1", "approved_by": "rita"}]} with time.now_ns as 1000
}
