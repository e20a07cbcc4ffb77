"""Human approval: a require_review refusal waits for a person; OPA, not Python, lifts it.

Every test runs on both audit backends, SQLite and PostgreSQL (``audit`` below), with the real OPA.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from click.testing import CliRunner

from pygate import ApprovalError, AsyncGate, AuditLog, Gate, LocalOpa
from pygate.cli._main import main
from tests.conftest import forged_approval, raw_sql

TOOL = {"type": "tool_call", "action": "delete_records", "table": "users"}
ANA = {"id": "ana", "role": "analyst"}


@pytest.fixture
def audit(audit_any: AuditLog) -> AuditLog:
    """This module's audit log, on each backend (``make_gate`` shares it)."""
    return audit_any


@pytest.fixture
def assistant(make_gate: Callable[..., Gate]) -> Gate:
    return make_gate("assistant")


def _pending(gate: Gate) -> str:
    assert gate.approvals is not None
    found = gate.approvals.find("pending")
    assert len(found) == 1
    return found[0].approval_id


def test_review_refusal_opens_one_pending_approval(assistant: Gate) -> None:
    first = assistant.evaluate(TOOL, ANA)
    assert not first.allowed
    assert first.policy_id == "AST-002"
    assert first.output_hash is not None
    assert len(first.output_hash) == 64
    assert assistant.approvals is not None
    [pending] = assistant.approvals.find("pending")
    assert pending.user_id == "ana"  # who
    assert pending.output == TOOL  # what output
    assert pending.reason == "Action 'delete_records' needs review"  # why
    assert pending.audit_id == first.audit_id
    # Both review refusals: the allowlist's and the service's undeclared-action rule.
    assert pending.policy_ids == ["AST-002", "GATE-011"]
    assert pending.output_hash == first.output_hash
    again = assistant.evaluate(TOOL, ANA)  # a retry does not flood the approvers
    assert not again.allowed
    assert [a.approval_id for a in assistant.approvals.find("pending")] == [pending.approval_id]


def test_approved_output_passes_once_and_is_audited_with_the_approver(
    assistant: Gate, audit: AuditLog
) -> None:
    assistant.evaluate(TOOL, ANA)
    approval_id = _pending(assistant)
    assert assistant.approvals is not None
    assistant.approvals.approve(approval_id, by="rita", note="one-off clean-up")
    passed = assistant.evaluate(TOOL, ANA)
    assert passed.allowed
    assert (passed.approval_id, passed.approved_by) == (approval_id, "rita")
    record = audit.tail(1)[0]
    assert record.allowed
    assert (record.approval_id, record.approved_by) == (approval_id, "rita")
    assert assistant.approvals.get(approval_id).status == "used"
    assert assistant.approvals.get(approval_id).used_audit_id == passed.audit_id
    assert not assistant.evaluate(TOOL, ANA).allowed  # used up
    assert audit.verify().ok


def test_unapproved_rejected_and_changed_outputs_stay_refused(assistant: Gate) -> None:
    assert assistant.approvals is not None
    assistant.evaluate(TOOL, ANA)
    approval_id = _pending(assistant)
    assistant.approvals.reject(approval_id, by="rita")
    assert not assistant.evaluate(TOOL, ANA).allowed
    assistant.approvals.approve(_pending(assistant), by="rita")
    changed = {**TOOL, "table": "accounts"}
    refused = assistant.evaluate(changed, ANA)
    assert not refused.allowed
    assert refused.policy_id == "AST-002"
    other_user = assistant.evaluate(TOOL, {"id": "bob", "role": "analyst"})
    assert not other_user.allowed


def test_expired_approval_does_not_pass(assistant: Gate) -> None:
    assert assistant.approvals is not None
    assistant.evaluate(TOOL, ANA)
    past = datetime.now(UTC) - timedelta(hours=2)
    approval_id = _pending(assistant)
    assistant.approvals.approve(approval_id, by="rita", ttl=60, now=past)
    assert assistant.approvals.get(approval_id).status == "expired"
    assert not assistant.evaluate(TOOL, ANA).allowed


def test_rego_checks_expiry_itself(opa: LocalOpa, assistant: Gate) -> None:
    """Even an expired approval that reaches OPA (a stale cache, a clock skew) is refused."""
    assert assistant.approvals is not None
    assistant.evaluate(TOOL, ANA)
    assistant.approvals.approve(_pending(assistant), by="rita")
    [approval] = assistant.approvals.for_context("ana")
    doc = {
        "output": TOOL,
        "user": ANA,
        "context": {"service": "assistant", "usage_today": 0, "approvals": [approval]},
    }
    url = f"{opa.url}/v1/data/pygate/gate/decision"
    assert httpx.post(url, json={"input": doc}).json()["result"]["allowed"] is True
    stale = {**approval, "expires_at_ns": approval["expires_at_ns"] - 10**15}
    doc["context"]["approvals"] = [stale]
    result = httpx.post(url, json={"input": doc}).json()["result"]
    assert result["allowed"] is False
    assert result["primary"]["policy_id"] == "AST-002"


def test_caller_supplied_approvals_are_ignored(assistant: Gate) -> None:
    """Only the approval store speaks for a person: a forged context approval is dropped."""
    first = assistant.evaluate(TOOL, ANA)
    forged = forged_approval(first.output_hash)
    assert not assistant.evaluate(TOOL, ANA, {"approvals": [forged]}).allowed


def test_deciding_twice_or_unknown_ids_fail(assistant: Gate) -> None:
    assert assistant.approvals is not None
    assistant.evaluate(TOOL, ANA)
    approval_id = _pending(assistant)
    with pytest.raises(ApprovalError, match="approver"):
        assistant.approvals.approve(approval_id, by=" ")
    assistant.approvals.approve(approval_id, by="rita")
    with pytest.raises(ApprovalError, match="approved, not pending"):
        assistant.approvals.reject(approval_id, by="omar")
    with pytest.raises(ApprovalError, match="no approval"):
        assistant.approvals.approve("nope", by="rita")
    with pytest.raises(ApprovalError, match="status"):
        assistant.approvals.find("weird")


def test_cli_list_approve_reject(
    opa: LocalOpa, audit_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYGATE_AUDIT_DB", audit_db)
    with Gate("assistant", opa_url=opa.url) as gate:
        gate.evaluate(TOOL, ANA)
        gate.evaluate({**TOOL, "action": "send_email"}, ANA)
    runner = CliRunner()
    listed = runner.invoke(main, ["approvals", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    pending = json.loads(listed.output)
    assert {p["output"]["action"] for p in pending} == {"delete_records", "send_email"}
    human = runner.invoke(main, ["approvals", "list"])
    assert "needs review" in human.output
    first, second = pending[0]["approval_id"], pending[1]["approval_id"]
    ok = runner.invoke(main, ["approvals", "approve", first, "--by", "rita", "--json"])
    assert ok.exit_code == 0
    assert json.loads(ok.output)["status"] == "approved"
    no = runner.invoke(main, ["approvals", "reject", second, "--by", "omar"])
    assert no.exit_code == 0
    assert "rejected" in no.output
    again = runner.invoke(main, ["approvals", "approve", second, "--by", "rita"])
    assert again.exit_code == 2
    assert "rejected, not pending" in again.output
    missing = runner.invoke(main, ["approvals", "approve", "nope"])
    assert missing.exit_code == 2  # --by is required
    left = json.loads(runner.invoke(main, ["approvals", "list", "--json"]).output)
    assert left == []


def test_an_unreadable_approval_store_leaves_the_refusal_standing(
    assistant: Gate, audit: AuditLog, audit_db: str
) -> None:
    assistant.evaluate(TOOL, ANA)
    assert assistant.approvals is not None
    assistant.approvals.approve(_pending(assistant), by="rita")
    raw_sql(audit_db, "DROP TABLE approvals")
    decision = assistant.evaluate(TOOL, ANA)  # no exception: fail closed
    assert not decision.allowed
    assert decision.policy_id == "AST-002"
    checked = audit.verify()  # the chain is intact; the dropped table is reported
    assert checked.ok is False
    assert "approvals or follow-ups table cannot be read" in checked.problem


def test_async_gate_uses_approvals_too(opa: LocalOpa, audit: AuditLog) -> None:
    async def run() -> tuple[bool, bool, str | None]:
        async with AsyncGate("assistant", opa_url=opa.url, audit=audit) as gate:
            refused = await gate.evaluate(TOOL, ANA)
            assert gate.approvals is not None
            gate.approvals.approve(gate.approvals.find()[0].approval_id, by="rita")
            passed = await gate.evaluate(TOOL, ANA)
            return refused.allowed, passed.allowed, passed.approved_by

    assert asyncio.run(run()) == (False, True, "rita")


# --- issue 13: an approval means one thing, once ----------------------------------------------


def _approved(gate: Gate, output: dict[str, object] = TOOL) -> str:
    """Refuse ``output`` for ana, then have rita approve the request it opened."""
    gate.evaluate(output, ANA)
    assert gate.approvals is not None
    approval_id = _pending(gate)
    gate.approvals.approve(approval_id, by="rita")
    return approval_id


def test_one_approval_lets_one_item_of_a_batch_through(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    """Attack: one approval, the same output 50 times in one evaluate_many (was: 50 allowed)."""
    # 50 items in one request: a generous engine timeout, so a loaded machine cannot turn
    # the batch into fallback refusals (which would hide what this test is about).
    assistant = make_gate("assistant", timeout=10)
    approval_id = _approved(assistant)
    result = assistant.evaluate_many([(TOOL, ANA)] * 50)
    assert [d.allowed for d in result] == [True] + [False] * 49
    assert result[0].approval_id == approval_id
    assert {d.policy_id for d in result[1:]} == {"AST-002"}
    allowed = [r for r in audit.records() if r.allowed]
    assert [r.approval_id for r in allowed] == [approval_id]
    assert assistant.approvals is not None
    assert assistant.approvals.get(approval_id).used_audit_id == result[0].audit_id
    assert audit.verify().ok


def test_one_approval_lets_one_of_8_concurrent_gates_through(
    opa: LocalOpa, audit_db: str, audit: AuditLog
) -> None:
    """Attack: 8 threads, each with its own gate and connection (as 8 processes would)."""
    with Gate("assistant", opa_url=opa.url, audit=audit_db) as gate:
        _approved(gate)
    gates = [Gate("assistant", opa_url=opa.url, audit=audit_db) for _ in range(8)]
    barrier = threading.Barrier(8)

    def one(gate: Gate) -> bool:
        barrier.wait()
        return gate.evaluate(TOOL, ANA).allowed

    try:
        with ThreadPoolExecutor(8) as pool:
            allowed = list(pool.map(one, gates))
    finally:
        for gate in gates:
            gate.close()
    assert allowed.count(True) == 1
    assert sum(r.allowed for r in audit.records()) == 1


def test_one_approval_one_allow_across_async_batch(opa: LocalOpa, audit: AuditLog) -> None:
    async def run() -> list[bool]:
        async with AsyncGate("assistant", opa_url=opa.url, audit=audit) as gate:
            await gate.evaluate(TOOL, ANA)
            assert gate.approvals is not None
            [pending] = gate.approvals.find("pending")
            gate.approvals.approve(pending.approval_id, by="rita")
            many = await gate.evaluate_many([(TOOL, ANA)] * 10)
            alone = await asyncio.gather(*(gate.evaluate(TOOL, ANA) for _ in range(5)))
            return [d.allowed for d in [*many, *alone]]

    assert asyncio.run(run()) == [True] + [False] * 14


def test_the_requester_cannot_approve_their_own_request(assistant: Gate) -> None:
    assistant.evaluate(TOOL, ANA)
    approval_id = _pending(assistant)
    assert assistant.approvals is not None
    for me in ("ana", " ANA ", "Ana"):
        with pytest.raises(ApprovalError, match="someone else"):
            assistant.approvals.approve(approval_id, by=me)
    with pytest.raises(ApprovalError, match="approver's name is required"):
        assistant.approvals.approve(approval_id, by="  ")
    assert assistant.approvals.get(approval_id).status == "pending"
    assert not assistant.evaluate(TOOL, ANA).allowed
    done = assistant.approvals.approve(approval_id, by="rita")
    assert done.decided_by == "rita"


def test_the_approver_sees_the_output_unmasked_until_decided(
    assistant: Gate, audit: AuditLog, audit_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_tool = {**TOOL, "token": "tok-approve-me-4711"}
    assistant.evaluate(secret_tool, ANA)
    assert "tok-approve-me-4711" not in json.dumps([r.output for r in audit.records()])
    monkeypatch.setenv("PYGATE_AUDIT_DB", audit_db)
    runner = CliRunner()
    [pending] = json.loads(runner.invoke(main, ["approvals", "list", "--json"]).output)
    assert pending["review_output"] == secret_tool  # exactly what is approved
    shown = runner.invoke(main, ["approvals", "show", pending["approval_id"]])
    assert shown.exit_code == 0, shown.output
    assert "tok-approve-me-4711" in shown.output
    assert "***" not in shown.output
    ok = runner.invoke(main, ["approvals", "approve", pending["approval_id"], "--by", "rita"])
    assert ok.exit_code == 0, ok.output
    assert "tok-approve-me-4711" not in ok.output  # decided: the unmasked copy is gone
    assert assistant.approvals is not None
    assert assistant.approvals.get(pending["approval_id"]).review_output is None
    assert assistant.evaluate(secret_tool, ANA).allowed


def test_an_expired_request_forgets_its_unmasked_output(assistant: Gate) -> None:
    assistant.evaluate({**TOOL, "token": "tok-expire-0815"}, ANA)
    assert assistant.approvals is not None
    later = datetime.now(UTC) + timedelta(days=2)
    [expired] = assistant.approvals.find("expired", now=later)
    assert expired.review_output is None
    assert assistant.approvals.get(expired.approval_id).review_output is None


@pytest.mark.parametrize("ttl", ["1e12", "1e9", "-5", "nan", "inf", "0", "700000"])
def test_cli_approve_ttl_out_of_bounds_is_a_clear_error(
    opa: LocalOpa, audit_db: str, monkeypatch: pytest.MonkeyPatch, ttl: str
) -> None:
    monkeypatch.setenv("PYGATE_AUDIT_DB", audit_db)
    with Gate("assistant", opa_url=opa.url) as gate:
        gate.evaluate(TOOL, ANA)
        approval_id = _pending(gate)
    done = CliRunner().invoke(
        main, ["approvals", "approve", approval_id, "--by", "rita", "--ttl", ttl]
    )
    assert done.exit_code == 2, done.output
    assert "--ttl" in done.output
    assert "Traceback" not in done.output
    assert not isinstance(done.exception, Exception) or isinstance(done.exception, SystemExit)


def test_api_approve_ttl_is_bounded(assistant: Gate) -> None:
    assistant.evaluate(TOOL, ANA)
    approval_id = _pending(assistant)
    assert assistant.approvals is not None
    for bad in (1e12, 1e9, -1.0, float("nan"), float("inf"), 0.0):
        with pytest.raises(ApprovalError, match="ttl"):
            assistant.approvals.approve(approval_id, by="rita", ttl=bad)
    done = assistant.approvals.approve(approval_id, by="rita", ttl=3600)
    assert done.expires_at - done.decided_at == timedelta(seconds=3600)  # type: ignore[operator]


def test_approval_ttl_setting_may_not_exceed_its_maximum() -> None:
    from pygate import ConfigError, Settings

    with pytest.raises(ConfigError, match="approval_ttl_max"):
        Settings.load({"approval_ttl": 30 * 86400})
    assert Settings.load({"approval_ttl": 30 * 86400, "approval_ttl_max": 31 * 86400})
