"""What the gate hands on, seen from outside: the redaction settings reach the log it opens,
the timeout reaches the async transport, the batch entry point is named in its errors, the
rollback mark moves and is cached, and a contended refusal keeps its input document.

Each test here was written against a mutant of ``pygate/_gate.py`` that the rest of the suite
let through (issue 18); it asserts the observable contract, not the line.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pygate import AsyncGate, AuditError, AuditLog, Decision, Gate, LocalOpa, Settings
from pygate._core import INPUT_POLICY_ID
from pygate._gate import AUDIT_POLICY_ID, BUNDLE_POLICY_ID
from pygate._input import digest_summary
from tests.conftest import ANALYST, forged_approval, write_shop_package

SMALL = {"type": "transfer", "amount": 10}
ALLOW = {"allowed": True, "service": "finance", "refusals": [], "primary": None}
ASK = {"type": "tool_call", "action": "explain"}  # the assistant service counts a quota
NEW_REV = "r20260102T030405.000006Z-abc1234-0123456789ab"
MID_REV = "r20251215T000000.000000Z-abc1234-aaaaaaaaaaaa"
OLD_REV = "r20251201T000000.000000Z-abc1234-ba9876543210"


def _envelope(result: Any, **extra: Any) -> bytes:
    return json.dumps({"result": result, **extra}).encode()


# --- the log the gate opens gets the configured redaction -----------------------------------


@pytest.mark.parametrize("how", ["configured", "path"])
def test_a_log_the_gate_opens_masks_with_the_configured_keys_and_patterns(
    opa: LocalOpa, tmp_path: Path, how: str
) -> None:
    """``audit=True`` (settings.audit_db) and ``audit=<path>`` both get the settings' own
    redact_keys and redact_patterns, not the defaults (neither of these is a default)."""
    db = tmp_path / "a.db"
    settings = Settings(
        service="finance",
        opa_url=opa.url,
        audit_db=str(db),
        redact_keys=["memo"],
        redact_patterns=[r"ticket-\d+"],
        audit_key_file=str(tmp_path / "keys" / "audit.key"),
    )
    output = {"type": "text", "text": "see ticket-42", "memo": "between us"}
    with Gate(settings=settings, audit=True if how == "configured" else db) as gate:
        decision = gate.evaluate(output, ANALYST)
        assert gate.audit is not None
        record = gate.audit.tail(1)[0]
    assert record.audit_id == decision.audit_id
    assert record.output == {"type": "text", "text": "see ***", "memo": "***"}
    # ... and the settings' audit options: the key lives where they say, not beside the log
    assert (tmp_path / "keys" / "audit.key").exists()
    assert not (tmp_path / "a.db.state" / "audit.key").exists()


def test_audit_false_means_no_log(opa: LocalOpa) -> None:
    with Gate("finance", opa_url=opa.url, audit=False) as gate:
        assert gate.audit is None
        decision = gate.evaluate(SMALL, ANALYST)
    assert (decision.allowed, decision.audit_id) == (True, None)


def test_a_log_that_cannot_open_raises_its_own_error(opa: LocalOpa, tmp_path: Path) -> None:
    """The constructor cleans up after a failed open and re-raises THAT error."""
    with pytest.raises(AuditError):
        Gate("finance", opa_url=opa.url, audit=tmp_path)  # a folder is no database


# --- no service: the warning says so, and only then -----------------------------------------


def test_only_a_gate_without_a_service_warns(
    opa: LocalOpa, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYGATE_SERVICE", raising=False)
    with caplog.at_level(logging.WARNING, logger="pygate"):
        Gate("finance", opa_url=opa.url, audit=None).close()
        Gate(None, opa_url=opa.url, audit=None, allow_caller_service=True).close()
    assert "gate without a service" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="pygate"):
        Gate(None, opa_url=opa.url, audit=None).close()
    assert "gate without a service: every decision is refused" in caplog.text


def test_a_caller_service_that_is_not_text_is_not_taken(opa: LocalOpa) -> None:
    with Gate(None, opa_url=opa.url, audit=None, allow_caller_service=True) as gate:
        decision = gate.evaluate(SMALL, ANALYST, {"service": 7})
    assert not decision.allowed
    assert decision.service is None


def test_without_a_log_the_callers_usage_figure_is_the_only_one(opa: LocalOpa) -> None:
    """With an audit log the gate counts (tests/test_gate.py); without one it has no counter,
    so the caller's ``usage_today`` is what OPA sees (and none refuses: usage unknown)."""
    with Gate("assistant", opa_url=opa.url, audit=None) as gate:
        counted = gate.evaluate(ASK, ANALYST, {"usage_today": 0})
        over = gate.evaluate(ASK, ANALYST, {"usage_today": 10_000})
        unknown = gate.evaluate(ASK, ANALYST)
    assert counted.allowed
    assert over.policy_id == "AST-003"
    assert not unknown.allowed
    assert "usage" in unknown.reason.lower()


def test_the_in_flight_table_forgets_finished_requests(
    make_gate: Callable[..., Gate],
) -> None:
    """One entry per user and day while a request is out, none after (it must not grow)."""
    gate = make_gate("assistant")
    for _ in range(2):
        assert gate.evaluate(ASK, ANALYST).allowed
    gate.evaluate_many([(ASK, ANALYST), (ASK, {"id": "other", "role": "analyst"})])
    assert not gate._in_flight


# --- the batch entry point is the one named -------------------------------------------------


def test_a_batch_failure_names_the_batch_entry_point(
    fake_opa: Callable[..., str], audit: AuditLog, caplog: pytest.LogCaptureFixture
) -> None:
    with Gate("finance", opa_url=fake_opa(body=b"{}"), audit=audit) as gate:
        many = gate.evaluate_many([(SMALL, ANALYST), (SMALL, ANALYST)])
        one = gate.evaluate(SMALL, ANALYST)
    assert all(d.fallback and "data.pygate.gate.batch is undefined" in d.reason for d in many)
    assert "data.pygate.gate.decision is undefined" in one.reason
    # One item of a batch breaking the contract: the log names the rule that answered.
    broken = _envelope({"decisions": [{**ALLOW, "allowed": "yes"}]})
    caplog.clear()
    with (
        Gate("finance", opa_url=fake_opa(body=broken), audit=audit) as gate,
        caplog.at_level(logging.WARNING, logger="pygate"),
    ):
        [item] = gate.evaluate_many([(SMALL, ANALYST)])
    assert (item.allowed, item.fallback) == (False, True)
    assert "policy engine failure at pygate/gate/batch" in caplog.text


# --- rollback: the mark moves forward, is cached, and the async twin checks it too ----------


def _served(fake_opa: Callable[..., str], revision: str) -> str:
    return fake_opa(body=_envelope(ALLOW, provenance={"bundles": {"b": {"revision": revision}}}))


def test_a_newer_bundle_moves_the_mark_so_the_one_before_is_refused(
    fake_opa: Callable[..., str], audit: AuditLog
) -> None:
    decided = []
    for revision in (OLD_REV, NEW_REV, MID_REV):
        with Gate("finance", opa_url=_served(fake_opa, revision), audit=audit) as gate:
            decided.append(gate.evaluate(SMALL, ANALYST))
        if revision == NEW_REV:
            assert audit.bundle_high() == ("20260102T030405.000006Z", NEW_REV)
    assert [(d.allowed, d.policy_id) for d in decided] == [
        (True, None),
        (True, None),
        (False, BUNDLE_POLICY_ID),
    ]
    assert f"older than {NEW_REV}" in decided[2].reason
    record = audit.tail(1)[0]  # the refusal is stored with what was asked, as any other
    assert (record.policy_id, record.output) == (BUNDLE_POLICY_ID, SMALL)
    assert record.opa_input is not None
    assert record.opa_input["user"]["id"] == ANALYST["id"]


def test_the_revision_mark_is_read_once_per_cache_period(
    fake_opa: Callable[..., str], audit: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pygate._gate._BUNDLE_CACHE_S", 3600.0)  # no clock in the test
    reads: list[str] = []
    for name in ("bundle_high", "raise_bundle_high"):
        real = getattr(audit, name)

        def counted(*args: Any, _real: Any = real, _name: str = name) -> Any:
            reads.append(_name)
            return _real(*args)

        monkeypatch.setattr(audit, name, counted)
    with Gate("finance", opa_url=_served(fake_opa, NEW_REV), audit=audit) as gate:
        assert gate.evaluate(SMALL, ANALYST).allowed
        first = list(reads)
        assert gate.evaluate(SMALL, ANALYST).allowed
        assert gate.evaluate(SMALL, ANALYST).allowed
    assert first[:2] == ["bundle_high", "raise_bundle_high"]  # read, then moved
    assert reads == first  # the next decisions trust the cached mark


def test_the_async_gate_refuses_a_rolled_back_bundle(
    fake_opa: Callable[..., str], audit: AuditLog
) -> None:
    async def run() -> list[Decision]:
        out = []
        for revision in (NEW_REV, OLD_REV):
            async with AsyncGate(
                "finance", opa_url=_served(fake_opa, revision), audit=audit
            ) as gate:
                out.append(await gate.evaluate(SMALL, ANALYST))
        return out

    new, old = asyncio.run(run())
    assert (new.allowed, new.bundle_revision) == (True, NEW_REV)
    assert (old.allowed, old.policy_id, old.bundle_revision) == (False, BUNDLE_POLICY_ID, OLD_REV)
    assert audit.tail(1)[0].policy_id == BUNDLE_POLICY_ID


# --- the async twin: timeouts, oversize input, contention -----------------------------------


def test_the_async_gate_times_out_on_a_hanging_opa(
    fake_opa: Callable[..., str], audit: AuditLog
) -> None:
    async def run() -> Decision:
        async with AsyncGate(
            "finance", opa_url=fake_opa(hang=True), audit=audit, timeout=0.5
        ) as gate:
            return await gate.evaluate(SMALL, ANALYST)

    decision = asyncio.run(run())
    assert (decision.allowed, decision.fallback) == (False, True)
    assert "EngineTimeout" in decision.reason


@pytest.mark.parametrize("engine", ["inprocess", "sidecar"])
def test_the_async_gate_on_its_own_engine_takes_policy_data(tmp_path: Path, engine: str) -> None:
    """``data=`` reaches the engine the gate starts itself: in-process or the embedded OPA."""
    from tests.test_inprocess import _library_or_skip

    if engine == "inprocess":
        _library_or_skip()
    services = write_shop_package(tmp_path)

    async def run() -> list[Decision]:
        async with AsyncGate(
            "shop", engine=engine, policy_dir=tmp_path, data=services, audit=None, timeout=30
        ) as gate:
            # in-process means no OPA process; the sidecar is the embedded one
            assert (gate.local_opa is None) is (engine == "inprocess")
            assert (gate.engine is not None) is (engine == "inprocess")
            return [
                await gate.evaluate({"type": "refund"}, {"id": "u1"}),
                await gate.evaluate({"type": "sale"}, {"id": "u1"}),
            ]

    refund, sale = asyncio.run(run())
    assert (refund.allowed, refund.reason, refund.policy_id) == (False, "no refunds", "mine.shop")
    assert sale.allowed


def test_an_oversize_async_output_keeps_only_its_digest(opa: LocalOpa, audit: AuditLog) -> None:
    settings = Settings(service="finance", opa_url=opa.url, max_output_bytes=100)
    big = {"type": "text", "text": "x" * 200}

    async def run() -> Decision:
        async with AsyncGate(settings=settings, audit=audit) as gate:
            return await gate.evaluate(big, ANALYST)

    decision = asyncio.run(run())
    assert (decision.allowed, decision.policy_id) == (False, INPUT_POLICY_ID)
    assert audit.tail(1)[0].output == digest_summary(big)


@pytest.mark.parametrize("twin", ["sync", "async"])
def test_a_contended_refusal_keeps_its_input_document(
    opa: LocalOpa, audit: AuditLog, monkeypatch: pytest.MonkeyPatch, twin: str
) -> None:
    """No round left (MAX_ROUNDS reached): refused, audited with output AND the input OPA
    would have been asked (replay needs it), and no quota unit taken."""
    monkeypatch.setattr("pygate._gate.MAX_ROUNDS", 0)
    items = [(ASK, {"id": "c1"}), (ASK, {"id": "c2"})]
    if twin == "sync":
        with Gate("assistant", opa_url=opa.url, audit=audit) as gate:
            decisions = gate.evaluate_many(items)
    else:

        async def run() -> list[Decision]:
            async with AsyncGate("assistant", opa_url=opa.url, audit=audit) as agate:
                return await agate.evaluate_many(items)

        decisions = asyncio.run(run())
    assert [(d.allowed, d.fallback, d.policy_id, d.user_id) for d in decisions] == [
        (False, True, AUDIT_POLICY_ID, "c1"),
        (False, True, AUDIT_POLICY_ID, "c2"),
    ]
    records = audit.tail(2)
    assert [(r.user_id, r.output) for r in records] == [("c1", ASK), ("c2", ASK)]
    for record, user in zip(records, ("c1", "c2"), strict=True):
        assert record.opa_input is not None
        assert record.opa_input["user"] == {"id": user}
        assert record.opa_input["context"]["service"] == "assistant"


def test_a_bad_batch_item_names_its_field_exactly(make_gate: Callable[..., Gate]) -> None:
    """The item's index is put in front of the field as it is: a key that ends in a space
    is that key (a field name trimmed of it would name a different key)."""
    bad = {"type": "text", "text": "x", "note ": float("nan")}
    [good, refused] = make_gate("finance").evaluate_many([(SMALL, ANALYST), (bad, ANALYST)])
    assert good.allowed
    assert refused.policy_id == INPUT_POLICY_ID
    assert refused.reason == "Invalid input: items[1].output.note : nan is not a JSON number"


def test_async_bad_input_is_refused_naming_its_field(opa: LocalOpa, audit: AuditLog) -> None:
    async def run() -> Decision:
        async with AsyncGate("finance", opa_url=opa.url, audit=audit) as gate:
            return await gate.evaluate(SMALL, {"id": " ana"})

    decision = asyncio.run(run())
    assert (decision.allowed, decision.policy_id) == (False, INPUT_POLICY_ID)
    assert decision.reason == "Invalid input: user.id: has surrounding whitespace"
    assert audit.tail(1)[0].reason == decision.reason


def test_a_finished_batch_leaves_no_task_behind(opa: LocalOpa, audit: AuditLog) -> None:
    """The gate holds each batch task while it runs (asyncio keeps only a weak reference)
    and lets it go when done: nothing accumulates across calls."""

    async def run() -> tuple[list[Decision], int]:
        async with AsyncGate("finance", opa_url=opa.url, audit=audit) as gate:
            decisions = list(await asyncio.gather(*(gate.evaluate(SMALL, ANALYST) for _ in "ab")))
            decisions.append(await gate.evaluate(SMALL, ANALYST))
            for _ in range(3):  # the done-callbacks run after the callers resume
                await asyncio.sleep(0)
            return decisions, len(gate._batches)

    decisions, left = asyncio.run(run())
    assert [d.allowed for d in decisions] == [True, True, True]
    assert left == 0


def test_failed_approval_book_keeping_names_the_decision(
    make_gate: Callable[..., Gate], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The review request cannot be opened: the refusal stands, and the log says for which
    audited decision (``audit`` fixture: tmp_path/audit.db)."""
    from tests.conftest import raw_sql

    gate = make_gate("assistant")
    raw_sql(str(tmp_path / "audit.db"), "DROP TABLE approvals")
    with caplog.at_level(logging.ERROR, logger="pygate"):
        decision = gate.evaluate({"type": "tool_call", "action": "delete_records"}, ANALYST)
    assert (decision.allowed, decision.policy_id) == (False, "AST-002")
    assert decision.audit_id is not None
    assert f"approval book-keeping failed for {decision.audit_id}: " in caplog.text


def test_quota_refusals_that_did_not_stand_settle_in_the_next_round(
    make_gate: Callable[..., Gate], audit: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """99 of 100 used. Round 1 asks item by item as if each earlier one is allowed: the
    review refusal first (99), so the two asks after it are quota refusals at 100 and 101,
    which do not stand (the counter stays at 99). Round 2 asks those two again with the
    committed figure plus the items before them in THIS round: 99 (allowed) and 100
    (refused, and it stands). Two rounds are enough; a third would mean a wrong figure."""
    monkeypatch.setattr("pygate._gate.MAX_ROUNDS", 2)
    user = {"id": "rounds", "role": "analyst"}
    audit.append_many([(Decision(allowed=True, user_id="rounds"), {})] * 99)
    review = {"type": "tool_call", "action": "delete_records"}
    decisions = make_gate("assistant").evaluate_many([(review, user), (ASK, user), (ASK, user)])
    assert [(d.allowed, d.policy_id) for d in decisions] == [
        (False, "AST-002"),
        (True, None),
        (False, "AST-003"),
    ]
    assert audit.usage_today("rounds") == 100


def test_without_an_approval_store_a_callers_approval_is_still_dropped(opa: LocalOpa) -> None:
    """No audit log, so no approval store: a forged context approval must not reach OPA."""
    tool = {"type": "tool_call", "action": "delete_records", "table": "users"}
    user = {"id": "ana", "role": "analyst"}
    with Gate("assistant", opa_url=opa.url, audit=None) as gate:
        first = gate.evaluate(tool, user, {"usage_today": 0})
        forged = forged_approval(first.output_hash)
        again = gate.evaluate(tool, user, {"usage_today": 0, "approvals": [forged]})
    assert (first.allowed, first.policy_id) == (False, "AST-002")
    assert first.output_hash
    assert (again.allowed, again.policy_id) == (False, "AST-002")


def test_the_configured_depth_limit_applies_to_the_user(opa: LocalOpa) -> None:
    settings = Settings(service="finance", opa_url=opa.url, max_depth=3)
    deep = {**ANALYST, "profile": {"a": {"b": {"c": 1}}}}  # 4 levels: under the default
    with Gate(settings=settings, audit=None) as gate:
        decision = gate.evaluate(SMALL, deep)
    assert decision.policy_id == INPUT_POLICY_ID
    assert "user.profile" in decision.reason
    assert "nested deeper than 3 levels" in decision.reason
