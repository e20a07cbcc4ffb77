"""Attacks on the audit record by someone who can write the database, and nothing else.

Each attack is run on SQLite and PostgreSQL (``audit_db``): the attacker edits the database
behind the library's back (``raw_sql``, triggers disabled where needed) but holds neither the
audit key nor the checkpoint folder. ``verify`` must say what was done and to which records.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from pygate import ApprovalError, AuditLog, Decision, Gate, LocalOpa, open_audit
from pygate.audit._base import GENESIS, anchor_message, canonical
from pygate.audit._integrity import Integrity, Keyring, rotate_key
from pygate.audit._retention import prune
from pygate.cli._main import main
from tests.conftest import raw_sql

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)


def _fill(log: AuditLog, n: int, start: int = 0, days_back: int = 0) -> list[str]:
    ids = []
    for i in range(start, start + n):
        d = log.append(
            Decision(
                allowed=i % 2 == 0,
                reason=f"r{i}",
                user_id=f"u{i % 3}",
                decided_at=NOW - timedelta(days=days_back, minutes=n - i),
            ),
            {"i": i},
        )
        assert d.audit_id
        ids.append(d.audit_id)
    return ids


def _written(audit_db: str, n: int = 6) -> AuditLog:
    """A log with ``n`` records, closed (so a checkpoint covers all of them), reopened."""
    log = open_audit(audit_db)
    _fill(log, n)
    log.close()
    return open_audit(audit_db)


# --- the attacks ---------------------------------------------------------------------------------
def test_truncation_of_the_last_records_is_detected(audit_db: str) -> None:
    log = _written(audit_db)
    assert log.verify().ok
    raw_sql(audit_db, "DELETE FROM decisions WHERE seq > 4", guards=False)
    result = log.verify()
    assert result.ok is False
    assert result.missing == (5, 6)
    assert "records 5..6 are missing" in result.problem
    assert "the last records were deleted" in result.problem
    # The next writer must not paper over it with a fresh checkpoint.
    _fill(log, 3, start=10)
    log.close()
    again = open_audit(audit_db)
    assert again.verify().ok is False
    again.close()


def test_deleting_every_record_is_detected(audit_db: str) -> None:
    log = _written(audit_db)
    raw_sql(audit_db, "DELETE FROM decisions", guards=False)
    result = log.verify()
    assert result.ok is False
    assert result.missing == (1, 6)
    assert "every record is missing" in result.problem
    log.close()


def test_a_dropped_table_is_detected(audit_db: str) -> None:
    log = _written(audit_db)
    log.close()
    raw_sql(audit_db, "DROP TABLE decisions CASCADE" if "://" in audit_db else
            "DROP TABLE decisions")  # fmt: skip
    reopened = open_audit(audit_db)  # recreates an empty table
    result = reopened.verify()
    assert result.ok is False
    assert result.missing == (1, 6)
    assert "every record is missing" in result.problem
    reopened.close()


@pytest.mark.parametrize("how", ["sha256", "own-key"])
def test_a_chain_rebuilt_without_the_key_is_detected(audit_db: str, how: str) -> None:
    """Turn a refusal into an allow and recompute every hash, as the old unkeyed chain allowed."""
    log = _written(audit_db)
    rows = log._select("ORDER BY seq")
    prev = GENESIS
    for row in rows:
        if row["seq"] == 2:
            row["allowed"] = 1
        key_id = row["key_id"] if how == "sha256" else "kattacker"
        message = f"{prev}|{key_id}|{canonical(row)}"
        digest = (
            hashlib.sha256(message.encode()).hexdigest()
            if how == "sha256"
            else hmac.new(b"x" * 32, message.encode(), hashlib.sha256).hexdigest()
        )
        raw_sql(
            audit_db,
            f"UPDATE decisions SET allowed = {row['allowed']}, key_id = '{key_id}', "
            f"prev_hash = '{prev}', hash = '{digest}' WHERE seq = {row['seq']}",
            guards=False,
        )
        prev = digest
    result = log.verify()
    assert result.ok is False
    assert result.seq == 1
    if how == "sha256":
        assert result.problem.startswith("record content was edited")
    else:
        assert "names key 'kattacker'" in result.problem
    log.close()


def test_a_forged_retention_anchor_is_detected(audit_db: str) -> None:
    """Write an anchor "covering" records 1..4 without the key, then delete them."""
    log = _written(audit_db)
    [row4] = log._select("WHERE seq = 4")
    anchor = {"anchor_no": 1, "created_at": NOW.isoformat(), "through_seq": 4,
              "through_hash": row4["hash"], "pruned": 4, "cutoff": NOW.isoformat(),
              "key_id": row4["key_id"]}  # fmt: skip
    message = anchor_message(GENESIS, anchor)
    anchor["prev_anchor_hash"] = GENESIS
    anchor["anchor_hash"] = hashlib.sha256(message.encode()).hexdigest()
    columns = ", ".join(anchor)
    values = ", ".join(repr(v) if isinstance(v, int) else f"'{v}'" for v in anchor.values())
    raw_sql(audit_db, f"INSERT INTO chain_anchor ({columns}) VALUES ({values})", guards=False)
    raw_sql(audit_db, "DELETE FROM decisions WHERE seq <= 4", guards=False)
    result = log.verify()
    assert result.ok is False
    assert (result.checked, result.seq, result.audit_id, result.missing) == (0, None, None, None)
    assert "retention anchor 1 (covering records up to 4)" in result.problem
    assert "forged without the audit key" in result.problem
    log.close()


def test_a_deleted_anchor_after_a_real_prune_is_detected(audit_db: str) -> None:
    log = open_audit(audit_db)
    _fill(log, 4, days_back=90)
    _fill(log, 2, start=4)
    assert prune(log, 30, now=NOW)["pruned"] == 4
    assert log.verify().ok
    raw_sql(audit_db, "DELETE FROM chain_anchor", guards=False)
    result = log.verify()
    assert result.ok is False
    log.close()


def test_a_legitimate_prune_still_verifies_against_the_checkpoint(audit_db: str) -> None:
    log = open_audit(audit_db)
    _fill(log, 3, days_back=90)
    log.close()  # checkpoint at record 3
    log = open_audit(audit_db)
    assert prune(log, 30, now=NOW)["pruned"] == 3
    result = log.verify()
    assert result.ok, result
    assert result.checkpoint_seq == 3
    _fill(log, 2, start=3)
    log.close()
    again = open_audit(audit_db)
    assert again.verify().ok
    again.close()


def test_a_deleted_checkpoint_is_reported(audit_db: str) -> None:
    log = _written(audit_db)
    log.integrity.checkpoint_path.unlink()
    result = log.verify()
    assert result.ok is False
    assert "no checkpoint at" in result.problem
    log.close()


def test_a_forged_checkpoint_is_reported(audit_db: str) -> None:
    log = _written(audit_db)
    path = log.integrity.checkpoint_path
    doc = json.loads(path.read_text())
    doc["seq"] = 2
    path.write_text(json.dumps(doc))
    result = log.verify()
    assert result.ok is False
    assert "not signed by a key of the keyring" in result.problem
    log.close()


def test_without_the_key_nothing_verifies(audit_db: str, tmp_path: Path) -> None:
    log = _written(audit_db)
    log.close()
    other = tmp_path / "other.key"
    other.write_text("kother " + "ab" * 32 + "\n")
    stranger = open_audit(audit_db, key_file=other)
    result = stranger.verify()
    assert result.ok is False
    assert "names key" in result.problem
    stranger.close()


# --- the key -----------------------------------------------------------------------------------
def test_default_key_is_private_and_beside_the_database(tmp_path: Path) -> None:
    log = open_audit(tmp_path / "db" / "audit.db")
    _fill(log, 1)
    log.close()
    state = tmp_path / "db" / "audit.db.state"
    key = state / "audit.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    assert (state / "checkpoint.json").is_file()
    assert Keyring.parse(key.read_text()).current == log.integrity.keyring.current


def test_key_rotation_keeps_old_records_verifiable(audit_db: str, tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "audit.key"
    log = open_audit(audit_db, key_file=key_file)
    _fill(log, 3)
    first = log.integrity.keyring.current
    log.close()
    second = rotate_key(key_file)
    assert second != first
    log = open_audit(audit_db, key_file=key_file)
    _fill(log, 2, start=3)
    assert [r["key_id"] for r in log._select("ORDER BY seq")] == [first] * 3 + [second] * 2
    assert log.verify().ok
    log.close()


def test_keyring_rejects_malformed_lines() -> None:
    from pygate import ConfigError

    for text in ("k1", "k1 zz", "k1 abcd", f"k1 {'ab' * 16}\nk1 {'cd' * 16}", "k-1 " + "ab" * 16):
        with pytest.raises(ConfigError):
            Keyring.parse(text)
    ring = Keyring.parse(f"# audit keys\nk1 {'ab' * 16}\nk2:{'cd' * 16}  # current\n")
    assert (list(ring.keys), ring.current) == (["k1", "k2"], "k2")


def test_a_reader_does_not_create_a_missing_key(tmp_path: Path) -> None:
    from pygate import AuditError

    with pytest.raises(AuditError, match=r"key file .* is missing"):
        Integrity(str(tmp_path / "a.db"), create=False)
    assert not (tmp_path / "a.db.state").exists()


def test_checkpoints_follow_the_interval(tmp_path: Path) -> None:
    log = open_audit(tmp_path / "a.db", checkpoint_every=3, checkpoint_seconds=0)
    seqs = []
    for i in range(7):
        _fill(log, 1, start=i)
        cp = log.integrity.read_checkpoint()
        seqs.append(cp.seq if cp else 0)
    assert seqs == [1, 1, 1, 4, 4, 4, 7]  # the first commit, then every third
    log.close()


def test_verify_cli_reports_the_missing_range(
    audit_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _written(audit_db)
    log.close()
    raw_sql(audit_db, "DELETE FROM decisions WHERE seq > 3", guards=False)
    monkeypatch.setenv("PYGATE_AUDIT_DB", audit_db)
    done = CliRunner().invoke(main, ["audit", "verify", "--json"])
    assert done.exit_code == 1, done.output
    body = json.loads(done.output)
    assert body["ok"] is False
    assert body["missing"] == [4, 6]
    assert "records 4..6 are missing" in body["problem"]
    human = CliRunner().invoke(main, ["audit", "verify"])
    assert human.exit_code == 1
    assert "records 4..6 are missing" in human.output


# --- what changes a decision: approvals and the quota counter ----------------------------------
TOOL = {"type": "tool_call", "action": "delete_records", "table": "users"}
ANA = {"id": "ana", "role": "analyst"}


@pytest.fixture
def audit(audit_any: AuditLog) -> AuditLog:
    """``make_gate``'s audit log, on each backend."""
    return audit_any


def _sql_value(v: object) -> str:
    if v is None:
        return "NULL"
    return str(v) if isinstance(v, int) else "'" + str(v).replace("'", "''") + "'"


def test_an_inserted_approval_is_not_honoured_and_is_reported(
    make_gate: Callable[..., Gate], audit: AuditLog, audit_db: str
) -> None:
    gate = make_gate("assistant")
    refused = gate.evaluate(TOOL, ANA)
    assert not refused.allowed
    assert refused.output_hash
    assert gate.approvals is not None
    [pending] = gate.approvals.find("pending")
    # The attacker approves it in the database: "decided_by ceo", no key.
    raw_sql(
        audit_db,
        "UPDATE approvals SET status = 'approved', decided_by = 'ceo', "
        f"decided_at = '{NOW.isoformat()}' WHERE approval_id = '{pending.approval_id}'",
    )
    # ... and inserts a second, fresh approved row for the same output.
    row = {"approval_id": "forged1", "audit_id": refused.audit_id, "created_at": NOW.isoformat(),
           "expires_at": "2999-01-01T00:00:00+00:00", "service": "assistant", "user_id": "ana",
           "output": json.dumps(TOOL), "output_hash": refused.output_hash,
           "policy_ids": json.dumps(["AST-002"]), "reason": "r", "status": "approved",
           "decided_by": "ceo", "decided_at": NOW.isoformat()}  # fmt: skip
    raw_sql(audit_db, f"INSERT INTO approvals ({', '.join(row)}) "
            f"VALUES ({', '.join(_sql_value(v) for v in row.values())})")  # fmt: skip
    assert gate.approvals.for_context("ana") == []
    # A forged *pending* request: an approver cannot launder it by approving it either.
    pending_row = {**row, "approval_id": "forged2", "status": "pending", "decided_by": None,
                   "decided_at": None}  # fmt: skip
    raw_sql(audit_db, f"INSERT INTO approvals ({', '.join(pending_row)}) "
            f"VALUES ({', '.join(_sql_value(v) for v in pending_row.values())})")  # fmt: skip
    with pytest.raises(ApprovalError, match="not sealed by the audit key"):
        gate.approvals.approve("forged2", by="rita")
    again = gate.evaluate(TOOL, ANA)
    assert not again.allowed
    assert again.policy_id == "AST-002"
    result = audit.verify()
    assert result.ok is False
    reported = [result.problem, *result.issues]
    assert any(f"approval {pending.approval_id}" in p and "not sealed" in p for p in reported)
    assert any("approval forged1" in p and "'ceo'" in p for p in reported)


def test_a_used_approval_set_back_to_approved_is_not_honoured(
    make_gate: Callable[..., Gate], audit: AuditLog, audit_db: str
) -> None:
    """Replay: restore the row as it was when approved, genuine seal included."""
    gate = make_gate("assistant")
    gate.evaluate(TOOL, ANA)
    assert gate.approvals is not None
    [pending] = gate.approvals.find("pending")
    gate.approvals.approve(pending.approval_id, by="rita")
    [approved] = audit._select_raw(
        "SELECT * FROM approvals WHERE approval_id = ?", (pending.approval_id,)
    )
    assert gate.evaluate(TOOL, ANA).allowed
    assert not gate.evaluate(TOOL, ANA).allowed
    sets = ", ".join(f"{c} = {_sql_value(approved[c])}" for c in
                     ("status", "used_audit_id", "key_id", "mac"))  # fmt: skip
    raw_sql(audit_db, f"UPDATE approvals SET {sets} WHERE approval_id = '{pending.approval_id}'")
    assert audit.sealed("approvals", approved)
    assert gate.approvals.for_context("ana") == []
    assert not gate.evaluate(TOOL, ANA).allowed
    result = audit.verify()
    assert result.ok is False
    assert "was set back, not honoured" in " ".join([result.problem, *result.issues])


def test_using_an_approval_reseals_it_and_an_edited_one_is_never_used(
    make_gate: Callable[..., Gate], audit: AuditLog, audit_db: str
) -> None:
    """Merge of i13a and i13b: the single-use claim re-seals the row it uses up, and uses
    up only the sealed row it read (an edit after the gate read it makes the claim fail)."""
    from pygate.audit._base import Checked, today

    gate = make_gate("assistant")
    refused = gate.evaluate(TOOL, ANA)
    assert gate.approvals is not None
    [pending] = gate.approvals.find("pending")
    assert pending.review_output == TOOL  # the approver's unmasked view, outside the seal
    gate.approvals.approve(pending.approval_id, by="rita")
    [approved] = audit._select_raw(
        "SELECT * FROM approvals WHERE approval_id = ?", (pending.approval_id,)
    )
    assert approved["review_output"] is None  # cleared on decision, the row still sealed
    assert audit.sealed("approvals", approved)
    # An allow naming the approval, written after someone edited the row without the key.
    raw_sql(audit_db, f"UPDATE approvals SET note = 'edited' "
            f"WHERE approval_id = '{pending.approval_id}'")  # fmt: skip
    allow = refused.model_copy(
        update={
            "allowed": True,
            "refusals": [],
            "approval_id": pending.approval_id,
            "audit_id": None,
        }
    )
    quota = ("ana", today(), 50)  # as the gate asks: the usage OPA saw, far from the quota
    before = audit.count()
    assert audit.append_checked([Checked(allow, TOOL, quota)]) == [None]
    assert audit.count() == before  # nothing written, the claim failed
    [edited] = audit._select_raw(
        "SELECT * FROM approvals WHERE approval_id = ?", (pending.approval_id,)
    )
    assert edited["status"] == "approved"
    # Restored as pygate sealed it: now the same allow uses it up, re-sealed as used.
    raw_sql(audit_db, f"UPDATE approvals SET note = NULL "
            f"WHERE approval_id = '{pending.approval_id}'")  # fmt: skip
    [written] = audit.append_checked([Checked(allow, TOOL, quota)])
    assert written is not None
    [used] = audit._select_raw(
        "SELECT * FROM approvals WHERE approval_id = ?", (pending.approval_id,)
    )
    assert (used["status"], used["used_audit_id"]) == ("used", written.audit_id)
    assert audit.sealed("approvals", used)
    assert used["mac"] != approved["mac"]
    assert audit.append_checked([Checked(allow, TOOL, quota)]) == [None]  # single use
    assert audit.verify().ok


def test_an_edited_quota_counter_is_detected_and_not_honoured(
    make_gate: Callable[..., Gate], audit: AuditLog, audit_db: str
) -> None:
    gate = make_gate("assistant")
    user = {"id": "quota-user", "role": "analyst"}
    ask = {"type": "tool_call", "action": "explain"}
    assert all(gate.evaluate(ask, user).allowed for _ in range(100))
    assert gate.evaluate(ask, user).policy_id == "AST-003"
    assert audit.verify().ok
    raw_sql(audit_db, "UPDATE quota_usage SET used = 0")
    result = audit.verify()
    assert result.ok is False
    assert "quota counter of user 'quota-user'" in result.problem
    assert "says 0, the chain holds 100 allowed decisions" in result.problem
    assert gate.evaluate(ask, user).policy_id == "AST-003"  # not honoured
    raw_sql(audit_db, "DELETE FROM quota_usage")
    assert gate.evaluate(ask, user).policy_id == "AST-003"


def test_an_unsealed_followup_is_reported(audit_db: str, audit: AuditLog) -> None:
    from pygate.audit._analytics import record_followup

    [refused] = _fill(audit, 1, start=1)  # odd i: a refusal
    record_followup(audit, refused, "retry")
    assert audit.verify().ok
    raw_sql(audit_db, "INSERT INTO followups (followup_id, audit_id, kind, ts) "
            f"VALUES ('f1', '{refused}', 'leave', '{NOW.isoformat()}')")  # fmt: skip
    result = audit.verify()
    assert result.ok is False
    assert "follow-up f1" in result.problem


# --- no rollback ---------------------------------------------------------------------------------
NEW_REV = "r20260102T030405.000006Z-abc1234-0123456789ab"
OLD_REV = "r20251201T000000.000000Z-abc1234-ba9876543210"


def _opa_with_revision(policy_copy: Path, tmp_path: Path, revision: str) -> LocalOpa:
    folder = tmp_path / revision[:9]
    shutil.copytree(policy_copy, folder)
    (folder / ".manifest").write_text(json.dumps({"revision": revision, "roots": ["pygate"]}))
    opa = LocalOpa(folder, supervise=False)
    opa.start()
    return opa


def test_a_rolled_back_bundle_is_refused(
    audit_db: str, audit: AuditLog, policy_copy: Path, tmp_path: Path
) -> None:
    """The sidecar was given an older (validly built) bundle: its decisions are refused."""
    new = _opa_with_revision(policy_copy, tmp_path, NEW_REV)
    old = _opa_with_revision(policy_copy, tmp_path, OLD_REV)
    ask = {"type": "tool_call", "action": "explain"}
    user = {"id": "ana", "role": "analyst"}
    try:
        with Gate("assistant", opa_url=new.url, audit=audit) as gate:
            first = gate.evaluate(ask, user)
            assert first.allowed
            assert first.bundle_revision == NEW_REV
        # Another gate on the same store (a restarted service), now served the old bundle.
        with Gate("assistant", opa_url=old.url, audit=audit) as gate:
            rolled = gate.evaluate(ask, user)
            [batch] = gate.evaluate_many([(ask, user)])
    finally:
        new.stop()
        old.stop()
    for refused in (rolled, batch):
        assert not refused.allowed
        assert refused.policy_id == "pygate.bundle"
        assert OLD_REV in refused.reason
        assert NEW_REV in refused.reason
        assert refused.bundle_revision == OLD_REV
    assert audit.bundle_high() == ("20260102T030405.000006Z", NEW_REV)
    last = audit.tail(1)[0]
    assert (last.allowed, last.policy_id) == (False, "pygate.bundle")
    assert audit.verify().ok
    assert audit.usage_today("ana") == 1  # the refused ones gave their quota units back


def test_a_newer_bundle_moves_the_mark_and_revisions_sort_by_build_time() -> None:
    from pygate.policy._bundle import revision_stamp, revision_time

    at = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert revision_time(at) == "20260102T030405.000006Z"
    assert revision_stamp(NEW_REV) == "20260102T030405.000006Z"
    assert revision_stamp(f"{OLD_REV},{NEW_REV}") == "20260102T030405.000006Z"
    for unordered in (None, "", "synthetic", "abc1234-0123456789ab", "r2026-x"):
        assert revision_stamp(unordered) is None
    assert revision_stamp(OLD_REV) < revision_stamp(NEW_REV)  # type: ignore[operator]


def test_a_reader_refuses_a_missing_log_and_creates_nothing(tmp_path: Path) -> None:
    from pygate import AuditError

    missing = tmp_path / "typo" / "audit.db"
    with pytest.raises(AuditError, match="does not exist"):
        open_audit(missing, create=False)
    assert not (tmp_path / "typo").exists()
    log = open_audit(tmp_path / "a.db")
    _fill(log, 2)
    log.close()
    (tmp_path / "a.db.state" / "audit.key").unlink()
    with pytest.raises(AuditError, match=r"key file .* is missing"):
        open_audit(tmp_path / "a.db", create=False)
    assert not (tmp_path / "a.db.state" / "audit.key").exists()


def test_rotate_key_and_checkpoint_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "a.db"
    monkeypatch.setenv("PYGATE_AUDIT_DB", str(db))
    monkeypatch.setenv("PYGATE_AUDIT_CHECKPOINT_EVERY", "1000")
    monkeypatch.setenv("PYGATE_AUDIT_CHECKPOINT_SECONDS", "0")
    log = open_audit(db, checkpoint_every=1000, checkpoint_seconds=0)
    _fill(log, 3)  # the first commit checkpoints (record 1); the rest wait
    assert log.integrity.read_checkpoint().seq == 1  # type: ignore[union-attr]
    runner = CliRunner()
    done = runner.invoke(main, ["audit", "checkpoint", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["seq"] == 3
    rotated = runner.invoke(main, ["audit", "rotate-key", "--json"])
    assert rotated.exit_code == 0, rotated.output
    new_id = json.loads(rotated.output)["key_id"]
    log.close()
    log = open_audit(db)
    assert log.integrity.keyring.current == new_id
    _fill(log, 1, start=3)
    assert log.verify().ok
    log.close()
    raw_sql(str(db), "DELETE FROM decisions WHERE seq = 4", guards=False)
    refused = runner.invoke(main, ["audit", "checkpoint"])
    assert refused.exit_code == 1
    assert "no longer holds record 4" in refused.output


def test_a_unit_reserved_before_midnight_and_recorded_after_is_not_a_counter_edit(
    audit: AuditLog,
) -> None:
    """Reserved on the 30th, answered at 00:00:01 on the 1st: the record counts on the 1st,
    whose counter never saw that unit; verify must not call that an edit."""
    assert audit.reserve("u", "2025-06-30") == 0  # A, just before midnight
    assert audit.reserve("u", "2025-07-01") == 0  # B, just after
    for second in (1, 2):  # both recorded on the 1st
        at = datetime(2025, 7, 1, 0, 0, second, tzinfo=UTC)
        audit.append(Decision(allowed=True, reason="allowed", user_id="u", decided_at=at), {})
    checked = audit.verify()
    assert checked.ok, checked


def test_an_unreadable_revision_mark_refuses(
    audit_db: str, audit: AuditLog, policy_copy: Path, tmp_path: Path
) -> None:
    """Without the store's word on the newest revision, a stamped decision is refused."""
    opa = _opa_with_revision(policy_copy, tmp_path, NEW_REV)
    raw_sql(audit_db, "DROP TABLE bundle_high")
    try:
        with Gate("assistant", opa_url=opa.url, audit=audit) as gate:
            decision = gate.evaluate({"type": "tool_call", "action": "explain"}, ANA)
    finally:
        opa.stop()
    assert not decision.allowed
    assert decision.policy_id == "pygate.bundle"
    assert decision.reason.startswith(f"cannot check bundle revision {NEW_REV}")
    assert decision.message == "The policy version could not be confirmed as current; refused."
