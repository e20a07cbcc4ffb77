"""The fail-closed contract, field by field: what a refusal says and what its audit record holds.

Written to kill the faults mutation testing found the suite let through (issue 18): each test
asserts the observable contract (the decision's fields, the audit record's who/what/which
policy/which revision), not just ``allowed``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pygate import AsyncGate, AuditLog, Decision, Gate, LocalOpa, _core
from pygate._core import BATCH_PATH, DECISION_PATH, ENGINE_POLICY_ID, INPUT_POLICY_ID
from pygate._errors import AuditError, BadEngineResponse, InputError, Refused, UndefinedDecision
from pygate._gate import AUDIT_POLICY_ID
from tests.conftest import ANALYST

SMALL = {"type": "transfer", "amount": 10}
ALLOW = {"allowed": True, "service": "finance", "refusals": [], "primary": None}
ASK = {"type": "tool_call", "action": "explain"}  # the assistant service counts a quota


def _envelope(result: Any, **extra: Any) -> bytes:
    return json.dumps({"result": result, **extra}).encode()


# --- OPA's answer: anything but the contract is a fail-closed refusal ---------------------


@pytest.mark.parametrize(
    "result",
    [["not", "an", "object"], "decisions", 7, None, {"decisions": "nope"}, {"other": []}],
    ids=["list", "string", "number", "null", "decisions-not-a-list", "no-decisions"],
)
def test_a_batch_answer_that_is_not_an_object_refuses_every_item(
    fake_opa: Callable[..., str], audit: AuditLog, result: Any
) -> None:
    with Gate("finance", opa_url=fake_opa(body=_envelope(result)), audit=audit) as gate:
        decisions = gate.evaluate_many([(SMALL, ANALYST), (SMALL, {"id": "u2"})])
    assert [(d.allowed, d.fallback, d.policy_id) for d in decisions] == [
        (False, True, ENGINE_POLICY_ID)
    ] * 2
    assert [(d.service, d.user_id) for d in decisions] == [("finance", "ana"), ("finance", "u2")]
    assert "BadEngineResponse" in decisions[0].reason
    assert "must hold 2 decisions" in decisions[0].reason
    records = audit.tail(2)
    assert [(r.user_id, r.service, r.policy_id, r.fallback) for r in records] == [
        ("ana", "finance", ENGINE_POLICY_ID, True),
        ("u2", "finance", ENGINE_POLICY_ID, True),
    ]


def test_read_batch_names_what_it_got() -> None:
    with pytest.raises(BadEngineResponse, match=r"hold 2 decisions, got list") as bad:
        _core.read_batch(["x"], 2)  # the result itself is a list: no .get on it
    assert bad.value.policy_path == BATCH_PATH
    with pytest.raises(BadEngineResponse, match=r"hold 2 decisions, got 1$"):
        _core.read_batch({"decisions": [{}]}, 2)
    with pytest.raises(BadEngineResponse, match=r"hold 1 decisions, got NoneType"):
        _core.read_batch({}, 1)
    assert _core.read_batch({"decisions": [1, 2]}, 2) == [1, 2]


def test_parse_response_errors_name_the_path() -> None:
    with pytest.raises(BadEngineResponse, match=r"^OPA answered HTTP 503: down") as http:
        _core.parse_response(503, b"down" + b"x" * 300, BATCH_PATH)
    assert http.value.policy_path == BATCH_PATH
    assert str(http.value).endswith("x" * 196)  # the first 200 bytes of the body, no more
    assert "x" * 197 not in str(http.value)
    with pytest.raises(BadEngineResponse, match="invalid JSON") as bad:
        _core.parse_response(200, b"{", DECISION_PATH)
    assert bad.value.policy_path == DECISION_PATH
    with pytest.raises(BadEngineResponse, match="non-object") as arr:
        _core.parse_response(200, b"[]", BATCH_PATH)
    assert arr.value.policy_path == BATCH_PATH
    with pytest.raises(UndefinedDecision, match=r"^data\.pygate\.gate\.batch is undefined$") as u:
        _core.parse_response(200, b"{}", BATCH_PATH)
    assert u.value.policy_path == BATCH_PATH
    with pytest.raises(BadEngineResponse) as not_utf8:
        _core.parse_response(502, b"\xff bad")  # not UTF-8: replaced, never an error
    assert str(not_utf8.value) == "OPA answered HTTP 502: \ufffd bad"
    result, envelope = _core.parse_response(200, b'{"result": 1, "decision_id": "d"}')
    assert (result, envelope) == (1, {"result": 1, "decision_id": "d"})


def test_read_result_rejects_an_inconsistent_or_broken_contract() -> None:
    with pytest.raises(BadEngineResponse, match=r"breaks the contract at allowed:") as bad:
        _core.read_result({"allowed": "yes", "refusals": []}, BATCH_PATH)
    assert bad.value.policy_path == BATCH_PATH
    nested = {"allowed": False, "refusals": [{"reason": "r", "action": "a"}]}
    with pytest.raises(
        BadEngineResponse, match=r"contract at refusals\.0\.policy_id: Field required"
    ):
        _core.read_result(nested)
    with pytest.raises(BadEngineResponse, match=r"breaks the contract at result:"):
        _core.read_result([1])
    refusal = {"policy_id": "X", "reason": "r", "action": "a"}
    with pytest.raises(BadEngineResponse, match="inconsistent") as inc:
        _core.read_result({"allowed": True, "refusals": [refusal]}, BATCH_PATH)
    assert inc.value.policy_path == BATCH_PATH
    with pytest.raises(BadEngineResponse, match="inconsistent"):
        _core.read_result({"allowed": False, "refusals": []})
    assert _core.read_result({"allowed": False, "refusals": [refusal]}).refusals[0].policy_id == "X"


# --- which policy revision decided ---------------------------------------------------------


def test_bundle_revision_is_every_named_revision_sorted_and_joined() -> None:
    envelope = {
        "provenance": {
            "bundles": {
                "b": {"revision": "r2"},
                "a": {"revision": "r1"},
                "dup": {"revision": "r2"},
                "empty": {"revision": ""},
                "number": {"revision": 5},
                "none": {},
                "odd": "r9",
            }
        }
    }
    assert _core._revision(envelope) == "r1,r2"
    assert _core._revision({"provenance": {"bundles": {"x": {"revision": "only"}}}}) == "only"
    assert _core._revision({"provenance": {"bundles": {"x": {"revision": ""}}}}) is None
    assert _core._revision({"provenance": None}) is None
    assert _core._revision({"provenance": {"bundles": None}}) is None
    assert _core._revision({}) is None


def test_the_decision_and_its_record_name_the_revision_and_decision_id(
    fake_opa: Callable[..., str], audit: AuditLog
) -> None:
    body = _envelope(
        ALLOW,
        decision_id="dec-1",
        provenance={"bundles": {"pay": {"revision": "v7"}, "lib": {"revision": "v3"}}},
    )
    with Gate("finance", opa_url=fake_opa(body=body), audit=audit) as gate:
        decision = gate.evaluate(SMALL, ANALYST)
    assert decision.allowed
    assert (decision.bundle_revision, decision.decision_id) == ("v3,v7", "dec-1")
    record = audit.tail(1)[0]
    assert (record.bundle_revision, record.decision_id) == ("v3,v7", "dec-1")
    assert (record.service, record.user_id, record.policy_id) == ("finance", "ana", None)


def test_a_non_string_decision_id_is_dropped(fake_opa: Callable[..., str], audit: AuditLog) -> None:
    with Gate("finance", opa_url=fake_opa(body=_envelope(ALLOW, decision_id=5)), audit=audit) as g:
        decision = g.evaluate(SMALL, ANALYST)
    assert decision.allowed
    assert decision.decision_id is None
    assert decision.bundle_revision is None


# --- the decision mapped from OPA's result ---------------------------------------------------


def _refusal(pid: str, priority: int, **extra: Any) -> dict[str, Any]:
    return {"policy_id": pid, "reason": f"{pid} says no", "action": f"act-{pid}",
            "priority": priority, **extra}  # fmt: skip


def test_decision_fields_come_from_the_primary_refusal() -> None:
    first = _refusal("A", 10)
    primary = _refusal("B", 5, message="msg-B", suggestion="try-B")
    third = _refusal("C", 20)
    result = _core.read_result(
        {"allowed": False, "refusals": [first, primary, third], "primary": primary}
    )
    d = _core.decision_from_result(
        result, {"decision_id": "x"}, service="svc", user_id="u", latency_ms=1.5
    )
    assert (d.allowed, d.reason, d.policy_id, d.action) == (False, "B says no", "B", "act-B")
    assert (d.message, d.suggestion) == ("msg-B", "try-B")
    assert [r.policy_id for r in d.refusals] == ["B", "A", "C"]  # primary first, then in order
    assert (d.service, d.user_id, d.decision_id, d.latency_ms) == ("svc", "u", "x", 1.5)
    assert d.decided_at is not None
    assert d.fallback is False
    assert (d.approval_id, d.approved_by, d.output_hash) == (None, None, None)


def test_without_a_primary_the_first_refusal_explains() -> None:
    result = _core.read_result({"allowed": False, "refusals": [_refusal("A", 1), _refusal("B", 0)]})
    d = _core.decision_from_result(result, {}, service=None, user_id=None, latency_ms=0)
    assert (d.reason, d.policy_id, d.action) == ("A says no", "A", "act-A")
    assert [r.policy_id for r in d.refusals] == ["A", "B"]
    assert (d.message, d.suggestion) == (None, None)


def test_review_hash_actions_and_time_reach_the_decision() -> None:
    action = {"kind": "action", "name": "transfer", "arguments": {"amount": 1},
              "source": "pygate", "path": []}  # fmt: skip
    review = {"output_hash": "a" * 64, "policy_ids": ["A"]}
    refused = _core.read_result(
        {"allowed": False, "refusals": [_refusal("A", 1)], "review": review, "actions": [action]}
    )
    d = _core.decision_from_result(refused, {}, service=None, user_id=None, latency_ms=0)
    assert d.output_hash == "a" * 64
    assert [(a.name, a.arguments) for a in d.actions] == [("transfer", {"amount": 1})]
    assert d.decided_at is not None
    assert d.decided_at.tzinfo is UTC


def test_an_allow_has_no_refusal_fields() -> None:
    result = _core.read_result(ALLOW)
    d = _core.decision_from_result(result, {}, service="finance", user_id="u", latency_ms=0)
    assert (d.allowed, d.reason, d.policy_id, d.action, d.message, d.suggestion) == (
        True, "allowed", None, None, None, None,
    )  # fmt: skip
    assert d.refusals == []


def test_applied_approvals_name_the_approvals_and_approvers() -> None:
    applied = [
        {"approval_id": "ap2", "approved_by": "zoe", "policy_ids": ["X"]},
        {"approval_id": "ap1", "approved_by": "bob", "policy_ids": ["Y"]},
        {"approval_id": "ap3", "approved_by": "zoe", "policy_ids": ["Z"]},
    ]
    result = _core.read_result({**ALLOW, "approvals_applied": applied})
    d = _core.decision_from_result(result, {}, service=None, user_id=None, latency_ms=0)
    assert d.approval_id == "ap2,ap1,ap3"  # in the order OPA applied them
    assert d.approved_by == "bob,zoe"  # each approver once, sorted


def test_own_refusals_are_complete() -> None:
    exc = BadEngineResponse("boom", policy_path=DECISION_PATH)
    d = _core.fallback_decision(exc, service="svc", user_id="u", latency_ms=3.0)
    assert (d.allowed, d.fallback, d.policy_id, d.action) == (False, True, ENGINE_POLICY_ID,
                                                             "log_refusal")  # fmt: skip
    assert d.reason == (
        "The policy engine could not decide (BadEngineResponse: boom); refused to be safe"
    )
    assert d.message is not None
    assert "safety check is unavailable" in d.message
    assert (d.service, d.user_id, d.latency_ms) == ("svc", "u", 3.0)
    assert [(r.policy_id, r.reason, r.action, r.priority) for r in d.refusals] == [
        (ENGINE_POLICY_ID, d.reason, "log_refusal", 0)
    ]
    bad = _core.input_refusal(InputError("user.id", "required"), service="s", user_id=None)
    assert (bad.allowed, bad.fallback, bad.policy_id) == (False, False, INPUT_POLICY_ID)
    assert bad.reason == "Invalid input: user.id: required"
    assert (bad.service, bad.user_id) == ("s", None)
    assert bad.message == "I couldn't process that request."  # never the reason
    assert bad.latency_ms == 0.0
    for made in (d, bad):
        assert made.decided_at is not None
        assert made.decided_at.tzinfo is UTC
        assert abs((datetime.now(UTC) - made.decided_at).total_seconds()) < 3600


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ({"id": "u1"}, "u1"),
        ({"id": 42}, "42"),
        ({"id": True}, None),
        ({"id": 1.5}, None),
        ({"id": None}, None),
        ({}, None),
        (None, None),
        (type("U", (), {"id": "obj"})(), "obj"),
    ],
)
def test_safe_user_id(user: Any, expected: str | None) -> None:
    assert _core.safe_user_id(user) == expected


# --- the batch item's shape ------------------------------------------------------------------


def test_split_item_shapes() -> None:
    assert _core.split_item({"output": 1, "user": 2, "context": 3}, 0) == (1, 2, 3)
    assert _core.split_item({"output": 1, "user": 2}, 0) == (1, 2, None)
    assert _core.split_item((1, 2), 0) == (1, 2, None)
    assert _core.split_item([1, 2, 3], 0) == (1, 2, 3)
    with pytest.raises(InputError) as unknown:
        _core.split_item({"output": 1, "user": 2, "ctx": 3, "extra": 4}, 4)
    assert (unknown.value.field, unknown.value.problem) == ("items[4]", "unknown key(s) ctx, extra")
    with pytest.raises(InputError) as missing:
        _core.split_item({"output": 1}, 2)
    assert (missing.value.field, missing.value.problem) == ("items[2].user", "required")
    with pytest.raises(InputError) as no_output:
        _core.split_item({"user": 1}, 0)
    assert no_output.value.field == "items[0].output"
    for bad in [(1,), (1, 2, 3, 4), "text", 5]:
        with pytest.raises(InputError) as shape:
            _core.split_item(bad, 3)
        assert shape.value.field == "items[3]"
        assert "expected (output, user[, context])" in shape.value.problem
    # what a refused item's audit record can still name
    assert _core.loose_parts({"output": 1, "user": 2, "context": 3, "x": 4}) == (1, 2, 3)
    assert _core.loose_parts((1, 2, 3, 4)) == (1, 2, 3)
    assert _core.loose_parts([1]) == (1, None, None)
    assert _core.loose_parts("text") == (None, None, None)


def test_a_batch_item_context_reaches_the_decision(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    gate = make_gate("finance")
    clash = {"service": "assistant"}  # conflicts with the gate's service: refused if read
    decisions = gate.evaluate_many(
        [
            {"output": SMALL, "user": ANALYST, "context": clash},
            (SMALL, ANALYST, clash),
            {"output": SMALL, "user": ANALYST, "contxt": {}},
            (SMALL, ANALYST),
        ]
    )
    assert [(d.allowed, d.policy_id) for d in decisions] == [
        (False, INPUT_POLICY_ID),
        (False, INPUT_POLICY_ID),
        (False, INPUT_POLICY_ID),
        (True, None),
    ]
    assert "items[0].context.service: 'assistant' conflicts" in decisions[0].reason
    assert "items[1].context.service" in decisions[1].reason
    assert decisions[2].reason == "Invalid input: items[2]: unknown key(s) contxt"
    assert [d.user_id for d in decisions] == ["ana"] * 4
    assert [d.service for d in decisions] == ["finance"] * 4
    records = audit.tail(4)
    assert [(r.user_id, r.service) for r in records] == [("ana", "finance")] * 4
    # what was refused is kept (masked), not a placeholder
    assert "transfer" in str(records[0].output)
    assert "contxt" in str(records[2].output)


# --- who and what, when the input is refused ---------------------------------------------------


def test_bad_input_is_refused_and_audited_with_the_user_and_the_output(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    gate = make_gate("finance")
    decision = gate.evaluate({"type": "transfer", "amount": float("nan")}, {"id": "u7"})
    assert (decision.allowed, decision.policy_id, decision.fallback) == (
        False, INPUT_POLICY_ID, False,
    )  # fmt: skip
    assert (decision.service, decision.user_id) == ("finance", "u7")
    assert decision.reason == "Invalid input: output.amount: nan is not a JSON number"
    record = audit.tail(1)[0]
    assert record.audit_id == decision.audit_id
    assert (record.user_id, record.service, record.policy_id) == ("u7", "finance", INPUT_POLICY_ID)
    assert record.output == repr({"type": "transfer", "amount": float("nan")})
    assert record.reason == decision.reason


def test_refuse_input_audits_who_and_what(make_gate: Callable[..., Gate], audit: AuditLog) -> None:
    gate = make_gate("finance")
    problem = InputError("input", "duplicate key 'amount' (ambiguous JSON is refused)")
    decision = gate.refuse_input(problem, '{"amount": 1, "amount": 2}', {"id": 9})
    assert (decision.policy_id, decision.service, decision.user_id) == (
        INPUT_POLICY_ID, "finance", "9",
    )  # fmt: skip
    assert decision.reason == (
        "Invalid input: input: duplicate key 'amount' (ambiguous JSON is refused)"
    )
    record = audit.tail(1)[0]
    assert (record.user_id, record.service) == ("9", "finance")
    assert record.output == repr('{"amount": 1, "amount": 2}')
    assert record.reason == decision.reason


def test_refused_input_is_masked_by_the_logs_own_patterns_or_the_defaults(
    opa: LocalOpa, tmp_path: Path
) -> None:
    from pygate import SqliteAuditLog

    problem = InputError("input", "not JSON")
    log = SqliteAuditLog(tmp_path / "a.db", redact_patterns=[r"ticket-\d+"])
    with Gate("finance", opa_url=opa.url, audit=log) as gate:
        gate.refuse_input(problem, {"note": "ticket-42", "password": "p"}, {"id": "u1"})
    assert log.tail(1)[0].output == repr({"note": "***", "password": "***"})
    log.close()
    with Gate("finance", opa_url=opa.url, audit=None) as unaudited:
        refused = unaudited.refuse_input(problem, {"password": "p"}, {"id": "u1"})
        decided = unaudited.evaluate({"type": "transfer", "amount": 5000}, {"id": "u2"})
    assert (refused.allowed, refused.policy_id, refused.user_id) == (False, INPUT_POLICY_ID, "u1")
    assert (decided.allowed, decided.user_id, decided.audit_id) == (False, "u2", None)
    assert decided.policy_id not in (None, INPUT_POLICY_ID)  # OPA's refusal, not a crash


def test_async_refuse_input_audits_who_and_what(opa: LocalOpa, audit: AuditLog) -> None:
    problem = InputError("input", "duplicate key 'amount' (ambiguous JSON is refused)")

    async def run() -> Decision:
        async with AsyncGate("finance", opa_url=opa.url, audit=audit) as gate:
            return await gate.refuse_input(problem, '{"amount": 1, "amount": 2}', {"id": 9})

    decision = asyncio.run(run())
    assert (decision.allowed, decision.policy_id, decision.service, decision.user_id) == (
        False, INPUT_POLICY_ID, "finance", "9",
    )  # fmt: skip
    assert decision.reason == (
        "Invalid input: input: duplicate key 'amount' (ambiguous JSON is refused)"
    )
    record = audit.tail(1)[0]
    assert record.audit_id == decision.audit_id
    assert (record.user_id, record.service, record.policy_id) == ("9", "finance", INPUT_POLICY_ID)
    assert record.output == repr('{"amount": 1, "amount": 2}')
    assert record.reason == decision.reason


def test_refuse_input_of_an_oversize_output_keeps_only_its_digest(
    opa: LocalOpa, audit: AuditLog
) -> None:
    from pygate._core import OversizeOutput
    from pygate._input import digest_summary

    raw = "x" * 5000
    problem = OversizeOutput(5000, 100)
    with Gate("finance", opa_url=opa.url, audit=audit) as gate:
        sync = gate.refuse_input(problem, raw, {"id": "u1"})

    async def run() -> Decision:
        async with AsyncGate("finance", opa_url=opa.url, audit=audit) as agate:
            return await agate.refuse_input(problem, raw, {"id": "u2"})

    not_sync = asyncio.run(run())
    records = audit.tail(2)
    assert [r.audit_id for r in records] == [sync.audit_id, not_sync.audit_id]
    assert [r.user_id for r in records] == ["u1", "u2"]
    assert [r.output for r in records] == [digest_summary(raw)] * 2
    assert records[0].output["not_stored"] is True


def test_record_followup_needs_an_audit_log_and_returns_its_id(
    make_gate: Callable[..., Gate], audit: AuditLog, opa: LocalOpa
) -> None:
    gate = make_gate("finance")
    refused = gate.evaluate({"type": "transfer", "amount": 5000}, {"id": "u"})
    assert refused.audit_id is not None
    followup_id = gate.record_followup(refused.audit_id, "escalate", "asked a manager")
    [row] = audit._select_raw("SELECT * FROM followups")
    assert (row["followup_id"], row["audit_id"], row["kind"], row["note"]) == (
        followup_id, refused.audit_id, "escalate", "asked a manager",
    )  # fmt: skip
    bare = Gate("finance", opa_url=opa.url, audit=None)
    with pytest.raises(AuditError, match=r"^this gate has no audit log to record a follow"):
        bare.record_followup(refused.audit_id, "retry")
    bare.close()


def test_an_unserviced_gate_refuses_and_names_the_callers_service_when_trusted(
    opa: LocalOpa, audit: AuditLog
) -> None:
    with Gate(None, opa_url=opa.url, audit=audit, allow_caller_service=True) as gate:
        bad = gate.evaluate("x", {"id": "u1"}, {"service": "finance", "n": float("inf")})
        batch = gate.evaluate_many(
            [
                ("x", {"id": "u2"}, {"service": 5, "n": float("inf")}),
                ("x", {"id": "u3"}, {"service": "finance", "n": float("inf")}),
            ]
        )
    assert (bad.policy_id, bad.service, bad.user_id) == (INPUT_POLICY_ID, "finance", "u1")
    assert [(d.policy_id, d.service, d.user_id) for d in batch] == [
        (INPUT_POLICY_ID, None, "u2"),
        (INPUT_POLICY_ID, "finance", "u3"),
    ]
    with Gate(None, opa_url=opa.url, audit=audit) as closed:
        refused = closed.evaluate("x", {"id": "u3"}, {"service": "finance"})
    assert (refused.policy_id, refused.service, refused.user_id) == (INPUT_POLICY_ID, None, "u3")
    assert "context.service" in refused.reason


class _DownAudit:
    """Wraps a real audit log; every write fails as a database that went away."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    def __getattr__(self, name: str) -> Any:
        if name in ("append_checked", "aappend_checked"):
            return self._fail
        return getattr(self._log, name)

    def _fail(self, *args: Any) -> Any:
        raise AuditError("disk on fire")


def test_a_refusal_because_the_audit_is_down_keeps_service_and_user(
    make_gate: Callable[..., Gate], audit: AuditLog, caplog: pytest.LogCaptureFixture
) -> None:
    gate = make_gate("finance")
    gate.audit = _DownAudit(audit)  # type: ignore[assignment]
    single = gate.evaluate(SMALL, ANALYST)
    batch = gate.evaluate_many([(SMALL, ANALYST), (SMALL, {"id": "u2"}), ("x", {})])
    for decision, user in [(single, "ana"), (batch[0], "ana"), (batch[1], "u2"), (batch[2], None)]:
        assert (decision.allowed, decision.fallback, decision.policy_id) == (
            False, True, AUDIT_POLICY_ID,
        )  # fmt: skip
        assert (decision.service, decision.user_id) == ("finance", user)
        assert decision.reason == (
            "The decision could not be audited (disk on fire); refused to be safe"
        )
    assert audit.count() == 0
    assert "audit log unavailable, refusing: disk on fire" in caplog.text


def test_an_unreadable_quota_refuses_each_item_with_its_user(
    opa: LocalOpa, audit: AuditLog
) -> None:
    class NoQuota(_DownAudit):
        def __getattr__(self, name: str) -> Any:
            if name == "quota_used":
                return self._fail
            return getattr(self._log, name)

    async def run() -> list[Decision]:
        async with AsyncGate("assistant", opa_url=opa.url, audit=audit) as agate:
            agate.audit = NoQuota(audit)  # type: ignore[assignment]
            return await agate.evaluate_many([(ASK, {"id": "q1"}), (ASK, {"id": "q2"})])

    with Gate("assistant", opa_url=opa.url, audit=audit) as gate:
        gate.audit = NoQuota(audit)  # type: ignore[assignment]
        sync = gate.evaluate_many([(ASK, {"id": "q1"}), (ASK, {"id": "q2"})])
    for decisions in (sync, asyncio.run(run())):
        assert [(d.allowed, d.policy_id, d.service, d.user_id) for d in decisions] == [
            (False, AUDIT_POLICY_ID, "assistant", "q1"),
            (False, AUDIT_POLICY_ID, "assistant", "q2"),
        ]
        assert {d.reason for d in decisions} == {  # the store's own words
            "The decision could not be audited (disk on fire); refused to be safe"
        }


# --- the async batch counts the quota ---------------------------------------------------------


def test_async_batch_counts_the_quota(opa: LocalOpa, audit: AuditLog) -> None:
    user = {"id": "async-quota", "role": "analyst"}
    # 97 allowed decisions already today: the quota (100) leaves three
    audit.append_many([(Decision(allowed=True, user_id="async-quota"), {})] * 97)

    async def run() -> list[Decision]:
        async with AsyncGate("assistant", opa_url=opa.url, audit=audit, timeout=30) as agate:
            return await agate.evaluate_many([(ASK, user)] * 5)

    decisions = asyncio.run(run())
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.policy_id for d in decisions[3:]] == ["AST-003", "AST-003"]
    assert audit.usage_today("async-quota") == 100


# --- the input documents -----------------------------------------------------------------------


class _Attrs:
    def __init__(self) -> None:
        self.type = "transfer"
        self.amount = 5
        self._secret = "x"


def test_normalize_output_shapes_and_limits() -> None:
    assert _core.normalize_output("hi") == {"type": "text", "text": "hi"}
    assert _core.normalize_output({"type": "t"}) == {"type": "t"}
    assert _core.normalize_output(_Attrs()) == {"type": "transfer", "amount": 5}
    assert _core.normalize_output(Decision(allowed=True))["allowed"] is True
    for bad, name in [([1], "list"), (5, "int"), (None, "NoneType")]:
        with pytest.raises(InputError) as err:
            _core.normalize_output(bad)
        assert (err.value.field, err.value.problem) == (
            "output", f"expected an object or text, got {name}",
        )  # fmt: skip
    with pytest.raises(InputError) as opaque:
        _core.normalize_output(object())
    assert (opaque.value.field, opaque.value.problem) == (
        "output",
        "expected an object, got object",
    )
    doc = {"t": "x" * 42}  # 50 bytes of compact JSON
    assert _core.normalize_output(doc, max_bytes=50) == doc
    with pytest.raises(_core.OversizeOutput) as big:
        _core.normalize_output(doc, max_bytes=49)
    assert (big.value.field, big.value.problem) == (
        "output", "50 bytes of JSON exceed the cap of 49 (max_output_bytes)",
    )  # fmt: skip
    assert _core.normalize_output({"a": {"b": 1}}, max_depth=2) == {"a": {"b": 1}}
    with pytest.raises(InputError, match="nested deeper than 2 levels"):
        _core.normalize_output({"a": {"b": {}}}, max_depth=2)


def test_normalize_user_checks_each_field() -> None:
    assert _core.normalize_user({"id": 42, "role": None}) == {"id": "42", "role": None}
    assert _core.normalize_user({"id": "u", "transaction_limit": 2.5}) == {
        "id": "u", "transaction_limit": 2.5,
    }  # fmt: skip
    assert _core.normalize_user({"id": "u", "transaction_limit": 7})["transaction_limit"] == 7
    cases: list[tuple[Any, str, str]] = [
        ([1], "user", "expected an object, got list"),
        ({"id": True}, "user.id", "required, a non-empty string"),
        ({"id": " "}, "user.id", "required, a non-empty string"),
        ({"id": ""}, "user.id", "required, a non-empty string"),
        ({}, "user.id", "required, a non-empty string"),
        ({"id": " u"}, "user.id", "has surrounding whitespace"),
        ({"id": "u", "role": 1}, "user.role", "expected a string, got int"),
        ({"id": "u", "account_status": []}, "user.account_status", "expected a string, got list"),
        ({"id": "u", "transaction_limit": True}, "user.transaction_limit",
         "expected a number, got bool"),
        ({"id": "u", "transaction_limit": "9"}, "user.transaction_limit",
         "expected a number, got str"),
    ]  # fmt: skip
    for user, field, problem in cases:
        with pytest.raises(InputError) as err:
            _core.normalize_user(user)
        assert (err.value.field, err.value.problem) == (field, problem)
    with pytest.raises(InputError, match="nested deeper than 2 levels"):
        _core.normalize_user({"id": "u", "a": {"b": {}}}, max_depth=2)


def test_an_opaque_user_or_context_names_its_field() -> None:
    for normalize, field in ((_core.normalize_user, "user"), (_core.normalize_context, "context")):
        with pytest.raises(InputError) as err:
            normalize(object())
        assert (err.value.field, err.value.problem) == (field, "expected an object, got object")


def test_normalize_context() -> None:
    assert _core.normalize_context(None) == {}
    given = {"a": 1}
    copy = _core.normalize_context(given)
    assert copy == given
    assert copy is not given
    with pytest.raises(InputError) as err:
        _core.normalize_context([1])
    assert (err.value.field, err.value.problem) == ("context", "expected an object, got list")
    with pytest.raises(InputError, match="nested deeper than 2 levels"):
        _core.normalize_context({"a": {"b": {}}}, max_depth=2)


def test_the_callers_context_is_never_changed(make_gate: Callable[..., Gate]) -> None:
    gate = make_gate("finance")
    context = {"approvals": [{"approval_id": "forged"}], "usage_today": 0, "note": "n"}
    before = json.loads(json.dumps(context))
    assert gate.evaluate(SMALL, ANALYST, context).allowed
    gate.evaluate_many([(SMALL, ANALYST, context)])
    assert context == before


def test_request_bodies_are_compact_json() -> None:
    assert _core.build_input({"o": 1}, {"id": "u"}, {}) == {
        "output": {"o": 1}, "user": {"id": "u"}, "context": {},
    }  # fmt: skip
    assert _core.request_body({"a": [1, 2]}) == b'{"input":{"a":[1,2]}}'
    assert _core.batch_body([{"a": 1}, {"b": 2}]) == b'{"input":{"items":[{"a":1},{"b":2}]}}'
    with pytest.raises(ValueError, match="JSON compliant"):
        _core.request_body({"a": float("nan")})
    with pytest.raises(ValueError, match="JSON compliant"):
        _core.batch_body([{"a": float("inf")}])


# --- _input: embedded JSON and the digest of what is not stored --------------------------------


def test_embedded_arguments_json_is_read_strictly() -> None:
    from pygate._input import check_document

    check_document({"arguments": "plain text {"}, "output")  # text, not JSON: fine
    check_document({"arguments": "{not json"}, "output")  # looks like JSON, is not: text
    check_document({"arguments": '  {"a": 1}  '}, "output")
    cases: list[tuple[str, str]] = [
        ('{"a": 1, "a": 2}', "embedded JSON has duplicate key 'a'"),
        ('  [{"a": 1, "a": 2}]', "embedded JSON has duplicate key 'a'"),
        ('{"a": NaN}', "embedded JSON: NaN is not a JSON number"),
        ("[Infinity]", "embedded JSON: Infinity is not a JSON number"),
        ("[" * 5000 + "]" * 5000, "embedded JSON is nested too deeply"),
    ]
    for text, problem in cases:
        with pytest.raises(InputError) as err:
            check_document({"call": {"arguments": text}}, "output")
        assert (err.value.field, err.value.problem) == ("output.call.arguments", problem)
    # the embedded document counts towards the depth
    with pytest.raises(InputError, match="nested deeper than 3 levels"):
        check_document({"arguments": '{"a": {"b": {}}}'}, "output", max_depth=3)
    check_document({"arguments": '{"a": {"b": 1}}'}, "output", max_depth=3)


def test_a_nan_in_embedded_arguments_is_refused_by_the_gate(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    """Before: '{"amount": NaN}' was taken for plain text and reached OPA, while the
    executor's json.loads would read a NaN amount."""
    gate = make_gate("finance")
    call = {"type": "tool_call", "action": "transfer", "arguments": '{"amount": NaN}'}
    decision = gate.evaluate(call, ANALYST)
    assert (decision.allowed, decision.policy_id) == (False, INPUT_POLICY_ID)
    assert decision.reason == (
        "Invalid input: output.arguments: embedded JSON: NaN is not a JSON number"
    )
    assert audit.tail(1)[0].user_id == "ana"


def test_digest_summary_is_the_size_and_sha256_of_the_exact_bytes() -> None:
    import hashlib

    from pygate._input import digest_summary

    def expect(raw: bytes) -> dict[str, Any]:
        return {"not_stored": True, "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}

    assert digest_summary("héllo") == expect("héllo".encode())
    assert digest_summary("\ud800") == expect(b"\xed\xa0\x80")  # a lone surrogate, kept
    assert digest_summary({"b": "é", "a": [1, 2]}) == expect('{"b":"é","a":[1,2]}'.encode())
    odd = {1, 2}  # not JSON: its repr is what is digested
    assert digest_summary(odd) == expect(repr(odd).encode())
    big = set(range(2000))  # its repr is longer than safe_repr's default cut: all of it counts
    assert digest_summary(big) == expect(repr(big).encode())


def test_input_helpers_exact_results() -> None:
    from pygate._input import _Duplicate, _short, compact_size, safe_repr

    assert str(_Duplicate("k")) == "duplicate key 'k'"
    assert _short("a" * 80) == "a" * 80
    assert _short("a" * 81) == "a" * 77 + "..."
    assert _short("abcdef", 5) == "ab..."
    assert compact_size({"a": 1, "b": [2]}) == len('{"a":1,"b":[2]}')
    assert compact_size({"k": "é\ud800"}) == len('{"k":""}') + 2 + 3  # UTF-8, surrogate kept
    assert compact_size("é") == 2
    assert safe_repr("x" * 3000) == repr("x" * 3000)[:2000]
    assert safe_repr([1, 2], 3) == "[1,"
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    assert safe_repr(deep) == "<list nested too deeply to show>"


def test_check_document_names_the_field_and_the_problem() -> None:
    from pygate._input import check_document

    cases: list[tuple[Any, str, str]] = [
        ({"a": "\ud800"}, "output.a", "holds a lone surrogate (not valid Unicode)"),
        (["\ud800", 1], "output[0]", "holds a lone surrogate (not valid Unicode)"),
        (["\ud800", 1.5], "output[0]", "holds a lone surrogate (not valid Unicode)"),
        ([{"x": float("nan")}, None, True, 2], "output[0].x", "nan is not a JSON number"),
        ([1.5, float("-inf")], "output[1]", "-inf is not a JSON number"),
        ({1: "x"}, "output", "object key 1 is not a string"),
        ({"\ud800": 1}, "output", "key '\\ud800' holds a lone surrogate"),
        ({"a": {1, 2}}, "output.a", "set is not JSON-serialisable"),
        ({"a": [[[]]]}, "output.a[0][0]", "nested deeper than 3 levels"),
        ({"a": {"b": {"c": {}}}}, "output.a.b.c", "nested deeper than 3 levels"),
    ]
    for doc, field, problem in cases:
        with pytest.raises(InputError) as err:
            check_document(doc, "output", 3)
        assert (err.value.field, err.value.problem) == (field, problem)
    check_document({"a": [[1]], "b": {"c": 1.5}, "d": (None,)}, "output", 3)  # at the limit
    long = "k" * 90
    with pytest.raises(InputError) as deep:
        check_document({long: [[[]]]}, "output", 3)
    assert deep.value.field == f"output.{long}[0][0]"[:77] + "..."


# --- the gate's other paths: execute, contention, what an invalid output leaves -----------------


def test_execute_passes_the_context_and_hands_run_the_decided_actions(
    make_gate: Callable[..., Gate], opa: LocalOpa, audit: AuditLog
) -> None:
    gate = make_gate("finance")
    seen = gate.execute(SMALL, ANALYST, lambda actions: actions)
    assert [(a.kind, a.name, a.arguments) for a in seen] == [("action", "transfer", {"amount": 10})]
    assert gate.execute(SMALL, ANALYST, lambda: "ran") == "ran"
    with pytest.raises(Refused) as refused:
        gate.execute(SMALL, ANALYST, lambda: "ran", {"service": "assistant"})
    assert refused.value.decision.policy_id == INPUT_POLICY_ID

    async def run() -> tuple[Any, str]:
        async def with_actions(actions: list[Any]) -> Any:
            return actions

        async def plain() -> str:
            return "ran"

        async with AsyncGate("finance", opa_url=opa.url, audit=audit) as agate:
            got = await agate.execute(SMALL, ANALYST, with_actions)
            with pytest.raises(Refused) as aref:
                await agate.execute(SMALL, ANALYST, plain, {"service": "assistant"})
            assert aref.value.decision.policy_id == INPUT_POLICY_ID
            return got, await agate.execute(SMALL, ANALYST, plain)

    actions, ran = asyncio.run(run())
    assert [a.name for a in actions] == ["transfer"]
    assert ran == "ran"


def test_items_that_never_settle_are_refused_as_contended(
    make_gate: Callable[..., Gate], audit: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No round left (MAX_ROUNDS reached): each item is refused and audited with its output."""
    monkeypatch.setattr("pygate._gate.MAX_ROUNDS", 0)
    gate = make_gate("assistant")
    decisions = gate.evaluate_many([(ASK, {"id": "c1"}), (ASK, {"id": "c2"})])
    assert [(d.allowed, d.fallback, d.policy_id, d.service, d.user_id) for d in decisions] == [
        (False, True, AUDIT_POLICY_ID, "assistant", "c1"),
        (False, True, AUDIT_POLICY_ID, "assistant", "c2"),
    ]
    assert "kept changing under concurrent requests" in decisions[0].reason
    records = audit.tail(2)
    assert [(r.user_id, r.output) for r in records] == [("c1", ASK), ("c2", ASK)]
    assert audit.quota_used([("c1", _today())]) == {("c1", _today()): 0}


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


class _Bad:
    def __init__(self) -> None:
        self.amount = float("nan")
        self.password = "hunter2"


def test_an_invalid_object_output_is_stored_masked_with_its_type(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    gate = make_gate("finance")
    decision = gate.evaluate(_Bad(), ANALYST)
    assert (decision.policy_id, decision.user_id) == (INPUT_POLICY_ID, "ana")
    stored = audit.tail(1)[0].output
    assert stored == repr({"type": "_Bad", "amount": float("nan"), "password": "***"})
    assert gate.evaluate(b"raw bytes", ANALYST).policy_id == INPUT_POLICY_ID
    assert audit.tail(1)[0].output == repr(b"raw bytes")


def test_an_oversize_batch_item_keeps_only_its_digest(opa: LocalOpa, audit: AuditLog) -> None:
    from pygate import Settings
    from pygate._input import digest_summary

    settings = Settings(service="finance", opa_url=opa.url, max_output_bytes=100)
    big = {"type": "text", "text": "x" * 200}
    with Gate(settings=settings, audit=audit) as gate:
        decisions = gate.evaluate_many([(SMALL, ANALYST), (big, ANALYST)])
    assert [(d.allowed, d.policy_id) for d in decisions] == [(True, None), (False, INPUT_POLICY_ID)]
    assert audit.tail(1)[0].output == digest_summary(big)


NEW_REV = "r20260102T030405.000006Z-abc1234-0123456789ab"
OLD_REV = "r20251201T000000.000000Z-abc1234-ba9876543210"


def test_a_rollback_refusal_keeps_who_when_and_which_revision(
    fake_opa: Callable[..., str], audit: AuditLog, caplog: pytest.LogCaptureFixture
) -> None:
    def served(revision: str) -> str:
        return fake_opa(
            body=_envelope(ALLOW, provenance={"bundles": {"b": {"revision": revision}}})
        )

    with Gate("finance", opa_url=served(NEW_REV), audit=audit) as gate:
        assert gate.evaluate(SMALL, ANALYST).allowed
    with Gate("finance", opa_url=served(OLD_REV), audit=audit) as gate:
        rolled = gate.evaluate(SMALL, ANALYST)
    assert (rolled.allowed, rolled.policy_id, rolled.fallback) == (False, "pygate.bundle", False)
    assert (rolled.service, rolled.user_id, rolled.bundle_revision) == ("finance", "ana", OLD_REV)
    assert rolled.latency_ms > 0  # the decision's own latency, kept on the refusal
    assert rolled.message == "The policy bundle was rolled back; no decision can be made with it."
    assert rolled.reason == (
        f"bundle revision {OLD_REV} is older than {NEW_REV}, which this deployment has "
        "already decided with (rollback refused)"
    )
    assert f"refusing: {rolled.reason}" in caplog.text
    record = audit.tail(1)[0]
    assert (record.policy_id, record.user_id, record.bundle_revision) == (
        "pygate.bundle", "ana", OLD_REV,
    )  # fmt: skip
