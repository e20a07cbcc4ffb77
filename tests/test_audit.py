"""The audit log: append-only, hash-chained, and `verify` names the tampered record.

Every test here runs against both backends, SQLite and PostgreSQL (see ``store``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pygate import (
    AuditError,
    AuditLog,
    Decision,
    Gate,
    LocalOpa,
    PostgresAuditLog,
    SqliteAuditLog,
    open_audit,
)


class Store:
    """One audit database: open handles on it, and edit it behind the library's back."""

    def __init__(self, opener: Callable[[], AuditLog], raw: Callable[[str, tuple[Any, ...]],
                 list[tuple[Any, ...]]], kind: str) -> None:  # fmt: skip
        self.open = opener
        self.raw = raw
        self.kind = kind


def _sqlite_store(path: Path) -> Store:
    def raw(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("DROP TRIGGER IF EXISTS decisions_no_update")
        db.execute("DROP TRIGGER IF EXISTS decisions_no_delete")
        rows = db.execute(sql, params).fetchall()
        db.close()
        return rows

    return Store(lambda: SqliteAuditLog(path), raw, "sqlite")


def _postgres_store(url: str) -> Store:
    def raw(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
            conn.execute("ALTER TABLE decisions DISABLE TRIGGER USER")
            cur = conn.execute(sql.replace("?", "%s"), params)
            rows = cur.fetchall() if cur.description else []
            conn.execute("ALTER TABLE decisions ENABLE TRIGGER USER")
        return rows

    return Store(lambda: PostgresAuditLog(url), raw, "postgres")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        return _sqlite_store(tmp_path / "a.db")
    return _postgres_store(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def log(store: Store) -> Iterator[AuditLog]:
    handle = store.open()
    yield handle
    handle.close()


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


def test_postgres_refuses_update_delete_and_truncate(pg_schema_url: str) -> None:
    log = PostgresAuditLog(pg_schema_url)
    _fill(log, 2)
    with psycopg.connect(pg_schema_url, autocommit=True) as conn:
        for sql in ("UPDATE decisions SET allowed = 1", "DELETE FROM decisions",
                    "TRUNCATE decisions"):  # fmt: skip
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(sql)
    assert log.verify().ok
    assert log.count() == 2
    log.close()


def test_intact_chain_verifies(log: AuditLog) -> None:
    _fill(log, 20)
    result = log.verify()
    assert result.ok
    assert result.checked == 20


def test_edit_is_detected_and_named(store: Store, log: AuditLog) -> None:
    ids = _fill(log, 10)
    store.raw("UPDATE decisions SET allowed = 1 WHERE seq = 4", ())
    result = log.verify()
    assert result.ok is False
    assert (result.seq, result.audit_id) == (4, ids[3])
    assert "edited" in result.problem


def test_deletion_is_detected_and_named(store: Store, log: AuditLog) -> None:
    ids = _fill(log, 10)
    store.raw("DELETE FROM decisions WHERE seq = 6", ())
    result = log.verify()
    assert result.ok is False
    assert result.seq == 7
    assert result.audit_id == ids[6]
    assert "6..6 are missing" in result.problem


def test_reorder_is_detected(store: Store, log: AuditLog) -> None:
    _fill(log, 5)
    rows = store.raw("SELECT * FROM decisions WHERE seq IN (2, 3) ORDER BY seq", ())
    store.raw("DELETE FROM decisions WHERE seq IN (2, 3)", ())
    cols = len(rows[0])
    for seq, row in ((2, rows[1]), (3, rows[0])):
        store.raw(f"INSERT INTO decisions VALUES ({','.join('?' * cols)})", (seq, *row[1:]))
    result = log.verify()
    assert result.ok is False
    assert result.seq == 2


def test_records_round_trip(log: AuditLog) -> None:
    decision = Decision(allowed=False, reason="no", policy_id="FIN-002", service="finance",
                        user_id="u", bundle_revision="abc-123", latency_ms=1.23456)  # fmt: skip
    written = log.append(decision, {"type": "transfer", "api_key": "k", "amount": 5})
    (record,) = list(log.records())
    assert record.audit_id == written.audit_id
    assert record.output == {"type": "transfer", "api_key": "***", "amount": 5}
    assert (record.allowed, record.policy_id, record.bundle_revision) == (False, "FIN-002",
                                                                          "abc-123")  # fmt: skip
    assert log.tail(1)[0].audit_id == written.audit_id
    assert log.summary().top_policies == [("FIN-002", 1)]


def test_usage_today_counts_only_this_users_allowed_decisions(log: AuditLog) -> None:
    for allowed, user in [(True, "a"), (True, "a"), (False, "a"), (True, "b")]:
        log.append(Decision(allowed=allowed, user_id=user), {})
    assert log.usage_today("a") == 2
    assert log.usage_today("b") == 1
    assert log.usage_today("c") == 0


def test_two_writers_share_one_chain(store: Store) -> None:
    a, b = store.open(), store.open()
    for i in range(10):
        (a if i % 2 else b).append(Decision(allowed=True, user_id="u"), {"i": i})
    assert a.count() == 10
    assert a.verify().ok
    a.close()
    b.close()


def test_concurrent_writers_keep_one_chain(store: Store) -> None:
    handles = [store.open() for _ in range(4)]

    def write(handle: AuditLog) -> None:
        for i in range(25):
            handle.append(Decision(allowed=True, user_id="u"), {"i": i})

    threads = [threading.Thread(target=write, args=(h,)) for h in handles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert handles[0].count() == 100
    assert handles[0].verify().ok
    for h in handles:
        h.close()


def test_reserve_and_release_count_per_user_and_day(log: AuditLog) -> None:
    assert [log.reserve("u", "2030-01-01") for _ in range(3)] == [0, 1, 2]
    assert log.reserve("other", "2030-01-01") == 0
    assert log.reserve("u", "2030-01-02") == 0
    log.release("u", "2030-01-01")
    assert log.reserve("u", "2030-01-01") == 2
    log.release("nobody", "2030-01-01")  # nothing reserved: nothing goes negative
    assert log.reserve("nobody", "2030-01-01") == 0


def test_open_audit_picks_the_backend_from_the_url(tmp_path: Path, pg_schema_url: str) -> None:
    sqlite_log = open_audit(f"sqlite:///{tmp_path / 'a.db'}")
    assert isinstance(sqlite_log, SqliteAuditLog)
    sqlite_log.close()
    pg_log = open_audit(pg_schema_url)
    assert isinstance(pg_log, PostgresAuditLog)
    assert "pygate:***@" in repr(pg_log)
    pg_log.close()


def test_unreachable_postgres_is_an_audit_error_without_the_password(dead_url: str) -> None:
    port = dead_url.rsplit(":", 1)[1]
    with pytest.raises(AuditError) as info:
        PostgresAuditLog(f"postgresql://pygate:s3cret@127.0.0.1:{port}/pygate")
    assert "s3cret" not in str(info.value)
    assert "pygate:***@127.0.0.1" in str(info.value)


def test_a_dropped_postgres_connection_fails_once_then_reconnects(pg_schema_url: str) -> None:
    log = PostgresAuditLog(pg_schema_url)
    log.append(Decision(allowed=True, user_id="u"), {})
    assert log._conn is not None
    pid = log._conn.info.backend_pid
    with psycopg.connect(pg_schema_url, autocommit=True) as admin:
        # what a database restart or a network cut does to the gate's connection
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(AuditError, match="cannot write audit records"):
        log.append(Decision(allowed=True, user_id="u"), {})
    log.append(Decision(allowed=True, user_id="u"), {})  # a fresh connection
    assert log.count() == 2
    assert log.verify().ok
    log.close()


def test_a_gate_on_an_unreachable_postgres_fails_to_start_clearly(
    opa: LocalOpa, dead_url: str
) -> None:
    port = dead_url.rsplit(":", 1)[1]
    with pytest.raises(AuditError, match=r"cannot open the audit log in postgresql://u:\*\*\*@"):
        Gate("finance", opa_url=opa.url, audit=f"postgresql://u:p@127.0.0.1:{port}/db")


# Released together by a file appearing, not by a start time: the clocks of the test and of
# its child processes need not agree (`pytest --clock-at` moves only the test's).
_OPENER = """
import os, sys, time
from pygate import SqliteAuditLog
while not os.path.exists(sys.argv[2]):
    time.sleep(0.002)
SqliteAuditLog(sys.argv[1]).close()
"""


def test_processes_opening_a_new_log_at_once_all_succeed(tmp_path: Path) -> None:
    """Regression: the schema upgrade read the columns outside its transaction, so two
    processes creating one log at once could both ALTER (duplicate column name).

    A race, so the test makes it likely rather than certain: 6 rounds of 10 processes
    released at the same instant failed on the old code (seen in CI and here)."""
    import subprocess
    import sys
    import time

    for round_no in range(6):
        path = str(tmp_path / f"new-{round_no}.db")
        go = tmp_path / f"go-{round_no}"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _OPENER, path, str(go)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(10)
        ]
        time.sleep(1.0)  # let every process import pygate and wait at the barrier
        go.touch()
        results = [p.communicate(timeout=60) for p in procs]
        assert [p.returncode for p in procs] == [0] * 10, [err for _, err in results]


def test_non_finite_numbers_are_stored_as_strict_json(audit_any: AuditLog) -> None:
    """Regression: NaN/Infinity were stored as bare NaN, which PostgreSQL's json cast rejects,
    so analytics over such a record failed there."""
    import json

    from pygate.audit import _analytics as analytics

    audit_any.append(
        Decision(allowed=False, reason="r", policy_id="P", user_id="u"),
        {"type": "x", "score": float("nan"), "hi": float("inf"), "lo": [float("-inf")]},
    )
    stored = audit_any.tail(1)[0].output
    assert stored == {"type": "x", "score": "NaN", "hi": "Infinity", "lo": ["-Infinity"]}
    json.loads(json.dumps(stored), parse_constant=lambda c: pytest.fail(f"bare {c} stored"))
    assert analytics.refused_outputs(audit_any)["refused"] == 1
    assert audit_any.verify().ok
