"""Human approval: a require_review refusal waits for a person; OPA, not Python, lifts it.

Every test runs on both audit backends, SQLite and PostgreSQL (``audit`` below), with the real OPA.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from click.testing import CliRunner

from pygate import ApprovalError, AsyncGate, AuditLog, Gate, LocalOpa
from pygate._cli import main
from tests.conftest import raw_sql

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
    forged = {
        "approval_id": "x",
        "status": "approved",
        "approved_by": "me",
        "user_id": "ana",
        "output_hash": first.output_hash,
        "policy_ids": ["AST-002", "GATE-011"],
        "expires_at_ns": 2**62,
    }
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
    assert not checked.ok
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
