package pygate.gate_test

import data.pygate.declarative_test
import data.pygate.gate

_analyst := {"id": "u1", "role": "analyst", "account_status": "active", "transaction_limit": 1000}

_finance(output) := {"output": output, "user": _analyst, "context": {"service": "finance"}}

_assistant(output, usage) := {"output": output, "user": _analyst, "context": {"service": "assistant", "usage_today": usage}}

_decide(doc) := d if {
	d := gate.decision with input as doc
}

_ids(d) := [r.policy_id | some r in d.refusals]

# _with replaces one top-level key (object.union would merge nested objects).
_with(doc, key, value) := object.union(object.remove(doc, [key]), {key: value})

_transfer(amount) := {"type": "transfer", "amount": amount, "to": "acct-2"}

# Seed scenarios: the Python demo relies on exactly these outcomes.

_transfer_action(amount) := {"kind": "action", "name": "transfer", "arguments": {"amount": amount, "to": "acct-2"}, "source": "typed", "path": []}

test_seed_1_transfer_within_limit_allowed if {
	_decide(_finance(_transfer(500))) == {"allowed": true, "service": "finance", "refusals": [], "primary": null, "actions": [_transfer_action(500)]}
}

test_seed_2_transfer_over_limit_refused if {
	refusal := {
		"policy_id": "FIN-002",
		"title": "Transfer exceeds transaction limit",
		"description": "No action may move more money than the user's transaction limit, or the configured default limit: every argument the service declares as a money_amount is checked, whatever the action is called or how it came.",
		"reason": "Transfer of 5000 exceeds your transaction limit of 1000",
		"action": "show_user_limit",
		"priority": 20,
		"policy_set": "finance",
		"source": "rego",
		"suggestion": "Try a smaller amount",
		"message": "That is more than you can move at once: your limit is 1000.",
		"hint": "Propose at most 1000 in amount, or split the amount and ask the user first.",
		"why": [{"field": "arguments.amount", "op": ">", "value": 5000, "bound": 1000}],
		"would_pass": [{"field": "arguments.amount", "op": "<=", "bound": 1000}],
	}
	_decide(_finance(_transfer(5000))) == {"allowed": false, "service": "finance", "refusals": [refusal], "primary": refusal, "actions": [_transfer_action(5000)]}
}

test_seed_3_account_under_review_refused if {
	doc := {
		"output": {"type": "text", "text": "hi"},
		"user": object.union(_analyst, {"account_status": "under_review"}),
		"context": {"service": "finance"},
	}
	d := _decide(doc)
	_ids(d) == ["FIN-001"]
	d.primary.action == "log_and_notify"
}

test_seed_4_restricted_asset_refused if {
	d := _decide(_finance({"type": "recommendation", "asset": "ACME"}))
	_ids(d) == ["FIN-004"]
	d.primary.action == "log_refusal"
	_decide(_finance({"type": "recommendation", "asset": "GLOBEX"})).allowed == true
}

test_seed_5_code_needs_code_role if {
	d1 := _decide(_assistant({"type": "code", "text": "def f(): ..."}, 3))
	_ids(d1) == ["AST-001"]
	d2 := _decide(_assistant({"type": "text", "text": "```python\nimport os\n```"}, 3))
	_ids(d2) == ["AST-001"]
	developer := _with(_assistant({"type": "code", "text": "def f(): ..."}, 3), "user", {"id": "u2", "role": "developer"})
	_decide(developer).allowed == true
}

test_seed_6_tool_call_needs_review if {
	d := _decide(_assistant({"type": "tool_call", "action": "delete_records"}, 3))
	_ids(d) == ["AST-002", "GATE-011"]
	d.primary.action == "require_review"
	d.primary.reason == "Action 'delete_records' needs review"
	d.primary.message == "I can help with this, but I need approval first"
	_decide(_assistant({"type": "tool_call", "action": "analyze"}, 3)).allowed == true
}

test_seed_7_daily_quota if {
	d := _decide(_assistant({"type": "text", "text": "hi"}, 100))
	_ids(d) == ["AST-003"]
	d.primary.action == "show_quota"
	d.primary.reason == "You have reached your daily quota of 100 requests"
	_decide(_assistant({"type": "text", "text": "hi"}, 99)).allowed == true
}

# Ordering and primary selection.

test_refusals_sorted_by_priority_and_primary_is_first if {
	doc := {
		"output": _transfer(5000),
		"user": object.union(_analyst, {"account_status": "under_review"}),
		"context": {"service": "finance"},
	}
	d := _decide(doc)
	_ids(d) == ["FIN-001", "FIN-002"]
	d.primary.policy_id == "FIN-001"
	d.allowed == false
}

test_priority_first_then_policy_id if {
	policies := [
		{"id": "B-1", "set": "finance", "priority": 20, "reason": "b", "action": "log_refusal", "conditions": [{"type": "field_in", "field": "type", "values": ["transfer"]}]},
		{"id": "A-1", "set": "finance", "priority": 20, "reason": "a", "action": "log_refusal", "conditions": [{"type": "field_in", "field": "type", "values": ["transfer"]}]},
		{"id": "A-0", "set": "finance", "priority": 90, "reason": "z", "action": "log_refusal", "conditions": [{"type": "field_in", "field": "type", "values": ["transfer"]}]},
	]
	index := declarative_test.index_of(policies)
	d := _decide(_finance(_transfer(5000))) with data.pygate.config.declarative_policies as policies with data.pygate.config.declarative_index as index
	_ids(d) == ["A-1", "B-1", "FIN-002", "A-0"]
	d.primary.policy_id == "A-1"
}

test_declarative_refusals_join_rego_refusals if {
	d := _decide(_finance({"type": "transfer", "amount": 20000, "currency": "BTC"}))
	[[r.policy_id, r.source, r.policy_set] | some r in d.refusals] == [
		["FIN-002", "rego", "finance"],
		["FIN-DATA-001", "data", "finance"],
	]
}

# Services: isolation, and a new service from data alone.

_notes := {"policy_sets": ["notes"], "actions": {"text": {"arguments": {"text": {"type": "string", "meaning": "text"}}}}}

test_services_are_isolated if {
	# The assistant's allowlist and quota do not apply to finance (finance
	# refuses the undeclared action itself)...
	_ids(_decide(_finance({"type": "tool_call", "action": "delete_records"}))) == ["GATE-010"]

	# ...and finance's restricted assets and limits do not apply to the
	# assistant, which sends what it does not declare to review.
	_ids(_decide(_assistant({"type": "recommendation", "asset": "ACME"}, 3))) == ["GATE-011"]
	_ids(_decide(_assistant(_transfer(5000), 3))) == ["GATE-011"]
}

test_third_service_from_data_only if {
	services := {
		"finance": {"policy_sets": ["finance"]},
		"assistant": {"policy_sets": ["assistant"]},
		"ops": {"policy_sets": ["finance", "assistant"], "actions": {"transfer": {"arguments": {
			"amount": {"type": "number", "meaning": "money_amount"},
			"to": {"type": "string", "meaning": "recipient"},
		}}}},
	}
	doc := {"output": _transfer(5000), "user": _analyst, "context": {"service": "ops", "usage_today": 100}}
	d := _decide(doc) with data.pygate.config.services as services
	[[r.policy_id, r.policy_set] | some r in d.refusals] == [["AST-003", "assistant"], ["FIN-002", "finance"]]
	d.service == "ops"
}

test_policy_set_defined_nowhere_refused if {
	services := {"notes": {"policy_sets": ["finance", "notes"]}}
	doc := {"output": {"type": "text"}, "user": _analyst, "context": {"service": "notes"}}
	d := _decide(doc) with data.pygate.config.services as services
	_gate_only(d, "GATE-008")
	d.primary.reason == "service 'notes' lists policy set 'notes', which has no Rego package and no declarative policies"
}

test_policy_set_without_rego_package_contributes_nothing if {
	services := {"notes": _notes}
	policies := [{"id": "N-1", "set": "notes", "reason": "r", "action": "a", "conditions": [{"type": "field_in", "field": "type", "values": ["code"]}]}]
	doc := {"output": {"type": "text", "text": "hi"}, "user": _analyst, "context": {"service": "notes"}}
	index := declarative_test.index_of(policies)
	_decide(doc).allowed == true with data.pygate.config.services as services with data.pygate.config.declarative_policies as policies with data.pygate.config.declarative_index as index
}

test_declarative_only_policy_set if {
	services := {"notes": _notes}
	policies := [{"id": "N-1", "set": "notes", "reason": "no shouting", "action": "log_refusal", "conditions": [{"type": "text_matches", "field": "text", "pattern": "^[A-Z !]+$"}]}]
	doc := {"output": {"type": "text", "text": "HELLO!"}, "user": _analyst, "context": {"service": "notes"}}
	index := declarative_test.index_of(policies)
	d := _decide(doc) with data.pygate.config.services as services with data.pygate.config.declarative_policies as policies with data.pygate.config.declarative_index as index
	_ids(d) == ["N-1"]
}

test_invalid_declarative_policy_without_set_refuses_every_service if {
	policies := [{"id": "BROKEN", "reason": "r", "action": "a", "conditions": [{"type": "nope"}]}]
	index := declarative_test.index_of(policies)
	d1 := _decide(_finance(_transfer(1))) with data.pygate.config.declarative_policies as policies with data.pygate.config.declarative_index as index
	d2 := _decide(_assistant({"type": "text", "text": "hi"}, 1)) with data.pygate.config.declarative_policies as policies with data.pygate.config.declarative_index as index
	_ids(d1) == ["BROKEN"]
	_ids(d2) == ["BROKEN"]
	d1.primary.invalid == true
	d1.primary.reason == "invalid policy BROKEN: condition 0: unknown type 'nope'; missing 'set'"
}

# Gate input checks: refuse, never undefined, never allowed.

_gate_only(d, id) if {
	d.allowed == false
	_ids(d) == [id]
	d.primary.policy_id == id
	d.primary.priority == 0
	d.primary.action == "log_refusal"
	d.primary.policy_set == "gate"
}

test_no_input_refused if {
	_gate_only(gate.decision, "GATE-001")
}

test_garbage_input_refused if {
	every doc in ["finance", 42, null, true, [], [_finance(_transfer(1))]] {
		d := _decide(doc)
		_gate_only(d, "GATE-001")
		d.service == null
	}
}

test_output_missing_refused if {
	_gate_only(_decide(object.remove(_finance({}), ["output"])), "GATE-002")
	_gate_only(_decide(_finance("transfer 5000")), "GATE-002")
}

test_user_invalid_refused if {
	every user in [null, "u1", {}, {"id": ""}, {"id": 7}, {"role": "admin"}] {
		_gate_only(_decide(_with(_finance(_transfer(1)), "user", user)), "GATE-003")
	}
	_gate_only(_decide(object.remove(_finance(_transfer(1)), ["user"])), "GATE-003")
}

test_service_missing_refused if {
	every context in [{}, {"service": ""}, {"service": 7}, "finance"] {
		_gate_only(_decide(_with(_finance(_transfer(1)), "context", context)), "GATE-004")
	}
	_gate_only(_decide(object.remove(_finance(_transfer(1)), ["context"])), "GATE-004")
}

test_unknown_service_refused if {
	d := _decide({"output": _transfer(1), "user": _analyst, "context": {"service": "payroll"}})
	_gate_only(d, "GATE-005")
	d.primary.reason == "unknown service 'payroll'"
	d.service == "payroll"
}

test_services_config_missing_refused if {
	every services in [null, [], "finance"] {
		d := _decide(_finance(_transfer(1))) with data.pygate.config.services as services
		_gate_only(d, "GATE-006")
	}
}

test_services_data_absent_refused if {
	d := _decide(_finance(_transfer(1))) with data.pygate.config as {}
	_gate_only(d, "GATE-006")
	d.primary.reason == "services configuration missing or malformed: services must be an object mapping service names to {policy_sets: [...], packages: [...]}"
}

test_service_entry_malformed_refused if {
	every entry in [{}, {"policy_sets": []}, {"policy_sets": "finance"}, {"policy_sets": ["finance", 3]}, {"policy_sets": [""]}, ["finance"], true] {
		# Replace the whole services object: `with` on services.finance would be
		# merged into the shipped entry when read through its parent.
		d := _decide(_finance(_transfer(1))) with data.pygate.config.services as {"finance": entry}
		_gate_only(d, "GATE-006")
		d.primary.reason == "services configuration missing or malformed: service 'finance' needs policy_sets and/or packages: arrays of names, at least one name in all"
	}
}

test_several_input_problems_all_reported if {
	d := _decide({"context": {"service": "nope"}})
	_ids(d) == ["GATE-002", "GATE-003", "GATE-005"]
}

test_input_problems_skip_policies if {
	# The transfer is over the limit, but a missing user id means policies never ran.
	d := _decide(_with(_finance(_transfer(5000)), "user", {"transaction_limit": 1}))
	_ids(d) == ["GATE-003"]
}

# Fail-closed safety nets.

test_malformed_rego_refusals_refuse if {
	junk := {"junk", {"policy_id": "X-1", "reason": "r", "action": "a"}}
	d := _decide(_finance(_transfer(1))) with data.pygate.policies.finance.refusals as junk
	[[r.policy_id, r.policy_set, r.reason] | some r in d.refusals] == [
		["GATE-007", "finance", `policy set 'finance' produced a malformed refusal: "junk"`],
		["GATE-007", "finance", `policy set 'finance' produced a malformed refusal: {"action":"a","policy_id":"X-1","reason":"r"}`],
	]
	d.allowed == false
}

test_non_collection_rego_refusals_refuse if {
	d := _decide(_finance(_transfer(1))) with data.pygate.policies.finance.refusals as true
	_ids(d) == ["GATE-007"]
}

test_array_rego_refusals_accepted if {
	refusal := {"policy_id": "X-1", "reason": "r", "action": "a", "priority": 3}
	d := _decide(_finance(_transfer(1))) with data.pygate.policies.finance.refusals as [refusal]
	d.refusals == [object.union(refusal, {"policy_set": "finance"})]
}

_no_refusals(_, _, _) := x if {
	x := input.never_defined
}

test_default_decision_refuses_when_evaluation_breaks if {
	d := _decide(_finance(_transfer(1))) with data.pygate.declarative.refusals_for as _no_refusals
	d.allowed == false
	_ids(d) == ["GATE-000"]
	d.primary == d.refusals[0]
	d.service == null
}

# Batch.

test_batch_keeps_order_and_isolates_items if {
	items := [_finance(_transfer(5000)), "garbage", _finance(_transfer(500)), _assistant({"type": "text", "text": "hi"}, 100)]
	b := gate.batch with input as {"items": items}
	[[d.allowed, _ids(d)] | some d in b.decisions] == [
		[false, ["FIN-002"]],
		[false, ["GATE-001"]],
		[true, []],
		[false, ["AST-003"]],
	]
	object.keys(b) == {"decisions"}
}

test_batch_item_equals_single_decision if {
	b := gate.batch with input as {"items": [_finance(_transfer(5000))]}
	b.decisions == [_decide(_finance(_transfer(5000)))]
}

test_batch_keeps_duplicates if {
	b := gate.batch with input as {"items": [_finance(_transfer(1)), _finance(_transfer(1))]}
	count(b.decisions) == 2
}

test_batch_empty_items if {
	b := gate.batch with input as {"items": []}
	b == {"decisions": []}
}

test_batch_without_items_array if {
	expected := {"decisions": [], "error": "input.items must be an array of decision inputs"}
	every doc in [{}, {"items": {}}, {"items": "x"}, "items", null] {
		b := gate.batch with input as doc
		b == expected
	}
	gate.batch == expected
}

# _input_ok is the fast path for "no input refusal": it must hold exactly
# when _input_refusals is empty.
test_input_ok_exactly_when_no_input_refusal if {
	docs := [
		_finance(_transfer(1)), _assistant({"type": "text", "text": "hi"}, 1),
		"finance", 42, null, [], {}, object.remove(_finance({}), ["output"]), _finance("transfer"),
		_with(_finance(_transfer(1)), "user", {"id": ""}), _with(_finance(_transfer(1)), "user", {"id": 7}),
		_with(_finance(_transfer(1)), "user", "u1"), _with(_finance(_transfer(1)), "context", {}),
		_with(_finance(_transfer(1)), "context", {"service": ""}), _with(_finance(_transfer(1)), "context", {"service": 7}),
		_with(_finance(_transfer(1)), "context", {"service": "payroll"}), _with(_finance(_transfer(1)), "context", "finance"),
	]
	every doc in docs {
		_ok_matches(doc)
	}
	every services in [
		null, [], "finance", {"finance": {}}, {"finance": true}, {"finance": ["finance"]},
		{"finance": {"policy_sets": []}}, {"finance": {"policy_sets": "finance"}},
		{"finance": {"policy_sets": ["finance", 3]}}, {"finance": {"policy_sets": [""]}},
		{"finance": {"policy_sets": ["nope"]}}, {"finance": {"policy_sets": ["finance", "assistant"]}},
		{"": {"policy_sets": ["finance"]}},
	] {
		_ok_matches(_finance(_transfer(1))) with data.pygate.config.services as services
		_ok_matches(_with(_finance(_transfer(1)), "context", {"service": ""})) with data.pygate.config.services as services
	}
}

_ok_matches(doc) if {
	gate._input_ok with input as doc
	count(gate._input_refusals) == 0 with input as doc
}

_ok_matches(doc) if {
	not gate._input_ok with input as doc
	count(gate._input_refusals) > 0 with input as doc
}

# Rules-as-data policies read the canonical actions too: a large crypto
# transfer is sent to review whatever shape or spelling carries it (before,
# they read only the raw output, so "Transfer" or a tool call skipped them).
_rich := object.union(_analyst, {"transaction_limit": 1000000})

_crypto_variants := [
	{"type": "transfer", "amount": 20000, "currency": "BTC"},
	{"type": "Transfer", "amount": 20000, "currency": "BTC"},
	{"type": "TRANSFER", "amount": 20000, "currency": "ETH"},
	{"type": "tool_call", "action": "transfer", "arguments": {"amount": 20000, "currency": "BTC"}},
	{"tool_calls": [{"type": "function", "function": {"name": "transfer", "arguments": "{\"amount\": 20000, \"currency\": \"BTC\"}"}}]},
	{"type": "tool_use", "name": "Transfer", "input": {"amount": 20000, "currency": "BTC"}},
	{"name": "transfer", "arguments": {"amount": 20000, "currency": "ETH"}},
	{"actions": [{"type": "transfer", "amount": 5, "currency": "BTC"}, {"type": "Transfer", "amount": 20000, "currency": "BTC"}]},
]

test_declarative_policies_see_every_shape if {
	every output in _crypto_variants {
		d := _decide({"output": output, "user": _rich, "context": {"service": "finance"}})
		d.allowed == false
		"FIN-DATA-001" in _ids(d)
	}
}

test_declarative_policies_allow_the_small_transfer_in_any_shape if {
	d := _decide({"output": {"type": "Transfer", "amount": 50, "currency": "BTC"}, "user": _rich, "context": {"service": "finance"}})
	d.allowed == true
}

# A service entry equal to its checked copy is not validated again; one that
# differs from it is (pygate/policy/_checked.py).
test_a_checked_entry_is_trusted_and_a_stale_copy_is_not if {
	inp := {"output": {"type": "text", "text": "hi"}, "user": {"id": "u"}, "context": {"service": "finance", "usage_today": 0}}
	gate._entry_valid({"policy_sets": ["finance"]}) with input as inp
	gate._entry_valid({"policy_sets": ["finance"]}) with input as inp with data.pygate.config.checked as {}
	not gate._entry_valid({"policy_sets": []}) with input as inp
		with data.pygate.config.checked.services.finance as {"policy_sets": ["finance"], "packages": []}
	d := gate.decision with input as inp with data.pygate.config.services.finance as {"policy_sets": "finance"}
	d.primary.policy_id == "GATE-006"
}
