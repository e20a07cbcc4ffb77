# Reaching rules-as-data policies through declarative_index, the lookup that
# pygate computes from declarative_policies whenever it builds a bundle,
# pushes policy data or runs `pygate policy index` (pygate/policy/_policy_index.py):
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

# The index is usable when its count matches the policy list (checked by
# reading the last position and the one past it, not the list) and its
# unscoped bucket is an array.
_index_ok if {
	data.pygate.config.declarative_index.count == 0
	not _policy_at(0)
	is_array(data.pygate.config.declarative_index.unscoped)
}

_index_ok if {
	n := data.pygate.config.declarative_index.count
	n > 0
	_policy_at(n - 1)
	not _policy_at(n)
	is_array(data.pygate.config.declarative_index.unscoped)
}

# No index (absent or null): policies are scanned. Only evaluated when
# _index_ok fails, so reading the whole index here costs nothing in the
# common case.
_no_index if not _index_given

_index_given if {
	index := data.pygate.config.declarative_index
	index != null
}

# What is wrong with an index that is present but not usable.
_index_problem := "declarative_index must be an object with a numeric count" if {
	not _has_count
} else := "unscoped must be an array" if {
	not _unscoped_ok
} else := "count must be the number of declarative_policies"

# Helper rules for `not`: OPA hoists refs out of a negated call (opa#1877).
_has_count if is_number(data.pygate.config.declarative_index.count)

_unscoped_ok if is_array(data.pygate.config.declarative_index.unscoped)

_indexed_refusals(sets, output, user) := {r |
	some set_name in sets
	some r in _set_refusals(set_name, output, user)
} | {r |
	some i in data.pygate.config.declarative_index.unscoped
	r := _entry_refusal(i, null, null, output, user)
}

# The refusals of one set's policies that can apply to output: those filed
# under "all" and those under the output's type. A set the index does not
# name has no policies.
_set_refusals(set_name, output, user) := {r |
	some i in all
	r := _entry_refusal(i, set_name, null, output, user)
} | {r |
	some i in _typed_positions(set_name, output)
	r := _entry_refusal(i, set_name, output.type, output, user)
} if {
	all := data.pygate.config.declarative_index.sets[set_name].all
	is_array(all)
	_typed_positions(set_name, output)
} else := set() if {
	not _index_names(set_name)
} else := {_index_refusal(sprintf("sets.%s must be an object with an 'all' array and 'by_type' arrays", [set_name]))}

_typed_positions(set_name, output) := positions if {
	positions := data.pygate.config.declarative_index.sets[set_name].by_type[output.type]
	is_array(positions)
} else := [] if {
	not _has_type_bucket(set_name, output)
}

_has_type_bucket(set_name, output) if {
	_ := data.pygate.config.declarative_index.sets[set_name].by_type[output.type]
}

# (else, not a second rule: reading the whole set entry is what the first
# branch of _set_refusals avoids.)
_index_names(set_name) if {
	_ := data.pygate.config.declarative_index.sets[set_name]
}

# An entry is the policy at position i, filed under set_name (null:
# unscoped) and type_name (null: any type). It is evaluated when it is where
# it was filed, and refuses as a broken index when it is not.
_entry_refusal(i, set_name, type_name, output, user) := r if {
	policy := data.pygate.config.declarative_policies[i]
	_placed(policy, set_name, type_name)
	r := _evaluate(policy, i, output, user)
} else := _index_refusal(_entry_problem(i, set_name, type_name)) if {
	not _placed_at(i, set_name, type_name)
}

_placed_at(i, set_name, type_name) if _placed(data.pygate.config.declarative_policies[i], set_name, type_name)

_entry_problem(i, set_name, type_name) := sprintf("position %v names no policy", [i]) if {
	not _policy_at(i)
} else := sprintf("position %v is filed under unscoped, where it does not belong", [i]) if {
	set_name == null
} else := sprintf("position %v is filed under sets.%s.all, where it does not belong", [i, set_name]) if {
	type_name == null
} else := sprintf("position %v is filed under sets.%s.by_type.%v, where it does not belong", [i, set_name, type_name])

_policy_at(i) if {
	_ := data.pygate.config.declarative_policies[i]
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

_index_refusal(problem) := _invalid_refusal(
	"declarative_index",
	"invalid-policy",
	"*",
	{sprintf("%s (rebuild it with `pygate policy index`)", [problem])},
)
