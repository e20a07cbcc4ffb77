"""The SQLite audit backend: the embedded default, one file, shareable by processes.

Durability: WAL with ``synchronous=FULL``; a record is committed before ``append`` returns.
Append-only: triggers refuse UPDATE and DELETE on ``decisions``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pygate._audit._base import COLUMNS, DEFAULT_REDACT_KEYS, GENESIS, AuditLog, chain_hash
from pygate._errors import AuditError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    audit_id TEXT NOT NULL UNIQUE,
    ts TEXT NOT NULL,
    day TEXT NOT NULL,
    service TEXT,
    user_id TEXT,
    output TEXT NOT NULL,
    allowed INTEGER NOT NULL,
    reason TEXT NOT NULL,
    policy_id TEXT,
    policy_ids TEXT NOT NULL,
    action TEXT,
    decision_id TEXT,
    bundle_revision TEXT,
    fallback INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_usage ON decisions(user_id, day, allowed);
CREATE TRIGGER IF NOT EXISTS decisions_no_update BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS decisions_no_delete BEFORE DELETE ON decisions
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS quota_usage (
    user_id TEXT NOT NULL,
    day TEXT NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (user_id, day)
);
"""

_INSERT = (
    f"INSERT INTO decisions ({', '.join(COLUMNS)}, prev_hash, hash) "
    f"VALUES ({', '.join('?' * (len(COLUMNS) + 2))})"
)


# Run inside BEGIN IMMEDIATE: the increment and its result are atomic across processes.
_RESERVE = (
    "INSERT INTO quota_usage (user_id, day, used) VALUES (?, ?, 1) "
    "ON CONFLICT (user_id, day) DO UPDATE SET used = used + 1 RETURNING used"
)
_RELEASE = "UPDATE quota_usage SET used = max(used - 1, 0) WHERE user_id = ? AND day = ?"


class SqliteAuditLog(AuditLog):
    """SQLite audit log. Thread-safe; several processes may share one file.

    Args:
        path: the database file (created with its folder when missing).
        redact_keys: keys whose values are masked in the stored output.
    """

    def __init__(self, path: str | Path, redact_keys: Iterable[str] = DEFAULT_REDACT_KEYS) -> None:
        super().__init__(redact_keys)
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise AuditError(f"cannot open audit log {self.path}: {exc}") from exc

    def __repr__(self) -> str:
        return f"SqliteAuditLog({str(self.path)!r})"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _abort(self) -> None:
        """Roll back whatever is open; a closed or broken connection has nothing to undo."""
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _insert(self, rows: list[dict[str, Any]], releases: list[tuple[str, str]]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                last = self._db.execute(
                    "SELECT hash FROM decisions ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                prev = last[0] if last else GENESIS
                params = []
                for row in rows:
                    digest = chain_hash(prev, row)
                    params.append((*(row[c] for c in COLUMNS), prev, digest))
                    prev = digest
                self._db.executemany(_INSERT, params)
                self._db.executemany(_RELEASE, releases)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._abort()
                raise AuditError(f"cannot write audit records to {self.path}: {exc}") from exc

    def reserve(self, user_id: str, day: str) -> int:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                rows = self._db.execute(_RESERVE, (user_id, day)).fetchall()
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._abort()
                raise AuditError(f"cannot reserve quota in {self.path}: {exc}") from exc
        return int(rows[0][0]) - 1

    def _select_raw(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            try:
                cursor = self._db.execute(sql, params)
            except sqlite3.Error as exc:
                raise AuditError(f"cannot read {self.path}: {exc}") from exc
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    def _select(self, sql_tail: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return self._select_raw(f"SELECT * FROM decisions {sql_tail}", params)

    def _scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        with self._lock:
            try:
                row = self._db.execute(sql, params).fetchone()
            except sqlite3.Error as exc:
                raise AuditError(f"cannot read {self.path}: {exc}") from exc
        return row[0] if row else None
