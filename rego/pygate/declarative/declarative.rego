# METADATA
# title: Declarative policies
# description: >-
#   Interprets policies written as data (config key declarative_policies), so
#   a new rule can ship without new Rego. A policy refuses when all of its
#   conditions hold. A policy that cannot be validated refuses too: a typo in
#   policy data must never turn into a silent allow.
package pygate.declarative

import data.pygate.lib

# refusals_for returns the refusals from declarative policies in any of sets
# (an array or set of policy-set names) for one output and user, plus every
# invalid policy that applies to those sets.
#
# Only policies that can apply are validated and evaluated per query. With
# the declarative_index that pygate writes next to the policies (see
# index.rego) that is the set's policies for this output type plus those
# without a type; without an index, every policy of the sets (and every
# policy whose set is unknown) is scanned. An index that is present but
# broken refuses.
refusals_for(sets, output, user) := _indexed_refusals(sets, output, user) if {
	_index_ok
} else := _scanned_refusals(sets, output, user) if {
	_no_index
} else := {_index_refusal(_index_problem)}

# defines_set holds when declarative policies mention set_name, so the gate
# can tell a declarative-only set from a typo. With a broken index it holds
# for every name: the index refusal then explains the decision.
defines_set(set_name) if {
	_index_ok
	_ := data.pygate.config.declarative_index.sets[set_name].all
} else if {
	not _index_ok
	_no_index
	set_name in sets
} else if {
	not _index_ok
	not _no_index
}

_scanned_refusals(sets, output, user) := {r |
	some i, policy in _policies
	_relevant(policy, sets)
	r := _evaluate(policy, i, output, user)
} | _list_invalid

# invalid lists one refusal per policy that failed validation, with every
# problem in its reason. Tooling can query it to lint policy data.
invalid contains r if {
	some i, problems in _problems
	policy := _policies[i]
	r := _invalid_refusal(_label(policy, i), _id_or_default(policy), _set_or_all(policy), problems)
}

invalid contains r if some r in _list_invalid

# sets names every policy set that declarative policies mention (a full
# scan: for tooling, and for defines_set when there is no index).
sets contains policy.set if {
	some policy in _policies
	is_string(policy.set)
}

_list_invalid contains r if {
	not is_array(_configured)
	r := _invalid_refusal("declarative_policies", "invalid-policy", "*", {"not an array"})
}

_relevant(policy, sets) if policy.set in sets

_relevant(policy, _) if not is_object(policy)

_relevant(policy, _) if {
	is_object(policy)
	not _kind_ok("string", object.get(policy, "set", null))
}

# _evaluate is the invalid-policy refusal when policy fails validation,
# else its refusal when all conditions hold, else undefined.
#
# Validation runs on every query, so the common case takes the cheap boolean
# _valid; only a policy that fails it pays for the messages of
# _policy_problems. Should the two ever disagree, the policy still refuses.
_evaluate(policy, i, output, user) := r if {
	not _valid_at(policy, i)
	r := _invalid_refusal(_label(policy, i), _id_or_default(policy), _set_or_all(policy), _problems_or_unknown(policy))
} else := r if {
	every condition in policy.conditions {
		_holds(condition, output, user)
	}
	r := _refusal(policy, output, user)
}

# A policy equal to pygate's checked copy of position i (written when the data
# was published, pygate/policy/_checked.py, with checks never looser than
# _valid) is valid; any other takes _valid.
_valid_at(policy, i) if {
	policy == data.pygate.config.checked.declarative_policies[i]
} else if {
	_valid(policy)
}

# _valid holds exactly when _policy_problems(policy) is empty. It is the
# per-query check, so it spells the spec out rather than walking
# _policy_spec (which costs several times more); a test keeps the two in step.
_valid(policy) if {
	is_string(policy.id)
	policy.id != ""
	is_string(policy.set)
	policy.set != ""
	is_string(policy.reason)
	policy.reason != ""
	is_string(policy.action)
	policy.action != ""
	is_array(policy.conditions)
	count(policy.conditions) > 0
	every value in object.filter(policy, _optional_strings) {
		is_string(value)
		value != ""
	}
	is_number(object.get(policy, "priority", 0))
	every condition in policy.conditions {
		_condition_valid(condition)
	}
}

_optional_strings := {"title", "description", "suggestion", "message", "hint"}

_problems_or_unknown(policy) := problems if {
	problems := _policy_problems(policy)
	count(problems) > 0
} else := {"failed validation"}

_configured := lib.config("declarative_policies", [])

_policies := _configured if {
	is_array(_configured)
} else := []

# _problems maps the index of each invalid policy to its set of problems.
_problems[i] := problems if {
	some i, policy in _policies
	problems := _policy_problems(policy)
	count(problems) > 0
}

# _policy_problems is the set of reasons policy is invalid; empty when valid.
_policy_problems(policy) := {"not an object"} if not is_object(policy)

_policy_problems(policy) := problems if {
	is_object(policy)
	conditions := object.get(policy, "conditions", null)
	problems := _spec_problems(policy, _policy_spec) | _conditions_problems(conditions)
}

# Kinds: see _kind_ok. "set" is required: a policy whose scope is unknown
# cannot be placed, so it is treated as invalid and refuses everywhere.
_policy_spec := {
	"required": {
		"id": "string",
		"set": "string",
		"reason": "string",
		"action": "string",
		"conditions": "non_empty_array",
	},
	"optional": {
		"title": "string",
		"description": "string",
		"suggestion": "string",
		"message": "string",
		"hint": "string",
		"priority": "number",
	},
}

_conditions_problems(conditions) := {msg |
	is_array(conditions)
	some i, condition in conditions
	some msg in _condition_problems(i, condition)
}

# A policy's refusal also carries why (each of its conditions, with the
# value it saw) and would_pass (the negation of each: any one lifts it), see
# explain.rego, and "shadow": true when the policy is marked shadow.
_refusal(policy, output, user) := object.union(object.union(base, optional), _extras(policy, output, user)) if {
	vars := {"output": output, "user": user}
	base := {
		"policy_id": policy.id,
		"title": object.get(policy, "title", policy.id),
		"description": object.get(policy, "description", ""),
		"reason": lib.render(policy.reason, vars),
		"action": policy.action,
		"priority": object.get(policy, "priority", 100),
		"policy_set": policy.set,
		"source": "data",
	}
	optional := {key: lib.render(policy[key], vars) |
		some key in ["suggestion", "message"]
		is_string(policy[key])
	}
}

_invalid_refusal(label, id, set_name, problems) := {
	"policy_id": id,
	"title": "Invalid declarative policy",
	"description": "A declarative policy failed validation, so it refuses instead of being skipped.",
	"reason": sprintf("invalid policy %s: %s", [label, concat("; ", sort(problems))]),
	"action": "log_refusal",
	"priority": 0,
	"policy_set": set_name,
	"source": "data",
	"invalid": true,
	"message": "I can't do that right now because of a configuration problem on our side.",
	"hint": "Do not retry; the operator must fix the policy data first.",
}

_valid_id(policy) if _kind_ok("string", policy.id)

_id_or_default(policy) := policy.id if {
	_valid_id(policy)
} else := "invalid-policy"

_label(policy, _) := policy.id if _valid_id(policy)

_label(policy, i) := sprintf("declarative_policies[%d]", [i]) if not _valid_id(policy)

# "*" marks an invalid policy whose set is unknown: it applies to every service.
_set_or_all(policy) := policy.set if {
	_kind_ok("string", policy.set)
} else := "*"
