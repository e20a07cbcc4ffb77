# Why a rules-as-data policy refused, and what would pass, computed from its
# conditions, the same way for every policy. (Package METADATA lives in
# declarative.rego.)
package pygate.declarative

import data.pygate.lib

# The fields a declarative refusal carries beside the policy's own: the
# hint (hint, else the older suggestion), why, would_pass and the shadow mark.
_extras(policy, output, user) := object.union(
	object.union(_hint(policy, {"output": output, "user": user}), _shadow_mark(policy)),
	{
		"why": [_why(c, output, user) | some c in policy.conditions],
		"would_pass": [_would_pass(c, user) | some c in policy.conditions],
	},
)

_hint(policy, vars) := {"hint": lib.render(policy.hint, vars)} if {
	is_string(policy.hint)
} else := {"hint": lib.render(policy.suggestion, vars)} if {
	is_string(policy.suggestion)
} else := {}

_shadow_mark(policy) := {"shadow": true} if {
	policy.shadow == true
} else := {}

# The comparison each condition type makes, as (field, op when it holds, op
# when it does not). Paths are into the input: output fields under
# "output.", the user under "user.".
_op := {"eq": "==", "neq": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}

_negated := {"==": "!=", "!=": "==", ">": "<=", ">=": "<", "<": ">=", "<=": ">", "in": "not in", "not in": "in", "matches": "not matches"}

# _why is the condition as it held: {"field", "op", "value", "bound"}.
_why(c, output, user) := lib.condition(_field(c), _held_op(c), _value(c, output, user), _bound(c, user))

# _would_pass is the condition negated: the change that makes it fail.
_would_pass(c, user) := lib.change(_field(c), _negated[_held_op(c)], _bound(c, user))

_field(c) := "user.account_status" if c.type == "account_status"

_field(c) := "user.role" if c.type == "role_not_in"

_field(c) := concat(".", ["user", c.attribute]) if c.type == "user_attribute_in"

_field(c) := concat(".", ["output", object.get(c, "field", object.get(_default_field, c.type, ""))]) if {
	c.type in {"amount_exceeds_limit", "asset_restricted", "field_compare", "field_in", "field_not_in", "text_matches"}
}

_default_field := {"amount_exceeds_limit": "amount", "asset_restricted": "asset"}

_held_op(c) := "in" if c.type in {"account_status", "field_in", "user_attribute_in", "asset_restricted"}

_held_op(c) := "not in" if c.type in {"role_not_in", "field_not_in"}

_held_op(c) := ">" if c.type == "amount_exceeds_limit"

_held_op(c) := _op[c.op] if c.type == "field_compare"

_held_op(c) := "matches" if c.type == "text_matches"

_value(c, _, user) := object.get(user, "account_status", null) if c.type == "account_status"

_value(c, _, user) := object.get(user, "role", null) if c.type == "role_not_in"

_value(c, _, user) := object.get(user, c.attribute, null) if c.type == "user_attribute_in"

_value(c, output, _) := _output_value(output, object.get(c, "field", object.get(_default_field, c.type, ""))) if {
	c.type in {"amount_exceeds_limit", "asset_restricted", "field_compare", "field_in", "field_not_in"}
}

# The text a pattern matched is not repeated: it can be long, and a pattern
# is often there because the text is a secret.
_value(c, _, _) := null if c.type == "text_matches"

_output_value(output, path) := value if {
	value := lib.field(output, path)
} else := null

_bound(c, _) := c["in"] if c.type == "account_status"

_bound(c, _) := c.roles if c.type == "role_not_in"

_bound(c, _) := c.values if c.type in {"field_in", "field_not_in", "user_attribute_in"}

_bound(c, _) := c.value if c.type == "field_compare"

_bound(c, _) := c.pattern if c.type == "text_matches"

_bound(c, user) := _limit_or_null(user) if c.type == "amount_exceeds_limit"

_bound(c, _) := _restricted_symbols if c.type == "asset_restricted"

_limit_or_null(user) := limit if {
	limit := lib.transaction_limit(user)
} else := null

_restricted_symbols := sort([symbol | some symbol, status in lib.config("assets", {}); status == "restricted"]) if {
	is_object(lib.config("assets", null))
} else := []
