"""What every audit backend shares: record layout, redaction, the hash chain, verification.

Each record's ``hash`` is SHA-256 over the previous record's hash and this record's canonical
JSON, so an edited, deleted or reordered record breaks the chain where ``verify`` says.
A backend only stores rows, hands them back in order, and keeps the daily-quota counter.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Re-exported (``X as X``): the backends and _mask import these from here.
from pygate._audit._redact import DEFAULT_REDACT_KEYS as DEFAULT_REDACT_KEYS
from pygate._audit._redact import DEFAULT_REDACT_PATTERNS as DEFAULT_REDACT_PATTERNS
from pygate._audit._redact import MASK as MASK
from pygate._audit._redact import key_names, redact_text
from pygate._audit._redact import redact as redact
from pygate._audit._redact import redact_pattern as redact_pattern
from pygate._errors import AuditError, ConfigError
from pygate._models import AuditRecord, Decision

GENESIS = "0" * 64

#: Seconds an audit write may wait (a held lock, a busy server) before the decision is refused.
DEFAULT_AUDIT_TIMEOUT = 2.0

#: The hashed columns, in hash order. ``seq``, ``prev_hash`` and ``hash`` are added by the store.
COLUMNS = (
    "audit_id", "ts", "day", "service", "user_id", "output", "allowed", "reason", "policy_id",
    "policy_ids", "action", "decision_id", "bundle_revision", "fallback", "latency_ms",
)  # fmt: skip

#: Hashed columns added later, appended after COLUMNS. They enter the hash only when one of
#: them is set, so every record written before they existed still verifies unchanged.
EXTRA_COLUMNS = ("approval_id", "approved_by")

#: Tables beside ``decisions`` (portable SQL: SQLite and PostgreSQL). Each backend runs these
#: when it opens, then sets ``extensions = True``; they are not hash-chained, except
#: ``chain_anchor``, whose rows chain to each other (see ``anchor_hash``).
EXTENSION_SCHEMA = (
    # A refusal whose action is require_review waits here for a person; approved rows reach OPA
    # in input.context.approvals until they expire or are used once.
    """CREATE TABLE IF NOT EXISTS approvals (
        approval_id TEXT PRIMARY KEY,
        audit_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        service TEXT,
        user_id TEXT NOT NULL,
        output TEXT NOT NULL,
        output_hash TEXT NOT NULL,
        policy_ids TEXT NOT NULL,
        reason TEXT NOT NULL,
        status TEXT NOT NULL,
        decided_by TEXT,
        decided_at TEXT,
        note TEXT,
        used_audit_id TEXT,
        review_output TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS approvals_user ON approvals (user_id, status)",
    # What the host application says the user did after a refusal (retry / escalate / leave).
    """CREATE TABLE IF NOT EXISTS followups (
        followup_id TEXT PRIMARY KEY,
        audit_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        ts TEXT NOT NULL,
        note TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS followups_audit ON followups (audit_id)",
    # One checkpoint per retention prune: the hash of the last pruned record becomes the
    # genesis of what is left.
    """CREATE TABLE IF NOT EXISTS chain_anchor (
        anchor_no INTEGER PRIMARY KEY,
        created_at TEXT NOT NULL,
        through_seq INTEGER NOT NULL,
        through_hash TEXT NOT NULL,
        pruned INTEGER NOT NULL,
        cutoff TEXT NOT NULL,
        prev_anchor_hash TEXT NOT NULL,
        anchor_hash TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS decisions_ts ON decisions (ts)",
)

#: Columns added to ``approvals`` after it first shipped: ``(name, type)``, added at open.
#: ``review_output`` holds the unmasked output for the approver until the request is decided.
APPROVAL_COLUMNS_ADDED = (("review_output", "TEXT"),)

#: Every column a backend stores from a row, in insert order (then ``prev_hash``, ``hash``).
STORED_COLUMNS = COLUMNS + EXTRA_COLUMNS


def canonical(row: dict[str, Any]) -> str:
    """The canonical JSON of a record's hashed columns (computable before the chain is known).

    EXTRA_COLUMNS join the hash only when set, so logs written before they existed verify.
    """
    values = [row[c] for c in COLUMNS]
    extra = [row.get(c) for c in EXTRA_COLUMNS]
    if any(v is not None for v in extra):
        values += extra
    return json.dumps(values, separators=(",", ":"), sort_keys=True)


def link(prev_hash: str, body: str) -> str:
    """The hash of one record from the previous record's hash and its ``canonical`` body."""
    return hashlib.sha256(f"{prev_hash}|{body}".encode()).hexdigest()


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its JSON-ish name."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


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
        redact_keys: keys whose values are masked in the stored output (``_redact``).
        redact_patterns: regexes whose matches are masked inside any string of the output
            (default ``DEFAULT_REDACT_PATTERNS``); Luhn-valid card numbers always are.
    """

    #: Which SQL dialect analytics speak to this backend (``sqlite`` or ``postgres``).
    dialect = "sqlite"

    def __init__(
        self,
        redact_keys: Iterable[str] = DEFAULT_REDACT_KEYS,
        redact_patterns: Iterable[str] = DEFAULT_REDACT_PATTERNS,
    ) -> None:
        self._redact_keys = key_names(redact_keys)
        try:
            self._redact_pattern = redact_pattern(redact_patterns)
        except re.error as exc:
            raise ConfigError(f"setting 'redact_patterns': invalid regex: {exc}") from exc

    # --- what a backend implements -------------------------------------------------------
    @abstractmethod
    def _insert(
        self,
        rows: list[dict[str, Any]],
        releases: list[tuple[str, str]],
        checks: list[list[Check]] | None = None,
    ) -> list[int]:
        """Chain and commit ``rows`` (COLUMNS only) durably, in order, atomically.

        In the same transaction, give back one quota unit per ``(user_id, day)`` in
        ``releases``. ``checks`` (one list per row) are run just before their row, each in
        the row's savepoint: when a ``must_change`` statement changes no row, the row's
        checks are rolled back and the row is NOT written. Returns the skipped row indexes.
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

    async def _ainsert(
        self,
        rows: list[dict[str, Any]],
        releases: list[tuple[str, str]],
        checks: list[list[Check]] | None = None,
    ) -> list[int]:
        """``_insert`` for asyncio callers (a backend may avoid the worker thread)."""
        return await asyncio.to_thread(self._insert, rows, releases, checks)

    def _execute(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Run write statements on the extension tables in one transaction (``?`` placeholders).

        Used for approvals, follow-ups and retention; never for ``decisions``. A backend that
        does not support them keeps this default.

        Raises:
            AuditError: always, here.
        """
        raise AuditError(f"{type(self).__name__} does not support approvals/follow-ups/retention")

    def _prune(self, through_seq: int, anchor: dict[str, Any]) -> int:
        """Delete records ``seq <= through_seq`` and store ``anchor``, in one transaction.

        The only deletion the store allows; returns how many records were deleted.
        """
        raise AuditError(f"{type(self).__name__} does not support retention")

    def release(self, user_id: str, day: str) -> None:
        """Give back a unit taken by ``reserve`` without writing a record."""
        self._insert([], [(user_id, day)])

    def quota_used(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The committed daily-quota counter of each ``(user_id, day)`` (0 when none)."""
        used: dict[tuple[str, str], int] = {}
        for user_id, day in dict.fromkeys(keys):
            value = self._scalar(
                "SELECT used FROM quota_usage WHERE user_id = ? AND day = ?", (user_id, day)
            )
            used[(user_id, day)] = int(value or 0)
        return used

    def append_checked(self, items: list[Checked]) -> list[Decision | None]:
        """Write records whose effects are claimed in their own transaction (see ``Checked``).

        Returns:
            Per item, the audited decision, or ``None`` when a claim failed (an approval
            already used, a quota counter that moved): nothing of that item was written,
            the caller decides it again.

        Raises:
            AuditError: nothing was committed.
        """
        rows = [self._row(i.decision, i.output) for i in items]
        skipped = set(
            self._insert(rows, [], [claims(i, r) for i, r in zip(items, rows, strict=True)])
        )
        return _checked(items, rows, skipped)

    async def aappend_checked(self, items: list[Checked]) -> list[Decision | None]:
        """``append_checked`` for asyncio callers."""
        rows = [self._row(i.decision, i.output) for i in items]
        checks = [claims(i, r) for i, r in zip(items, rows, strict=True)]
        skipped = set(await self._ainsert(rows, [], checks))
        return _checked(items, rows, skipped)

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    # --- shared behaviour -----------------------------------------------------------------
    def masked(self, value: Any) -> Any:
        """``value`` with this log's redaction applied (keys and text patterns)."""
        return redact(value, self._redact_keys, self._redact_pattern)

    def redacted_json(self, output: Any) -> str:
        """``output`` as stored: configured fields masked, then canonical, strict JSON.

        NaN and infinities are not JSON (PostgreSQL's json type rejects them), so they are
        stored as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.
        """
        masked = _finite(redact(output, self._redact_keys, self._redact_pattern))
        return json.dumps(masked, sort_keys=True, default=repr, allow_nan=False)

    def _row(self, decision: Decision, output: Any) -> dict[str, Any]:
        when = decision.decided_at or datetime.now(UTC)
        return {
            "audit_id": decision.audit_id or uuid.uuid4().hex,
            "ts": when.isoformat(),
            "day": when.date().isoformat(),
            "service": decision.service,
            "user_id": decision.user_id,
            "output": self.redacted_json(output),
            "allowed": int(decision.allowed),
            # A policy's reason may quote the output: the same text rules apply to it.
            "reason": redact_text(decision.reason, self._redact_pattern),
            "policy_id": decision.policy_id,
            "policy_ids": json.dumps(decision.policy_ids),
            "action": decision.action,
            "decision_id": decision.decision_id,
            "bundle_revision": decision.bundle_revision,
            "fallback": int(decision.fallback),
            "latency_ms": round(decision.latency_ms, 3),
            "approval_id": decision.approval_id,
            "approved_by": decision.approved_by,
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

    #: True once the backend has created the extension tables (``EXTENSION_SCHEMA``).
    extensions = False

    def anchors(self) -> list[dict[str, Any]]:
        """The retention checkpoints in ``chain_anchor``, oldest first (empty when none)."""
        if not self.extensions:
            return []
        return self._select_raw("SELECT * FROM chain_anchor ORDER BY anchor_no")

    def _chain_start(self) -> tuple[str, int, str]:
        """Where the chain starts: ``(hash, seq, problem)`` after the latest retention anchor.

        A pruned log starts from the hash of the last pruned record, kept in a checkpoint that
        is itself hash-chained; ``problem`` is non-empty when the checkpoints were tampered with.
        """
        prev_anchor, start, seq = GENESIS, GENESIS, 0
        for anchor in self.anchors():
            if anchor["prev_anchor_hash"] != prev_anchor:
                return start, seq, f"retention anchor {anchor['anchor_no']}: chain broken"
            if anchor_hash(prev_anchor, anchor) != anchor["anchor_hash"]:
                return start, seq, f"retention anchor {anchor['anchor_no']}: content was edited"
            prev_anchor = anchor["anchor_hash"]
            start, seq = anchor["through_hash"], int(anchor["through_seq"])
        return start, seq, ""

    def verify(self) -> VerifyResult:
        """Walk the hash chain; report the first edited, deleted or reordered record.

        After a retention prune the chain starts at the latest checkpoint in ``chain_anchor``
        (the hash of the last pruned record), so a pruned log still verifies end to end.
        """
        prev, last_seq, problem = self._chain_start()
        if problem:
            return VerifyResult(False, 0, None, None, problem)
        checked = 0
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


def _checked(
    items: list[Checked], rows: list[dict[str, Any]], skipped: set[int]
) -> list[Decision | None]:
    stamped = _stamped([(i.decision, i.output) for i in items], rows)
    return [None if n in skipped else d for n, d in enumerate(stamped)]


def _stamped(items: list[tuple[Decision, Any]], rows: list[dict[str, Any]]) -> list[Decision]:
    """The decisions carrying the audit id and time of their committed records."""
    return [
        d.model_copy(
            update={"audit_id": r["audit_id"], "decided_at": datetime.fromisoformat(r["ts"])}
        )
        for (d, _), r in zip(items, rows, strict=True)
    ]


#: Anchor fields covered by ``anchor_hash``, in hash order.
ANCHOR_COLUMNS = ("anchor_no", "created_at", "through_seq", "through_hash", "pruned", "cutoff")


def anchor_hash(prev_anchor_hash: str, anchor: dict[str, Any]) -> str:
    """The hash of one retention checkpoint, chained to the previous checkpoint."""
    body = json.dumps([anchor[c] for c in ANCHOR_COLUMNS], separators=(",", ":"))
    return hashlib.sha256(f"{prev_anchor_hash}|{body}".encode()).hexdigest()


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


# --- claims: what a record may only be written with ------------------------------------------

#: One statement run in an audit record's transaction: ``(sql, params, must_change)``.
Check = tuple[str, tuple[Any, ...], bool]

#: The refusal action of a quota policy: such a refusal is final only if the usage it saw
#: is still the committed one (see ``claims``).
QUOTA_ACTION = "show_quota"


@dataclass(frozen=True)
class Checked:
    """A decision to audit together with what it claims.

    Attributes:
        decision: what was decided.
        output: the model output (redacted before it is stored).
        quota: ``(user_id, day, usage)``: the daily-quota usage OPA decided with, or
            ``None`` when the decision is not counted (no quota was asked about).
    """

    decision: Decision
    output: Any
    quota: tuple[str, str, int] | None = None


def claims(item: Checked, row: dict[str, Any]) -> list[Check]:
    """The statements that make ``item``'s effects exact, in its record's transaction.

    - An allow takes its quota unit only if the committed counter is still at most the usage
      OPA saw (a policy that allowed at ``usage`` allows at any lower figure), so concurrent
      requests never pass the quota; a refusal takes nothing, so they never fall short of it.
    - A quota refusal stands only if the counter reached the usage it saw; otherwise (the
      requests ahead of it were refused after all) it is decided again.
    - An allow that used approvals uses each of them up: only one record can, ever.
    """
    decision = item.decision
    checks: list[Check] = []
    if item.quota is not None:
        user_id, day, usage = item.quota
        checks.append(
            (
                "INSERT INTO quota_usage (user_id, day, used) VALUES (?, ?, 0) "
                "ON CONFLICT (user_id, day) DO NOTHING",
                (user_id, day),
                False,
            )
        )
        if decision.allowed:
            checks.append(
                (
                    "UPDATE quota_usage SET used = used + 1 "
                    "WHERE user_id = ? AND day = ? AND used <= ?",
                    (user_id, day, usage),
                    True,
                )
            )
        elif any(r.action == QUOTA_ACTION for r in decision.refusals):
            checks.append(
                (
                    "UPDATE quota_usage SET used = used "
                    "WHERE user_id = ? AND day = ? AND used >= ?",
                    (user_id, day, usage),
                    True,
                )
            )
    if decision.allowed and decision.approval_id:
        now = datetime.now(UTC).isoformat()
        for approval_id in decision.approval_id.split(","):
            checks.append(
                (
                    "UPDATE approvals SET status = 'used', used_audit_id = ? "
                    "WHERE approval_id = ? AND status = 'approved' AND expires_at > ?",
                    (row["audit_id"], approval_id, now),
                    True,
                )
            )
    return checks
