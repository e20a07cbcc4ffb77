# METADATA
# title: pygate gate
# description: >-
#   The entry point every service queries. decision is always defined: a
#   malformed input, an unknown service or broken service data produces a
#   refusal, never an undefined result and never an allow.
package pygate.gate

import data.pygate.approvals
import data.pygate.canonical
import data.pygate.contracts
import data.pygate.declarative
import data.pygate.lib

# decision is the one document services read:
# {"allowed", "service", "refusals" (sorted by priority, then policy_id),
#  "primary" (the first refusal, or null when allowed),
#  "actions" (the canonical actions decided, see pygate.canonical; [] when
#  the output is missing)}.
#
# A require_review refusal that a person approved (pygate.approvals) is lifted;
# then the decision also carries "approvals_applied", and a decision that
# still waits for review carries "review" (what to approve).
#
# Refusals of shadow policies (see shadow.rego) never refuse: when there are
# any, the decision carries them in "shadow_refusals", each marked
# "shadow": true, and they play no part in allowed, refusals or review.
#
# The first body is the common case, a well-formed input with no refusal a
# person could approve: then approvals cannot change anything and the input
# refusals are known to be empty, so neither is computed. The else body is
# the general case and gives the same answer for those inputs too.
decision := _with_shadow({
	"allowed": count(refusals) == 0,
	"service": input.context.service,
	"refusals": refusals,
	"primary": _first_or_null(refusals),
	"actions": _decided_actions,
}) if {
	_input_ok
	not _review_pending
	refusals := _sorted(_policy_refusals)
} else := _with_shadow(object.union(
	{
		"allowed": count(refusals) == 0,
		"service": _service_or_null,
		"refusals": refusals,
		"primary": _first_or_null(refusals),
		"actions": _decided_actions,
	},
	approvals.extras(lifted, remaining, _input_doc),
)) if {
	lifted := approvals.lifted(_refusals, _input_doc)
	remaining := _refusals - lifted
	refusals := _sorted(remaining)
}

# The safety net: should anything above ever be undefined, the caller still
# gets a refusal rather than "no result".
default decision := {
	"allowed": false,
	"service": null,
	"refusals": [{
		"policy_id": "GATE-000",
		"title": "Decision could not be computed",
		"description": "The gate failed to evaluate; refusing is the only safe answer.",
		"reason": "internal error: the decision could not be computed",
		"action": "log_refusal",
		"priority": 0,
		"policy_set": "gate",
		"source": "rego",
		"message": "I can't do that right now because of a problem on our side.",
		"hint": "Do not retry at once or work around the check; tell the user it did not run.",
	}],
	"primary": {
		"policy_id": "GATE-000",
		"title": "Decision could not be computed",
		"description": "The gate failed to evaluate; refusing is the only safe answer.",
		"reason": "internal error: the decision could not be computed",
		"action": "log_refusal",
		"priority": 0,
		"policy_set": "gate",
		"source": "rego",
		"message": "I can't do that right now because of a problem on our side.",
		"hint": "Do not retry at once or work around the check; tell the user it did not run.",
	},
	"actions": [],
}

# batch decides many inputs in one query: {"items": [input, ...]} gives
# {"decisions": [decision, ...]} in item order. Each item is decided on its
# own (`with input as item`), so a malformed item only refuses itself.
batch := {"decisions": [d |
	some item in input.items
	d := decision with input as item
]} if {
	_items_is_array
} else := {
	"decisions": [],
	"error": "input.items must be an array of decision inputs",
}

_items_is_array if is_array(input.items)

# Input checks refuse instead of running policies: a policy that reads
# input.output.amount cannot be trusted to fail closed on garbage.
# (Not `_policy_refusals if _input_ok else := _input_refusals`: should the
# policy refusals ever be undefined, the else would answer with no refusal.)
_refusals := refusals if {
	_input_ok
	refusals := _policy_refusals
} else := _input_refusals if {
	not _input_ok
}

# contracts.refusals is default deny: unreadable output, undeclared actions,
# arguments outside their contract and malformed host facts. Shadow refusals
# are split off from these in shadow.rego (_policy_refusals enforce).
_evaluated_refusals := (((_rego_refusals | _package_refusals) | declarative.refusals_for(_policy_sets, input.output, input.user)) | _declarative_on_actions) | contracts.refusals

# Rules-as-data policies read each canonical action as well as the raw
# output, as {"type": <canonical name>, <argument>: <value>, ...}: a policy
# written for {"type": "transfer", ...} also sees "Transfer", a tool call
# named transfer in any envelope, and each call of a list. Reading both can
# only add refusals, never remove one.
_declarative_on_actions contains r if {
	some action in canonical.actions
	some r in declarative.refusals_for(_policy_sets, _action_doc(action), input.user)
}

_action_doc(action) := object.union(action.arguments, {"type": action.name}) if {
	is_object(action.arguments)
} else := {"type": action.name}

_decided_actions := canonical.actions if {
	_output_ok
} else := []

_review_pending if {
	some r in _policy_refusals
	r.action == "require_review"
}

# _input_ok holds exactly when _input_refusals is empty (a test checks both
# ways on every malformed input of gate_test): the input, user id and service
# are well formed, the service is configured and each of its sets exists. It
# is the per-query check, so it reads as little as it can: a successful
# lookup of the service already proves that services is an object and the
# name a string. The entry is read by its path (OPA converts what a query
# reads from its store, and services holds every service's contracts).
_input_ok if {
	is_object(input.output)
	is_string(input.user.id)
	input.user.id != ""
	input.context.service != ""
	entry := _entry
	_entry_valid(entry)
	every set_name in _sets_of(entry) {
		_set_defined(set_name)
	}
	every pkg in _packages_of(entry) {
		_package_defined(pkg)
	}
}

# A service names pygate policy sets (policy_sets) and/or the user's own Rego
# packages (packages, e.g. ["acme.payments"]); at least one in all.
_entry_ok(entry) if {
	is_object(entry)
	sets := _sets_of(entry)
	pkgs := _packages_of(entry)
	is_array(sets)
	is_array(pkgs)
	count(sets) + count(pkgs) > 0
	every name in array.concat(sets, pkgs) {
		is_string(name)
		name != ""
	}
}

# An entry whose policy_sets and packages equal pygate's checked copy
# (data.pygate.config.checked, pygate/policy/_checked.py: the same checks as
# _entry_ok, never looser) is well formed; any other is checked.
_entry_valid(entry) if {
	_sets_of(entry) == data.pygate.config.checked.services[input.context.service].policy_sets
	_packages_of(entry) == data.pygate.config.checked.services[input.context.service].packages
} else if {
	_entry_ok(entry)
}

_entry := data.pygate.config.services[input.context.service]

_sets_of(entry) := object.get(entry, "policy_sets", [])

_packages_of(entry) := object.get(entry, "packages", [])

_set_defined(set_name) if _rego_set(set_name)

_set_defined(set_name) if declarative.defines_set(set_name)

# A set with no Rego package contributes nothing here (it has declarative
# policies, or GATE-008 refused already). A package whose refusals
# are not well-formed objects is not skipped: each bad item becomes a refusal,
# since a refusal without a priority or id would drop out of the sort below.
_rego_refusals contains _normalized(item, set_name) if {
	some set_name in _policy_sets
	some item in _as_collection(data.pygate.policies[set_name].refusals)
}

_as_collection(x) := x if {
	is_set(x)
} else := x if {
	is_array(x)
} else := {x}

_normalized(item, set_name) := object.union(item, {"policy_set": set_name}) if {
	_well_formed(item)
} else := _malformed_refusal(item, set_name)

# METADATA
# title: Malformed refusal from a policy package
# description: >-
#   A policy package produced a refusal that is not an object with string
#   policy_id, reason and action and a numeric priority.
# custom:
#   id: GATE-007
#   reason: "policy set '{{.set}}' produced a malformed refusal: {{.item}}"
#   action: log_refusal
#   priority: 0
#   message: I can't do that right now because of a configuration problem on our side.
#   hint: Do not retry; the operator must fix the policy first.
_malformed_refusal(item, set_name) := object.union(
	lib.refusal(rego.metadata.chain(), {"set": set_name, "item": json.marshal(item)}),
	{"policy_set": set_name},
)

_well_formed(r) if {
	is_string(r.policy_id)
	is_string(r.reason)
	is_string(r.action)
	is_number(r.priority)
}

_policy_sets := _sets_of(_entry)

_packages := _packages_of(_entry)

# A user's own package plugs in through data (services.<name>.packages) and
# is read through data.pygate.packages, which pygate generates beside the
# user's policies (one line per package: its deny and refusals). An item of
# `deny` or `refusals` is a string (the reason) or a refusal object; missing
# fields get defaults (policy_id: the package, action log_refusal, priority
# 100), and an item without a reason is refused as malformed (GATE-007).
_package_refusals contains _from_package(item, pkg) if {
	some pkg in _packages
	some item in _as_collection(data.pygate.packages.deny[pkg])
}

_package_refusals contains _from_package(item, pkg) if {
	some pkg in _packages
	some item in _as_collection(data.pygate.packages.refusals[pkg])
}

_package_defaults(pkg) := {"policy_id": pkg, "action": "log_refusal", "priority": 100, "source": "rego"}

_from_package(item, pkg) := _normalized(object.union(_package_defaults(pkg), {"reason": item, "title": item}), pkg) if {
	is_string(item)
} else := _normalized(
	object.union(
		object.union(_package_defaults(pkg), {"policy_id": object.get(item, "id", pkg)}),
		object.union(item, {"reason": object.get(item, "reason", object.get(item, "msg", null))}),
	),
	pkg,
) if {
	is_object(item)
} else := _malformed_refusal(item, pkg)

_package_defined(pkg) if {
	_ := data.pygate.packages.deny[pkg]
}

_package_defined(pkg) if {
	_ := data.pygate.packages.refusals[pkg]
}

_services := lib.config("services", null)

_service_or_null := input.context.service if {
	is_string(input.context.service)
} else := null

# Sort on (priority, policy_id) first, then the whole refusal so that two
# refusals from one rule still come out in a fixed order.
_sorted(refusals) := [] if {
	count(refusals) == 0
} else := [r | some entry in sort([[r.priority, r.policy_id, r] | some r in refusals]); r := entry[2]]

_first_or_null(refusals) := refusals[0] if {
	count(refusals) > 0
} else := null

# Each check below is written as a positive helper rule plus `not helper`:
# OPA hoists refs out of a `not` expression (opa#1877), so
# `not is_object(input.output)` would be undefined, not true, when output is
# missing, and the refusal would silently vanish.
_input_is_object if is_object(input)

# input when it is an object, else {}: a missing input must still reach the
# GATE-001 refusal rather than make the decision undefined.
_input_doc := input if {
	_input_is_object
} else := {}

_output_ok if is_object(input.output)

_user_ok if {
	is_object(input.user)
	is_string(input.user.id)
	input.user.id != ""
}

_service_given if {
	is_string(input.context.service)
	input.context.service != ""
}

_services_ok if is_object(_services)

_service_known if {
	_ := _services[input.context.service]
}

_service_ok if {
	_entry_ok(_services[input.context.service])
}

_service_config_problems contains "services must be an object mapping service names to {policy_sets: [...], packages: [...]}" if {
	not _services_ok
}

_service_config_problems contains sprintf("service '%s' needs policy_sets and/or packages: arrays of names, at least one name in all", [input.context.service]) if {
	_service_known
	not _service_ok
}

# A set listed for a service but defined nowhere is most likely a typo; it
# would otherwise contribute nothing and let everything through.
_unknown_sets contains set_name if {
	_service_ok
	some set_name in _policy_sets
	not _rego_set(set_name)
	not declarative.defines_set(set_name)
}

_unknown_packages contains pkg if {
	_service_ok
	some pkg in _packages
	not _package_defined(pkg)
}

_rego_set(set_name) if {
	_ := data.pygate.policies[set_name].refusals
}

_gate_refusal(chain, vars) := object.union(_input_messages, object.union(lib.refusal(chain, vars), {"policy_set": "gate"}))

# What the user and the model are told when the input or the service
# configuration is broken: nothing they can change, so no detail.
_input_messages := {
	"message": "I can't do that right now because of a problem on our side.",
	"hint": "Do not retry; the application or its policy configuration must be fixed first.",
}

# METADATA
# title: Input is not an object
# description: The gate input must be a JSON object with output, user and context.
# custom:
#   id: GATE-001
#   reason: The gate input must be a JSON object
#   action: log_refusal
#   priority: 0
_input_refusals contains r if {
	not _input_is_object
	r := _gate_refusal(rego.metadata.chain(), {})
}

# METADATA
# title: Output missing
# description: The model output to check must be an object under input.output.
# custom:
#   id: GATE-002
#   reason: input.output must be an object
#   action: log_refusal
#   priority: 0
_input_refusals contains r if {
	_input_is_object
	not _output_ok
	r := _gate_refusal(rego.metadata.chain(), {})
}

# METADATA
# title: User missing
# description: Every decision is made for an identified user, so input.user.id is required.
# custom:
#   id: GATE-003
#   reason: input.user must be an object with a non-empty string id
#   action: log_refusal
#   priority: 0
_input_refusals contains r if {
	_input_is_object
	not _user_ok
	r := _gate_refusal(rego.metadata.chain(), {})
}

# METADATA
# title: Service missing
# description: The service name picks the policy sets, so without it nothing can be checked.
# custom:
#   id: GATE-004
#   reason: input.context.service must be a non-empty string
#   action: log_refusal
#   priority: 0
_input_refusals contains r if {
	_input_is_object
	not _service_given
	r := _gate_refusal(rego.metadata.chain(), {})
}

# METADATA
# title: Unknown service
# description: Only services listed in the services policy data have policies; any other name is refused.
# custom:
#   id: GATE-005
#   reason: unknown service '{{.service}}'
#   action: log_refusal
#   priority: 0
_input_refusals contains r if {
	_input_is_object
	_service_given
	_services_ok
	not _service_known
	r := _gate_refusal(rego.metadata.chain(), {"service": input.context.service})
}

# METADATA
# title: Service configuration malformed
# description: The services policy data is missing or malformed, so the gate cannot tell which policies apply.
# custom:
#   id: GATE-006
#   reason: "services configuration missing or malformed: {{.problem}}"
#   action: log_refusal
#   priority: 0
_input_refusals contains r if {
	_input_is_object
	some problem in _service_config_problems
	r := _gate_refusal(rego.metadata.chain(), {"problem": problem})
}

# METADATA
# title: Unknown policy set
# description: >-
#   A service lists a policy set that has neither a Rego package under
#   pygate.policies nor any declarative policy, which is almost always a typo.
# custom:
#   id: GATE-008
#   reason: "service '{{.service}}' lists policy set '{{.set}}', which has no Rego package and no declarative policies"
#   action: log_refusal
#   priority: 0
_input_refusals contains r if {
	_input_is_object
	some set_name in _unknown_sets
	r := _gate_refusal(rego.metadata.chain(), {"service": input.context.service, "set": set_name})
}

# METADATA
# title: Unknown policy package
# description: >-
#   A service lists a Rego package (services.<name>.packages) that is not
#   loaded or has neither a deny nor a refusals rule, so nothing would check
#   its outputs.
# custom:
#   id: GATE-016
#   reason: "service '{{.service}}' lists package '{{.package}}', which is not loaded or has no deny/refusals rule"
#   action: log_refusal
#   priority: 0
_input_refusals contains r if {
	_input_is_object
	some pkg in _unknown_packages
	r := _gate_refusal(rego.metadata.chain(), {"service": input.context.service, "package": pkg})
}
