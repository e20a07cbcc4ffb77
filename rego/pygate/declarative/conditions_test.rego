package pygate.declarative_test

# _outcome runs one condition as a one-condition policy in set "s":
# "refuse" when it holds, "allow" when not, "invalid" when it fails validation.
_outcome(condition, output, user) := "invalid" if {
	some r in _run([_policy([condition])], output, user)
	r.invalid
} else := "refuse" if {
	count(_run([_policy([condition])], output, user)) > 0
} else := "allow"

test_account_status if {
	c := {"type": "account_status", "in": ["under_review", "frozen"]}
	_outcome(c, {}, object.union(_user, {"account_status": "frozen"})) == "refuse"
	_outcome(c, {}, _user) == "allow"
	_outcome(c, {}, {"id": "u"}) == "allow"
	_outcome({"type": "account_status"}, {}, _user) == "invalid"
	_outcome({"type": "account_status", "in": "frozen"}, {}, _user) == "invalid"
}

test_amount_exceeds_limit if {
	c := {"type": "amount_exceeds_limit"}
	_outcome(c, {"amount": 1001}, _user) == "refuse"
	_outcome(c, {"amount": 1000}, _user) == "allow"
	_outcome(c, {"amount": "5000"}, _user) == "allow"
	_outcome(c, {}, _user) == "allow"
	_outcome({"type": "amount_exceeds_limit", "field": "params.value"}, {"params": {"value": 2000}}, _user) == "refuse"
	_outcome({"type": "amount_exceeds_limit", "field": 1}, {"amount": 2000}, _user) == "invalid"
}

test_amount_exceeds_limit_uses_default_limit if {
	c := {"type": "amount_exceeds_limit"}
	_outcome(c, {"amount": 1500}, {"id": "u"}) == "refuse"
	_outcome(c, {"amount": 1500}, {"id": "u"}) == "allow" with data.pygate.config.default_transaction_limit as 2000
}

test_amount_exceeds_limit_holds_when_limit_unknown if {
	c := {"type": "amount_exceeds_limit"}
	_outcome(c, {"amount": 1}, object.union(_user, {"transaction_limit": "lots"})) == "refuse"
}

test_asset_restricted if {
	c := {"type": "asset_restricted"}
	_outcome(c, {"asset": "ACME"}, _user) == "refuse"
	_outcome(c, {"asset": "umbrella"}, _user) == "refuse"
	_outcome(c, {"asset": "GLOBEX"}, _user) == "allow"
	_outcome(c, {}, _user) == "allow"
	_outcome({"type": "asset_restricted", "field": "order.symbol"}, {"order": {"symbol": "ACME"}}, _user) == "refuse"
	_outcome({"type": "asset_restricted", "field": ""}, {"asset": "ACME"}, _user) == "invalid"
}

test_asset_restricted_holds_when_asset_data_missing if {
	_outcome({"type": "asset_restricted"}, {"asset": "GLOBEX"}, _user) == "refuse" with data.pygate.config.assets as null
}

test_role_not_in if {
	c := {"type": "role_not_in", "roles": ["developer", "admin"]}
	_outcome(c, {}, _user) == "refuse"
	_outcome(c, {}, {"id": "u"}) == "refuse"
	_outcome(c, {}, {"id": "u", "role": "admin"}) == "allow"
	_outcome({"type": "role_not_in"}, {}, _user) == "invalid"
	_outcome({"type": "role_not_in", "roles": "admin"}, {}, _user) == "invalid"
}

test_field_compare_ops if {
	every case in [
		["gt", 11, "refuse"], ["gt", 10, "allow"],
		["gte", 10, "refuse"], ["gte", 9, "allow"],
		["lt", 9, "refuse"], ["lt", 10, "allow"],
		["lte", 10, "refuse"], ["lte", 11, "allow"],
		["eq", 10, "refuse"], ["eq", 10.5, "allow"],
		["neq", 11, "refuse"], ["neq", 10, "allow"],
	] {
		[op, amount, expected] := case
		_outcome({"type": "field_compare", "field": "amount", "op": op, "value": 10}, {"amount": amount}, _user) == expected
	}
}

test_field_compare_needs_a_number if {
	c := {"type": "field_compare", "field": "amount", "op": "neq", "value": 10}
	_outcome(c, {"amount": "11"}, _user) == "allow"
	_outcome(c, {"amount": null}, _user) == "allow"
	_outcome(c, {}, _user) == "allow"
}

test_field_compare_dotted_path if {
	c := {"type": "field_compare", "field": "params.amount", "op": "gt", "value": 10}
	_outcome(c, {"params": {"amount": 11}}, _user) == "refuse"
	_outcome(c, {"params": 11}, _user) == "allow"
}

test_field_compare_invalid if {
	_outcome({"type": "field_compare", "field": "amount", "op": ">", "value": 10}, {"amount": 11}, _user) == "invalid"
	_outcome({"type": "field_compare", "field": "amount", "op": "gt", "value": "10"}, {"amount": 11}, _user) == "invalid"
	_outcome({"type": "field_compare", "op": "gt", "value": 10}, {"amount": 11}, _user) == "invalid"
}

test_field_in if {
	c := {"type": "field_in", "field": "currency", "values": ["BTC", "ETH"]}
	_outcome(c, {"currency": "BTC"}, _user) == "refuse"
	_outcome(c, {"currency": "USD"}, _user) == "allow"
	_outcome(c, {}, _user) == "allow"
	_outcome({"type": "field_in", "field": "n", "values": [1, 2]}, {"n": 2.0}, _user) == "refuse"
	_outcome({"type": "field_in", "field": "currency", "values": "BTC"}, {"currency": "BTC"}, _user) == "invalid"
	_outcome({"type": "field_in", "values": ["BTC"]}, {"currency": "BTC"}, _user) == "invalid"
}

test_field_not_in if {
	c := {"type": "field_not_in", "field": "currency", "values": ["USD", "EUR"]}
	_outcome(c, {"currency": "BTC"}, _user) == "refuse"
	_outcome(c, {}, _user) == "refuse"
	_outcome(c, {"currency": "USD"}, _user) == "allow"
	_outcome({"type": "field_not_in", "field": "currency"}, {"currency": "BTC"}, _user) == "invalid"
}

test_user_attribute_in if {
	c := {"type": "user_attribute_in", "attribute": "country", "values": ["XX", "YY"]}
	_outcome(c, {}, object.union(_user, {"country": "XX"})) == "refuse"
	_outcome(c, {}, object.union(_user, {"country": "FR"})) == "allow"
	_outcome(c, {}, _user) == "allow"
	_outcome({"type": "user_attribute_in", "attribute": "", "values": ["XX"]}, {}, _user) == "invalid"
	_outcome({"type": "user_attribute_in", "attribute": "country", "values": {"XX": true}}, {}, _user) == "invalid"
}

test_text_matches if {
	c := {"type": "text_matches", "field": "text", "pattern": `(?i)\bpassword\b`}
	_outcome(c, {"text": "my Password is"}, _user) == "refuse"
	_outcome(c, {"text": "passwords"}, _user) == "allow"
	_outcome(c, {"text": 42}, _user) == "allow"
	_outcome(c, {}, _user) == "allow"
	_outcome({"type": "text_matches", "field": "text", "pattern": "(unclosed"}, {"text": "x"}, _user) == "invalid"
	_outcome({"type": "text_matches", "field": "text", "pattern": 5}, {"text": "5"}, _user) == "invalid"
	_outcome({"type": "text_matches", "field": "text"}, {"text": "x"}, _user) == "invalid"
}

test_unknown_condition_params_are_ignored if {
	c := {"type": "field_in", "field": "currency", "values": ["BTC"], "note": "crypto only"}
	_outcome(c, {"currency": "BTC"}, _user) == "refuse"
}
