# METADATA
# title: Finance policies
# description: >-
#   Refusals for model output that would move money or recommend assets.
#   Limits and the restricted-asset list are policy data (data.pygate.config).
package pygate.policies.finance

import data.pygate.lib

# METADATA
# title: Account under regulatory review
# description: An account under regulatory review may not act on model output until the review closes.
# custom:
#   id: FIN-001
#   reason: Your account is under regulatory review
#   action: log_and_notify
#   priority: 10
#   message: I can't act on this while your account is under review
refusals contains r if {
	input.user.account_status == "under_review"
	r := lib.refusal(rego.metadata.chain(), {})
}

# METADATA
# title: Transfer exceeds transaction limit
# description: A transfer may not exceed the user's transaction limit, or the configured default limit.
# custom:
#   id: FIN-002
#   reason: Transfer of {{.amount}} exceeds your transaction limit of {{.limit}}
#   action: show_user_limit
#   priority: 20
#   suggestion: Try a smaller amount
refusals contains r if {
	input.output.type == "transfer"
	amount := input.output.amount
	is_number(amount)
	limit := lib.transaction_limit(input.user)
	amount > limit
	r := lib.refusal(rego.metadata.chain(), {"amount": amount, "limit": limit})
}

# METADATA
# title: Malformed finance output
# description: Finance output that cannot be checked (no amount, no asset) is refused rather than let through.
# custom:
#   id: FIN-003
#   reason: "Malformed {{.type}}: {{.problem}}"
#   action: log_refusal
#   priority: 20
refusals contains r if {
	some problem in _output_problems(input.output)
	r := lib.refusal(rego.metadata.chain(), {"type": input.output.type, "problem": problem})
}

# METADATA
# title: Recommendation of a restricted asset
# description: The model may not recommend an asset the restricted list marks as restricted.
# custom:
#   id: FIN-004
#   reason: "{{.asset}} is a restricted asset"
#   action: log_refusal
#   priority: 30
refusals contains r if {
	input.output.type == "recommendation"
	lib.asset_restricted(lib.config("assets", null), input.output.asset)
	r := lib.refusal(rego.metadata.chain(), {"asset": input.output.asset})
}

# METADATA
# title: Finance policy data missing or malformed
# description: >-
#   The data a finance check needs (limits, restricted assets) is missing or
#   malformed, so the check cannot run and the output is refused.
# custom:
#   id: FIN-005
#   reason: "Required policy data is missing or malformed: {{.problem}}"
#   action: log_refusal
#   priority: 0
refusals contains r if {
	some problem in _data_problems(input.output, input.user)
	r := lib.refusal(rego.metadata.chain(), {"problem": problem})
}

_output_problems(output) := {"amount must be a positive number"} if {
	output.type == "transfer"
	not _positive_number(object.get(output, "amount", null))
} else := {"asset must be a non-empty string"} if {
	output.type == "recommendation"
	not _non_empty_string(object.get(output, "asset", null))
} else := set()

# Each check is scoped to the output type that needs the data, so a broken
# restricted-asset list does not also block transfers.
_data_problems(output, user) := {"no usable transaction limit for this user"} if {
	output.type == "transfer"
	not lib.transaction_limit(user)
} else := {"assets must be an object"} if {
	output.type == "recommendation"
	not is_object(lib.config("assets", null))
} else := set()

_positive_number(x) if {
	is_number(x)
	x > 0
}

_non_empty_string(x) if {
	is_string(x)
	x != ""
}
