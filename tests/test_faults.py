"""Fail closed: every way the engine can fail gives an audited refusal, never an allow."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pygate import AsyncGate, AuditLog, Gate, LocalOpa
from pygate._core import ENGINE_POLICY_ID
from tests.conftest import ANALYST

TRANSFER = {"type": "transfer", "amount": 10}


def _assert_fallback(gate: Gate, audit: AuditLog, needle: str) -> None:
    before = audit.count()
    decision = gate.evaluate(TRANSFER, ANALYST)
    assert not decision.allowed
    assert decision.fallback is True
    assert decision.policy_id == ENGINE_POLICY_ID
    assert needle in decision.reason
    assert audit.count() == before + 1
    record = audit.tail(1)[0]
    assert record.audit_id == decision.audit_id
    assert record.fallback is True
    assert record.allowed is False


def test_connection_refused(dead_url: str, audit: AuditLog) -> None:
    with Gate("finance", opa_url=dead_url, audit=audit) as gate:
        _assert_fallback(gate, audit, "EngineUnavailable")


def test_opa_that_hangs_times_out(fake_opa: Callable[..., str], audit: AuditLog) -> None:
    with Gate("finance", opa_url=fake_opa(hang=True), audit=audit, timeout=0.2) as gate:
        _assert_fallback(gate, audit, "EngineTimeout")


@pytest.mark.parametrize(
    ("status", "body", "needle"),
    [
        (200, b"<html>not json", "invalid JSON"),
        (200, b"[1, 2]", "non-object"),
        (200, b"{}", "UndefinedDecision"),
        (200, b'{"result": {"allowed": true}}', "breaks the contract"),
        (200, b'{"result": "yes"}', "breaks the contract"),
        (200, b'{"result": {"allowed": "true", "refusals": []}}', "breaks the contract"),
        (
            200,
            json.dumps(
                {"result": {"allowed": True, "refusals": [
                    {"policy_id": "X", "reason": "r", "action": "a"}]}}
            ).encode(),
            "inconsistent",
        ),
        (200, b'{"result": {"allowed": false, "refusals": []}}', "inconsistent"),
        (500, b'{"code": "internal_error"}', "HTTP 500"),
        (400, b'{"code": "invalid_parameter"}', "HTTP 400"),
    ],
    ids=["html", "array", "undefined", "no-refusals", "string", "string-bool", "allow-with-"
         "refusals", "refuse-without-refusals", "http-500", "http-400"],
)  # fmt: skip
def test_garbage_from_the_engine(
    fake_opa: Callable[..., str], audit: AuditLog, status: int, body: bytes, needle: str
) -> None:
    with Gate("finance", opa_url=fake_opa(status=status, body=body), audit=audit) as gate:
        _assert_fallback(gate, audit, needle)


def test_real_opa_without_the_policy_is_undefined(tmp_path: Path, audit: AuditLog) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "other.rego").write_text("package other\n\nx := 1\n")
    with (
        LocalOpa(empty, supervise=False, library=False) as local,
        Gate("finance", opa_url=local.url, audit=audit) as gate,
    ):
        _assert_fallback(gate, audit, "UndefinedDecision")


def test_opa_killed_mid_run_then_restarted(tmp_path: Path, audit: AuditLog) -> None:
    local = LocalOpa(supervise=False).start()
    try:
        with Gate("finance", opa_url=local.url, audit=audit) as gate:
            before = [gate.evaluate(TRANSFER, ANALYST) for _ in range(5)]
            local.kill()
            during = [gate.evaluate(TRANSFER, ANALYST) for _ in range(5)]
            local.start()  # same port, nothing in the gate restarted
            after = [gate.evaluate(TRANSFER, ANALYST) for _ in range(5)]
    finally:
        local.stop()
    assert all(d.allowed and not d.fallback for d in before)
    assert all(not d.allowed and d.fallback for d in during)
    assert all(d.allowed and not d.fallback for d in after)
    assert audit.count() == 15
    assert [r.fallback for r in audit.tail(15)] == [False] * 5 + [True] * 5 + [False] * 5


def test_supervised_local_opa_comes_back_by_itself(audit: AuditLog) -> None:
    with Gate("finance", audit=audit) as gate:
        assert gate.local_opa is not None
        first_pid = gate.local_opa.pid
        gate.local_opa.kill()
        down = gate.evaluate(TRANSFER, ANALYST)
        assert not down.allowed
        assert down.fallback
        gate.local_opa.wait_healthy(timeout=10)
        assert gate.local_opa.pid != first_pid
        assert gate.local_opa.restarts == 1
        assert gate.evaluate(TRANSFER, ANALYST).allowed


def test_async_gate_fails_closed(
    dead_url: str, fake_opa: Callable[..., str], audit: AuditLog
) -> None:
    async def run() -> list[tuple[bool, bool, str]]:
        out = []
        for url in (dead_url, fake_opa(hang=True), fake_opa(body=b"{}")):
            async with AsyncGate("finance", opa_url=url, audit=audit, timeout=0.2) as gate:
                d = await gate.evaluate(TRANSFER, ANALYST)
                out.append((d.allowed, d.fallback, d.reason))
        return out

    results = asyncio.run(run())
    assert [(a, f) for a, f, _ in results] == [(False, True)] * 3
    assert "EngineUnavailable" in results[0][2]
    assert "EngineTimeout" in results[1][2]
    assert "UndefinedDecision" in results[2][2]
    assert audit.count() == 3


def test_an_allow_that_cannot_be_audited_becomes_a_refusal(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    gate = make_gate("finance")
    assert gate.evaluate(TRANSFER, ANALYST).allowed
    audit.close()  # the database is gone from under the gate
    decision = gate.evaluate(TRANSFER, ANALYST)
    assert not decision.allowed
    assert decision.fallback
    assert decision.policy_id == "pygate.audit"
    assert decision.refusals[0].policy_id == "pygate.audit"
