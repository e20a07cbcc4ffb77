package pygate.policies.finance_test

import data.pygate.lib
import data.pygate.policies.finance

_user := {"id": "u1", "role": "analyst", "account_status": "active", "transaction_limit": 1000}

_input(output, user) := {"output": output, "user": user, "context": {"service": "finance"}}

_refusals(output, user) := refusals if {
	refusals := finance.refusals with input as _input(output, user)
}

_ids(output, user) := {r.policy_id | some r in _refusals(output, user)}

_transfer(amount) := {"type": "transfer", "amount": amount, "to": "acct-2"}

test_transfer_under_limit_allowed if {
	count(_refusals(_transfer(500), _user)) == 0
}

test_transfer_at_limit_allowed if {
	count(_refusals(_transfer(1000), _user)) == 0
}

test_transfer_over_limit_refused if {
	_refusals(_transfer(5000), _user) == {{
		"policy_id": "FIN-002",
		"title": "Transfer exceeds transaction limit",
		"description": "No action may move more money than the user's transaction limit, or the configured default limit: every argument the service declares as a money_amount is checked, whatever the action is called or how it came.",
		"reason": "Transfer of 5000 exceeds your transaction limit of 1000",
		"action": "show_user_limit",
		"priority": 20,
		"suggestion": "Try a smaller amount",
		"message": "That is more than you can move at once: your limit is 1000.",
		"hint": "Propose at most 1000 in amount, or split the amount and ask the user first.",
		"why": [{"field": "arguments.amount", "op": ">", "value": 5000, "bound": 1000}],
		"would_pass": [{"field": "arguments.amount", "op": "<=", "bound": 1000}],
		"source": "rego",
	}}
}

test_user_limit_overrides_default if {
	user := object.union(_user, {"transaction_limit": 10000})
	count(_refusals(_transfer(5000), user)) == 0
}

test_default_limit_used_without_user_limit if {
	user := object.remove(_user, ["transaction_limit"])
	some r in _refusals(_transfer(1500), user)
	r.reason == "Transfer of 1500 exceeds your transaction limit of 1000"
}

test_default_limit_read_from_data if {
	user := object.remove(_user, ["transaction_limit"])
	count(_refusals(_transfer(1500), user)) == 0 with data.pygate.config.default_transaction_limit as 2000
}

test_transfer_amount_missing_refused if {
	some r in _refusals({"type": "transfer", "to": "acct-2"}, _user)
	r.policy_id == "FIN-003"
	r.action == "log_refusal"
	r.reason == "Malformed transfer: amount must be a positive number"
}

test_transfer_amount_string_refused if {
	_ids(_transfer("5000"), _user) == {"FIN-003"}
}

test_transfer_amount_negative_refused if {
	_ids(_transfer(-5000), _user) == {"FIN-003"}
}

test_recommendation_without_asset_refused if {
	some r in _refusals({"type": "recommendation"}, _user)
	r.reason == "Malformed recommendation: asset must be a non-empty string"
}

test_account_under_review_refused if {
	user := object.union(_user, {"account_status": "under_review"})
	some r in _refusals({"type": "text", "text": "hello"}, user)
	r.policy_id == "FIN-001"
	r.action == "log_and_notify"
	r.priority == 10
}

test_account_under_review_refused_with_other_refusals if {
	user := object.union(_user, {"account_status": "under_review"})
	_ids(_transfer(5000), user) == {"FIN-001", "FIN-002"}
}

test_active_account_allowed if {
	count(_refusals({"type": "text", "text": "hello"}, _user)) == 0
}

test_restricted_asset_refused if {
	some r in _refusals({"type": "recommendation", "asset": "ACME"}, _user)
	r.policy_id == "FIN-004"
	r.action == "log_refusal"
	r.priority == 30
	r.reason == "ACME is a restricted asset"
}

test_restricted_asset_lowercase_refused if {
	_ids({"type": "recommendation", "asset": "acme"}, _user) == {"FIN-004"}
}

test_active_asset_allowed if {
	count(_refusals({"type": "recommendation", "asset": "GLOBEX"}, _user)) == 0
}

test_unlisted_asset_allowed if {
	count(_refusals({"type": "recommendation", "asset": "HOOLI"}, _user)) == 0
}

test_restricted_list_read_from_data if {
	_ids({"type": "recommendation", "asset": "GLOBEX"}, _user) == {"FIN-004"} with data.pygate.config.assets as {"GLOBEX": "restricted"}
}

test_assets_missing_refuses_recommendation if {
	some r in _refusals({"type": "recommendation", "asset": "GLOBEX"}, _user) with data.pygate.config.assets as null
	r.policy_id == "FIN-005"
	r.reason == "Required policy data is missing or malformed: assets must be an object"
}

test_assets_not_object_refuses_recommendation if {
	_ids({"type": "recommendation", "asset": "GLOBEX"}, _user) == {"FIN-005"} with data.pygate.config.assets as ["ACME"]
}

test_assets_missing_does_not_block_transfers if {
	count(_refusals(_transfer(500), _user)) == 0 with data.pygate.config as {}
}

test_malformed_user_limit_refuses_transfer if {
	user := object.union(_user, {"transaction_limit": "1000"})
	some r in _refusals(_transfer(1), user)
	r.policy_id == "FIN-005"
	r.reason == "Required policy data is missing or malformed: no usable transaction limit for this user"
}

test_malformed_default_limit_refuses_transfer if {
	user := object.remove(_user, ["transaction_limit"])
	_ids(_transfer(1), user) == {"FIN-005"} with data.pygate.config.default_transaction_limit as "1000"
}

# Checks over meanings: the limit applies to every money_amount, the
# restricted list to every asset field, whatever the action or shape.

test_limit_applies_to_every_money_amount if {
	_ids({"type": "Transfer", "amount": 5000}, _user) == {"FIN-002"}
	_ids({"type": "tool_call", "action": "transfer", "arguments": {"amount": 5000}}, _user) == {"FIN-002"}
	_ids({"type": "buy", "asset_id": "GLOBEX", "amount": 5000}, _user) == {"FIN-002"}
	_ids({"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "transfer", "arguments": `{"amount": 5000}`}}]}, _user) == {"FIN-002"}
}

test_restricted_asset_in_every_asset_field if {
	_ids({"type": "buy", "asset_id": "acme", "quantity": 1}, _user) == {"FIN-004"}
	_ids({"type": "recommendation", "asset": "GLOBEX", "asset_id": "ACME"}, _user) == {"FIN-004"}
	_ids({"type": "tool_use", "id": "t", "name": "sell", "input": {"asset": "Umbrella"}}, _user) == {"FIN-004"}
}

test_asset_identifier_must_have_the_declared_form if {
	every asset in ["ACME ", "NYSE:ACME", "\u0410CME", "ACME\u200b", "AC ME", "THIRTEENCHARS"] {
		some r in _refusals({"type": "recommendation", "asset": asset}, _user)
		r.policy_id == "FIN-006"
	}
	_ids({"type": "recommendation", "asset": "ACME "}, _user) == {"FIN-006"}
	_ids({"type": "recommendation", "asset": "ACME"}, _user) == {"FIN-004"} with data.pygate.config.identifiers as null
}

test_asset_pattern_malformed_refuses if {
	_ids({"type": "recommendation", "asset": "GLOBEX"}, _user) == {"FIN-005", "FIN-006"} with data.pygate.config.identifiers as {"asset": {"pattern": "(["}}
}

test_frozen_and_closed_accounts_refused if {
	every status in ["frozen", "closed"] {
		_ids({"type": "text", "text": "hi"}, object.union(_user, {"account_status": status})) == {"FIN-007"}
	}
}

test_identifier_folding if {
	lib.canonical_identifier("asset", "acme") == "ACME"
	not lib.canonical_identifier("asset", 5)
	lib.canonical_identifier("x", "Ab") == "ab" with data.pygate.config.identifiers as {"x": {"pattern": "^[a-z]+$", "canonical": "lower"}}
	lib.canonical_identifier("x", "ab") == "ab" with data.pygate.config.identifiers as {"x": {"pattern": "^[a-z]+$"}}
	not lib.canonical_identifier("x", "Ab") with data.pygate.config.identifiers as {"x": {"pattern": "^[a-z]+$"}}
}
