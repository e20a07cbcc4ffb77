package pygate.gate_test

import data.pygate.gate

# One input per built-in refusal (every policy id the bundle can refuse
# with), for the three-messages check: each refusal carries a message for
# the user and a hint for the model, and neither repeats the internal
# reason. tests/test_messages.py reads message_report through a real OPA and
# checks that it covers every known policy id.

_dev := {"id": "u2", "role": "developer", "account_status": "active", "transaction_limit": 1000}

_doc(service, output, user) := {"output": output, "user": user, "context": {"service": service, "usage_today": 1}}

_cfg := data.pygate.config

# [input, config] per case; config replaces data.pygate.config.
_cases := [
	["x", _cfg],
	[{"user": _analyst, "context": {"service": "finance"}}, _cfg],
	[{"output": {}, "context": {"service": "finance"}}, _cfg],
	[{"output": {}, "user": _analyst}, _cfg],
	[_doc("nope", {}, _analyst), _cfg],
	[_doc("finance", {}, _analyst), object.union(_cfg, {"services": 5})],
	[_doc("finance", {}, _analyst), object.union(_cfg, {"services": {"finance": {"policy_sets": ["nope"]}}})],
	[_doc("finance", {}, _analyst), object.union(_cfg, {"services": {"finance": {"policy_sets": [], "packages": ["acme.nope"]}}})],
	[_doc("finance", {"type": "tool_call", "action": "transfer", "arguments": "{}"}, _analyst), _cfg],
	[_doc("finance", {"type": "wire", "amount": 5}, _analyst), _cfg],
	[_doc("assistant", {"type": "payment"}, _analyst), _cfg],
	[_doc("finance", {"type": "transfer", "amount": "5", "to": "a"}, _analyst), _cfg],
	[_doc("finance", {"type": "transfer", "amount": 5}, _analyst), object.union(_cfg, {"services": {"finance": {"actions": {"transfer": {"arguments": 5}}}}})],
	[_doc("finance", {"type": "transfer", "amount": 5}, object.union(_analyst, {"account_status": 5})), _cfg],
	[_doc("finance", {"type": "transfer", "amount": 5}, _analyst), object.union(_cfg, {"user_facts": 5})],
	[_doc("finance", {"type": "transfer", "amount": 5}, object.union(_analyst, {"account_status": "under_review"})), _cfg],
	[_doc("finance", {"type": "transfer", "amount": 5000, "to": "a"}, _analyst), _cfg],
	[_doc("finance", {"type": "transfer", "amount": -5, "to": "a"}, _analyst), _cfg],
	[_doc("finance", {"type": "recommendation", "asset": "ACME"}, _analyst), _cfg],
	[_doc("finance", {"type": "transfer", "amount": 5}, object.remove(_analyst, ["transaction_limit"])), object.union(_cfg, {"default_transaction_limit": "x"})],
	[_doc("finance", {"type": "recommendation", "asset": "AC ME"}, _analyst), _cfg],
	[_doc("finance", {"type": "transfer", "amount": 5}, object.union(_analyst, {"account_status": "frozen"})), _cfg],
	[_doc("finance", {"type": "transfer", "amount": 20000, "currency": "BTC"}, object.union(_analyst, {"transaction_limit": 100000})), _cfg],
	[_doc("assistant", {"type": "code", "text": "def f(): pass"}, _analyst), _cfg],
	[_doc("assistant", {"type": "tool_call", "action": "delete_records"}, _analyst), _cfg],
	[object.union(_doc("assistant", {"type": "text", "text": "hi"}, _analyst), {"context": {"service": "assistant", "usage_today": 100}}), _cfg],
	[{"output": {"type": "text", "text": "hi"}, "user": _analyst, "context": {"service": "assistant"}}, _cfg],
	[_doc("assistant", {"type": "text", "text": "hi"}, _dev), object.union(_cfg, {"daily_quota": "x"})],
	[_doc("assistant", {"type": "text", "text": "password=hunter2hunter2"}, _dev), _cfg],
	[_doc("assistant", {"type": "text", "text": "hi"}, _dev), object.union(_cfg, {"declarative_policies": [{"id": "BROKEN", "set": "assistant"}], "declarative_index": null})],
]

_decisions contains d if {
	some case in _cases
	d := gate.decision with input as case[0] with data.pygate.config as case[1]
}

# The two refusals no input reaches: the safety net and a malformed package refusal.
_decisions contains d if {
	d := gate.decision with input as _finance(_transfer(1)) with data.pygate.declarative.refusals_for as _no_refusals
}

_decisions contains d if {
	d := gate.decision with input as _finance(_transfer(1)) with data.pygate.policies.finance.refusals as [5]
}

message_report contains {"policy_id": r.policy_id, "reason": r.reason, "message": r.message, "hint": r.hint} if {
	some d in _decisions
	some r in d.refusals
}

test_every_refusal_has_a_message_and_a_hint_without_its_reason if {
	count(message_report) > 30
	every r in message_report {
		is_string(r.message)
		is_string(r.hint)
		not contains(r.message, r.reason)
		not contains(r.hint, r.reason)
	}
}
