# Shadow policies: evaluated on every decision, recorded as "would have
# refused", never refusing. (Package METADATA lives in gate.rego.)
#
# A policy is shadow by data, so promoting it is one data change, removing
# the mark:
# - a rules-as-data policy with "shadow": true (declarative_policies), or
# - a policy set or package that a service lists both where it normally
#   would (policy_sets / packages) and in its "shadow" array:
#   {"policy_sets": ["finance", "finance_strict"], "shadow": ["finance_strict"]}.
#
# Refusals are split by where they came from, never by policy id, so a shadow
# policy cannot lift a refusal of an enforcing one, whatever it is called.
# The gate's own refusals (GATE-*, including default deny from contracts and
# malformed package output) and invalid rules-as-data policies always
# enforce, as does anything under a mark that is not exactly true or an array
# of names: a broken mark refuses more, never less.
package pygate.gate

# The refusals that decide: everything evaluated that is not shadow.
# Undefined when _evaluated_refusals is (a comprehension over an undefined
# rule would be empty, an allow), so the gate's safety net still refuses.
_policy_refusals := {r | some r in evaluated; not _shadow(r)} if {
	evaluated := _evaluated_refusals
}

# Only a rules-as-data policy marks its own refusals (from policy data); a
# Rego refusal object that says "shadow" is not believed, since a package
# could copy fields of the model's output into it.
_shadow(r) if {
	_shadowable(r)
	r.source == "data"
	r.shadow == true
}

_shadow(r) if {
	_shadowable(r)
	r.policy_set in _shadow_marks
}

_shadowable(r) if {
	not startswith(r.policy_id, "GATE-")
	object.get(r, "invalid", false) == false
}

_shadow_marks := marks if {
	marks := _services[input.context.service].shadow
	is_array(marks)
} else := []

# Sorted like refusals and marked, so nothing that reads a refusal alone can
# take it for an enforcing one.
_shadow_refusals := _sorted({object.union(r, {"shadow": true}) |
	some r in evaluated
	_shadow(r)
}) if {
	_input_ok
	evaluated := _evaluated_refusals
} else := []

# The decision document carries shadow_refusals only when there are some,
# so a decision without shadow policies is the same document as before.
_with_shadow(doc) := object.union(doc, {"shadow_refusals": _shadow_refusals}) if {
	count(_shadow_refusals) > 0
} else := doc
