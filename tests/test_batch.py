"""evaluate_many: one request to OPA, one Decision and one audit record per item."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from pygate import AsyncGate, AuditLog, Decision, Gate, LocalOpa
from pygate._core import ENGINE_POLICY_ID, INPUT_POLICY_ID
from tests.conftest import ANALYST

SMALL = {"type": "transfer", "amount": 10}
BIG = {"type": "transfer", "amount": 5000}
FROZEN = {**ANALYST, "id": "frozen", "account_status": "under_review"}

# Allowed, over the limit, account under review, no numeric amount: four different answers.
MIXED: list[Any] = [
    (SMALL, ANALYST),
    (BIG, ANALYST),
    {"output": SMALL, "user": FROZEN},
    (
        {"type": "transfer", "amount": "lots"},
        ANALYST,
        {"approvals": []},
    ),
]


def _summary(decisions: list[Decision]) -> list[tuple[bool, str | None]]:
    return [(d.allowed, d.policy_id) for d in decisions]


def test_batch_matches_single_decisions_in_input_order(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    gate = make_gate("finance")
    single = []
    for item in MIXED:
        if isinstance(item, dict):
            single.append(gate.evaluate(item["output"], item["user"], item.get("context")))
        else:
            single.append(gate.evaluate(*item))
    batch = gate.evaluate_many(MIXED)
    assert _summary(batch) == _summary(single)
    assert [d.allowed for d in batch] == [True, False, False, False]
    assert len({d.policy_id for d in batch[1:]}) == 3
    assert all(not d.fallback for d in batch)
    # ... and in reverse order, the answers follow their items.
    assert _summary(gate.evaluate_many(list(reversed(MIXED)))) == list(reversed(_summary(single)))


def test_each_item_gets_its_own_audit_record_in_order(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    gate = make_gate("finance")
    before = audit.count()
    batch = gate.evaluate_many(MIXED)
    assert audit.count() == before + len(MIXED)
    records = audit.tail(len(MIXED))
    assert [r.audit_id for r in records] == [d.audit_id for d in batch]
    assert [r.allowed for r in records] == [d.allowed for d in batch]
    assert [r.output["amount"] for r in records] == [10, 5000, 10, "lots"]
    assert len({d.audit_id for d in batch}) == len(MIXED)
    assert audit.verify().ok


def test_a_bad_item_is_refused_alone(make_gate: Callable[..., Gate], audit: AuditLog) -> None:
    gate = make_gate("finance")
    clean = _summary(gate.evaluate_many(MIXED))
    bad_items: list[Any] = [
        (SMALL, {"role": "analyst"}),  # no user id
        "not an item",
        (SMALL,),  # too short
        {"output": SMALL},  # no user
        ({"type": "transfer", "amount": float("nan")}, ANALYST),
    ]
    for bad in bad_items:
        mixed = [*MIXED[:2], bad, *MIXED[2:]]
        before = audit.count()
        result = gate.evaluate_many(mixed)
        assert audit.count() == before + len(mixed)
        assert result[2].allowed is False
        assert result[2].policy_id == INPUT_POLICY_ID
        assert "items[2]" in result[2].reason
        assert _summary(result[:2] + result[3:]) == clean


def test_bad_item_names_its_field(make_gate: Callable[..., Gate]) -> None:
    gate = make_gate("finance")
    result = gate.evaluate_many([(SMALL, ANALYST), (SMALL, {"role": "analyst"})])
    assert result[0].allowed
    assert "items[1].user.id" in result[1].reason


def test_an_item_refused_by_rego_does_not_touch_the_others(opa: LocalOpa, audit: AuditLog) -> None:
    # each item names its service: the caller chooses, which must be opted in to
    with Gate(None, opa_url=opa.url, audit=audit, allow_caller_service=True) as gate:
        result = gate.evaluate_many(
            [
                (SMALL, ANALYST, {"service": "finance"}),
                (SMALL, ANALYST, {"service": "payroll"}),  # unknown: GATE-005
                (SMALL, ANALYST),  # no service: GATE-004
                (SMALL, ANALYST, {"service": "finance"}),
            ]
        )
    assert _summary(result) == [
        (True, None),
        (False, "GATE-005"),
        (False, "GATE-004"),
        (True, None),
    ]


def test_opa_down_refuses_every_item_and_audits_each(dead_url: str, audit: AuditLog) -> None:
    with Gate("finance", opa_url=dead_url, audit=audit) as gate:
        result = gate.evaluate_many([*MIXED, ("x", {})])
    assert all(not d.allowed for d in result)
    assert [d.fallback for d in result] == [True] * len(MIXED) + [False]
    assert {d.policy_id for d in result[:-1]} == {ENGINE_POLICY_ID}
    assert "EngineUnavailable" in result[0].reason
    assert result[-1].policy_id == INPUT_POLICY_ID
    assert audit.count() == len(MIXED) + 1
    assert all(r.fallback for r in audit.tail(len(MIXED) + 1)[:-1])


def _opa_answer(*decisions: Any) -> bytes:
    return json.dumps({"result": {"decisions": list(decisions)}}).encode()


ALLOW = {"allowed": True, "service": "finance", "refusals": [], "primary": None}


def test_a_garbage_answer_for_one_item_refuses_only_that_item(
    fake_opa: Callable[..., str], audit: AuditLog
) -> None:
    url = fake_opa(body=_opa_answer(ALLOW, "garbage", ALLOW))
    with Gate("finance", opa_url=url, audit=audit) as gate:
        result = gate.evaluate_many([(SMALL, ANALYST)] * 3)
    assert [d.allowed for d in result] == [True, False, True]
    assert result[1].fallback
    assert "breaks the contract" in result[1].reason
    assert audit.count() == 3


def test_a_batch_answer_of_the_wrong_length_refuses_every_item(
    fake_opa: Callable[..., str], audit: AuditLog
) -> None:
    with Gate("finance", opa_url=fake_opa(body=_opa_answer(ALLOW)), audit=audit) as gate:
        result = gate.evaluate_many([(SMALL, ANALYST)] * 3)
    assert [(d.allowed, d.fallback) for d in result] == [(False, True)] * 3
    assert "must hold 3 decisions, got 1" in result[0].reason


def test_a_hanging_opa_times_out_the_whole_batch(
    fake_opa: Callable[..., str], audit: AuditLog
) -> None:
    with Gate("finance", opa_url=fake_opa(hang=True), audit=audit, timeout=0.2) as gate:
        result = gate.evaluate_many([(SMALL, ANALYST)] * 2)
    assert [(d.allowed, d.fallback) for d in result] == [(False, True)] * 2
    assert "EngineTimeout" in result[0].reason


def test_empty_batch(make_gate: Callable[..., Gate], audit: AuditLog) -> None:
    assert make_gate("finance").evaluate_many([]) == []
    assert audit.count() == 0


def test_quota_counts_per_item_and_only_allowed_items(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    # 115 decisions in one query: a generous timeout, so a loaded machine cannot turn
    # this quota test into a fallback test
    gate = make_gate("assistant", timeout=30)
    user = {"id": "batch-quota", "role": "analyst"}
    ask = {"type": "tool_call", "action": "explain"}
    denied = {"type": "tool_call", "action": "delete_everything"}  # AST-002: takes no unit
    result = gate.evaluate_many([(ask, user)] * 60 + [(denied, user)] * 10 + [(ask, user)] * 45)
    assert [d.allowed for d in result[:60]] == [True] * 60
    assert {d.policy_id for d in result[60:70]} == {"AST-002"}
    # Items decide as if sent one after another: the refused ones take no unit, so exactly
    # the quota is allowed (before issue 13 the refused items' units were counted while the
    # batch was in flight, and 30 instead of 40 passed).
    assert [d.allowed for d in result[70:]] == [True] * 40 + [False] * 5
    assert {d.policy_id for d in result[110:]} == {"AST-003"}
    assert audit.usage_today("batch-quota") == 100
    again = gate.evaluate_many([(ask, user)] * 15)
    assert [d.allowed for d in again] == [False] * 15
    assert audit.usage_today("batch-quota") == 100
    assert gate.evaluate(ask, user).policy_id == "AST-003"


def test_async_batch_matches_sync(opa: LocalOpa, audit: AuditLog) -> None:
    with Gate("finance", opa_url=opa.url, audit=audit) as gate:
        expected = _summary(gate.evaluate_many(MIXED))

    async def run() -> list[Decision]:
        async with AsyncGate("finance", opa_url=opa.url, audit=audit) as agate:
            return await agate.evaluate_many([*MIXED, (SMALL, {"role": "x"})])

    result = asyncio.run(run())
    assert _summary(result[:-1]) == expected
    assert result[-1].policy_id == INPUT_POLICY_ID
    assert audit.count() == 2 * len(MIXED) + 1
    assert [r.audit_id for r in audit.tail(len(result))] == [d.audit_id for d in result]
    assert audit.verify().ok


def test_async_batch_fails_closed(dead_url: str, audit: AuditLog) -> None:
    async def run() -> list[Decision]:
        async with AsyncGate("finance", opa_url=dead_url, audit=audit) as agate:
            return await agate.evaluate_many(MIXED)

    result = asyncio.run(run())
    assert [(d.allowed, d.fallback) for d in result] == [(False, True)] * len(MIXED)
    assert audit.count() == len(MIXED)
