# Why an action's arguments break its contract, and what would pass: one
# {"why", "would_pass"} per problem that argument_problems reports, keyed by
# the same text. (Package METADATA lives in contracts.rego.)
package pygate.contracts

import data.pygate.lib

# argument_explanation is {"why": [...], "would_pass": [...]} for problem
# (one of argument_problems(contract, args)), or {} should a problem have no
# explanation: the refusal stands either way.
argument_explanation(contract, args, problem) := found[0] if {
	found := [e | some [text, e] in _explanations(contract, args); text == problem]
	count(found) > 0
} else := {}

_explanations(contract, args) := ((unknown | missing) | wrong) | none_of if {
	declared_fields := sort(object.keys(contract.arguments))
	unknown := {[sprintf("unknown argument '%s'", [f]), _explain(
		lib.condition(_arg(f), "not in", f, declared_fields),
		[lib.change(_arg(f), "absent", null)],
	)] |
		some f in (object.keys(args) - object.keys(contract.arguments))
	}
	missing := {[sprintf("missing required argument '%s'", [f]), _explain(
		lib.condition(_arg(f), "absent", null, null),
		[lib.change(_arg(f), "present", null)],
	)] |
		some f, spec in contract.arguments
		object.get(spec, "required", false) == true
		not _present(args, f)
	}
	wrong := {[sprintf("argument '%s' %s", [f, p]), e] |
		some f, spec in contract.arguments
		value := args[f]
		some [p, e] in _value_explanations(f, spec, value)
	}
	none_of := {[sprintf("needs one of the arguments %s", [concat(", ", one_of)]), {
		"why": [lib.condition(_arg(f), "absent", null, null) | some f in one_of],
		"would_pass": [lib.change(_arg(f), "present", null) | some f in one_of],
	}] |
		one_of := object.get(contract, "one_of_required", [])
		count(one_of) > 0
		count({f | some f in one_of; _present(args, f)}) == 0
	}
}

_arg(f) := concat(".", ["arguments", f])

_explain(why, would_pass) := {"why": [why], "would_pass": would_pass}

# The same problems as value_problems, in the same words, each explained.
_value_explanations(f, spec, value) := {[p, _explain(
	lib.condition(_arg(f), "is not", value, spec.type),
	[lib.change(_arg(f), "is", spec.type)],
)] |
	some p in value_problems(spec, value)
	p in {"must be a string", "must be a number", "must be an integer", "must be true or false"}
} | {[p, e] |
	some p in value_problems(spec, value)
	some [text, e] in _bound_explanations(f, spec, value)
	p == text
}

_bound_explanations(f, spec, value) := {
	[sprintf("must be one of %s, not %s", [json.marshal(object.get(spec, "enum", null)), json.marshal(value)]), _explain(
		lib.condition(_arg(f), "not in", value, object.get(spec, "enum", null)),
		[lib.change(_arg(f), "in", object.get(spec, "enum", null))],
	)],
	[sprintf("does not match %s", [object.get(spec, "pattern", null)]), _explain(
		lib.condition(_arg(f), "not matches", value, object.get(spec, "pattern", null)),
		[lib.change(_arg(f), "matches", object.get(spec, "pattern", null))],
	)],
	[sprintf("is longer than %d characters", [object.get(spec, "max_length", 0)]), _explain(
		lib.condition(concat(".", [_arg(f), "length"]), ">", _length(value), object.get(spec, "max_length", null)),
		[lib.change(concat(".", [_arg(f), "length"]), "<=", object.get(spec, "max_length", null))],
	)],
	[sprintf("is shorter than %d characters", [object.get(spec, "min_length", 0)]), _explain(
		lib.condition(concat(".", [_arg(f), "length"]), "<", _length(value), object.get(spec, "min_length", null)),
		[lib.change(concat(".", [_arg(f), "length"]), ">=", object.get(spec, "min_length", null))],
	)],
	[sprintf("must be at least %v", [object.get(spec, "minimum", null)]), _explain(
		lib.condition(_arg(f), "<", value, object.get(spec, "minimum", null)),
		[lib.change(_arg(f), ">=", object.get(spec, "minimum", null))],
	)],
	[sprintf("must be at most %v", [object.get(spec, "maximum", null)]), _explain(
		lib.condition(_arg(f), ">", value, object.get(spec, "maximum", null)),
		[lib.change(_arg(f), "<=", object.get(spec, "maximum", null))],
	)],
	[sprintf("must be greater than %v", [object.get(spec, "exclusive_minimum", null)]), _explain(
		lib.condition(_arg(f), "<=", value, object.get(spec, "exclusive_minimum", null)),
		[lib.change(_arg(f), ">", object.get(spec, "exclusive_minimum", null))],
	)],
}

_length(value) := count(value) if {
	is_string(value)
} else := null
