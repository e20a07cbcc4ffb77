# Tests that kill the survivors of scripts/rego-mutation.py on contracts.rego and
# explain.rego (issue 18): each pins a reason, a condition or a check of the action
# contracts that no other test told from its mutant.
#
# The mutants that survive are equivalent (no input tells them from the original):
# - _actions: `is_object(_service.actions)`: a JSON value that is not an object has no
#   string keys, so every _actions[name] is undefined either way.
# - GATE-012 `not args_ok(...)`, GATE-014 `not value_ok(...)`: fast pre-checks;
#   argument_problems and value_problems are empty exactly when they hold
#   (test_fast_checks_agree_with_the_messages).
# - GATE-015 `not _facts_checked`: pygate writes the checked copy only for well-formed
#   user_facts, so _facts_problems is empty whenever the copy applies.
# - field_spec_ok: `is_object(spec)` (spec.type is undefined otherwise); the defaults
#   of `required` (false -> true) and of the bounds (0 -> 1) only need the right type.
# - _typed_ok("integer") and ("number"): `is_number(value)`: round() fails on anything
#   else, and _range_ok computes the default `value - 1`, which fails too.
# - _range_ok: the exclusive_minimum default `value - 1` -> `value - 2`: any default
#   below value.
# - _string_problems: `is_string(value)`: reached only after the type checks, and
#   count() fails on a number.
# - _enum_problems: `is_array(spec.enum)`: an enum that is not an array is a malformed
#   spec, refused as such (GATE-013, GATE-015); the message set only names problems of
#   a value value_ok refused.
# - explain.rego: argument_explanation's `count(found) > 0` (found[0] of [] is
#   undefined, the else gives {}); the conditions that select which explanations to
#   build (required, absent, one_of non-empty and none present: extra explanations are
#   never looked up, since only the text of a reported problem is); the sprintf
#   defaults of max_length and min_length (their text only matters when the spec has
#   the key); `_length`'s `is_string(value)` (only strings have a length problem).
package pygate.contracts_mutation_test

import data.pygate.contracts

_user := {"id": "u1", "role": "analyst", "account_status": "active", "transaction_limit": 1000}

_doc(service, output, user) := {"output": output, "user": user, "context": {"service": service}}

_reasons(doc) := reasons if {
	reasons := {[r.policy_id, r.reason] | some r in contracts.refusals} with input as doc
}

# Every refusal names what it is about, each template variable filled.
test_each_gate_refusal_names_its_subject if {
	_reasons(_doc("finance", {"weird": 1}, _user)) == {["GATE-009", `cannot read the output: output: cannot read an object with keys ["weird"]`]}
	_reasons(_doc("assistant", {"type": "payment"}, _user)) == {["GATE-011", "action 'payment' is not declared for service 'assistant' and needs review"]}
	_reasons(_doc("finance", {"type": "text", "text": "x"}, object.union(_user, {"account_status": "gone"}))) == {["GATE-014", `user.account_status: must be one of ["active","under_review","frozen","closed"], not "gone"`]}
	malformed := {r.reason | some r in contracts.refusals} with input as _doc("finance", {"type": "transfer", "amount": 5}, _user)
		with data.pygate.config.services as {"finance": {"policy_sets": ["finance"], "actions": {"transfer": {}}}}
	malformed == {"service 'finance' declares action 'transfer' with a malformed contract"}
	facts := {r.reason | some r in contracts.refusals} with input as _doc("finance", {"type": "text", "text": "x"}, _user)
		with data.pygate.config.user_facts as {"role": {"type": "enum"}}
	facts == {"user_facts is malformed: fact 'role' has a malformed spec"}
}

# A malformed contract is refused as such (GATE-013), whatever its arguments are: the
# arguments are not checked against a contract that cannot be read.
_malformed(contract, args) := ids if {
	ids := {r.policy_id | some r in contracts.refusals} with input as _doc("finance", object.union({"type": "transfer"}, args), _user)
		with data.pygate.config.services as {"finance": {"policy_sets": ["finance"], "actions": {"transfer": contract}}}
}

test_a_malformed_contract_is_refused_as_such if {
	_malformed({"arguments": {"amount": {"type": "number", "colour": "red"}}}, {"amount": "5"}) == {"GATE-013"}
	_malformed({}, {"amount": 5}) == {"GATE-013"}
	_malformed({"arguments": ["amount"]}, {"amount": 5}) == {"GATE-013"}
	_malformed({"arguments": [{"type": "number"}]}, {"amount": 5}) == {"GATE-013"}
	_malformed({"arguments": {"amount": {"type": "number"}}, "one_of_required": ["nope"]}, {"amount": 5}) == {"GATE-013"}
}

# A contract with one_of_required that is not the checked copy is validated and holds.
test_an_unchecked_one_of_contract_is_valid if {
	contract := {"arguments": {"asset": {"type": "string"}, "asset_id": {"type": "string"}}, "one_of_required": ["asset", "asset_id"]}
	_malformed(contract, {"asset": "GLOBEX"}) == set()
	_malformed(contract, {}) == {"GATE-012"}
}

# A field spec's required must be a boolean, its enum an array and each bound a number.
test_a_field_spec_with_a_wrongly_typed_key_is_malformed if {
	contracts.field_spec_ok({"type": "number", "required": true, "enum": [1], "min_length": 1, "max_length": 2, "minimum": 0, "maximum": 3, "exclusive_minimum": 0})
	not contracts.field_spec_ok({"type": "string", "required": "yes"})
	not contracts.field_spec_ok({"type": "string", "enum": "a"})
	every key in ["min_length", "max_length", "minimum", "maximum", "exclusive_minimum"] {
		not contracts.field_spec_ok({"type": "number", key: "1"})
	}
}

# Meanings are listed only for declared actions.
test_an_undeclared_action_has_no_meanings if {
	contracts.action_meanings == {} with input as _doc("finance", {"type": "payment", "amount": 5}, _user)
	contracts.action_meanings == {"transfer": {"money_amount": {"amount"}, "recipient": {"to"}}} with input as _doc("finance", {"type": "transfer", "amount": 5, "to": "a"}, _user)
		with data.pygate.config.services as {"finance": {"policy_sets": ["finance"], "actions": {"transfer": {"arguments": {"amount": {"type": "number", "meaning": "money_amount"}, "to": {"type": "string", "meaning": "recipient"}}}}}}
		with data.pygate.config.checked as {}
}

# The meanings of a contract that differs from its checked copy come from the contract,
# never from the stale copy.
test_meanings_of_a_stale_contract_come_from_the_contract if {
	contract := {"arguments": {"amount": {"type": "number", "meaning": "money_amount"}}}
	stale := {"actions": {"transfer": {"arguments": {"amount": {"type": "number", "meaning": "quantity"}}}}, "field_meanings": {"transfer": {"amount": "quantity"}}, "meanings": {"transfer": {"quantity": ["amount"]}}}
	fields := contracts.fields with input as _doc("finance", {"type": "transfer", "amount": 5}, _user)
		with data.pygate.config.services as {"finance": {"policy_sets": ["finance"], "actions": {"transfer": contract}}}
		with data.pygate.config.checked.services as {"finance": stale}
	fields == {{"meaning": "money_amount", "action": "transfer", "field": "amount", "value": 5}}
}

# explain.rego

_explained(service, services, output) := found if {
	found := {[r.reason, r.why, r.would_pass] | some r in contracts.refusals} with input as _doc(service, output, _user)
		with data.pygate.config.services as services
}

_finance_services := data.pygate.config.services

# Each argument problem explains itself: what held (why) and what would pass.
test_each_argument_problem_says_why_and_what_would_pass if {
	_explained("finance", _finance_services, {"type": "transfer", "amount": 5, "x": 1}) == {[
		"action 'transfer': unknown argument 'x'",
		[{"field": "arguments.x", "op": "not in", "value": "x", "bound": ["amount", "currency", "memo", "to"]}],
		[{"field": "arguments.x", "op": "absent", "bound": null}],
	]}
	_explained("finance", _finance_services, {"type": "transfer"}) == {[
		"action 'transfer': missing required argument 'amount'",
		[{"field": "arguments.amount", "op": "absent", "value": null, "bound": null}],
		[{"field": "arguments.amount", "op": "present", "bound": null}],
	]}
	_explained("finance", _finance_services, {"type": "recommendation"}) == {[
		"action 'recommendation': needs one of the arguments asset, asset_id",
		[
			{"field": "arguments.asset", "op": "absent", "value": null, "bound": null},
			{"field": "arguments.asset_id", "op": "absent", "value": null, "bound": null},
		],
		[{"field": "arguments.asset", "op": "present", "bound": null}, {"field": "arguments.asset_id", "op": "present", "bound": null}],
	]}
}

# An enum and a one_of_required of a single field are explained too.
test_an_enum_and_a_single_one_of_are_explained if {
	services := {"finance": {"policy_sets": ["finance"], "actions": {"pick": {
		"arguments": {"c": {"type": "string", "enum": ["a", "b"]}, "d": {"type": "string"}},
		"one_of_required": ["d"],
	}}}}
	_explained("finance", services, {"type": "pick", "c": "z", "d": "x"}) == {[
		`action 'pick': argument 'c' must be one of ["a","b"], not "z"`,
		[{"field": "arguments.c", "op": "not in", "value": "z", "bound": ["a", "b"]}],
		[{"field": "arguments.c", "op": "in", "bound": ["a", "b"]}],
	]}
	_explained("finance", services, {"type": "pick"}) == {[
		"action 'pick': needs one of the arguments d",
		[{"field": "arguments.d", "op": "absent", "value": null, "bound": null}],
		[{"field": "arguments.d", "op": "present", "bound": null}],
	]}
}

_bounded := {"finance": {"policy_sets": ["finance"], "actions": {"pick": {"arguments": {
	"s": {"type": "string", "pattern": "^[a-z]+$", "max_length": 3, "min_length": 2},
	"n": {"type": "number", "minimum": 0, "maximum": 10},
	"q": {"type": "number", "exclusive_minimum": 0},
	"i": {"type": "integer"},
	"b": {"type": "boolean"},
}}}}}

_one(args) := e if {
	[e] := [[r.reason, r.why, r.would_pass] | some r in contracts.refusals] with input as _doc("finance", object.union({"type": "pick"}, args), _user)
		with data.pygate.config.services as _bounded
}

# Each bound and each type is explained: the comparison that held and the one that
# would pass, on the argument (or its length).
test_each_bound_and_type_is_explained if {
	_one({"s": "abcd"}) == [
		"action 'pick': argument 's' is longer than 3 characters",
		[{"field": "arguments.s.length", "op": ">", "value": 4, "bound": 3}],
		[{"field": "arguments.s.length", "op": "<=", "bound": 3}],
	]
	_one({"s": "a"}) == [
		"action 'pick': argument 's' is shorter than 2 characters",
		[{"field": "arguments.s.length", "op": "<", "value": 1, "bound": 2}],
		[{"field": "arguments.s.length", "op": ">=", "bound": 2}],
	]
	_one({"s": "A1"}) == [
		"action 'pick': argument 's' does not match ^[a-z]+$",
		[{"field": "arguments.s", "op": "not matches", "value": "A1", "bound": "^[a-z]+$"}],
		[{"field": "arguments.s", "op": "matches", "bound": "^[a-z]+$"}],
	]
	_one({"n": -1}) == [
		"action 'pick': argument 'n' must be at least 0",
		[{"field": "arguments.n", "op": "<", "value": -1, "bound": 0}],
		[{"field": "arguments.n", "op": ">=", "bound": 0}],
	]
	_one({"n": 11}) == [
		"action 'pick': argument 'n' must be at most 10",
		[{"field": "arguments.n", "op": ">", "value": 11, "bound": 10}],
		[{"field": "arguments.n", "op": "<=", "bound": 10}],
	]
	_one({"q": 0}) == [
		"action 'pick': argument 'q' must be greater than 0",
		[{"field": "arguments.q", "op": "<=", "value": 0, "bound": 0}],
		[{"field": "arguments.q", "op": ">", "bound": 0}],
	]
	every case in [["s", 1, "string"], ["n", "1", "number"], ["i", 1.5, "integer"], ["b", "true", "boolean"]] {
		[field, value, type] := case
		[_, why, would_pass] := _one({field: value})
		why == [{"field": concat(".", ["arguments", field]), "op": "is not", "value": value, "bound": type}]
		would_pass == [{"field": concat(".", ["arguments", field]), "op": "is", "bound": type}]
	}
}

# A string with no min_length may be empty; a number-typed field with a bound is not
# met by a string that compares above it.
test_value_ok_defaults_and_types if {
	contracts.value_ok({"type": "string"}, "")
	not contracts.value_ok({"type": "number", "exclusive_minimum": 0}, "5")
	_reasons(_doc("finance", {"type": "buy", "asset": "GLOBEX", "quantity": "5"}, _user)) == {["GATE-012", "action 'buy': argument 'quantity' must be a number"]}
}

# A value on a bound is within it, and each check reports only what it checks: a
# string is not compared with numeric bounds.
test_value_problems_on_a_bound_report_only_the_real_problem if {
	contracts.value_problems({"type": "string", "max_length": 2, "pattern": "^[a-z]+$"}, "A1") == {"does not match ^[a-z]+$"}
	contracts.value_problems({"type": "string", "maximum": 3, "pattern": "^a$"}, "b") == {"does not match ^a$"}
	contracts.value_problems({"type": "number", "minimum": 0, "maximum": 10, "enum": [5]}, 0) == {"must be one of [5], not 0"}
	contracts.value_problems({"type": "number", "minimum": 0, "maximum": 10, "enum": [5]}, 10) == {"must be one of [5], not 10"}
}
