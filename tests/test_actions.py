"""The executor runs exactly what was decided (issue 12, section 3).

The bundle reads every output shape into canonical actions (``pygate.canonical``); the
Decision carries them, ``execute``/``guard``/``dispatch`` run them, the audit keeps them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from pygate import (
    AsyncGate,
    AuditLog,
    CanonicalAction,
    Decision,
    DispatchError,
    Gate,
    LocalOpa,
    Refused,
    adispatch,
    dispatch,
)
from pygate._core import ENGINE_POLICY_ID
from pygate._dispatch import decided_call
from pygate.audit._base import canonical
from tests.conftest import ANALYST

OPENAI = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "explain", "arguments": '{"topic": "bond yields"}'},
        },
        {
            "id": "call_2",
            "type": "function",
            "function": {"name": "analyze", "arguments": '{"query": "rates"}'},
        },
    ],
}
ANTHROPIC = {
    "type": "tool_use",
    "id": "toolu_1",
    "name": "analyze",
    "input": {"topic": "inflation"},
}
MCP = {"name": "explain", "arguments": {"topic": "duration"}}


def test_decision_carries_the_canonical_actions_of_every_shape(
    make_gate: Callable[..., Gate],
) -> None:
    gate = make_gate("assistant")
    openai = gate.evaluate(OPENAI, ANALYST)
    assert openai.allowed, openai.reason
    assert [(a.kind, a.name, a.arguments, a.source) for a in openai.actions] == [
        ("tool_call", "explain", {"topic": "bond yields"}, "openai.chat.tool_call"),
        ("tool_call", "analyze", {"query": "rates"}, "openai.chat.tool_call"),
    ]
    anthropic = gate.evaluate(ANTHROPIC, ANALYST)
    assert [(a.name, a.arguments) for a in anthropic.actions] == [
        ("analyze", {"topic": "inflation"})
    ]
    text = gate.evaluate("plain words", ANALYST)
    assert [(a.kind, a.arguments) for a in text.actions] == [("answer", {"text": "plain words"})]


def test_dispatch_runs_each_allowed_call_with_its_decided_arguments(
    make_gate: Callable[..., Gate],
) -> None:
    calls: list[tuple[str, str]] = []

    def explain(topic: str) -> str:
        calls.append(("explain", topic))
        return f"about {topic}"

    def analyze(query: str = "", topic: str = "") -> str:
        calls.append(("analyze", query or topic))
        return "done"

    decision = make_gate("assistant").evaluate(OPENAI, ANALYST)
    assert dispatch(decision, {"explain": explain, "Analyze": analyze}) == [
        "about bond yields",
        "done",
    ]
    assert calls == [("explain", "bond yields"), ("analyze", "rates")]


def test_dispatch_refuses_a_refusal_and_runs_nothing(make_gate: Callable[..., Gate]) -> None:
    ran: list[str] = []
    out = {"name": "delete_records", "arguments": {"table": "users"}}  # not declared: review
    decision = make_gate("assistant").evaluate(out, ANALYST)
    assert not decision.allowed
    with pytest.raises(Refused):
        dispatch(decision, {"delete_records": lambda table: ran.append(table)})
    assert ran == []


def test_dispatch_checks_every_call_before_running_any(make_gate: Callable[..., Gate]) -> None:
    ran: list[str] = []
    decision = make_gate("assistant").evaluate(OPENAI, ANALYST)
    with pytest.raises(DispatchError, match="no tool registered for decided action"):
        dispatch(decision, {"explain": lambda topic: ran.append(topic)})  # analyze missing
    with pytest.raises(DispatchError, match="are not parameters of"):
        dispatch(decision, {"explain": lambda topic: ran.append(topic), "analyze": lambda: 1})
    assert ran == []


def test_dispatch_needs_an_action_to_run() -> None:
    answer = CanonicalAction(kind="answer", name="text", arguments={"text": "hi"}, source="text")
    with pytest.raises(DispatchError, match="no action to run"):
        dispatch(Decision(allowed=True, actions=[answer]), {})
    with pytest.raises(DispatchError, match="share the canonical name"):
        dispatch(Decision(allowed=True, actions=[answer]), {"a": print, "A": print})


def test_adispatch_awaits_async_tools(make_gate: Callable[..., Gate]) -> None:
    async def analyze(topic: str) -> str:
        await asyncio.sleep(0)
        return topic.upper()

    decision = make_gate("assistant").evaluate(ANTHROPIC, ANALYST)
    assert asyncio.run(adispatch(decision, {"analyze": analyze})) == ["INFLATION"]


def test_execute_hands_run_the_decided_actions(make_gate: Callable[..., Gate]) -> None:
    gate = make_gate("assistant")
    seen: list[list[CanonicalAction]] = []
    assert gate.execute(MCP, ANALYST, lambda actions: seen.append(actions) or "ran") == "ran"
    assert [(a.name, a.arguments) for a in seen[0]] == [("explain", {"topic": "duration"})]
    # the original zero-argument form still works
    assert gate.execute(MCP, ANALYST, lambda: "legacy") == "legacy"


def test_guard_runs_the_function_with_the_arguments_as_decided(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    gate = make_gate("assistant")
    received: list[Any] = []

    @gate.guard
    def analyze(topic: str, query: Any = None) -> str:
        received.append((topic, query))
        return "ok"

    # the function runs with the canonical action's arguments, as OPA decided them
    assert analyze("rates", query="q", user=ANALYST) == "ok"
    assert received == [("rates", "q")]
    record = audit.tail(1)[0]
    assert record.actions == [
        {
            "kind": "tool_call",
            "name": "analyze",
            "arguments": {"topic": "rates", "query": "q"},
            "source": "pygate.tool_call",
            "path": [],
        }
    ]


def test_guard_does_not_run_what_the_decision_does_not_hold(
    make_gate: Callable[..., Gate],
) -> None:
    gate = make_gate("assistant")
    decision = gate.evaluate(OPENAI, ANALYST)  # two calls: neither is "guard's one call"

    def explain(topic: str) -> str:
        return topic

    with pytest.raises(DispatchError, match="not one call of 'explain'"):
        decided_call(decision, explain)


def test_async_guard_and_execute_use_the_decided_actions(opa: LocalOpa, audit: AuditLog) -> None:
    async def main() -> tuple[str, list[str]]:
        async with AsyncGate("assistant", opa_url=opa.url, audit=audit) as gate:

            @gate.guard
            async def explain(topic: str) -> str:
                return topic * 2

            async def run(actions: list[CanonicalAction]) -> list[str]:
                return [a.name for a in actions]

            return await explain("ab", user=ANALYST), await gate.execute(ANTHROPIC, ANALYST, run)

    assert asyncio.run(main()) == ("abab", ["analyze"])


def _opa_answer(result: dict[str, Any]) -> bytes:
    return json.dumps({"result": result}).encode()


ALLOW = {"allowed": True, "service": "finance", "refusals": [], "primary": None}


def test_actions_absent_from_the_answer_are_an_empty_list(
    fake_opa: Callable[..., str], audit: AuditLog
) -> None:
    with Gate("finance", opa_url=fake_opa(body=_opa_answer(ALLOW)), audit=audit) as gate:
        decision = gate.evaluate({"type": "transfer", "amount": 1}, ANALYST)
    assert decision.allowed
    assert decision.actions == []
    with pytest.raises(DispatchError, match="no action to run"):
        dispatch(decision, {"transfer": lambda amount: None})


@pytest.mark.parametrize(
    ("actions", "where"),
    [
        ("transfer", "actions"),
        ([{"kind": "tool_call", "name": "x", "arguments": "{}", "source": "s"}], "arguments"),
        ([{"kind": 1, "name": "x", "arguments": {}, "source": "s"}], "kind"),
        ([{"kind": "tool_call", "arguments": {}, "source": "s"}], "name"),
        ([{"kind": "tool_call", "name": "", "arguments": {}, "source": "s"}], "name"),
    ],
)
def test_malformed_actions_fail_closed(
    fake_opa: Callable[..., str], audit: AuditLog, actions: Any, where: str
) -> None:
    url = fake_opa(body=_opa_answer({**ALLOW, "actions": actions}))
    with Gate("finance", opa_url=url, audit=audit) as gate:
        decision = gate.evaluate({"type": "transfer", "amount": 1}, ANALYST)
    assert not decision.allowed
    assert decision.fallback
    assert decision.policy_id == ENGINE_POLICY_ID
    assert "breaks the contract at actions" in decision.reason
    assert where in decision.reason


def test_audit_keeps_actions_redacted_and_the_chain_verifies(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    gate = make_gate("assistant")
    out = {"type": "tool_call", "action": "analyze", "arguments": {"topic": "x", "token": "s3"}}
    decision = gate.evaluate(out, ANALYST)
    record = audit.tail(1)[0]
    assert record.audit_id == decision.audit_id
    assert record.actions is not None
    assert record.actions[0]["arguments"]["token"] == "***"  # masked like the output
    assert audit.verify().ok


def test_records_without_actions_hash_as_before() -> None:
    row = {c: None for c in ("audit_id", "ts", "day", "service", "user_id", "output")}
    row.update(allowed=1, reason="r", policy_id=None, policy_ids="[]", action=None,
               decision_id=None, bundle_revision=None, fallback=0, latency_ms=0.0)  # fmt: skip
    # The keyed chain hashes ``prev|key_id|canonical(row)``: the canonical body decides.
    plain = canonical(row)
    assert canonical({**row, "actions": None}) == plain
    approved = {**row, "approval_id": "a", "approved_by": None}
    # a record with an approval hashes exactly as it did before the actions column existed
    assert canonical({**approved, "actions": None}) == canonical(approved)
    assert canonical({**row, "actions": "[]"}) != plain
