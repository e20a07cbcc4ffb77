package pygate.declarative_test

_one(condition, output, user) := r if {
	rs := _run([_policy([condition])], output, user)
	count(rs) == 1
	some r in rs
}

# Every condition type explains itself: one why and one would_pass per
# condition, the would_pass the negation of the why.
test_every_condition_type_explains_itself if {
	cases := [
		[{"type": "account_status", "in": ["frozen"]}, {}, object.union(_user, {"account_status": "frozen"}), {"field": "user.account_status", "op": "in", "value": "frozen", "bound": ["frozen"]}, "not in"],
		[{"type": "amount_exceeds_limit"}, {"amount": 5000}, _user, {"field": "output.amount", "op": ">", "value": 5000, "bound": 1000}, "<="],
		[{"type": "asset_restricted", "field": "symbol"}, {"symbol": "ACME"}, _user, {"field": "output.symbol", "op": "in", "value": "ACME", "bound": ["ACME"]}, "not in"],
		[{"type": "role_not_in", "roles": ["admin"]}, {}, _user, {"field": "user.role", "op": "not in", "value": "analyst", "bound": ["admin"]}, "in"],
		[{"type": "field_compare", "field": "n", "op": "lte", "value": 3}, {"n": 2}, _user, {"field": "output.n", "op": "<=", "value": 2, "bound": 3}, ">"],
		[{"type": "field_in", "field": "a.b", "values": ["x"]}, {"a": {"b": "x"}}, _user, {"field": "output.a.b", "op": "in", "value": "x", "bound": ["x"]}, "not in"],
		[{"type": "field_not_in", "field": "c", "values": ["x"]}, {}, _user, {"field": "output.c", "op": "not in", "value": null, "bound": ["x"]}, "in"],
		[{"type": "user_attribute_in", "attribute": "tier", "values": ["free"]}, {}, object.union(_user, {"tier": "free"}), {"field": "user.tier", "op": "in", "value": "free", "bound": ["free"]}, "not in"],
		[{"type": "text_matches", "field": "text", "pattern": "secret"}, {"text": "a secret"}, _user, {"field": "output.text", "op": "matches", "value": null, "bound": "secret"}, "not matches"],
	]
	every c in cases {
		r := _one(c[0], c[1], c[2]) with data.pygate.config.assets as {"ACME": "restricted", "GLOBEX": "ok"}
		r.why == [c[3]]
		r.would_pass == [{"field": c[3].field, "op": c[4], "bound": c[3].bound}]
	}
}

test_field_compare_ops_negate if {
	every op, pair in {"eq": ["==", "!="], "neq": ["!=", "=="], "gt": [">", "<="], "gte": [">=", "<"], "lt": ["<", ">="]} {
		value := {"eq": 3, "neq": 4, "gt": 4, "gte": 3, "lt": 2}[op]
		r := _one({"type": "field_compare", "field": "n", "op": op, "value": 3}, {"n": value}, _user)
		r.why[0].op == pair[0]
		r.would_pass[0].op == pair[1]
	}
}

test_broken_data_still_explained if {
	r := _one({"type": "amount_exceeds_limit"}, {"amount": 5}, object.union(_user, {"transaction_limit": "x"}))
	r.why == [{"field": "output.amount", "op": ">", "value": 5, "bound": null}]
	r2 := _one({"type": "asset_restricted"}, {"asset": "X"}, _user) with data.pygate.config.assets as null
	r2.why[0].bound == []
}

test_hint_and_shadow_mark if {
	policy := object.union(_policy([{"type": "field_in", "field": "type", "values": ["t"]}]), {"hint": "Try {{.output.type}} less", "suggestion": "old", "shadow": true})
	some r in _run([policy], {"type": "t"}, _user)
	r.hint == "Try t less"
	r.suggestion == "old"
	r.shadow == true
	some r2 in _run([object.remove(policy, ["hint", "shadow"])], {"type": "t"}, _user)
	r2.hint == "old"
	not r2.shadow
}
