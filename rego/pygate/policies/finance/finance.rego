# METADATA
# title: Finance policies
# description: >-
#   Refusals for model output that would move money or recommend assets.
#   Limits and the restricted-asset list are policy data (data.pygate.config).
package pygate.policies.finance

import data.pygate.canonical
import data.pygate.contracts
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
#   hint: Do not retry; tell the user the account must leave review first.
refusals contains r if {
	input.user.account_status == "under_review"
	r := lib.explained(
		rego.metadata.chain(), {},
		[lib.condition("user.account_status", "==", "under_review", "under_review")],
		[lib.change("user.account_status", "==", "active")],
	)
}

# METADATA
# title: Transfer exceeds transaction limit
# description: >-
#   No action may move more money than the user's transaction limit, or the
#   configured default limit: every argument the service declares as a
#   money_amount is checked, whatever the action is called or how it came.
# custom:
#   id: FIN-002
#   reason: Transfer of {{.amount}} exceeds your transaction limit of {{.limit}}
#   action: show_user_limit
#   priority: 20
#   suggestion: Try a smaller amount
#   message: "That is more than you can move at once: your limit is {{.limit}}."
#   hint: "Propose at most {{.limit}} in {{.field}}, or split the amount and ask the user first."
refusals contains r if {
	some f in _money
	amount := f.value
	is_number(amount)
	limit := lib.transaction_limit(input.user)
	amount > limit
	field := concat(".", ["arguments", f.field])
	r := lib.explained(
		rego.metadata.chain(), {"amount": amount, "limit": limit, "field": f.field},
		[lib.condition(field, ">", amount, limit)],
		[lib.change(field, "<=", limit)],
	)
}

# METADATA
# title: Malformed finance output
# description: >-
#   Finance output that cannot be checked (an amount that is not a positive
#   number, no asset where one is needed) is refused rather than let through.
# custom:
#   id: FIN-003
#   reason: "Malformed {{.type}}: {{.problem}}"
#   action: log_refusal
#   priority: 20
#   message: I couldn't process that request because some details are missing or invalid.
#   hint: Send a positive number for each amount and name the asset where one is needed.
refusals contains r if {
	some a in canonical.actions
	some problem in _output_problems(a)
	r := lib.refusal(rego.metadata.chain(), {"type": a.name, "problem": problem})
}

# METADATA
# title: Recommendation of a restricted asset
# description: >-
#   The model may not name, in any action, an asset the restricted list
#   marks as restricted. Identifiers are compared in canonical form (upper case).
# custom:
#   id: FIN-004
#   reason: "{{.asset}} is a restricted asset"
#   action: log_refusal
#   priority: 30
#   message: I can't recommend that asset.
#   hint: Do not name that asset again; suggest an asset that is not restricted.
refusals contains r if {
	some f in _assets
	symbol := lib.canonical_identifier("asset", f.value)
	lib.asset_restricted(lib.config("assets", null), symbol)
	field := concat(".", ["arguments", f.field])
	restricted := _restricted_symbols
	r := lib.explained(
		rego.metadata.chain(), {"asset": symbol},
		[lib.condition(field, "in", symbol, restricted)],
		[lib.change(field, "not in", restricted)],
	)
}

# The symbols the restricted list marks, for the explanation of FIN-004
# (computed only when an asset was refused).
_restricted_symbols := sort([symbol | some symbol, status in lib.config("assets", {}); status == "restricted"])

# METADATA
# title: Asset identifier not valid
# description: >-
#   An asset must be named by an identifier of the declared form (identifiers.asset
#   in policy data); whitespace, exchange prefixes and look-alike letters are refused
#   rather than compared against the restricted list.
# custom:
#   id: FIN-006
#   reason: "{{.field}} of {{.action}} is not a valid asset identifier: {{.value}}"
#   action: log_refusal
#   priority: 20
#   message: I couldn't recognise that asset name.
#   hint: "Name the asset by its plain ticker symbol in {{.field}} (letters and digits only)."
refusals contains r if {
	some f in _assets
	not lib.canonical_identifier("asset", f.value)
	field := concat(".", ["arguments", f.field])
	pattern := lib.identifier_spec("asset").pattern
	r := lib.explained(
		rego.metadata.chain(), {"field": f.field, "action": f.action, "value": json.marshal(f.value)},
		[lib.condition(field, "not matches", f.value, pattern)],
		[lib.change(field, "matches", pattern)],
	)
}

# METADATA
# title: Account not active
# description: A frozen or closed account may not act on model output.
# custom:
#   id: FIN-007
#   reason: "Your account is {{.status}}"
#   action: log_and_notify
#   priority: 10
#   message: I can't act on this while your account is not active
#   hint: Do not retry; tell the user the account must be active first.
refusals contains r if {
	input.user.account_status in {"frozen", "closed"}
	r := lib.explained(
		rego.metadata.chain(), {"status": input.user.account_status},
		[lib.condition("user.account_status", "in", input.user.account_status, ["closed", "frozen"])],
		[lib.change("user.account_status", "==", "active")],
	)
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
#   message: I can't do that right now because of a configuration problem on our side.
#   hint: Do not retry; the operator must fix the policy data first.
refusals contains r if {
	some problem in _data_problems(input.user)
	r := lib.refusal(rego.metadata.chain(), {"problem": problem})
}

# The arguments of this query's actions that mean money, and assets.
_money := [f | some f in contracts.fields; f.meaning == "money_amount"]

_assets := [f | some f in contracts.fields; f.meaning == "asset"]

_output_problems(a) := ({"amount must be a positive number" |
	some f in _money
	f.action == a.name
	f.value != null
	not _positive_number(f.value)
} | {"amount must be a positive number" |
	# an action that must name an amount but names none cannot be checked
	some field in object.get(contracts.action_meanings, [a.name, "money_amount"], set())
	contracts.required(a.name, field)
	not _any_present(a.arguments, contracts.action_meanings[a.name].money_amount)
}) | {"asset must be a non-empty string" |
	fields := object.get(contracts.action_meanings, [a.name, "asset"], set())
	count(fields) > 0
	not _any_asset(a.arguments, fields)
}

_present(args, field) if args[field] != null

_any_present(args, fields) if {
	some field in fields
	_present(args, field)
}

_any_asset(args, fields) if {
	some field in fields
	_non_empty_string(args[field])
}

# Each check is scoped to the meaning that needs the data, so a broken
# restricted-asset list does not also block transfers.
_data_problems(user) := ({"no usable transaction limit for this user" |
	some f in contracts.fields
	f.meaning == "money_amount"
	not lib.transaction_limit(user)
} | {"assets must be an object" |
	some f in contracts.fields
	f.meaning == "asset"
	not is_object(lib.config("assets", null))
}) | {"identifiers.asset.pattern must be a valid RE2 pattern" |
	some f in contracts.fields
	f.meaning == "asset"
	not lib.valid_regex(lib.identifier_spec("asset").pattern)
}

_positive_number(x) if {
	is_number(x)
	x > 0
}

_non_empty_string(x) if {
	is_string(x)
	x != ""
}
