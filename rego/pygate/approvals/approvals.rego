# METADATA
# title: Human approvals
# description: >-
#   Lifts a refusal whose action is require_review when a person approved this
#   very output for this very user, and the approval has not expired. The gate
#   puts the user's approvals into input.context.approvals (never the caller);
#   this package decides whether one of them applies, so Python never does.
package pygate.approvals

# output_hash is the canonical hash of an output: SHA-256 of its JSON with
# object keys sorted (json.marshal sorts them). Approvals name the output they
# approve by this hash, so a changed output needs a new approval.
output_hash(output) := crypto.sha256(json.marshal(output))

# lifted is the set of refusals in refusals that an approval in inp lifts:
# only require_review refusals, only for the approved policy ids.
lifted(refusals, inp) := {r |
	some r in refusals
	r.action == "require_review"
	count(_matching(r.policy_id, inp)) > 0
}

# extras is what the decision adds about approvals: the approvals that were
# applied, and, when a require_review refusal remains, what a person must
# approve (the output hash and the policy ids). Empty when neither applies.
extras(lifted_refusals, remaining, inp) := object.union(_applied(lifted_refusals, inp), _review(remaining, inp))

_applied(lifted_refusals, _) := {} if count(lifted_refusals) == 0

_applied(lifted_refusals, inp) := {"approvals_applied": sort([a |
	some a in {{"approval_id": approval.approval_id, "approved_by": approval.approved_by} |
		some r in lifted_refusals
		some approval in _matching(r.policy_id, inp)
	}
])} if {
	count(lifted_refusals) > 0
}

_review(remaining, inp) := {"review": {
	"output_hash": output_hash(inp.output),
	"policy_ids": sort([id | some id in _review_ids(remaining)]),
}} if {
	count(_review_ids(remaining)) > 0
} else := {}

_review_ids(refusals) := {r.policy_id | some r in refusals; r.action == "require_review"}

_matching(policy_id, inp) := {approval |
	some approval in _approvals(inp)
	_applies(approval, policy_id, inp)
}

_approvals(inp) := inp.context.approvals if {
	is_array(inp.context.approvals)
} else := []

# An approval applies when every field matches; anything malformed or missing
# makes it not apply, so the refusal stands (fail closed).
_applies(approval, policy_id, inp) if {
	approval.status == "approved"
	is_string(approval.approval_id)
	is_string(approval.approved_by)
	approval.user_id == inp.user.id
	approval.output_hash == output_hash(inp.output)
	policy_id in approval.policy_ids
	is_number(approval.expires_at_ns)
	time.now_ns() < approval.expires_at_ns
}
