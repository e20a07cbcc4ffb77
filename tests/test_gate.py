"""The gate against the real OPA and the repo's policies: the seed scenarios and the API."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from pygate import AsyncGate, AuditLog, Gate, LocalOpa, Refused, SqliteAuditLog
from pygate.cli._demo import scenarios
from tests.conftest import ANALYST


@pytest.mark.parametrize("scenario", scenarios("t"), ids=lambda s: s.name)
def test_seed_scenarios(make_gate: Callable[..., Gate], scenario) -> None:  # type: ignore[no-untyped-def]
    gate = make_gate(scenario.service)
    decision = gate.evaluate(scenario.output, scenario.user, scenario.context)
    assert decision.allowed is scenario.expect_allowed
    assert decision.policy_id == scenario.expect_policy
    assert decision.fallback is False
    assert decision.service == scenario.service


def test_refusal_explains_itself(make_gate: Callable[..., Gate]) -> None:
    decision = make_gate("finance").evaluate({"type": "transfer", "amount": 5000}, ANALYST)
    assert not decision.allowed
    assert decision.action == "show_user_limit"
    assert "1000" in decision.reason
    assert "5000" in decision.reason
    assert decision.suggestion == "Try a smaller amount"
    assert decision.refusals[0].policy_id == "FIN-002"
    assert decision.refusals[0].source == "rego"
    # three messages: the user's, the model's hint, and the reason kept out of both
    assert decision.user_message() == "That is more than you can move at once: your limit is 1000."
    assert (
        decision.hint
        == "Propose at most 1000 in amount, or split the amount and ask the user first."
    )
    assert decision.reason not in decision.user_message() + decision.hint
    # why, and what would pass, computed by the policy
    assert [c.model_dump() for c in decision.why] == [
        {"field": "arguments.amount", "op": ">", "value": 5000, "bound": 1000}
    ]
    assert [c.text() for c in decision.would_pass] == ["arguments.amount <= 1000"]


def test_all_refusals_are_reported_primary_first(make_gate: Callable[..., Gate]) -> None:
    user = {**ANALYST, "account_status": "under_review"}
    decision = make_gate("finance").evaluate({"type": "transfer", "amount": 5000}, user)
    assert decision.policy_ids == ["FIN-001", "FIN-002"]
    assert decision.policy_id == "FIN-001"


def test_every_decision_is_audited_exactly_once(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    gate = make_gate("finance")
    decisions = [
        gate.evaluate({"type": "transfer", "amount": amount}, ANALYST)
        for amount in (10, 5000, 20, 999_999)
    ]
    assert audit.count() == len(decisions)
    records = audit.tail(10)
    assert [r.audit_id for r in records] == [d.audit_id for d in decisions]
    assert [r.allowed for r in records] == [True, False, True, False]
    assert records[1].policy_ids == ["FIN-002"]
    assert records[1].action == "show_user_limit"
    assert records[0].output == {"type": "transfer", "amount": 10}
    assert audit.verify().ok


def test_services_keep_their_own_policy_sets(make_gate: Callable[..., Gate]) -> None:
    call = {"type": "tool_call", "action": "recommend_transfer"}
    assert make_gate("finance").evaluate(call, ANALYST).allowed
    assert make_gate("assistant").evaluate(call, ANALYST).policy_id == "AST-002"


def test_unknown_service_is_refused(make_gate: Callable[..., Gate]) -> None:
    decision = make_gate("payroll").evaluate({"type": "transfer", "amount": 1}, ANALYST)
    assert not decision.allowed
    assert "payroll" in decision.reason
    assert decision.fallback is False


def test_daily_quota_counts_allowed_decisions_from_the_audit_log(
    make_gate: Callable[..., Gate],
) -> None:
    gate = make_gate("assistant")
    user = {"id": "quota-user", "role": "analyst"}
    ask = {"type": "tool_call", "action": "explain"}
    results = [gate.evaluate(ask, user) for _ in range(101)]
    assert all(d.allowed for d in results[:100])
    assert results[100].policy_id == "AST-003"
    # a supplied usage figure is not trusted: the gate counts from its own log
    assert gate.evaluate(ask, user, {"usage_today": 0}).policy_id == "AST-003"
    # another user is unaffected
    assert gate.evaluate(ask, {"id": "other", "role": "analyst"}).allowed


class PydanticUser(BaseModel):
    id: str
    role: str
    account_status: str
    transaction_limit: float


@dataclass
class AttrUser:
    id: str
    role: str
    account_status: str
    transaction_limit: int


@pytest.mark.parametrize(
    "user",
    [
        ANALYST,
        PydanticUser(id="p", role="analyst", account_status="active", transaction_limit=1000),
        AttrUser(id="a", role="analyst", account_status="active", transaction_limit=1000),
    ],
    ids=["dict", "pydantic", "attributes"],
)
def test_user_shapes(make_gate: Callable[..., Gate], user: object) -> None:
    gate = make_gate("finance")
    assert gate.evaluate({"type": "transfer", "amount": 999}, user).allowed
    assert gate.evaluate({"type": "transfer", "amount": 1001}, user).policy_id == "FIN-002"


def test_plain_text_output_is_gated_as_text(make_gate: Callable[..., Gate]) -> None:
    gate = make_gate("assistant")
    assert gate.evaluate("The weather is fine.", ANALYST).allowed
    assert gate.evaluate("```\nimport os\n```", ANALYST).policy_id == "AST-001"


def test_execute_runs_only_when_allowed(make_gate: Callable[..., Gate]) -> None:
    gate = make_gate("finance")
    ran: list[int] = []
    assert gate.execute({"type": "transfer", "amount": 5}, ANALYST, lambda: ran.append(5)) is None
    with pytest.raises(Refused) as info:
        gate.execute({"type": "transfer", "amount": 5000}, ANALYST, lambda: ran.append(5000))
    assert ran == [5]
    assert info.value.decision.policy_id == "FIN-002"
    assert info.value.decision.audit_id


def test_guard_decorator_gates_tool_calls(make_gate: Callable[..., Gate], audit: AuditLog) -> None:
    gate = make_gate("assistant")

    @gate.guard
    def analyze(topic: str) -> str:
        return f"analysis of {topic}"

    @gate.guard
    def delete_records(table: str) -> str:
        raise AssertionError("must never run")

    assert analyze("rates", user=ANALYST) == "analysis of rates"
    with pytest.raises(Refused) as info:
        delete_records("users", user=ANALYST)
    assert info.value.decision.policy_id == "AST-002"
    outputs = [r.output for r in audit.tail(2)]
    assert outputs[1] == {
        "type": "tool_call",
        "action": "delete_records",
        "arguments": {"table": "users"},
    }


def test_async_gate_matches_sync_gate(opa: LocalOpa, audit: AuditLog) -> None:
    cases = scenarios("async")

    async def run() -> list[tuple[bool, str | None]]:
        gates = {s: AsyncGate(s, opa_url=opa.url, audit=audit) for s in ("finance", "assistant")}
        try:
            results = await asyncio.gather(
                *(gates[c.service].evaluate(c.output, c.user, c.context) for c in cases)
            )
        finally:
            for g in gates.values():
                await g.aclose()
        return [(d.allowed, d.policy_id) for d in results]

    got = asyncio.run(run())
    assert got == [(c.expect_allowed, c.expect_policy) for c in cases]
    assert audit.count() == len(cases)


def test_async_execute_and_guard(opa: LocalOpa, audit: AuditLog) -> None:
    async def run() -> tuple[str, str]:
        async with AsyncGate("assistant", opa_url=opa.url, audit=audit) as gate:

            @gate.guard
            async def explain(topic: str) -> str:
                return f"about {topic}"

            ok = await explain("bonds", user=ANALYST)
            with pytest.raises(Refused) as info:
                await gate.execute({"type": "tool_call", "action": "wire_money"}, ANALYST, _never)
            return ok, info.value.decision.policy_id or ""

    assert asyncio.run(run()) == ("about bonds", "AST-002")


async def _never() -> None:
    raise AssertionError("must never run")


def test_embedded_default_starts_and_stops_its_own_opa(tmp_path) -> None:  # type: ignore[no-untyped-def]
    gate = Gate("finance", audit=tmp_path / "a.db")
    assert gate.local_opa is not None
    proc = gate.local_opa._proc
    assert gate.evaluate({"type": "transfer", "amount": 1}, ANALYST).allowed
    gate.close()
    assert proc is not None
    assert proc.poll() is not None


_WORKER = """
import sys
from pygate import Gate
url, db, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Gate("assistant", opa_url=url, audit=db) as gate:
    ask = {"type": "tool_call", "action": "explain"}
    print(sum(gate.evaluate(ask, {"id": "shared-user", "role": "analyst"}).allowed
              for _ in range(n)))
"""


def test_quota_is_exact_under_concurrent_processes(opa: LocalOpa, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    db = str(tmp_path / "shared.db")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, opa.url, db, "40"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]  # reap every worker first
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    allowed = [int(out) for out, _ in outputs]
    assert sum(allowed) == 100  # 160 requests at the boundary of a quota of 100
    log = SqliteAuditLog(db)
    assert log.count() == 160
    # The day the workers counted on (their clock, not this process's: see --clock-at).
    assert log.usage_today("shared-user", now=log.tail(1)[0].ts) == 100
    assert log.verify().ok
    log.close()


def test_the_record_worked_out_while_opa_evaluates_is_the_one_worked_out_after(
    opa: LocalOpa, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sync gate redacts the document while OPA evaluates (once per decision); the
    stored output and replay input are byte for byte those of a record made afterwards."""
    output = {"type": "transfer", "amount": 10, "to": "acct-2"}
    user = {**ANALYST, "api_key": "sk-not-stored", "note": "ssn 123-45-6789"}
    calls: list[int] = []
    real = AuditLog.stored_document

    def counted(self: AuditLog, document: dict[str, object]) -> tuple[str, object]:
        calls.append(1)
        return real(self, document)

    monkeypatch.setattr(AuditLog, "stored_document", counted)
    rows = []
    for overlap in (True, False):
        db = tmp_path / f"{overlap}.db"
        with Gate("finance", opa_url=opa.url, audit=db) as gate:
            if not overlap:
                monkeypatch.setattr(gate, "_meanwhile", lambda prepared: None)
            post, seen = gate._transport.post, []

            def spy(*args: Any, post: Any = post, seen: list[int] = seen) -> Any:
                answer = post(*args)
                seen.append(len(calls))  # worked out by the time OPA's answer was read?
                return answer

            monkeypatch.setattr(gate._transport, "post", spy)
            decision = gate.evaluate(output, user)
            assert decision.allowed, decision.reason
        assert seen == [1 if overlap else 0]
        calls_now, calls[:] = len(calls), []
        assert calls_now == 1  # once: during the round trip, or after it
        with sqlite3.connect(db) as conn:
            rows.append(conn.execute("SELECT output, opa_input FROM decisions").fetchone())
    assert rows[0] == rows[1]
    assert "sk-not-stored" not in rows[0][1]
    assert "123-45-6789" not in rows[0][1]
    assert '"user.api_key"' in rows[0][1]


def test_async_calls_of_one_tick_are_one_batch_each_decided_and_audited_alone(
    opa: LocalOpa, tmp_path: Path
) -> None:
    """Concurrent AsyncGate.evaluate calls share one OPA request; each caller still gets its
    own decision (a refusal among allows stays a refusal) and its own audit record."""
    paths: list[str] = []

    async def run() -> list[Any]:
        async with AsyncGate("finance", opa_url=opa.url, audit=tmp_path / "a.db") as gate:
            post = gate._transport.post

            async def spy(path: str, body: bytes) -> tuple[int, bytes]:
                paths.append(path)
                return await post(path, body)

            gate._transport.post = spy  # type: ignore[method-assign]
            amounts = [10, 5000, 20, 30]  # 5000 is over the analyst's limit
            decisions = await asyncio.gather(
                *(
                    gate.evaluate({"type": "transfer", "amount": a, "to": "acct-2"}, ANALYST)
                    for a in amounts
                )
            )
            lone = await gate.evaluate({"type": "transfer", "amount": 1, "to": "a"}, ANALYST)
            assert gate.audit is not None
            records = list(gate.audit.records())
            return [decisions, lone, records]

    decisions, lone, records = asyncio.run(run())
    assert paths == ["pygate/gate/batch", "pygate/gate/decision"]
    assert [d.allowed for d in decisions] == [True, False, True, True]
    assert decisions[1].policy_id is not None
    assert lone.allowed
    assert len({d.audit_id for d in [*decisions, lone]}) == 5
    assert sorted(r.audit_id for r in records) == sorted(d.audit_id for d in [*decisions, lone])


def test_a_batch_of_async_calls_fails_closed_for_every_caller(
    dead_url: str, tmp_path: Path
) -> None:
    async def run() -> list[Any]:
        async with AsyncGate("finance", opa_url=dead_url, audit=tmp_path / "a.db") as gate:
            decisions = await asyncio.gather(
                *(gate.evaluate({"type": "transfer", "amount": 10}, ANALYST) for _ in range(3))
            )
            assert gate.audit is not None
            return [decisions, gate.audit.count()]

    decisions, count = asyncio.run(run())
    assert [(d.allowed, d.fallback) for d in decisions] == [(False, True)] * 3
    assert count == 3
