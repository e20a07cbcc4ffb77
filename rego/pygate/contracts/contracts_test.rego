package pygate.contracts_test

import data.pygate.contracts

_user := {"id": "u1", "role": "analyst", "account_status": "active", "transaction_limit": 1000}

_ids(output, user) := ids if {
	ids := {r.policy_id | some r in contracts.refusals} with input as {"output": output, "user": user, "context": {"service": "finance"}}
}

_reasons(output) := reasons if {
	reasons := {r.reason | some r in contracts.refusals} with input as {"output": output, "user": _user, "context": {"service": "finance"}}
}

test_declared_action_with_good_arguments_passes if {
	_ids({"type": "transfer", "amount": 5, "to": "acct-2", "currency": "USD", "memo": "rent"}, _user) == set()
}

test_undeclared_action_refused_naming_it if {
	_reasons({"type": "payment", "amount": 5}) == {"action 'payment' is not declared for service 'finance'"}
}

test_undeclared_action_reviewed_where_the_service_says_so if {
	ids := {r.policy_id | some r in contracts.refusals} with input as {"output": {"type": "payment"}, "user": _user, "context": {"service": "assistant"}}
	ids == {"GATE-011"}
}

test_argument_problems_name_the_field if {
	_reasons({"type": "transfer", "to": "a"}) == {"action 'transfer': missing required argument 'amount'"}
	_reasons({"type": "transfer", "amount": "5"}) == {"action 'transfer': argument 'amount' must be a number"}
	_reasons({"type": "transfer", "amount": 5, "to": "a b"}) == {"action 'transfer': argument 'to' does not match ^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"}
	_reasons({"type": "transfer", "amount": 5, "x": 1}) == {"action 'transfer': unknown argument 'x'"}
	_reasons({"type": "recommendation"}) == {"action 'recommendation': needs one of the arguments asset, asset_id"}
	_reasons({"type": "buy", "asset": "GLOBEX", "quantity": 0}) == {"action 'buy': argument 'quantity' must be greater than 0"}
}

test_value_problems if {
	contracts.value_problems({"type": "integer"}, 1.5) == {"must be an integer"}
	contracts.value_problems({"type": "integer"}, 2) == set()
	contracts.value_problems({"type": "boolean"}, "true") == {"must be true or false"}
	contracts.value_problems({"type": "string", "enum": ["a"]}, "b") == {`must be one of ["a"], not "b"`}
	contracts.value_problems({"type": "string", "max_length": 2}, "abc") == {"is longer than 2 characters"}
	contracts.value_problems({"type": "string", "min_length": 2}, "a") == {"is shorter than 2 characters"}
	contracts.value_problems({"type": "number", "minimum": 0, "maximum": 10}, -1) == {"must be at least 0"}
	contracts.value_problems({"type": "number", "minimum": 0, "maximum": 10}, 11) == {"must be at most 10"}
}

test_malformed_contract_refuses if {
	services := {"finance": {"policy_sets": ["finance"], "actions": {"transfer": {"arguments": {"amount": {"type": "money"}}}}}}
	ids := {r.policy_id | some r in contracts.refusals} with input as {"output": {"type": "transfer", "amount": 5}, "user": _user, "context": {"service": "finance"}}
		with data.pygate.config.services as services
	ids == {"GATE-013"}
	not contracts.field_spec_ok({"type": "string", "meaning": "cash"})
	not contracts.field_spec_ok({"type": "string", "colour": "red"})
	not contracts.field_spec_ok({"type": "string", "pattern": "(["})
	not contracts.field_spec_ok("string")
}

test_host_facts_checked if {
	every status in ["UNDER_REVIEW", "under review", 5, ["active"]] {
		_ids({"type": "text", "text": "x"}, object.union(_user, {"account_status": status})) == {"GATE-014"}
	}
	_ids({"type": "text", "text": "x"}, object.union(_user, {"transaction_limit": "9"})) == {"GATE-014"}
	_ids({"type": "text", "text": "x"}, object.union(_user, {"transaction_limit": null})) == set()
	_ids({"type": "text", "text": "x"}, {"id": "u"}) == set()
}

test_host_fact_declarations_malformed_refuse if {
	ids := {r.policy_id | some r in contracts.refusals} with input as {"output": {"type": "text", "text": "x"}, "user": _user, "context": {"service": "finance"}}
		with data.pygate.config.user_facts as {"role": {"type": "enum"}}
	ids == {"GATE-015"}
	ids2 := {r.policy_id | some r in contracts.refusals} with input as {"output": {"type": "text", "text": "x"}, "user": _user, "context": {"service": "finance"}}
		with data.pygate.config.user_facts as ["role"]
	ids2 == {"GATE-015"}
}

test_unreadable_output_refused if {
	_ids({"weird": 1}, _user) == {"GATE-009"}
}

test_service_without_actions_declares_nothing if {
	ids := {r.policy_id | some r in contracts.refusals} with input as {"output": {"type": "text", "text": "x"}, "user": _user, "context": {"service": "finance"}}
		with data.pygate.config.services as {"finance": {"policy_sets": ["finance"]}}
	ids == {"GATE-010"}
}

test_fast_checks_agree_with_the_messages if {
	contract := data.pygate.config.services.finance.actions.transfer
	every args in [{"amount": 5}, {"amount": 5, "to": "a"}, {"to": "a"}, {"amount": "5"}, {"amount": 5, "x": 1}, {"amount": 5, "to": "a b"}, {"amount": null}, {}] {
		_args_ok(contract, args) == _empty(contracts.argument_problems(contract, args))
	}
	rec := data.pygate.config.services.finance.actions.recommendation
	every args in [{}, {"asset": "A"}, {"asset_id": "A"}, {"text": "x"}] {
		_args_ok(rec, args) == _empty(contracts.argument_problems(rec, args))
	}
	specs := [
		{"type": "integer"}, {"type": "boolean"}, {"type": "string", "enum": ["a"]},
		{"type": "string", "max_length": 2, "min_length": 1, "pattern": "^[a-z]+$"},
		{"type": "number", "minimum": 0, "maximum": 10, "exclusive_minimum": 1},
	]
	every spec in specs {
		every value in [1.5, 2, 0, 1, 11, "true", true, "a", "b", "abc", "", "A", null, [1]] {
			_value_ok(spec, value) == _empty(contracts.value_problems(spec, value))
		}
	}
}

_args_ok(contract, args) if {
	contracts.args_ok(contract, args)
} else := false

_value_ok(spec, value) if {
	contracts.value_ok(spec, value)
} else := false

_empty(problems) := count(problems) == 0

# data.pygate.config.checked (pygate/policy/_checked.py) only saves work: a part
# equal to its checked copy is not validated again, and one that differs from
# it (a hand edit after publishing) is validated as if there were no copy.
test_a_checked_contract_is_trusted_and_a_stale_copy_is_not if {
	good := {"arguments": {"amount": {"type": "number"}}}
	bad := {"arguments": {"amount": {"type": "money"}}}
	services := {"finance": {"policy_sets": ["finance"], "actions": {"transfer": bad}}}
	inp := {"output": {"type": "transfer", "amount": 5}, "user": _user, "context": {"service": "finance"}}
	checked := {"finance": {"actions": {"transfer": good}, "meanings": {"transfer": {}}}}
	"transfer" in contracts._checked_actions with input as inp
		with data.pygate.config.services as {"finance": {"policy_sets": ["finance"], "actions": {"transfer": good}}}
		with data.pygate.config.checked.services as checked
	not "transfer" in contracts._checked_actions with input as inp
		with data.pygate.config.services as services
		with data.pygate.config.checked.services as checked
	stale := {r.policy_id | some r in contracts.refusals} with input as inp
		with data.pygate.config.services as services
		with data.pygate.config.checked.services as {"finance": {"actions": {"transfer": good}}}
	stale == {"GATE-013"}
	none := {r.policy_id | some r in contracts.refusals} with input as inp
		with data.pygate.config.services as services
		with data.pygate.config.checked as {}
	none == {"GATE-013"}
}

test_checked_user_facts_are_trusted_and_a_stale_copy_is_not if {
	inp := {"output": {"type": "transfer", "amount": 5}, "user": _user, "context": {"service": "finance"}}
	facts := {"role": {"type": "colour"}}
	ids := {r.policy_id | some r in contracts.refusals} with input as inp
		with data.pygate.config.user_facts as facts
		with data.pygate.config.checked.user_facts as {"role": {"type": "string"}}
	ids == {"GATE-015"}
	contracts._facts_checked with data.pygate.config.user_facts as {"role": {"type": "string"}}
		with data.pygate.config.checked.user_facts as {"role": {"type": "string"}}
}

# The meanings read from the checked copy are those collected from the contract.
test_meanings_from_the_checked_copy_equal_the_collected_ones if {
	inp := {"output": {"type": "buy", "asset": "GLOBEX", "amount": 5}, "user": _user, "context": {"service": "finance"}}
	fast := [contracts.action_meanings, contracts.fields, contracts.meaning_fields("buy", "asset")] with input as inp
	slow := [contracts.action_meanings, contracts.fields, contracts.meaning_fields("buy", "asset")] with input as inp
		with data.pygate.config.checked as {}
	fast == slow
	fast[0].buy.asset == {"asset", "asset_id"}
	"buy" in contracts._checked_actions with input as inp
	not "buy" in contracts._checked_actions with input as inp with data.pygate.config.checked as {}
}
