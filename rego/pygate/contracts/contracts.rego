# METADATA
# title: Action contracts
# description: >-
#   Default deny per service: each service declares, as policy data, the
#   actions it may take and an argument schema for each. Any canonical action
#   that is not declared, or whose arguments break the schema, is refused (or
#   sent to review where the service says so). Host facts about the user are
#   checked against their declared form the same way.
package pygate.contracts

import data.pygate.canonical
import data.pygate.lib

# A service entry in data.pygate.config.services:
#   {"policy_sets": [...],
#    "undeclared_action": "refuse" (default) | "require_review",
#    "actions": {"<name>": {"arguments": {"<field>": <field spec>, ...},
#                           "one_of_required": ["<field>", ...]}}}     (optional)
# A field spec: {"type": "string" | "number" | "integer" | "boolean",
#   "required": bool, "enum": [...], "pattern": "<RE2>", "min_length": n,
#   "max_length": n, "minimum": x, "maximum": x, "exclusive_minimum": x,
#   "meaning": one of meanings}. Unknown argument fields are refused.
#
# user_facts has the same field specs for the host's facts about the user
# (input.user); a declared fact that is present and not null must match.

# meanings are what a field can mean to the cross-cutting policies.
meanings := {"money_amount", "currency", "asset", "recipient", "code", "text", "quantity", "identifier"}

field_types := {"string", "number", "integer", "boolean"}

# fields lists, for this query's declared actions, each argument that has a
# meaning: {"meaning", "action", "field", "value"}. Policies read meanings
# from here, never literal output types.
fields contains {"meaning": meaning, "action": a.name, "field": name, "value": value} if {
	some a in canonical.actions
	some name, meaning in _field_meanings(a.name)
	value := a.arguments[name]
}

# meaning_fields(name, meaning) is the set of argument fields that the
# service's action name declares with meaning.
meaning_fields(name, meaning) := {field |
	some field in _checked_service.meanings[name][meaning]
} if {
	name in _checked_actions
} else := {field |
	some field, spec in _actions[name].arguments
	spec.meaning == meaning
}

# action_meanings maps each declared action name of this query to
# {meaning: {field, ...}}: which of its argument fields carry each meaning.
action_meanings[a.name] := _meanings_of(a.name) if {
	some a in canonical.actions
	_actions[a.name]
}

_meanings_of(name) := {meaning: {field | some field in fields} |
	some meaning, fields in _checked_service.meanings[name]
} if {
	name in _checked_actions
} else := {meaning: fields |
	some spec in _actions[name].arguments
	meaning := spec.meaning
	fields := meaning_fields(name, meaning)
}

# {field: meaning} for the declared fields of action name that have one.
_field_meanings(name) := _checked_service.field_meanings[name] if {
	name in _checked_actions
} else := {field: spec.meaning | some field, spec in _actions[name].arguments}

# required(name, field) holds when action name declares field as required.
required(name, field) if _actions[name].arguments[field].required == true

# declared holds for an action name the service declares.
declared(name) if _actions[name]

# The service entry is read by its path, not through the whole services
# document: OPA converts what a query reads from its store on every query.
_service := data.pygate.config.services[input.context.service]

_actions := _service.actions if {
	is_object(_service.actions)
} else := {}

_undeclared_mode := object.get(_service, "undeclared_action", "refuse")

_gate_refusal(chain, vars) := object.union(lib.refusal(chain, vars), {"policy_set": "gate"})

# METADATA
# title: Output cannot be read
# description: >-
#   Part of the output is in a shape the gate does not know, so no policy
#   could check it; it is refused rather than passed unchecked.
# custom:
#   id: GATE-009
#   reason: "cannot read the output: {{.problem}}"
#   action: log_refusal
#   priority: 0
#   message: I couldn't process that request.
#   hint: Send each tool call once, in one supported shape, with JSON object arguments.
refusals contains r if {
	some problem in canonical.problems
	r := _gate_refusal(rego.metadata.chain(), {"problem": problem})
}

# METADATA
# title: Action not declared for this service
# description: The service does not declare this action, so it may not take it.
# custom:
#   id: GATE-010
#   reason: "action '{{.action}}' is not declared for service '{{.service}}'"
#   action: log_refusal
#   priority: 25
#   message: I can't do that here.
#   hint: "Do not call {{.action}}: it is not available here. Use one of the tools you were given."
refusals contains r if {
	_undeclared_mode != "require_review"
	some a in canonical.actions
	not declared(a.name)
	r := _gate_refusal(rego.metadata.chain(), {"action": a.name, "service": input.context.service})
}

# METADATA
# title: Undeclared action needs review
# description: The service sends actions it does not declare to a person for approval.
# custom:
#   id: GATE-011
#   reason: "action '{{.action}}' is not declared for service '{{.service}}' and needs review"
#   action: require_review
#   priority: 25
#   message: I can help with this, but I need approval first
#   hint: Wait for a person to approve this call before trying it again.
refusals contains r if {
	_undeclared_mode == "require_review"
	some a in canonical.actions
	not declared(a.name)
	r := _gate_refusal(rego.metadata.chain(), {"action": a.name, "service": input.context.service})
}

# METADATA
# title: Arguments break the action's contract
# description: An argument is unknown, missing, of the wrong type or outside its declared form.
# custom:
#   id: GATE-012
#   reason: "action '{{.action}}': {{.problem}}"
#   action: log_refusal
#   priority: 25
#   message: I couldn't do that because some details of the request are not valid.
#   hint: "Call {{.action}} again with arguments that match its declared schema (see would_pass)."
refusals contains r if {
	some a in canonical.actions
	contract := _actions[a.name]
	_contract_valid(a.name, contract)
	not args_ok(contract, a.arguments)
	some problem in argument_problems(contract, a.arguments)
	r := object.union(
		_gate_refusal(rego.metadata.chain(), {"action": a.name, "problem": problem}),
		argument_explanation(contract, a.arguments, problem),
	)
}

# METADATA
# title: Action contract malformed
# description: >-
#   The service's declaration of an action is malformed, so its arguments
#   cannot be checked and the action is refused.
# custom:
#   id: GATE-013
#   reason: "service '{{.service}}' declares action '{{.action}}' with a malformed contract"
#   action: log_refusal
#   priority: 0
#   message: I can't do that right now because of a configuration problem on our side.
#   hint: Do not retry; the operator must fix the service's action contract first.
refusals contains r if {
	some a in canonical.actions
	contract := _actions[a.name]
	not _contract_valid(a.name, contract)
	r := _gate_refusal(rego.metadata.chain(), {"action": a.name, "service": input.context.service})
}

# METADATA
# title: Host fact not in its declared form
# description: >-
#   A fact the host sends about the user (account status, role, limit) is
#   not one of the declared values or not of the declared type.
# custom:
#   id: GATE-014
#   reason: "user.{{.field}}: {{.problem}}"
#   action: log_refusal
#   priority: 0
#   message: I can't do that right now because of a problem on our side.
#   hint: Do not retry; the application must send the user's details in their declared form.
refusals contains r if {
	some field, spec in _user_facts
	value := input.user[field]
	value != null
	not value_ok(spec, value)
	some problem in value_problems(spec, value)
	r := _gate_refusal(rego.metadata.chain(), {"field": field, "problem": problem})
}

# METADATA
# title: Host fact declarations malformed
# description: user_facts must map fact names to field specs; otherwise no fact can be checked.
# custom:
#   id: GATE-015
#   reason: "user_facts is malformed: {{.problem}}"
#   action: log_refusal
#   priority: 0
#   message: I can't do that right now because of a configuration problem on our side.
#   hint: Do not retry; the operator must fix the policy data first.
refusals contains r if {
	not _facts_checked
	some problem in _facts_problems
	r := _gate_refusal(rego.metadata.chain(), {"problem": problem})
}

_user_facts := lib.config("user_facts", {})

_facts_problems contains "must be an object" if not is_object(_user_facts)

_facts_problems contains sprintf("fact '%s' has a malformed spec", [field]) if {
	some field, spec in _user_facts
	not field_spec_ok(spec)
}

# What pygate checked before publishing the data (data.pygate.config.checked,
# written by pygate/policy/_checked.py with checks never looser than these) is
# not checked again: a contract or user_facts equal to its checked copy is
# well formed. Anything else (no copy, a stale or different one) takes the
# checks below, so the copy changes the cost of a decision, never the decision.
#
# _checked_actions names this query's actions whose contract is its checked
# copy; for those, the meanings of their fields are read from the copy too
# (computed by pygate from the same contract) instead of being collected.
_checked_actions contains a.name if {
	some a in canonical.actions
	_actions[a.name] == _checked_service.actions[a.name]
}

_checked_service := data.pygate.config.checked.services[input.context.service]

_contract_valid(name, contract) if {
	name in _checked_actions
} else if {
	_contract_ok(contract)
}

_facts_checked if _user_facts == data.pygate.config.checked.user_facts

_contract_ok(contract) if {
	is_object(contract.arguments)
	every _, spec in contract.arguments {
		field_spec_ok(spec)
	}
	every field in object.get(contract, "one_of_required", []) {
		contract.arguments[field]
	}
}

# field_spec_ok holds for a well-formed field spec (the same rules as
# pygate/policy/_contracts.py, which checks them before data is published).
field_spec_ok(spec) if {
	is_object(spec)
	spec.type in field_types
	count(object.keys(spec) - _spec_keys) == 0
	object.get(spec, "meaning", "text") in meanings
	is_boolean(object.get(spec, "required", false))
	is_array(object.get(spec, "enum", []))
	lib.valid_regex(object.get(spec, "pattern", ""))
	every key in {"min_length", "max_length", "minimum", "maximum", "exclusive_minimum"} {
		is_number(object.get(spec, key, 0))
	}
}

_spec_keys := {"type", "required", "enum", "pattern", "min_length", "max_length", "minimum", "maximum", "exclusive_minimum", "meaning", "description"}

# argument_problems lists what is wrong with args under contract: unknown
# fields, missing required fields, and values outside their spec.
argument_problems(contract, args) := ((unknown | missing) | wrong) | none_of if {
	declared_fields := object.keys(contract.arguments)
	unknown := {sprintf("unknown argument '%s'", [f]) | some f in (object.keys(args) - declared_fields)}
	missing := {sprintf("missing required argument '%s'", [f]) |
		some f, spec in contract.arguments
		object.get(spec, "required", false) == true
		not _present(args, f)
	}
	wrong := {sprintf("argument '%s' %s", [f, p]) |
		some f, spec in contract.arguments
		value := args[f]
		some p in value_problems(spec, value)
	}
	none_of := {sprintf("needs one of the arguments %s", [concat(", ", one_of)]) |
		one_of := object.get(contract, "one_of_required", [])
		count(one_of) > 0
		count({f | some f in one_of; _present(args, f)}) == 0
	}
}

_present(args, f) if args[f] != null

# args_ok holds exactly when argument_problems(contract, args) is empty (a
# test checks both on every case of contracts_test). It is the per-query
# check, so it builds no messages.
args_ok(contract, args) if {
	every field, value in args {
		value_ok(contract.arguments[field], value)
	}
	every field, spec in contract.arguments {
		_required_ok(spec, field, args)
	}
	_one_of_ok(object.get(contract, "one_of_required", []), args)
}

_required_ok(spec, _, _) if object.get(spec, "required", false) != true

_required_ok(_, field, args) if _present(args, field)

_one_of_ok(one_of, _) if count(one_of) == 0

_one_of_ok(one_of, args) if {
	some field in one_of
	_present(args, field)
}

# value_ok holds exactly when value_problems(spec, value) is empty.
# It runs only the checks of the declared type (OPA indexes _typed_ok on its
# first argument): a value of that type is a string or a number, never both,
# so the other kind's checks could only pass.
value_ok(spec, value) if {
	_typed_ok(spec.type, spec, value)
	_enum_ok(object.get(spec, "enum", null), value)
}

_typed_ok("string", spec, value) if {
	is_string(value)
	_pattern_ok(object.get(spec, "pattern", null), value)
	count(value) <= object.get(spec, "max_length", count(value))
	count(value) >= object.get(spec, "min_length", 0)
}

_typed_ok("number", spec, value) if {
	is_number(value)
	_range_ok(spec, value)
}

_typed_ok("integer", spec, value) if {
	is_number(value)
	value == round(value)
	_range_ok(spec, value)
}

_typed_ok("boolean", _, value) if is_boolean(value)

_enum_ok(null, _)

_enum_ok(enum, value) if value in enum

_pattern_ok(null, _)

_pattern_ok(pattern, value) if regex.match(pattern, value)

_range_ok(spec, value) if {
	value >= object.get(spec, "minimum", value)
	value <= object.get(spec, "maximum", value)
	value > object.get(spec, "exclusive_minimum", value - 1)
}

# value_problems lists how value breaks spec (empty when it matches).
value_problems(spec, value) := {"must be a string"} if {
	spec.type == "string"
	not is_string(value)
} else := {"must be a number"} if {
	spec.type in {"number", "integer"}
	not is_number(value)
} else := {"must be an integer"} if {
	spec.type == "integer"
	value != round(value)
} else := {"must be true or false"} if {
	spec.type == "boolean"
	not is_boolean(value)
} else := (_string_problems(spec, value) | _number_problems(spec, value)) | _enum_problems(spec, value)

_enum_problems(spec, value) := {sprintf("must be one of %s, not %s", [json.marshal(spec.enum), json.marshal(value)])} if {
	is_array(spec.enum)
	not value in spec.enum
} else := set()

_string_problems(spec, value) := {p |
	is_string(value)
	some p in _string_checks(spec, value)
}

_string_checks(spec, value) := checks if {
	checks := ({sprintf("does not match %s", [spec.pattern]) | is_string(spec.pattern); not regex.match(spec.pattern, value)} | {sprintf("is longer than %d characters", [spec.max_length]) | count(value) > spec.max_length}) | {sprintf("is shorter than %d characters", [spec.min_length]) | count(value) < spec.min_length}
}

_number_problems(spec, value) := {p |
	is_number(value)
	some p in (({sprintf("must be at least %v", [spec.minimum]) | value < spec.minimum} | {sprintf("must be at most %v", [spec.maximum]) | value > spec.maximum}) | {sprintf("must be greater than %v", [spec.exclusive_minimum]) | value <= spec.exclusive_minimum})
}
