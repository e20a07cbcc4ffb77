# Reaching rules-as-data policies through declarative_index, the lookup that
# pygate computes from declarative_policies whenever it builds a bundle,
# pushes policy data or runs `pygate policy index` (pygate/_policy_index.py):
#
#   {"count": N,                      the length of declarative_policies
#    "sets": {"<set>": {"all": [i, ...],                positions of the set's policies
#                                                       that apply to any output type
#                       "by_type": {"<type>": [i, ...]}}},  ... only to outputs of that type
#    "unscoped": [i, ...]}            entries without a usable set: they refuse everywhere
#
# OPA turns every document it reads from its store into a Rego value anew on
# each query, so this file reads leaves and the buckets a request needs, never
# the policy list or the index as a whole (reading a list of 10,000 policies
# costs ~50 ms per query). What a query reads is checked, and any mismatch
# refuses: the length against count, each position, and that each policy it
# reaches belongs where it was filed. pygate checks the whole index against
# the list before it publishes either.
package pygate.declarative

_has_index if {
	_ := data.pygate.config.declarative_index.count
}

# No index (absent or null): policies are scanned. Only evaluated when
# _has_index fails, so reading the whole index here costs nothing in the
# common case.
_no_index if not _index_given

_index_given if {
	index := data.pygate.config.declarative_index
	index != null
}

_indexed_refusals(sets, output, user) := ({r |
	some entry in _entries(sets, output)
	r := _entry_refusal(entry, output, user)
} | {_index_refusal(problem) | some problem in _index_shape_problems}) | {_index_refusal(problem) |
	some set_name in sets
	problem := _set_problem(set_name, output)
}

# An entry is [position, set or null (unscoped), output type or null (all)].
_entries(sets, output) := ({[i, set_name, null] |
	some set_name in sets
	some i in data.pygate.config.declarative_index.sets[set_name].all
} | {[i, set_name, output.type] |
	some set_name in sets
	some i in data.pygate.config.declarative_index.sets[set_name].by_type[output.type]
}) | {[i, null, null] | some i in data.pygate.config.declarative_index.unscoped}

_entry_refusal(entry, output, user) := _index_refusal(sprintf("position %v names no policy", [entry[0]])) if {
	not _policy_at(entry[0])
} else := _index_refusal(sprintf("position %v is filed under %s, where it does not belong", [entry[0], _bucket_name(entry)])) if {
	policy := data.pygate.config.declarative_policies[entry[0]]
	not _placed(policy, entry[1], entry[2])
} else := r if {
	policy := data.pygate.config.declarative_policies[entry[0]]
	r := _evaluate(policy, entry[0], output, user)
}

_policy_at(i) if {
	_ := data.pygate.config.declarative_policies[i]
}

_bucket_name([_, null, _]) := "unscoped"

_bucket_name([_, set_name, null]) := sprintf("sets.%s.all", [set_name]) if set_name != null

_bucket_name([_, set_name, type_name]) := sprintf("sets.%s.by_type.%v", [set_name, type_name]) if {
	set_name != null
	type_name != null
}

# Unscoped entries are policies without a usable set (they are invalid and
# refuse everywhere); a set's entries carry that set, and typed entries a
# field_in condition on the output type that names the type.
_placed(policy, null, _) if not _scoped(policy)

_placed(policy, set_name, null) if policy.set == set_name

_placed(policy, set_name, type_name) if {
	type_name != null
	policy.set == set_name
	some condition in policy.conditions
	condition.type == "field_in"
	condition.field == "type"
	type_name in condition.values
}

_scoped(policy) if _kind_ok("string", policy.set)

_index_shape_problems contains "count must be the number of declarative_policies" if not _count_ok

_index_shape_problems contains "unscoped must be an array" if not _unscoped_ok

_count_ok if {
	data.pygate.config.declarative_index.count == 0
	not _policy_at(0)
}

_count_ok if {
	n := data.pygate.config.declarative_index.count
	is_number(n)
	n > 0
	_policy_at(n - 1)
	not _policy_at(n)
}

_unscoped_ok if is_array(data.pygate.config.declarative_index.unscoped)

# A set the index does not name has no policies; one it names needs an "all"
# array, and the bucket for this output's type, when there is one, must be an
# array.
_set_problem(set_name, output) := sprintf("sets.%s must be an object with an 'all' array and 'by_type' arrays", [set_name]) if {
	not _set_ok(set_name, output)
}

# (else, not a second rule: reading the whole set entry is what the first
# branch avoids.)
_set_ok(set_name, output) if {
	is_array(data.pygate.config.declarative_index.sets[set_name].all)
	not _bad_type_bucket(set_name, output)
} else if not _index_names(set_name)

_index_names(set_name) if {
	_ := data.pygate.config.declarative_index.sets[set_name]
}

_bad_type_bucket(set_name, output) if {
	bucket := data.pygate.config.declarative_index.sets[set_name].by_type[output.type]
	not is_array(bucket)
}

_index_refusal(problem) := _invalid_refusal(
	"declarative_index",
	"invalid-policy",
	"*",
	{sprintf("%s (rebuild it with `pygate policy index`)", [problem])},
)
