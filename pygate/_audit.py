"""The audit log: one durable, hash-chained record per decision (SQLite by default).

Each record's ``hash`` is SHA-256 over the previous record's hash and this record's
canonical JSON, so an edited, deleted or reordered row breaks the chain at a place
``verify`` names. The table refuses UPDATE and DELETE by trigger: append-only from here.
A record is committed (WAL, ``synchronous=FULL``) before ``append`` returns.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pygate._errors import AuditError
from pygate._models import AuditRecord, Decision

GENESIS = "0" * 64

#: Keys whose values are masked before anything is written (case-insensitive).
DEFAULT_REDACT_KEYS = frozenset(
    {"password", "secret", "token", "api_key", "apikey", "authorization", "ssn", "card_number"}
)

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
"""

_COLUMNS = (
    "audit_id", "ts", "day", "service", "user_id", "output", "allowed", "reason", "policy_id",
    "policy_ids", "action", "decision_id", "bundle_revision", "fallback", "latency_ms",
)  # fmt: skip


def redact(value: Any, keys: frozenset[str] = DEFAULT_REDACT_KEYS) -> Any:
    """Return a copy of ``value`` with the values of secret-looking keys masked."""
    if isinstance(value, dict):
        return {k: "***" if k.lower() in keys else redact(v, keys) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, keys) for v in value]
    return value


def _chain_hash(prev_hash: str, row: dict[str, Any]) -> str:
    body = json.dumps([row[c] for c in _COLUMNS], separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(f"{prev_hash}|{body}".encode()).hexdigest()


@dataclass(frozen=True)
class Summary:
    """Headline statistics of the audit log."""

    total: int
    allowed: int
    refused: int
    fallback: int
    top_policies: list[tuple[str, int]]

    @property
    def refusal_rate(self) -> float:
        """Refused decisions over all decisions (0 when the log is empty)."""
        return self.refused / self.total if self.total else 0.0


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of ``AuditLog.verify``: ok, or the first record where the chain breaks."""

    ok: bool
    checked: int
    seq: int | None = None
    audit_id: str | None = None
    problem: str = ""


class AuditLog:
    """SQLite audit log. Thread-safe; several processes may share one file.

    Args:
        path: the database file (created with its folder when missing).
        redact_keys: keys whose values are masked in the stored output.
    """

    def __init__(self, path: str | Path, redact_keys: Iterable[str] = DEFAULT_REDACT_KEYS) -> None:
        self.path = Path(path)
        self._redact_keys = frozenset(k.lower() for k in redact_keys)
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

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def append(self, decision: Decision, output: Any) -> Decision:
        """Write one record durably and return the decision carrying its ``audit_id``.

        Raises:
            AuditError: the record could not be committed.
        """
        when = decision.decided_at or datetime.now(UTC)
        audit_id = uuid.uuid4().hex
        row: dict[str, Any] = {
            "audit_id": audit_id,
            "ts": when.isoformat(),
            "day": when.date().isoformat(),
            "service": decision.service,
            "user_id": decision.user_id,
            "output": json.dumps(redact(output, self._redact_keys), sort_keys=True, default=repr),
            "allowed": int(decision.allowed),
            "reason": decision.reason,
            "policy_id": decision.policy_id,
            "policy_ids": json.dumps(decision.policy_ids),
            "action": decision.action,
            "decision_id": decision.decision_id,
            "bundle_revision": decision.bundle_revision,
            "fallback": int(decision.fallback),
            "latency_ms": round(decision.latency_ms, 3),
        }
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                last = self._db.execute(
                    "SELECT hash FROM decisions ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                prev = last[0] if last else GENESIS
                self._db.execute(
                    f"INSERT INTO decisions ({', '.join(_COLUMNS)}, prev_hash, hash) "
                    f"VALUES ({', '.join('?' * (len(_COLUMNS) + 2))})",
                    [*(row[c] for c in _COLUMNS), prev, _chain_hash(prev, row)],
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise AuditError(f"cannot write audit record to {self.path}: {exc}") from exc
        return decision.model_copy(update={"audit_id": audit_id, "decided_at": when})

    def usage_today(self, user_id: str, now: datetime | None = None) -> int:
        """How many allowed decisions this user had today (UTC): the daily-quota input."""
        day = (now or datetime.now(UTC)).date().isoformat()
        with self._lock:
            row = self._db.execute(
                "SELECT count(*) FROM decisions WHERE user_id = ? AND day = ? AND allowed = 1",
                (user_id, day),
            ).fetchone()
        return int(row[0])

    def count(self) -> int:
        """Number of records."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM decisions").fetchone()[0])

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self._db.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    def tail(self, n: int = 10) -> list[AuditRecord]:
        """The last ``n`` records, oldest first."""
        rows = self._rows("SELECT * FROM decisions ORDER BY seq DESC LIMIT ?", (n,))
        return [_record(r) for r in reversed(rows)]

    def records(self) -> Iterator[AuditRecord]:
        """Every record in order."""
        for row in self._rows("SELECT * FROM decisions ORDER BY seq"):
            yield _record(row)

    def summary(self, top: int = 5) -> Summary:
        """Totals, refusal rate, fallback count and the policies that refuse most."""
        with self._lock:
            total, allowed, fallback = self._db.execute(
                "SELECT count(*), coalesce(sum(allowed), 0), coalesce(sum(fallback), 0) "
                "FROM decisions"
            ).fetchone()
            top_rows = self._db.execute(
                "SELECT policy_id, count(*) AS n FROM decisions WHERE allowed = 0 "
                "GROUP BY policy_id ORDER BY n DESC, policy_id LIMIT ?",
                (top,),
            ).fetchall()
        return Summary(
            total=int(total),
            allowed=int(allowed),
            refused=int(total) - int(allowed),
            fallback=int(fallback),
            top_policies=[(str(p), int(n)) for p, n in top_rows],
        )

    def verify(self) -> VerifyResult:
        """Walk the hash chain; report the first edited, deleted or reordered record."""
        prev = GENESIS
        checked = 0
        last_seq = 0
        for row in self._rows("SELECT * FROM decisions ORDER BY seq"):
            checked += 1
            if row["prev_hash"] != prev:
                problem = "chain broken: a record before it was deleted, inserted or reordered"
                if row["seq"] != last_seq + 1:
                    problem = f"records {last_seq + 1}..{row['seq'] - 1} are missing"
                return VerifyResult(False, checked, row["seq"], row["audit_id"], problem)
            if _chain_hash(prev, row) != row["hash"]:
                return VerifyResult(
                    False, checked, row["seq"], row["audit_id"], "record content was edited"
                )
            prev = row["hash"]
            last_seq = row["seq"]
        return VerifyResult(True, checked)


def _record(row: dict[str, Any]) -> AuditRecord:
    return AuditRecord.model_validate(
        {
            **row,
            "output": json.loads(row["output"]),
            "policy_ids": json.loads(row["policy_ids"]),
            "allowed": bool(row["allowed"]),
            "fallback": bool(row["fallback"]),
        }
    )
