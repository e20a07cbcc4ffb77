# The condition types a declarative policy may use: how each is validated
# and when it holds. (Package METADATA lives in declarative.rego; OPA allows
# it once per package.)
package pygate.declarative

import data.pygate.lib

# Parameter kinds per condition type; see _kind_ok for what each kind accepts.
_condition_specs := {
	"account_status": {"required": {"in": "array"}, "optional": {}},
	"amount_exceeds_limit": {"required": {}, "optional": {"field": "string"}},
	"asset_restricted": {"required": {}, "optional": {"field": "string"}},
	"role_not_in": {"required": {"roles": "array"}, "optional": {}},
	"field_compare": {"required": {"field": "string", "op": "op", "value": "number"}, "optional": {}},
	"field_in": {"required": {"field": "string", "values": "array"}, "optional": {}},
	"field_not_in": {"required": {"field": "string", "values": "array"}, "optional": {}},
	"user_attribute_in": {"required": {"attribute": "string", "values": "array"}, "optional": {}},
	"text_matches": {"required": {"field": "string", "pattern": "regex"}, "optional": {}},
}

_ops := {"eq", "gt", "gte", "lt", "lte", "neq"}

_kind_desc := {
	"string": "a non-empty string",
	"number": "a number",
	"array": "an array",
	"non_empty_array": "a non-empty array",
	"op": "one of eq, gt, gte, lt, lte, neq",
	"regex": "a valid RE2 regular expression",
}

_kind_ok("string", x) if {
	is_string(x)
	x != ""
}

_kind_ok("number", x) if is_number(x)

_kind_ok("array", x) if is_array(x)

_kind_ok("non_empty_array", x) if {
	is_array(x)
	count(x) > 0
}

_kind_ok("op", x) if x in _ops

# Checking the pattern matters: an invalid pattern makes regex.match
# undefined, and a condition that can never hold is a policy that silently
# never refuses.
_kind_ok("regex", x) if lib.valid_regex(x)

# _spec_problems checks obj against a {"required": {key: kind}, "optional":
# {key: kind}} spec. Keys outside the spec are ignored. Set differences keep
# `not` (and its ref-hoisting trap, see below) out of it.
_spec_problems(obj, spec) := missing | wrong if {
	keys := object.keys(obj)
	kinds := object.union(spec.required, spec.optional)
	ok := {key | some key, kind in kinds; _kind_ok(kind, obj[key])}
	missing := {sprintf("missing '%s'", [key]) | some key in (object.keys(spec.required) - keys)}
	wrong := {sprintf("'%s' must be %s", [key, _kind_desc[kinds[key]]]) |
		some key in ((keys & object.keys(kinds)) - ok)
	}
}

# _condition_valid holds exactly when _spec_problems(condition,
# _condition_specs[condition.type]) is empty (a test runs both over every
# shape in declarative_test); spelled out per type because it runs on every
# query. A non-object has no .type, so it is not valid either.
_condition_valid(condition) if _condition_ok(condition.type, condition)

_condition_ok("account_status", c) if is_array(c["in"])

_condition_ok("amount_exceeds_limit", c) if _optional_field_ok(c)

_condition_ok("asset_restricted", c) if _optional_field_ok(c)

_condition_ok("role_not_in", c) if is_array(c.roles)

_condition_ok("field_compare", c) if {
	is_string(c.field)
	c.field != ""
	c.op in _ops
	is_number(c.value)
}

_condition_ok("field_in", c) if {
	is_string(c.field)
	c.field != ""
	is_array(c.values)
}

_condition_ok("field_not_in", c) if {
	is_string(c.field)
	c.field != ""
	is_array(c.values)
}

_condition_ok("user_attribute_in", c) if {
	is_string(c.attribute)
	c.attribute != ""
	is_array(c.values)
}

_condition_ok("text_matches", c) if {
	is_string(c.field)
	c.field != ""
	lib.valid_regex(c.pattern)
}

_optional_field_ok(c) if {
	field := object.get(c, "field", "field")
	is_string(field)
	field != ""
}

# A `not` must never wrap a ref that can be undefined: OPA hoists the ref out
# of the negation (opa#1877) and the whole expression fails instead of
# holding. Hence object.get below and small helpers like this one.
_known_type(type_name) if _condition_specs[type_name]

_condition_problems(i, condition) := {sprintf("condition %d is not an object", [i])} if {
	not is_object(condition)
} else := {sprintf("condition %d: 'type' must be a non-empty string", [i])} if {
	not _kind_ok("string", object.get(condition, "type", null))
} else := {sprintf("condition %d: unknown type '%s'", [i, condition.type])} if {
	not _known_type(condition.type)
} else := {sprintf("condition %d (%s): %s", [i, condition.type, msg]) |
	some msg in _spec_problems(condition, _condition_specs[condition.type])
}

# _holds is only called on validated conditions, so parameters have the
# right types here. Conditions about the output do not hold when the output
# field is absent or of the wrong type; conditions that need policy data hold
# when that data is missing, so broken data refuses instead of allowing.
# Each type is its own body of _holds_as, which OPA indexes on the type: a
# condition runs its own body only.
_holds(condition, output, user) if _holds_as(condition.type, condition, output, user)

_holds_as("account_status", condition, _, user) if {
	user.account_status in condition["in"]
}

_holds_as("amount_exceeds_limit", condition, output, user) if {
	amount := lib.field(output, object.get(condition, "field", "amount"))
	is_number(amount)
	_over_limit(amount, user)
}

_holds_as("asset_restricted", condition, output, _) if {
	symbol := lib.field(output, object.get(condition, "field", "asset"))
	_restricted(symbol)
}

_holds_as("role_not_in", condition, _, user) if {
	not _role_in(user, condition.roles)
}

_holds_as("field_compare", condition, output, _) if {
	value := lib.field(output, condition.field)
	is_number(value)
	_compare(condition.op, value, condition.value)
}

_holds_as("field_in", condition, output, _) if {
	_field_in(output, condition.field, condition.values)
}

_holds_as("field_not_in", condition, output, _) if {
	not _field_in(output, condition.field, condition.values)
}

_holds_as("user_attribute_in", condition, _, user) if {
	user[condition.attribute] in condition.values
}

_holds_as("text_matches", condition, output, _) if {
	text := lib.field(output, condition.field)
	is_string(text)
	regex.match(condition.pattern, text)
}

_role_in(user, roles) if user.role in roles

_field_in(output, path, values) if lib.field(output, path) in values

_over_limit(amount, user) if amount > lib.transaction_limit(user)

_over_limit(_, user) if not lib.transaction_limit(user)

_restricted(symbol) if lib.asset_restricted(lib.config("assets", null), symbol)

_restricted(_) if not is_object(lib.config("assets", null))

_compare("eq", a, b) if a == b

_compare("neq", a, b) if a != b

_compare("gt", a, b) if a > b

_compare("gte", a, b) if a >= b

_compare("lt", a, b) if a < b

_compare("lte", a, b) if a <= b
