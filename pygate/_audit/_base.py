"""What every audit backend shares: record layout, redaction, the hash chain, verification.

Each record's ``hash`` is SHA-256 over the previous record's hash and this record's canonical
JSON, so an edited, deleted or reordered record breaks the chain where ``verify`` says.
A backend only stores rows, hands them back in order, and keeps the daily-quota counter.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pygate._models import AuditRecord, Decision

GENESIS = "0" * 64

#: Keys whose values are masked before anything is written (case-insensitive).
DEFAULT_REDACT_KEYS = frozenset(
    {"password", "secret", "token", "api_key", "apikey", "authorization", "ssn", "card_number"}
)

#: The hashed columns, in hash order. ``seq``, ``prev_hash`` and ``hash`` are added by the store.
COLUMNS = (
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


def canonical(row: dict[str, Any]) -> str:
    """The canonical JSON of a record's hashed columns (computable before the chain is known)."""
    return json.dumps([row[c] for c in COLUMNS], separators=(",", ":"), sort_keys=True)


def link(prev_hash: str, body: str) -> str:
    """The hash of one record from the previous record's hash and its ``canonical`` body."""
    return hashlib.sha256(f"{prev_hash}|{body}".encode()).hexdigest()


def chain_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """The hash of one record given the previous record's hash."""
    return link(prev_hash, canonical(row))


def today(now: datetime | None = None) -> str:
    """The UTC day a quota counts against."""
    return (now or datetime.now(UTC)).date().isoformat()


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


class AuditLog(ABC):
    """An append-only, hash-chained store of decisions, plus the daily-quota counter.

    Args:
        redact_keys: keys whose values are masked in the stored output.
    """

    def __init__(self, redact_keys: Iterable[str] = DEFAULT_REDACT_KEYS) -> None:
        self._redact_keys = frozenset(k.lower() for k in redact_keys)

    # --- what a backend implements -------------------------------------------------------
    @abstractmethod
    def _insert(self, rows: list[dict[str, Any]], releases: list[tuple[str, str]]) -> None:
        """Chain and commit ``rows`` (COLUMNS only) durably, in order, atomically.

        In the same transaction, give back one quota unit per ``(user_id, day)`` in
        ``releases`` (reserved for requests that were then refused).
        """

    @abstractmethod
    def _select(self, sql_tail: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """``SELECT * FROM decisions <sql_tail>`` as dicts (``?`` placeholders)."""

    @abstractmethod
    def _scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """The first column of the first row of ``sql`` (``?`` placeholders)."""

    @abstractmethod
    def reserve(self, user_id: str, day: str) -> int:
        """Atomically take one unit of the user's daily quota; return the usage BEFORE it.

        Concurrent callers (threads, processes, services sharing the database) each get a
        distinct value, so no more than the quota can ever be allowed.
        """

    def reserve_many(self, keys: list[tuple[str, str]]) -> list[int]:
        """``reserve`` for each ``(user_id, day)`` in order, atomically where the backend can.

        A user named twice gets consecutive values, as if reserved one after the other.
        """
        return [self.reserve(user_id, day) for user_id, day in keys]

    async def areserve_many(self, keys: list[tuple[str, str]]) -> list[int]:
        """``reserve_many`` for asyncio callers (a backend may avoid the worker thread)."""
        return await asyncio.to_thread(self.reserve_many, keys)

    async def _ainsert(self, rows: list[dict[str, Any]], releases: list[tuple[str, str]]) -> None:
        """``_insert`` for asyncio callers (a backend may avoid the worker thread)."""
        await asyncio.to_thread(self._insert, rows, releases)

    def release(self, user_id: str, day: str) -> None:
        """Give back a unit taken by ``reserve`` without writing a record."""
        self._insert([], [(user_id, day)])

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    # --- shared behaviour -----------------------------------------------------------------
    def _row(self, decision: Decision, output: Any) -> dict[str, Any]:
        when = decision.decided_at or datetime.now(UTC)
        return {
            "audit_id": decision.audit_id or uuid.uuid4().hex,
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

    def append(
        self, decision: Decision, output: Any, release: tuple[str, str] | None = None
    ) -> Decision:
        """Write one record durably; return the decision carrying its ``audit_id``.

        Args:
            decision: what was decided.
            output: the model output (redacted before it is stored).
            release: ``(user_id, day)`` of a quota unit to give back in the same transaction.

        Raises:
            AuditError: the record could not be committed.
        """
        return self.append_many([(decision, output)], [release] if release else [])[0]

    def append_many(
        self, items: list[tuple[Decision, Any]], releases: list[tuple[str, str]] | None = None
    ) -> list[Decision]:
        """Write several records in one durable transaction, in order.

        Raises:
            AuditError: nothing was committed.
        """
        rows = [self._row(d, o) for d, o in items]
        self._insert(rows, releases or [])
        return _stamped(items, rows)

    async def aappend_many(
        self, items: list[tuple[Decision, Any]], releases: list[tuple[str, str]] | None = None
    ) -> list[Decision]:
        """``append_many`` for asyncio callers; durable when the awaitable completes.

        Raises:
            AuditError: nothing was committed.
        """
        rows = [self._row(d, o) for d, o in items]
        await self._ainsert(rows, releases or [])
        return _stamped(items, rows)

    def usage_today(self, user_id: str, now: datetime | None = None) -> int:
        """How many allowed decisions this user had today (UTC), counted from the records."""
        return int(
            self._scalar(
                "SELECT count(*) FROM decisions WHERE user_id = ? AND day = ? AND allowed = 1",
                (user_id, today(now)),
            )
        )

    def count(self) -> int:
        """Number of records."""
        return int(self._scalar("SELECT count(*) FROM decisions"))

    def tail(self, n: int = 10) -> list[AuditRecord]:
        """The last ``n`` records, oldest first."""
        rows = self._select("ORDER BY seq DESC LIMIT ?", (n,))
        return [to_record(r) for r in reversed(rows)]

    def records(self) -> Iterator[AuditRecord]:
        """Every record in order."""
        for row in self._select("ORDER BY seq"):
            yield to_record(row)

    def summary(self, top: int = 5) -> Summary:
        """Totals, refusal rate, fallback count and the policies that refuse most."""
        total = int(self._scalar("SELECT count(*) FROM decisions"))
        allowed = int(self._scalar("SELECT count(*) FROM decisions WHERE allowed = 1"))
        fallback = int(self._scalar("SELECT count(*) FROM decisions WHERE fallback = 1"))
        top_rows = self._select_raw(
            "SELECT policy_id, count(*) AS n FROM decisions WHERE allowed = 0 "
            "GROUP BY policy_id ORDER BY n DESC, policy_id LIMIT ?",
            (top,),
        )
        return Summary(
            total=total,
            allowed=allowed,
            refused=total - allowed,
            fallback=fallback,
            top_policies=[(str(r["policy_id"]), int(r["n"])) for r in top_rows],
        )

    @abstractmethod
    def _select_raw(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Any SELECT as dicts (``?`` placeholders)."""

    def verify(self) -> VerifyResult:
        """Walk the hash chain; report the first edited, deleted or reordered record."""
        prev = GENESIS
        checked = 0
        last_seq = 0
        for row in self._select("ORDER BY seq"):
            checked += 1
            if row["prev_hash"] != prev:
                problem = "chain broken: a record before it was deleted, inserted or reordered"
                if row["seq"] != last_seq + 1:
                    problem = f"records {last_seq + 1}..{row['seq'] - 1} are missing"
                return VerifyResult(False, checked, row["seq"], row["audit_id"], problem)
            if chain_hash(prev, row) != row["hash"]:
                return VerifyResult(
                    False, checked, row["seq"], row["audit_id"], "record content was edited"
                )
            prev = row["hash"]
            last_seq = row["seq"]
        return VerifyResult(True, checked)


def _stamped(items: list[tuple[Decision, Any]], rows: list[dict[str, Any]]) -> list[Decision]:
    """The decisions carrying the audit id and time of their committed records."""
    return [
        d.model_copy(
            update={"audit_id": r["audit_id"], "decided_at": datetime.fromisoformat(r["ts"])}
        )
        for (d, _), r in zip(items, rows, strict=True)
    ]


def to_record(row: dict[str, Any]) -> AuditRecord:
    """A stored row as an AuditRecord."""
    return AuditRecord.model_validate(
        {
            **row,
            "output": json.loads(row["output"]),
            "policy_ids": json.loads(row["policy_ids"]),
            "allowed": bool(row["allowed"]),
            "fallback": bool(row["fallback"]),
        }
    )
