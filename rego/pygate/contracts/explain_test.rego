package pygate.contracts_test

import data.pygate.contracts

_spec := {
	"arguments": {
		"amount": {"type": "number", "required": true, "minimum": 1, "maximum": 100},
		"n": {"type": "integer", "exclusive_minimum": 0},
		"to": {"type": "string", "pattern": "^[a-z]+$", "min_length": 2, "max_length": 4},
		"kind": {"type": "string", "enum": ["a", "b"]},
		"flag": {"type": "boolean"},
		"asset": {"type": "string"},
		"asset_id": {"type": "string"},
	},
	"one_of_required": ["asset", "asset_id"],
}

# Every problem argument_problems reports has an explanation, whatever the
# argument got wrong.
test_every_argument_problem_is_explained if {
	cases := [
		{"x": 1},
		{"amount": "5"},
		{"amount": 0},
		{"amount": 101},
		{"amount": 5, "n": 0, "asset": "A"},
		{"amount": 5, "n": 1.5, "asset": "A"},
		{"amount": 5, "to": "A1", "asset": "A"},
		{"amount": 5, "to": "abcdef", "asset": "A"},
		{"amount": 5, "to": "a", "asset": "A"},
		{"amount": 5, "kind": "c", "asset": "A"},
		{"amount": 5, "flag": "yes", "asset": "A"},
		{"amount": 5, "to": 3, "asset": "A"},
	]
	every args in cases {
		problems := contracts.argument_problems(_spec, args)
		count(problems) > 0
		every problem in problems {
			e := contracts.argument_explanation(_spec, args, problem)
			count(e.why) > 0
			count(e.would_pass) > 0
		}
	}
}

test_argument_explanations_name_field_value_and_bound if {
	contracts.argument_explanation(_spec, {"amount": 101, "asset": "A"}, "argument 'amount' must be at most 100") == {
		"why": [{"field": "arguments.amount", "op": ">", "value": 101, "bound": 100}],
		"would_pass": [{"field": "arguments.amount", "op": "<=", "bound": 100}],
	}
	contracts.argument_explanation(_spec, {"amount": 5}, "needs one of the arguments asset, asset_id").would_pass == [
		{"field": "arguments.asset", "op": "present", "bound": null},
		{"field": "arguments.asset_id", "op": "present", "bound": null},
	]
	contracts.argument_explanation(_spec, {"amount": 5, "kind": "c", "asset": "A"}, `argument 'kind' must be one of ["a","b"], not "c"`).why == [{"field": "arguments.kind", "op": "not in", "value": "c", "bound": ["a", "b"]}]
}

test_unexplained_problem_is_empty if {
	contracts.argument_explanation(_spec, {"amount": 5}, "something else") == {}
}

test_contract_refusal_carries_its_explanation if {
	rs := contracts.refusals with input as {"output": {"type": "transfer", "amount": "5"}, "user": _user, "context": {"service": "finance"}}
	some r in rs
	r.policy_id == "GATE-012"
	r.why == [{"field": "arguments.amount", "op": "is not", "value": "5", "bound": "number"}]
	r.would_pass == [{"field": "arguments.amount", "op": "is", "bound": "number"}]
	r.hint == "Call transfer again with arguments that match its declared schema (see would_pass)."
}
