"""The audit log: append-only, hash-chained, and `verify` names the tampered record."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pygate import AuditLog, Decision, SqliteAuditLog


def _fill(log: AuditLog, n: int) -> list[str]:
    ids = []
    for i in range(n):
        d = log.append(
            Decision(allowed=i % 2 == 0, reason="r", service="finance", user_id=f"u{i}"),
            {"type": "transfer", "amount": i},
        )
        assert d.audit_id is not None
        ids.append(d.audit_id)
    return ids


def _raw(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TRIGGER decisions_no_update")
    db.execute("DROP TRIGGER decisions_no_delete")
    return db


def test_library_cannot_update_or_delete(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "a.db")
    _fill(log, 2)
    db = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE decisions SET allowed = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM decisions")
    assert log.verify().ok
    assert log.count() == 2


def test_intact_chain_verifies(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "a.db")
    _fill(log, 20)
    result = log.verify()
    assert result.ok
    assert result.checked == 20


def test_edit_is_detected_and_named(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "a.db")
    ids = _fill(log, 10)
    _raw(log.path).execute("UPDATE decisions SET allowed = 1 WHERE seq = 4")
    result = log.verify()
    assert not result.ok
    assert (result.seq, result.audit_id) == (4, ids[3])
    assert "edited" in result.problem


def test_deletion_is_detected_and_named(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "a.db")
    ids = _fill(log, 10)
    _raw(log.path).execute("DELETE FROM decisions WHERE seq = 6")
    result = log.verify()
    assert not result.ok
    assert result.seq == 7
    assert result.audit_id == ids[6]
    assert "6..6 are missing" in result.problem


def test_reorder_is_detected(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "a.db")
    _fill(log, 5)
    db = _raw(log.path)
    rows = db.execute("SELECT * FROM decisions WHERE seq IN (2, 3) ORDER BY seq").fetchall()
    db.execute("DELETE FROM decisions WHERE seq IN (2, 3)")
    cols = len(rows[0])
    for seq, row in ((2, rows[1]), (3, rows[0])):
        db.execute(f"INSERT INTO decisions VALUES ({','.join('?' * cols)})", (seq, *row[1:]))
    result = log.verify()
    assert not result.ok
    assert result.seq == 2


def test_usage_today_counts_only_this_users_allowed_decisions(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "a.db")
    for allowed, user in [(True, "a"), (True, "a"), (False, "a"), (True, "b")]:
        log.append(Decision(allowed=allowed, user_id=user), {})
    assert log.usage_today("a") == 2
    assert log.usage_today("b") == 1
    assert log.usage_today("c") == 0


def test_two_writers_share_one_chain(tmp_path: Path) -> None:
    a, b = SqliteAuditLog(tmp_path / "a.db"), SqliteAuditLog(tmp_path / "a.db")
    for i in range(10):
        (a if i % 2 else b).append(Decision(allowed=True, user_id="u"), {"i": i})
    assert a.count() == 10
    assert a.verify().ok
