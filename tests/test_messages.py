"""Three messages: every refusal tells the user one thing, the model another, and keeps the
internal reason out of both; what the integrations feed back to the agent is the hint."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from pygate import Decision, Gate
from pygate._core import fallback_decision, input_refusal
from pygate._errors import EngineUnavailable, InputError
from pygate._models import DEFAULT_REFUSAL, Refusal
from pygate.audit import _analytics as analytics
from pygate.engine._opa_process import PROJECT_ROOT, find_opa_binary
from pygate.integrations._common import model_hint, refusal_text, tool_error_text

ANALYST = {"id": "u1", "role": "analyst", "account_status": "active", "transaction_limit": 1000}


@pytest.fixture(scope="module")
def report() -> list[dict[str, Any]]:
    """Every built-in refusal, one input each (rego/pygate/gate/messages_test.rego), by OPA."""
    done = subprocess.run(
        [str(find_opa_binary()), "eval", "-d", str(PROJECT_ROOT / "rego"), "-f", "json",
         "data.pygate.gate_test.message_report"],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    value: list[dict[str, Any]] = json.loads(done.stdout)["result"][0]["expressions"][0]["value"]
    return value


def test_the_report_covers_every_known_policy(report: list[dict[str, Any]]) -> None:
    known = analytics.known_policies(PROJECT_ROOT / "rego", find_opa_binary())
    assert set(known) - {r["policy_id"] for r in report} == set()


def test_no_built_in_refusal_shows_its_reason_to_the_user_or_the_model(
    report: list[dict[str, Any]],
) -> None:
    for item in report:
        refusal = Refusal(**item, action="log_refusal")
        decision = Decision(
            allowed=False, reason=refusal.reason, message=refusal.message, hint=refusal.hint
        )
        assert refusal.message, item["policy_id"]
        assert refusal.hint, item["policy_id"]
        for shown in (refusal_text(decision), model_hint(decision), tool_error_text(decision)):
            assert shown, item
            assert refusal.reason not in shown, item


def test_pygate_own_refusals_keep_their_reason_to_themselves() -> None:
    for decision in (
        fallback_decision(EngineUnavailable("connection refused at 127.0.0.1:1"),
                          service="finance", user_id="u1", latency_ms=1.0),
        input_refusal(InputError("output.amount", "NaN is not JSON"),
                      service="finance", user_id="u1"),
    ):  # fmt: skip
        assert decision.message
        assert decision.hint
        assert decision.refusals[0].hint == decision.hint
        for shown in (decision.user_message(), tool_error_text(decision)):
            assert decision.reason not in shown
            assert "127.0.0.1" not in shown
            assert "NaN" not in shown


def test_user_message_never_falls_back_to_the_reason() -> None:
    decision = Decision(allowed=False, reason="acct-9 over limit 1000")
    assert decision.user_message() == DEFAULT_REFUSAL
    assert Decision(allowed=True).user_message() == ""


def test_suggestion_is_the_older_name_of_the_hint() -> None:
    assert Refusal(policy_id="X", reason="r", action="a", suggestion="Smaller").hint == "Smaller"
    both = Refusal(policy_id="X", reason="r", action="a", suggestion="old", hint="new")
    assert both.hint == "new"
    assert both.suggestion == "old"


def test_policy_data_overrides_message_and_hint(
    policy_copy: Any, tmp_path: Any, audit: Any
) -> None:
    from pygate import LocalOpa

    data_path = policy_copy / "pygate" / "config" / "data.json"
    data = json.loads(data_path.read_text())
    data["messages"] = {"FIN-002": {"message": "Limit {{.limit}}.", "hint": "At most {{.limit}}."}}
    data_path.write_text(json.dumps(data))
    opa = LocalOpa(policy_copy, supervise=False).start()
    try:
        with Gate("finance", opa_url=opa.url, audit=audit) as gate:
            d = gate.evaluate({"type": "transfer", "amount": 5000, "to": "a"}, ANALYST)
    finally:
        opa.stop()
    assert (d.message, d.hint) == ("Limit 1000.", "At most 1000.")
    assert d.reason == "Transfer of 5000 exceeds your transaction limit of 1000"


def test_the_hint_reaches_the_model_through_the_integrations(
    make_gate: Callable[..., Gate],
) -> None:
    d = make_gate("assistant").evaluate(
        {"type": "code", "text": "def f(): pass"}, ANALYST, context={"usage_today": 0}
    )
    assert d.policy_id == "AST-001"
    assert (
        model_hint(d) == "Answer in prose without code (no code blocks, no function definitions)."
    )
    text = tool_error_text(d)
    assert text.startswith(d.message or "")
    assert f"Hint: {d.hint}" in text
    assert d.reason not in text
    assert [c.text() for c in d.would_pass] == ["user.role in [developer, admin]"]


def test_a_malformed_explanation_never_breaks_a_refusal() -> None:
    # A package of yours may use these newer keys for something else: the refusal stands,
    # the malformed explanation is dropped (no contract failure, no engine fallback).
    r = Refusal.model_validate(
        {"policy_id": "P", "reason": "r", "action": "a", "why": "too big", "would_pass": [5],
         "hint": 7, "shadow": "yes", "suggestion": "smaller"}
    )  # fmt: skip
    assert r.why == []
    assert r.would_pass == []
    assert r.shadow is False
    assert r.hint == "smaller"
    good = Refusal.model_validate(
        {"policy_id": "P", "reason": "r", "action": "a",
         "why": [{"field": "arguments.amount", "op": ">", "value": 5, "bound": 1}]}
    )  # fmt: skip
    assert good.why[0].text() == "arguments.amount > 1"


def test_a_refusal_built_with_condition_objects_keeps_them() -> None:
    # Found by issue 18's mutation tests: the lenient check accepted only dicts, so a
    # Refusal built in Python with Condition objects silently lost its explanation.
    from pygate._models import Condition

    over = Condition(field="arguments.amount", op=">", value=5, bound=1)
    under = Condition(field="arguments.amount", op="<=", bound=1)
    r = Refusal(policy_id="P", reason="r", action="a", why=[over], would_pass=[under])
    assert r.why == [over]
    assert r.would_pass == [under]
    assert Refusal(policy_id="P", reason="r", action="a", why=[over, 5]).why == []
