"""The audit record and verify, field by field (issue 18: faults mutation testing found unasserted).

Every stored field is read back, and ``verify`` is held to its exact answer: ``ok`` is
``False`` (not merely falsy), which record, which sequence range, which problem. SQLite only:
the backends share this code (``pygate.audit._base``, ``_verify``); tests/test_integrity.py runs
the attacks on PostgreSQL too.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pygate import AuditLog, Decision, Refusal, SqliteAuditLog
from pygate._models import CanonicalAction
from pygate.audit._base import (
    COLUMNS,
    GENESIS,
    _finite,
    anchor_message,
    canonical,
    today,
)
from tests.conftest import raw_sql

NOW = datetime(2025, 6, 30, 12, 0, 1, 123456, tzinfo=UTC)


def _refusal(pid: str) -> Refusal:
    return Refusal(policy_id=pid, reason=f"{pid} says no", action="log_refusal")


def _fill(log: AuditLog, n: int) -> list[Decision]:
    return [
        log.append(
            Decision(allowed=i % 2 == 0, reason=f"r{i}", user_id=f"u{i}", decided_at=NOW),
            {"i": i},
        )
        for i in range(1, n + 1)
    ]


def _closed(db: Path, n: int = 6) -> tuple[SqliteAuditLog, list[Decision]]:
    """A log with ``n`` records, closed (its checkpoint covers them all) and reopened."""
    log = SqliteAuditLog(db)
    written = _fill(log, n)
    log.close()
    return SqliteAuditLog(db), written


# --- what a record holds ---------------------------------------------------------------------


def test_every_field_of_a_decision_is_stored_and_read_back(audit: AuditLog) -> None:
    action = CanonicalAction(
        kind="tool_call", name="pay", arguments={"to": "x"}, source="pygate", path=[]
    )
    decision = Decision(
        allowed=False,
        reason="card 4111 1111 1111 1111 refused",
        policy_id="FIN-002",
        action="show_user_limit",
        refusals=[_refusal("FIN-002"), _refusal("FIN-004")],
        service="finance",
        user_id="u1",
        decision_id="dec-9",
        bundle_revision="rev-3",
        fallback=True,
        latency_ms=1.23456,
        decided_at=NOW,
        approval_id="ap1,ap2",
        approved_by="bob",
        actions=[action],
    )
    written = audit.append(decision, {"amount": 5, "password": "hunter2"})
    assert written.audit_id is not None
    assert written.decided_at == NOW
    [record] = audit.tail(1)
    assert record.seq == 1
    assert record.audit_id == written.audit_id
    assert record.ts == NOW
    assert (record.service, record.user_id) == ("finance", "u1")
    assert record.output == {"amount": 5, "password": "***"}
    assert record.allowed is False
    assert record.reason == "card *** refused"  # a reason may quote the output: masked too
    assert (record.policy_id, record.policy_ids) == ("FIN-002", ["FIN-002", "FIN-004"])
    assert (record.action, record.decision_id, record.bundle_revision) == (
        "show_user_limit", "dec-9", "rev-3",
    )  # fmt: skip
    assert record.fallback is True
    assert record.latency_ms == 1.235
    assert (record.approval_id, record.approved_by) == ("ap1,ap2", "bob")
    assert record.actions == [action.model_dump(mode="json")]
    assert record.prev_hash == GENESIS
    assert len(record.hash) == 64
    row = audit._select("WHERE seq = 1")[0]
    assert row["day"] == "2025-06-30"
    assert audit.verify().ok is True


def test_an_audit_id_given_is_kept_and_an_allow_without_actions_stores_none(
    audit: AuditLog,
) -> None:
    written = audit.append(Decision(allowed=True, audit_id="fixed-id"), "text")
    assert written.audit_id == "fixed-id"
    assert written.decided_at is not None
    [record] = audit.tail(1)
    assert (record.audit_id, record.output, record.actions) == ("fixed-id", "text", None)
    assert (record.allowed, record.fallback, record.policy_ids) == (True, False, [])


def test_non_finite_numbers_are_stored_by_name(audit: AuditLog) -> None:
    assert _finite({"a": [math.nan, (math.inf, -math.inf)], "b": 1.5}) == {
        "a": ["NaN", ["Infinity", "-Infinity"]],
        "b": 1.5,
    }
    audit.append(Decision(allowed=False), {"x": math.nan, "y": [math.inf, -math.inf]})
    assert audit.tail(1)[0].output == {"x": "NaN", "y": ["Infinity", "-Infinity"]}


def test_canonical_adds_a_generation_only_when_one_of_its_columns_is_set() -> None:
    row = {c: i for i, c in enumerate(COLUMNS)}
    assert json.loads(canonical(row)) == list(range(len(COLUMNS)))
    with_actions = json.loads(canonical({**row, "actions": "[1]"}))
    assert with_actions == [*range(len(COLUMNS)), None, None, "[1]"]
    with_approval = json.loads(canonical({**row, "approval_id": "a", "actions": None}))
    assert with_approval == [*range(len(COLUMNS)), "a", None]


def test_anchor_message_covers_the_previous_anchor_the_key_and_every_field() -> None:
    anchor = {"anchor_no": 1, "created_at": "t", "through_seq": 4, "through_hash": "h",
              "pruned": 4, "cutoff": "c", "key_id": "k1"}  # fmt: skip
    assert anchor_message("prev", anchor) == 'anchor|prev|k1|[1,"t",4,"h",4,"c"]'


def test_today_is_the_utc_date() -> None:
    assert today(datetime(2025, 1, 2, 23, 59, tzinfo=UTC)) == "2025-01-02"
    assert today() == datetime.now(UTC).date().isoformat()


def test_counts_usage_tail_and_summary(audit: AuditLog) -> None:
    day = datetime.now(UTC)
    for allowed, user, pid, when in [
        (True, "a", None, day),
        (True, "a", None, day),
        (True, "a", None, day - timedelta(days=1)),  # yesterday: not today's usage
        (False, "a", "P2", day),
        (True, "b", None, day),
        (False, "b", "P1", day),
        (False, "c", "P2", day),
        (False, "c", "P3", day),
    ]:
        refusals = [] if allowed else [_refusal(pid)]
        audit.append(
            Decision(
                allowed=allowed,
                user_id=user,
                policy_id=pid,
                refusals=refusals,
                decided_at=when,
                fallback=pid == "P3",
            ),
            {},
        )
    assert audit.count() == 8
    assert audit.usage_today("a") == 2
    assert audit.usage_today("a", day - timedelta(days=1)) == 1
    assert audit.usage_today("c") == 0
    assert [r.seq for r in audit.tail(3)] == [6, 7, 8]
    assert [r.seq for r in audit.records()] == list(range(1, 9))
    summary = audit.summary(top=2)
    assert (summary.total, summary.allowed, summary.refused, summary.fallback) == (8, 4, 4, 1)
    assert summary.refusal_rate == 0.5
    assert summary.top_policies == [("P2", 2), ("P1", 1)]  # by count, then by id
    assert audit.quota_used([("a", today()), ("zz", today()), ("a", today())]) == {
        ("a", today()): 2,
        ("zz", today()): 0,
    }


def test_an_empty_log_summary_and_verify(audit: AuditLog) -> None:
    summary = audit.summary()
    assert (summary.total, summary.refusal_rate, summary.top_policies) == (0, 0.0, [])
    result = audit.verify()
    assert (result.ok, result.checked, result.problem, result.checkpoint_seq) == (True, 0, "", 0)


# --- verify: the exact problem -----------------------------------------------------------------


def test_an_intact_log_verifies_against_its_checkpoint(tmp_path: Path) -> None:
    log, _ = _closed(tmp_path / "a.db")
    result = log.verify()
    assert result.ok is True
    assert (result.checked, result.seq, result.problem, result.missing) == (6, None, "", None)
    assert result.checkpoint_seq == 6
    assert result.issues == ()
    log.close()


def test_an_edited_record_is_named(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    log, written = _closed(db)
    raw_sql(str(db), "UPDATE decisions SET allowed = 1 WHERE seq = 3", guards=False)
    result = log.verify()
    assert result.ok is False
    assert (result.checked, result.seq, result.audit_id) == (3, 3, written[2].audit_id)
    assert result.problem.startswith("record content was edited (its hash does not verify")
    assert result.missing is None
    log.close()


def test_a_deleted_middle_record_names_the_missing_range(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    log, written = _closed(db)
    raw_sql(str(db), "DELETE FROM decisions WHERE seq IN (3, 4)", guards=False)
    result = log.verify()
    assert result.ok is False
    assert (result.checked, result.seq, result.audit_id) == (3, 5, written[4].audit_id)
    assert result.problem == "records 3..4 are missing"
    assert result.missing == (3, 4)
    log.close()


def test_a_deleted_record_with_a_relinked_successor_names_the_missing_range(
    tmp_path: Path,
) -> None:
    """The attacker deletes record 3 and points record 4 at record 2: only the keyed hash
    of record 4 can tell, and verify still names the gap."""
    db = tmp_path / "a.db"
    log, written = _closed(db)
    [two] = log._select("WHERE seq = 2")
    raw_sql(str(db), "DELETE FROM decisions WHERE seq = 3", guards=False)
    raw_sql(str(db), f"UPDATE decisions SET prev_hash = '{two['hash']}' WHERE seq = 4",
            guards=False)  # fmt: skip
    result = log.verify()
    assert result.ok is False
    assert (result.checked, result.seq, result.audit_id) == (3, 4, written[3].audit_id)
    assert result.problem == "records 3..3 are missing"
    assert result.missing == (3, 3)
    log.close()


def test_a_reordered_record_breaks_the_chain_where_it_now_stands(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    log, written = _closed(db)
    for sql in ("UPDATE decisions SET seq = 100 WHERE seq = 2",
                "UPDATE decisions SET seq = 2 WHERE seq = 3",
                "UPDATE decisions SET seq = 3 WHERE seq = 100"):  # fmt: skip
        raw_sql(str(db), sql, guards=False)
    result = log.verify()
    assert result.ok is False
    assert (result.checked, result.seq, result.audit_id) == (2, 2, written[2].audit_id)
    assert result.problem == ("chain broken: a record before it was deleted, inserted or reordered")
    assert result.missing is None
    log.close()


def test_a_record_under_an_unknown_key_is_named(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    log, written = _closed(db)
    raw_sql(str(db), "UPDATE decisions SET key_id = 'kforged' WHERE seq = 2", guards=False)
    result = log.verify()
    assert result.ok is False
    assert (result.seq, result.audit_id) == (2, written[1].audit_id)
    assert result.problem.startswith("record 2 names key 'kforged', which the keyring (")
    assert result.problem.endswith(") does not hold: written without the audit key")
    raw_sql(str(db), "UPDATE decisions SET key_id = NULL WHERE seq = 2", guards=False)
    assert log.verify().problem.startswith("record 2 names key None")
    log.close()


def test_records_without_a_checkpoint_are_reported(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    log = SqliteAuditLog(db)
    _fill(log, 2)
    log.integrity.checkpoint_path.unlink(missing_ok=True)
    result = log.verify()
    assert result.ok is False
    assert (result.checked, result.seq, result.missing) == (2, None, None)
    assert result.problem.startswith(f"no checkpoint at {log.integrity.checkpoint_path}: ")
    assert "records 1..2 cannot be checked for truncation" in result.problem
    log.close()


def test_the_last_records_deleted_name_the_range_and_the_checkpoint(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    log, _ = _closed(db)
    raw_sql(str(db), "DELETE FROM decisions WHERE seq > 4", guards=False)
    result = log.verify()
    assert result.ok is False
    assert (result.checked, result.seq, result.missing, result.checkpoint_seq) == (
        4, None, (5, 6), 6,
    )  # fmt: skip
    assert result.problem.startswith("records 5..6 are missing: the log ends at 4, the ")
    assert result.problem.endswith("vouches for 6 (the last records were deleted)")
    log.close()


def test_a_rewritten_checkpointed_head_is_named(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    log, _ = _closed(db)
    raw_sql(str(db), "UPDATE decisions SET hash = 'x' WHERE seq = 6", guards=False)
    result = log.verify()
    assert result.ok is False
    assert (result.checked, result.seq) == (6, 6)
    assert result.problem.startswith("record content was edited")
    log.close()


def test_an_edited_quota_counter_is_an_issue_of_an_intact_chain(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    log, _ = _closed(db)
    day = "2025-06-30"
    raw_sql(str(db), f"INSERT INTO quota_usage (user_id, day, used) VALUES ('u2', '{day}', 0)")
    raw_sql(str(db), f"INSERT INTO quota_usage (user_id, day, used) VALUES ('u4', '{day}', 1)")
    raw_sql(str(db), f"INSERT INTO quota_usage (user_id, day, used) VALUES ('u6', '{day}', 0)")
    result = log.verify()
    assert result.ok is False
    assert (result.checked, result.seq, result.audit_id, result.checkpoint_seq) == (
        6, None, None, 6,
    )  # fmt: skip
    assert result.problem == (
        f"quota counter of user 'u2' on {day} says 0, the chain holds 1 allowed decisions: "
        "the counter was edited"
    )
    assert result.issues == (
        f"quota counter of user 'u6' on {day} says 0, the chain holds 1 allowed decisions: "
        "the counter was edited",
    )
    # a failed checkpoint comparison keeps its own problem first, the counters as issues
    raw_sql(str(db), "DELETE FROM decisions WHERE seq > 4", guards=False)
    truncated = log.verify()
    assert truncated.ok is False
    assert (truncated.missing, truncated.checkpoint_seq) == ((5, 6), 6)
    assert truncated.problem.startswith("records 5..6 are missing")
    assert truncated.issues == (
        f"quota counter of user 'u2' on {day} says 0, the chain holds 1 allowed decisions: "
        "the counter was edited",
    )
    log.close()


# --- the keyring: seals and rotation -------------------------------------------------------


def test_a_seal_is_the_hmac_of_the_exact_message(audit: AuditLog) -> None:
    import hashlib
    import hmac

    integrity = audit.integrity
    when = datetime(2025, 1, 2, tzinfo=UTC)  # not JSON: sealed as its str()
    key_id, mac = integrity.seal("approvals", ["a1", 2, when, None])
    assert key_id == integrity.keyring.current
    message = f'approvals|{key_id}|["a1",2,"{when}",null]'
    secret = integrity.keyring.keys[key_id]
    assert mac == hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()
    assert integrity.check_seal("approvals", ["a1", 2, when, None], key_id, mac) is True
    assert integrity.check_seal("followups", ["a1", 2, when, None], key_id, mac) is False
    assert integrity.check_seal("approvals", ["a1", 3, when, None], key_id, mac) is False


def test_rotate_key_creates_then_appends_a_current_key(tmp_path: Path) -> None:
    import stat

    from pygate.audit._integrity import Keyring, rotate_key

    path = tmp_path / "keys" / "audit.key"
    first = rotate_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ring = Keyring.parse(path.read_text())
    assert (list(ring.keys), ring.current) == ([first], first)
    second = rotate_key(path)
    ring = Keyring.parse(path.read_text())
    assert (list(ring.keys), ring.current) == ([first, second], second)


# --- verify against the checkpoint: the cases the chain walk cannot see ------------------------


def test_a_forged_checkpoint_names_the_file_and_counts_the_walk(tmp_path: Path) -> None:
    log, _ = _closed(tmp_path / "a.db", 3)
    path = log.integrity.checkpoint_path
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "seq": 2}))  # edited: the MAC no longer matches
    result = log.verify()
    assert (result.ok, result.checked, result.seq, result.missing) == (False, 3, None, None)
    assert result.problem == (
        f"checkpoint {path} is not signed by a key of the keyring (forged or edited)"
    )
    log.close()


def test_records_after_a_checkpoint_of_the_empty_log_verify(tmp_path: Path) -> None:
    from pygate.audit._integrity import Integrity

    integrity = Integrity(str(tmp_path / "a.db"), checkpoint_every=0, checkpoint_seconds=0)
    log = SqliteAuditLog(tmp_path / "a.db", integrity=integrity)
    cp = log.checkpoint()
    assert cp is not None
    assert (cp.seq, cp.count) == (0, 0)
    _fill(log, 2)  # not due: the checkpoint still vouches for the empty log only
    stored = log.integrity.read_checkpoint()
    assert stored is not None
    assert stored.seq == 0
    result = log.verify()
    assert (result.ok, result.checked, result.problem, result.checkpoint_seq) == (True, 2, "", 0)
    log.close()


def test_a_log_replaced_by_another_chain_under_the_same_key_is_named(tmp_path: Path) -> None:
    from pygate.audit._integrity import Integrity

    def shared(db: Path) -> SqliteAuditLog:
        integrity = Integrity(
            str(db), key_file=tmp_path / "audit.key", checkpoint_dir=tmp_path / "state"
        )
        return SqliteAuditLog(db, integrity=integrity)

    first = shared(tmp_path / "a.db")
    _fill(first, 4)
    first.close()
    other = shared(tmp_path / "b.db")  # a different chain, same key and checkpoint folder
    _fill(other, 5)
    result = other.verify()
    cp = other.integrity.read_checkpoint()
    assert cp is not None
    assert cp.seq == 4  # the other chain never overwrote the evidence
    assert (result.ok, result.checked, result.seq, result.missing) == (False, 5, 4, None)
    assert result.checkpoint_seq == 4
    assert result.problem == (
        f"record 4 differs from the checkpoint of {cp.at}: the chain up to it was rewritten "
        "or replaced"
    )
    other.close()


def test_a_used_approval_restored_as_pending_is_an_issue(tmp_path: Path) -> None:
    from pygate.audit._approvals import Approvals
    from pygate.audit._base import Checked

    db = tmp_path / "a.db"
    log = SqliteAuditLog(db)
    approvals = Approvals(log)
    refusal = Refusal(policy_id="R", reason="review", action="require_review")
    refused = log.append(
        Decision(allowed=False, user_id="u1", refusals=[refusal], output_hash="h" * 64), {}
    )
    pending = approvals.request(refused, {})
    assert pending is not None
    [row] = log._select_raw("SELECT * FROM approvals")  # as pending, genuine seal
    approvals.approve(pending.approval_id, by="rita")
    [used] = log.append_checked(
        [Checked(Decision(allowed=True, user_id="u1", approval_id=pending.approval_id), {})]
    )
    assert used is not None
    assert log.verify().issues == ()
    sets = ", ".join(
        f"{c} = " + ("NULL" if row[c] is None else "'" + str(row[c]) + "'")
        for c in ("status", "expires_at", "decided_by", "decided_at", "note", "used_audit_id",
                  "key_id", "mac")
    )  # fmt: skip
    raw_sql(str(db), f"UPDATE approvals SET {sets}")
    result = log.verify()
    assert result.ok is False
    assert result.problem.startswith(
        f"approval {pending.approval_id} says pending but decision {used.audit_id} in the chain "
        "used it"
    )
    log.close()


def test_a_deleted_latest_anchor_with_nothing_after_it_is_named(tmp_path: Path) -> None:
    from pygate.audit._integrity import Integrity
    from pygate.audit._retention import prune

    db = tmp_path / "a.db"
    integrity = Integrity(str(db), checkpoint_every=0, checkpoint_seconds=0)
    log = SqliteAuditLog(db, integrity=integrity)
    for i in range(4):
        log.append(Decision(allowed=True, decided_at=NOW - timedelta(days=10 - i)), {})
    prune(log, 8, now=NOW)  # records 1..2 go: anchor 1 (checkpointed at seq 4)
    log.append(Decision(allowed=True, decided_at=NOW - timedelta(days=5)), {})  # not due
    prune(log, 1, now=NOW)  # records 3..5 go: anchor 2, the log is empty
    assert [a["anchor_no"] for a in log.anchors()] == [1, 2]
    cp = log.integrity.read_checkpoint()
    assert cp is not None
    assert (cp.seq, cp.anchor_no, cp.count) == (5, 2, 0)
    raw_sql(str(db), "DELETE FROM chain_anchor WHERE anchor_no = 2", guards=False)
    result = log.verify()
    assert (result.ok, result.checked, result.seq, result.checkpoint_seq) == (False, 0, None, 5)
    assert result.problem == (
        f"retention anchor 2, recorded in the checkpoint of {cp.at}, is missing or differs"
    )
    log.close()
