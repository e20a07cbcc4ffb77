package pygate.declarative_test

import data.pygate.declarative

# index_of is declarative_index for policies as pygate builds it
# (pygate/policy/_policy_index.py): typed valid policies under by_type, other
# policies of a set under all, entries without a usable set unscoped.
index_of(policies) := {
	"count": count(policies),
	"sets": {set_name: _set_index(policies, set_name) | some policy in policies; set_name := _set_of(policy)},
	"unscoped": [i | some i, policy in policies; not _set_of(policy)],
}

_set_of(policy) := policy.set if {
	is_string(policy.set)
	policy.set != ""
}

_set_index(policies, set_name) := {
	"all": [i | some i, policy in policies; _set_of(policy) == set_name; not _types_of(policy)],
	"by_type": {type_name: [i |
		some i, policy in policies
		_set_of(policy) == set_name
		type_name in _types_of(policy)
	] |
		some policy in policies
		_set_of(policy) == set_name
		some type_name in _types_of(policy)
	},
}

_types_of(policy) := {v | some v in conditions[0].values} if {
	declarative._valid(policy)
	conditions := [c |
		some c in policy.conditions
		c.type == "field_in"
		c.field == "type"
		every v in c.values {
			is_string(v)
		}
	]
	count(conditions) > 0
}

_typed(type_name, id) := {"id": id, "set": "s", "reason": "r", "action": "log_refusal", "conditions": [{"type": "field_in", "field": "type", "values": [type_name]}]}

_any(id) := {"id": id, "set": "s", "reason": "r", "action": "log_refusal", "conditions": [{"type": "field_compare", "field": "amount", "op": "gt", "value": 0}]}

_with_index(policies, index, output) := rs if {
	rs := declarative.refusals_for(["s"], output, _user) with data.pygate.config.declarative_policies as policies
		with data.pygate.config.declarative_index as index
}

_reasons(rs) := {r.reason | some r in rs}

_index_reason(problem) := sprintf("invalid policy declarative_index: %s (rebuild it with `pygate policy index`)", [problem])

test_shipped_index_is_current if {
	data.pygate.config.declarative_index == index_of(data.pygate.config.declarative_policies)
}

test_index_reaches_only_the_output_type_and_untyped if {
	policies := [_typed("transfer", "T"), _typed("payment", "P"), _any("A")]
	index := index_of(policies)
	index.sets.s == {"all": [2], "by_type": {"payment": [1], "transfer": [0]}}
	{r.policy_id | some r in _with_index(policies, index, {"type": "transfer", "amount": 5})} == {"T", "A"}
	{r.policy_id | some r in _with_index(policies, index, {"type": "payment", "amount": 5})} == {"P", "A"}
	{r.policy_id | some r in _with_index(policies, index, {"amount": 5})} == {"A"}
}

test_policies_of_other_types_are_not_read if {
	# Position 1 is not even a policy, but no transfer reaches it.
	policies := [_typed("transfer", "T"), 5]
	index := {"count": 2, "sets": {"s": {"all": [], "by_type": {"transfer": [0], "payment": [1]}}}, "unscoped": []}
	{r.policy_id | some r in _with_index(policies, index, {"type": "transfer"})} == {"T"}
	_reasons(_with_index(policies, index, {"type": "payment"})) == {_index_reason("position 1 is filed under sets.s.by_type.payment, where it does not belong")}
}

test_count_must_match_the_policies if {
	policies := [_typed("transfer", "T"), _typed("payment", "P")]
	index := index_of(policies)
	short := object.union(index, {"count": 1})
	long := object.union(index, {"count": 3})
	problem := _index_reason("count must be the number of declarative_policies")
	problem in _reasons(_with_index(policies, short, {"type": "transfer"}))
	problem in _reasons(_with_index(policies, long, {"type": "transfer"}))
	_index_reason("declarative_index must be an object with a numeric count") in _reasons(_with_index(policies, object.union(index, {"count": "2"}), {"type": "transfer"}))
	problem in _reasons(_with_index([], object.union(index, {"count": 2}), {"type": "other"}))
	count(_with_index([], {"count": 0, "sets": {}, "unscoped": []}, {"type": "other"})) == 0
}

test_position_without_policy_refuses if {
	policies := [_typed("transfer", "T")]
	index := {"count": 1, "sets": {"s": {"all": [7], "by_type": {}}}, "unscoped": []}
	_reasons(_with_index(policies, index, {"type": "x"})) == {_index_reason("position 7 names no policy")}
}

test_misfiled_policy_refuses if {
	policies := [_typed("payment", "P")]
	misfiled := {"count": 1, "sets": {"s": {"all": [], "by_type": {"transfer": [0]}}}, "unscoped": []}
	_reasons(_with_index(policies, misfiled, {"type": "transfer"})) == {_index_reason("position 0 is filed under sets.s.by_type.transfer, where it does not belong")}
	other_set := {"count": 1, "sets": {"t": {"all": [0], "by_type": {}}}, "unscoped": []}
	rs := declarative.refusals_for(["t"], {"type": "payment"}, _user) with data.pygate.config.declarative_policies as policies
		with data.pygate.config.declarative_index as other_set
	_reasons(rs) == {_index_reason("position 0 is filed under sets.t.all, where it does not belong")}
	scoped := {"count": 1, "sets": {}, "unscoped": [0]}
	_reasons(_with_index(policies, scoped, {"type": "payment"})) == {_index_reason("position 0 is filed under unscoped, where it does not belong")}
}

test_malformed_buckets_refuse if {
	policies := [_typed("transfer", "T")]
	set_problem := _index_reason("sets.s must be an object with an 'all' array and 'by_type' arrays")
	set_problem in _reasons(_with_index(policies, {"count": 1, "sets": {"s": {"by_type": {"transfer": [0]}}}, "unscoped": []}, {"type": "transfer"}))
	_reasons(_with_index(policies, {"count": 1, "sets": {"s": {"all": {}, "by_type": {}}}, "unscoped": []}, {"type": "transfer"})) == {set_problem}
	_reasons(_with_index(policies, {"count": 1, "sets": {"s": {"all": [], "by_type": {"transfer": 0}}}, "unscoped": []}, {"type": "transfer"})) == {set_problem}
	unscoped := _index_reason("unscoped must be an array")
	unscoped in _reasons(_with_index(policies, {"count": 1, "sets": {"s": {"all": [], "by_type": {"transfer": [0]}}}}, {"type": "transfer"}))
}

test_index_without_count_refuses if {
	reason := _index_reason("declarative_index must be an object with a numeric count")
	every index in [{}, "yes", false, [1], {"sets": {}}] {
		_reasons(_with_index([_any("A")], index, {"amount": 1})) == {reason}
	}
}

test_null_index_scans if {
	{r.policy_id | some r in _with_index([_any("A")], null, {"amount": 1})} == {"A"}
}

test_defines_set if {
	declarative.defines_set("finance")
	not declarative.defines_set("nope")
	declarative.defines_set("s") with data.pygate.config.declarative_policies as [_any("A")]
		with data.pygate.config.declarative_index as null
	not declarative.defines_set("t") with data.pygate.config.declarative_policies as [_any("A")]
		with data.pygate.config.declarative_index as null

	# a broken index names every set, so its own refusal explains the decision
	declarative.defines_set("nope") with data.pygate.config.declarative_index as "broken"
}
