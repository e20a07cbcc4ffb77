"""The SQLite audit backend: the embedded default, one file, shareable by processes.

Durability: WAL; every transaction that holds a record commits with ``synchronous=FULL``
(the WAL is fsynced) before ``append`` returns. Concurrent writes share transactions
(group commit, ``_group_commit``), so N decisions in flight cost one fsync, not N.
Quota reservations alone commit with ``synchronous=NORMAL``: they are visible to every
process at once (the quota stays exact) and become durable with the next record's fsync,
which covers all earlier WAL frames. A crash can only lose a reservation whose record was
never written, i.e. a decision that never returned.
Append-only: triggers refuse UPDATE and DELETE on ``decisions``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pygate._errors import AuditError
from pygate.audit._base import (
    ADDED_COLUMNS,
    DEFAULT_AUDIT_TIMEOUT,
    DEFAULT_REDACT_KEYS,
    DEFAULT_REDACT_PATTERNS,
    EXTENSION_SCHEMA,
    GENESIS,
    STORED_COLUMNS,
    AuditLog,
    Check,
    canonical,
)
from pygate.audit._group_commit import GroupCommit
from pygate.audit._integrity import Integrity

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
    hash TEXT NOT NULL,
    key_id TEXT
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
    f"INSERT INTO decisions ({', '.join(STORED_COLUMNS)}, prev_hash, hash) "
    f"VALUES ({', '.join('?' * (len(STORED_COLUMNS) + 2))})"
)

# Retention is the one sanctioned deletion: the trigger is dropped and re-created inside the
# same transaction that writes the chain_anchor checkpoint, so nothing else can slip through.
_NO_DELETE = (
    "CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
)
_ANCHOR_GUARDS = tuple(
    f"CREATE TRIGGER IF NOT EXISTS chain_anchor_no_{op.lower()} BEFORE {op} ON chain_anchor "
    "BEGIN SELECT RAISE(ABORT, 'retention anchors are append-only'); END"
    for op in ("UPDATE", "DELETE")
)


# Run inside BEGIN IMMEDIATE: the increment and its result are atomic across processes.
# Takes n units at once; the caller hands out used-n .. used-1 in order.
# The counter never goes below the allowed decisions the chain holds for that user and day:
# a counter reset or deleted behind pygate's back is not honoured (``verify`` reports it).
_RESERVE = (
    "INSERT INTO quota_usage (user_id, day, used) VALUES (?1, ?2, (SELECT count(*) FROM "
    "decisions WHERE user_id = ?1 AND day = ?2 AND allowed = 1) + ?3) "
    "ON CONFLICT (user_id, day) DO UPDATE SET used = max(used + ?3, excluded.used) "
    "RETURNING used"
)


@dataclass
class _Reserve:
    keys: list[tuple[str, str]]


@dataclass
class _Append:
    rows: list[tuple[dict[str, Any], str]]  # (row, canonical body)
    releases: list[tuple[str, str]] = field(default_factory=list)
    checks: list[list[Check]] = field(default_factory=list)  # per row, may be empty


def _not_a_lock_timeout(exc: Exception) -> bool:
    """A batch that timed out on another connection's lock fails as a whole, at once."""
    return "locked" not in str(exc) and "busy" not in str(exc)


_RELEASE = "UPDATE quota_usage SET used = max(used - 1, 0) WHERE user_id = ? AND day = ?"


class SqliteAuditLog(AuditLog):
    """SQLite audit log. Thread-safe; several processes may share one file.

    Args:
        path: the database file (created with its folder when missing).
        redact_keys: keys whose values are masked in the stored output.
        redact_patterns: regexes whose matches are masked inside any string of the output.
        integrity: the audit key and checkpoint store (default: ``PATH.state/`` beside it).
        timeout: seconds a write waits for another connection's lock (SQLite's busy
            timeout) before it fails and the decision is refused.
    """

    def __init__(
        self,
        path: str | Path,
        redact_keys: Iterable[str] = DEFAULT_REDACT_KEYS,
        redact_patterns: Iterable[str] = DEFAULT_REDACT_PATTERNS,
        integrity: Integrity | None = None,
        *,
        timeout: float = DEFAULT_AUDIT_TIMEOUT,
    ) -> None:
        super().__init__(redact_keys, redact_patterns, integrity, target=str(path))
        self.path = Path(path)
        self.timeout = timeout
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=timeout
            )
            self._setup()
            # Reads go through their own connection: in WAL mode a reader sees the last
            # commit without waiting for the writer, so a decision's reads (quota, approvals)
            # never queue behind another batch's fsync. Every read runs outside any write
            # transaction (``_lock`` is not re-entrant), so it saw committed data before too.
            self._reader = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=timeout
            )
        except sqlite3.Error as exc:
            raise AuditError(f"cannot open audit log {self.path}: {exc}") from exc
        self._read_lock = threading.Lock()
        self._commit: GroupCommit[_Reserve | _Append] = GroupCommit(
            self._execute_batch, isolate=_not_a_lock_timeout
        )

    def _setup(self) -> None:
        # Several processes opening one log at once can get "database is locked" here
        # without SQLite's busy wait (seen once under heavy load while another process
        # was committing); the set-up is idempotent, so it is retried for a bounded time.
        deadline = time.monotonic() + 30
        pause = 0.005
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                # Cleared values (an approver's unmasked copy once decided) are overwritten
                # on disk, not left in free pages.
                self._db.execute("PRAGMA secure_delete=ON")
                self._synchronous = "FULL"
                self._db.executescript(_SCHEMA)
                self._extend()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.2)

    def __repr__(self) -> str:
        return f"SqliteAuditLog({str(self.path)!r})"

    def close(self) -> None:
        self._close_checkpoint()
        self._commit.close()
        with self._lock:
            self._db.close()
        with self._read_lock:
            self._reader.close()

    def _abort(self) -> None:
        """Roll back whatever is open; a closed or broken connection has nothing to undo."""
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _insert(
        self,
        rows: list[dict[str, Any]],
        releases: list[tuple[str, str]],
        checks: list[list[Check]] | None = None,
    ) -> list[int]:
        skipped: list[int] = self._commit.run(
            _Append([(r, canonical(r)) for r in rows], releases, checks or [])
        )
        return skipped

    async def _ainsert(
        self,
        rows: list[dict[str, Any]],
        releases: list[tuple[str, str]],
        checks: list[list[Check]] | None = None,
    ) -> list[int]:
        op = _Append([(r, canonical(r)) for r in rows], releases, checks or [])
        skipped: list[int] = await asyncio.wrap_future(self._commit.submit(op))
        return skipped

    def _checks_hold(self, checks: list[Check]) -> bool:
        """Run one row's checks in a savepoint; undo them and say so when one fails."""
        if not checks:
            return True
        self._db.execute("SAVEPOINT pygate_checks")
        for sql, params, must_change in checks:
            if self._db.execute(sql, params).rowcount != 1 and must_change:
                self._db.execute("ROLLBACK TO pygate_checks")
                self._db.execute("RELEASE pygate_checks")
                return False
        self._db.execute("RELEASE pygate_checks")
        return True

    def _extend(self) -> None:
        """Add the extension tables and the appended hashed columns (idempotent)."""
        # Read the columns inside the write transaction: several processes may open a new
        # log at once, and one that read them before another's ALTER would add a duplicate.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for statement in (*EXTENSION_SCHEMA, *_ANCHOR_GUARDS):
                self._db.execute(statement)
            for table, columns in ADDED_COLUMNS.items():
                have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
                for column in columns:
                    if column not in have:
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")
            self._db.execute("COMMIT")
        except sqlite3.Error:
            self._abort()
            raise
        self.extensions = True

    def _execute(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for sql, params in statements:
                    self._db.execute(sql, params)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise AuditError(f"cannot write to {self.path}: {exc}") from exc

    def _prune(self, through_seq: int, anchor: dict[str, Any]) -> int:
        columns = ", ".join(anchor)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    f"INSERT INTO chain_anchor ({columns}) VALUES ({', '.join('?' * len(anchor))})",
                    tuple(anchor.values()),
                )
                self._db.execute("DROP TRIGGER decisions_no_delete")
                deleted = self._db.execute(
                    "DELETE FROM decisions WHERE seq <= ?", (through_seq,)
                ).rowcount
                self._db.execute(_NO_DELETE)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise AuditError(f"cannot prune {self.path}: {exc}") from exc
        return int(deleted)

    def reserve(self, user_id: str, day: str) -> int:
        return self.reserve_many([(user_id, day)])[0]

    def reserve_many(self, keys: list[tuple[str, str]]) -> list[int]:
        if not keys:
            return []
        result: list[int] = self._commit.run(_Reserve(keys))
        return result

    async def areserve_many(self, keys: list[tuple[str, str]]) -> list[int]:
        if not keys:
            return []
        result: list[int] = await asyncio.wrap_future(self._commit.submit(_Reserve(keys)))
        return result

    def _set_synchronous(self, mode: str) -> None:
        if self._synchronous != mode:
            self._db.execute(f"PRAGMA synchronous={mode}")
            self._synchronous = mode

    def _execute_batch(self, ops: Sequence[_Reserve | _Append]) -> list[Any]:
        """Run queued reservations and appends in ONE transaction (see module docstring)."""
        with self._lock:
            try:
                durable = any(isinstance(op, _Append) for op in ops)
                self._set_synchronous("FULL" if durable else "NORMAL")
                self._db.execute("BEGIN IMMEDIATE")
                prev: str | None = None
                results: list[Any] = []
                for op in ops:
                    if isinstance(op, _Reserve):
                        results.append(self._reserve_in_transaction(op.keys))
                        continue
                    if prev is None:
                        last = self._db.execute(
                            "SELECT hash FROM decisions ORDER BY seq DESC LIMIT 1"
                        ).fetchone()
                        prev = last[0] if last else self._anchor_hash()
                    params = []
                    skipped = []
                    for n, (row, body) in enumerate(op.rows):
                        if not self._checks_hold(op.checks[n] if op.checks else []):
                            skipped.append(n)
                            continue
                        row["key_id"], digest = self.integrity.link(prev, body)
                        params.append((*(row.get(c) for c in STORED_COLUMNS), prev, digest))
                        prev = digest
                    self._db.executemany(_INSERT, params)
                    self._db.executemany(_RELEASE, op.releases)
                    results.append(skipped)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._abort()
                raise AuditError(f"cannot write to audit log {self.path}: {exc}") from exc
        return results

    def _anchor_hash(self) -> str:
        """Where an empty log's chain starts: the latest prune checkpoint, else genesis.

        A prune may have removed every record; the next record chains to its checkpoint.
        """
        row = self._db.execute(
            "SELECT through_hash FROM chain_anchor ORDER BY anchor_no DESC LIMIT 1"
        ).fetchone()
        return str(row[0]) if row else GENESIS

    def _reserve_in_transaction(self, keys: list[tuple[str, str]]) -> list[int]:
        taken: dict[tuple[str, str], int] = {}
        for key, n in Counter(keys).items():
            used = int(self._db.execute(_RESERVE, (*key, n)).fetchone()[0])
            taken[key] = used - n
        values = []
        for key in keys:
            values.append(taken[key])
            taken[key] += 1
        return values

    def _select_raw(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._read_lock:
            try:
                cursor = self._reader.execute(sql, params)
            except sqlite3.Error as exc:
                raise AuditError(f"cannot read {self.path}: {exc}") from exc
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    def _select(self, sql_tail: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return self._select_raw(f"SELECT * FROM decisions {sql_tail}", params)

    def _scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        with self._read_lock:
            try:
                row = self._reader.execute(sql, params).fetchone()
            except sqlite3.Error as exc:
                raise AuditError(f"cannot read {self.path}: {exc}") from exc
        return row[0] if row else None
