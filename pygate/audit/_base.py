"""What every audit backend shares: record layout, redaction, the keyed chain, verification.

Each record's ``hash`` is HMAC-SHA256, under the key named by its ``key_id`` (kept outside the
database, ``_integrity``), over the previous record's hash and this record's canonical JSON, so
an edited, deleted or reordered record breaks the chain where ``verify`` says, and a chain
recomputed without the key does not verify. Signed checkpoints outside the database catch what
a chain alone cannot: deleted last records, an emptied or dropped table.
A backend only stores rows, hands them back in order, and keeps the daily-quota counter.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pygate._errors import AuditError, ConfigError
from pygate._models import AuditRecord, Decision, JSONObject
from pygate.audit._integrity import Checkpoint, Integrity

# Re-exported (``X as X``): the backends and _mask import these from here.
from pygate.audit._redact import DEFAULT_REDACT_KEYS as DEFAULT_REDACT_KEYS
from pygate.audit._redact import DEFAULT_REDACT_PATTERNS as DEFAULT_REDACT_PATTERNS
from pygate.audit._redact import MASK as MASK
from pygate.audit._redact import key_names, redact_names, redact_text, redact_with_paths
from pygate.audit._redact import redact as redact
from pygate.audit._redact import redact_pattern as redact_pattern

log = logging.getLogger("pygate.audit")

# (Mutation testing, issue 18: mutmut's upper/lower-case mutants of the SQL below are
# equivalent where they touch only keywords and unquoted names, which SQLite and PostgreSQL
# read in any case; a quoted literal or a result column read by name still kills them.)

GENESIS = "0" * 64

#: Seconds an audit write may wait (a held lock, a busy server) before the decision is refused.
DEFAULT_AUDIT_TIMEOUT = 2.0

#: The hashed columns, in hash order. ``seq``, ``prev_hash`` and ``hash`` are added by the store.
COLUMNS = (
    "audit_id", "ts", "day", "service", "user_id", "output", "allowed", "reason", "policy_id",
    "policy_ids", "action", "decision_id", "bundle_revision", "fallback", "latency_ms",
)  # fmt: skip

#: Hashed columns added later, appended after COLUMNS, in generations. A generation enters
#: the hash only when one of its columns (or of a later generation) is set, so every record
#: written before it existed still verifies unchanged. ``actions`` holds the canonical
#: actions as decided (JSON, redacted like the output). ``refusals`` holds every refusal
#: object as OPA reported it (JSON list, redacted; shadow refusals carry ``"shadow": true``),
#: ``opa_input`` what replay needs (``replay_input``): the input document OPA decided on,
#: without its ``output`` (the ``output`` column holds that), redacted, with the paths that
#: redaction changed.
#: ``shadow_refusals`` what shadow policies would have refused (JSON ``[{policy_id,
#: policy_set, action, reason}]``, the reason redacted like ``reason``; null when none did).
EXTRA_GENERATIONS = (
    ("approval_id", "approved_by"),
    ("actions",),
    ("refusals", "opa_input"),
    ("shadow_refusals",),
)
EXTRA_COLUMNS = tuple(c for generation in EXTRA_GENERATIONS for c in generation)

#: Tables beside ``decisions`` (portable SQL: SQLite and PostgreSQL). Each backend runs these
#: when it opens, then sets ``extensions = True``; they are not hash-chained, except
#: ``chain_anchor``, whose rows chain to each other (keyed, see ``anchor_message``).
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
        key_id TEXT,
        mac TEXT,
        review_output TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS approvals_user ON approvals (user_id, status)",
    # What the host application says the user did after a refusal (retry / escalate / leave).
    """CREATE TABLE IF NOT EXISTS followups (
        followup_id TEXT PRIMARY KEY,
        audit_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        ts TEXT NOT NULL,
        note TEXT,
        key_id TEXT,
        mac TEXT
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
        anchor_hash TEXT NOT NULL,
        key_id TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS decisions_ts ON decisions (ts)",
    # The newest bundle revision this deployment has decided with (``revision_stamp``); a
    # decision by an older one is refused (no rollback). One row per deployment.
    """CREATE TABLE IF NOT EXISTS bundle_high (
        name TEXT PRIMARY KEY,
        stamp TEXT NOT NULL,
        revision TEXT NOT NULL,
        seen_at TEXT NOT NULL
    )""",
)

#: Every column a backend stores from a row, in insert order (then ``prev_hash``, ``hash``).
STORED_COLUMNS = COLUMNS + EXTRA_COLUMNS + ("key_id",)

#: The columns of each extension table that its keyed seal (``mac``) covers. A row whose seal
#: does not verify was written or edited without the audit key: the gate ignores it and
#: ``verify`` reports it. ``approvals.review_output`` (the unmasked output shown to the
#: approver) is deliberately outside the seal: it is transient, set at request and cleared
#: (NULL) when the request is decided or expires, and it never decides anything: OPA matches
#: ``output_hash``, which is sealed. ``output`` (the masked copy) is likewise only for display.
SEALED_COLUMNS = {
    "approvals": (
        "approval_id", "audit_id", "created_at", "expires_at", "service", "user_id",
        "output_hash", "policy_ids", "reason", "status", "decided_by", "decided_at", "note",
        "used_audit_id",
    ),
    "followups": ("followup_id", "audit_id", "kind", "ts", "note"),
}  # fmt: skip

#: Columns added to existing tables when an older log is opened (``ALTER TABLE … ADD``).
ADDED_COLUMNS = {
    "decisions": (*EXTRA_COLUMNS, "key_id"),
    "approvals": ("key_id", "mac", "review_output"),
    "followups": ("key_id", "mac"),
    "chain_anchor": ("key_id",),
}


def canonical(row: dict[str, Any]) -> str:
    """The canonical JSON of a record's hashed columns (computable before the chain is known).

    EXTRA_COLUMNS join the hash only when set, so logs written before they existed verify.
    """
    # (values are a list of scalars, JSON kept as text: sort_keys and the key separator
    # cannot matter, their mutants are equivalent; the item separator is pinned by a test)
    values = [row[c] for c in COLUMNS]
    used = [any(row.get(c) is not None for c in g) for g in EXTRA_GENERATIONS]
    if any(used):
        last = max(i for i, u in enumerate(used) if u)
        values += [row.get(c) for g in EXTRA_GENERATIONS[: last + 1] for c in g]
    return json.dumps(values, separators=(",", ":"), sort_keys=True)


def _stored_json(masked: Any) -> str:
    """A redacted value as a column stores it: canonical, strict JSON (non-finite floats
    named, see ``_finite``)."""
    try:
        # Gated documents hold no NaN (``check_document`` refuses them): skip the walk.
        return json.dumps(masked, sort_keys=True, default=repr, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(masked), sort_keys=True, default=repr, allow_nan=False)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its JSON-ish name."""
    if isinstance(value, float) and not math.isfinite(value):
        # (only non-finite floats reach here, so any bound in [-inf, inf) reads the same)
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


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
    """Outcome of ``AuditLog.verify``: ok, or the first problem found.

    Attributes:
        ok: the chain verifies under the keyring and agrees with the latest checkpoint.
        checked: records walked.
        seq: the record where the chain breaks (when one does).
        audit_id: that record's audit id.
        problem: what is wrong, in words, naming records by sequence number.
        missing: ``(first, last)`` sequence numbers of records that should be there and are not.
        checkpoint_seq: the sequence number the latest checkpoint vouches for (0: none).
        issues: further problems beyond the first (approvals, follow-ups, quota counters).
    """

    ok: bool
    checked: int
    seq: int | None = None
    audit_id: str | None = None
    problem: str = ""
    missing: tuple[int, int] | None = None
    checkpoint_seq: int = 0
    issues: tuple[str, ...] = ()


class AuditLog(ABC):
    """An append-only, hash-chained store of decisions, plus the daily-quota counter.

    Args:
        redact_keys: keys whose values are masked in the stored output (``_redact``).
        redact_patterns: regexes whose matches are masked inside any string of the output
            (default ``DEFAULT_REDACT_PATTERNS``); Luhn-valid card numbers always are.
    """

    #: Which SQL dialect analytics speak to this backend (``sqlite`` or ``postgres``).
    dialect = "sqlite"
    #: The SQL function giving the larger of two values (``max`` in SQLite).
    _GREATEST = "max"

    def __init__(
        self,
        redact_keys: Iterable[str] = DEFAULT_REDACT_KEYS,
        redact_patterns: Iterable[str] = DEFAULT_REDACT_PATTERNS,
        integrity: Integrity | None = None,
        *,
        target: str = "",
    ) -> None:
        #: The keyring and checkpoint store (``_integrity``); the default state folder when
        #: not given.
        self.integrity = integrity or Integrity(target)
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
        # (SQLite overrides this; the PostgreSQL tests, which ./dev mutation does not run,
        # are the ones that can see it)
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
        """The committed daily-quota usage of each ``(user_id, day)`` (0 when none).

        The counter, but never less than the allowed records the chain holds for that user
        and day: a counter set back or deleted in the database is not honoured.
        """
        used: dict[tuple[str, str], int] = {}
        for user_id, day in dict.fromkeys(keys):
            value = self._scalar(
                f"SELECT {self._GREATEST}(coalesce((SELECT used FROM quota_usage "
                f"WHERE user_id = ? AND day = ?), 0), {CHAIN_USAGE})",
                (user_id, day, user_id, day),
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
        rows = [self._row(i.decision, i.output, i.document, i.stored) for i in items]
        # (rows is built from items: strict= cannot matter here, its mutants are equivalent)
        checks = [claims(self, i, r) for i, r in zip(items, rows, strict=True)]
        skipped = set(self._insert(rows, [], checks))
        if len(rows) > len(skipped) and self.integrity.due(len(rows) - len(skipped)):
            self._checkpoint_quietly()
        return _checked(items, rows, skipped)

    async def aappend_checked(self, items: list[Checked]) -> list[Decision | None]:
        """``append_checked`` for asyncio callers."""
        rows = [self._row(i.decision, i.output, i.document, i.stored) for i in items]
        checks = [claims(self, i, r) for i, r in zip(items, rows, strict=True)]
        skipped = set(await self._ainsert(rows, [], checks))
        # (">=" would only ask due(0) when every row was skipped: it checkpoints only what is
        # already due, so that mutant is equivalent by contract; the sync twin's "or" is not)
        if len(rows) > len(skipped) and self.integrity.due(len(rows) - len(skipped)):
            await asyncio.to_thread(self._checkpoint_quietly)
        return _checked(items, rows, skipped)

    @abstractmethod
    def close(self) -> None:
        """Write a checkpoint if this handle added records since the last one; release."""

    # --- sealed rows of the extension tables ------------------------------------------------
    def seal_row(self, table: str, row: dict[str, Any]) -> dict[str, Any]:
        """``row`` with ``key_id`` and ``mac``: a keyed seal over its ``SEALED_COLUMNS``."""
        fields = [row.get(c) for c in SEALED_COLUMNS[table]]
        key_id, mac = self.integrity.seal(table, fields)
        return {**row, "key_id": key_id, "mac": mac}

    def sealed(self, table: str, row: dict[str, Any]) -> bool:
        """Whether a stored row's seal verifies (it was written by pygate with the key)."""
        fields = [row.get(c) for c in SEALED_COLUMNS[table]]
        return self.integrity.check_seal(table, fields, row.get("key_id"), row.get("mac"))

    def used_approvals(self, user_id: str | None = None) -> dict[str, str]:
        """Approval ids the chain records as used by an allow -> that decision's audit id.

        The chain, not the approvals table, is the word on use: a used approval whose row
        was set back to ``approved`` (with its old, genuine seal) is still used.
        """
        where = "allowed = 1 AND approval_id IS NOT NULL"
        params: tuple[str, ...] = ()
        if user_id is not None:
            where, params = f"user_id = ? AND {where}", (user_id,)
        used: dict[str, str] = {}
        for row in self._select_raw(
            f"SELECT approval_id, audit_id FROM decisions WHERE {where}", params
        ):
            for approval_id in str(row["approval_id"]).split(","):
                used.setdefault(approval_id, str(row["audit_id"]))
        return used

    def verify(self) -> VerifyResult:
        """Walk the keyed chain and hold it to the latest checkpoint; report the first problem.

        After a retention prune the chain starts at the latest anchor in ``chain_anchor``
        (the hash of the last pruned record), so a pruned log still verifies end to end.
        Then the checkpoint: its head must still be in the chain (or covered by a keyed
        anchor), so deleted last records, an emptied or dropped table and a chain rebuilt
        from scratch are reported with the sequence numbers concerned. Last, the sealed
        approval and follow-up rows and the quota counters (``_verify``).

        Raises:
            AuditError: the log or the checkpoint cannot be read.
        """
        from pygate.audit._verify import verify_log  # the walk lives in its own module

        return verify_log(self)

    # --- no rollback ----------------------------------------------------------------------
    def bundle_high(self) -> tuple[str, str] | None:
        """``(stamp, revision)`` of the newest bundle decided with here (``None``: none yet)."""
        if not self.extensions:
            return None
        rows = self._select_raw("SELECT stamp, revision FROM bundle_high WHERE name = 'pygate'")
        return (str(rows[0]["stamp"]), str(rows[0]["revision"])) if rows else None

    def raise_bundle_high(self, stamp: str, revision: str) -> tuple[str, str]:
        """Record ``revision`` as the newest unless a newer one is recorded; return the newest.

        Atomic in the database, so services sharing the store agree on one high-water mark.

        Raises:
            AuditError: the store cannot be written.
        """
        self._execute(
            [
                (
                    "INSERT INTO bundle_high (name, stamp, revision, seen_at) "
                    "VALUES ('pygate', ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                    "stamp = excluded.stamp, revision = excluded.revision, "
                    "seen_at = excluded.seen_at WHERE excluded.stamp > bundle_high.stamp",
                    (stamp, revision, datetime.now(UTC).isoformat()),
                )
            ]
        )
        return self.bundle_high() or (stamp, revision)

    # --- checkpoints ----------------------------------------------------------------------
    def _head(self) -> dict[str, Any]:
        """Where the chain stands now: last record (or latest anchor), count, latest anchor."""
        last = self._select_raw("SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1")
        anchors = self.anchors()
        top = anchors[-1] if anchors else None
        if last:
            seq, head = int(last[0]["seq"]), str(last[0]["hash"])
        elif top is not None:
            seq, head = int(top["through_seq"]), str(top["through_hash"])
        else:
            seq, head = 0, GENESIS
        return {
            "seq": seq,
            "head_hash": head,
            "count": self.count(),
            "anchor_no": int(top["anchor_no"]) if top else 0,
            "anchor_hash": str(top["anchor_hash"]) if top else GENESIS,
        }

    def _holds(self, cp: Checkpoint) -> bool:
        """Whether the chain as stored still holds the checkpoint's head (or pruned it)."""
        if cp.seq == 0:
            return True
        row = self._select_raw("SELECT hash FROM decisions WHERE seq = ?", (cp.seq,))
        if row:
            return bool(row[0]["hash"] == cp.head_hash)
        return any(
            int(a["through_seq"]) > cp.seq
            or (int(a["through_seq"]) == cp.seq and a["through_hash"] == cp.head_hash)
            for a in self.anchors()
        )

    def checkpoint(self) -> Checkpoint | None:
        """Write a signed checkpoint of the chain's head outside the database, now.

        Only ever forward: when the stored checkpoint is newer, or the current chain no
        longer holds its head (tampering), the stored one is kept and ``None`` returned.

        Raises:
            AuditError: the log cannot be read.
            OSError: the checkpoint cannot be written.
        """
        return self.integrity.write_checkpoint(self._head(), self._holds)

    def _checkpoint_quietly(self) -> None:
        """A checkpoint after a commit: a failure is logged, never fails the decision."""
        try:
            self.checkpoint()
        except (AuditError, OSError) as exc:
            log.error("cannot write audit checkpoint %s: %s", self.integrity.checkpoint_path, exc)

    def _close_checkpoint(self) -> None:
        """What ``close`` does first: a checkpoint when this handle added records."""
        if self.integrity.has_pending():
            self._checkpoint_quietly()

    # --- shared behaviour -----------------------------------------------------------------
    def masked(self, value: Any) -> Any:
        """``value`` with this log's redaction applied (keys and text patterns)."""
        return redact(value, self._redact_keys, self._redact_pattern)

    def redacted_json(self, output: Any) -> str:
        """``output`` as stored: configured fields masked, then canonical, strict JSON.

        NaN and infinities are not JSON (PostgreSQL's json type rejects them), so they are
        stored as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.
        """
        masked = redact_names(output, self._redact_keys, self._redact_pattern)
        return _stored_json(masked)

    def replay_input(self, document: JSONObject | None) -> str | None:
        """The ``opa_input`` column for the input document OPA was asked (``None``: none).

        ``{"user": ..., "context": ..., "redacted": [paths]}``: the document redacted as the
        output is, minus ``output`` (stored in its own column, redacted alike), and where
        redaction changed it (``redact_with_paths``), so a replay never decides on a mask.
        """
        if document is None:
            return None
        return self.stored_document(document)[0]

    def stored_document(self, document: JSONObject) -> tuple[str, Any]:
        """``replay_input(document)`` and the redacted ``output`` inside it, from ONE walk
        of the document (every string is scanned once; redaction is most of a record's
        cost). The gate works this out while OPA evaluates and hands it to the record
        (``Checked.stored``)."""
        masked, paths = redact_with_paths(document, self._redact_keys, self._redact_pattern)
        stored = {k: v for k, v in masked.items() if k != "output"}
        stored["redacted"] = paths
        return _stored_json(stored), masked.get("output")

    def _row(
        self,
        decision: Decision,
        output: Any,
        document: JSONObject | None = None,
        stored: tuple[str, Any] | None = None,
    ) -> dict[str, Any]:
        when = decision.decided_at or datetime.now(UTC)
        opa_input: str | None = None
        stored_output: str | None = None
        if document is not None:
            opa_input, masked = stored or self.stored_document(document)
            if output is document.get("output"):
                # The gate stores the output it asked OPA about: already redacted above.
                stored_output = _stored_json(masked)
        if stored_output is None:
            stored_output = self.redacted_json(output)
        return {
            "audit_id": decision.audit_id or uuid.uuid4().hex,
            "ts": when.isoformat(),
            "day": when.date().isoformat(),
            "service": decision.service,
            "user_id": decision.user_id,
            "output": stored_output,
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
            "actions": self.redacted_json([a.model_dump(mode="json") for a in decision.actions])
            if decision.actions
            else None,
            "refusals": self.redacted_json(stored_refusals(decision)),
            "opa_input": opa_input,
            "shadow_refusals": self._shadow_json(decision),
        }

    def _shadow_json(self, decision: Decision) -> str | None:
        """What shadow policies would have refused, as stored (``None`` when nothing)."""
        if not decision.shadow_refusals:
            return None
        return json.dumps(
            [
                {
                    "policy_id": r.policy_id,
                    "policy_set": r.policy_set,
                    "action": r.action,
                    "reason": redact_text(r.reason, self._redact_pattern),
                }
                for r in decision.shadow_refusals
            ],
            sort_keys=True,
            separators=(",", ":"),
        )

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
        self,
        items: list[tuple[Decision, Any]],
        releases: list[tuple[str, str]] | None = None,
        documents: list[JSONObject | None] | None = None,
    ) -> list[Decision]:
        """Write several records in one durable transaction, in order.

        Args:
            items: ``(decision, output)`` pairs.
            releases: quota units to give back in the same transaction.
            documents: per item, the input document OPA was asked (kept for replay).

        Raises:
            AuditError: nothing was committed.
        """
        docs = documents or [None] * len(items)
        rows = [self._row(d, o, doc) for (d, o), doc in zip(items, docs, strict=True)]
        self._insert(rows, releases or [])
        if rows and self.integrity.due(len(rows)):
            self._checkpoint_quietly()
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
        if rows and self.integrity.due(len(rows)):
            await asyncio.to_thread(self._checkpoint_quietly)
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

    def find(self, audit_id: str) -> AuditRecord | None:
        """The record with this audit id, or the only one it begins (8+ characters)."""
        rows = self._select("WHERE audit_id = ?", (audit_id,))
        if not rows and len(audit_id) >= 8 and re.fullmatch(r"[0-9a-fA-F-]+", audit_id):
            rows = self._select("WHERE audit_id LIKE ? ORDER BY seq LIMIT 2", (f"{audit_id}%",))
            rows = rows if len(rows) == 1 else []
        return to_record(rows[0]) if rows else None

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


def _checked(
    items: list[Checked], rows: list[dict[str, Any]], skipped: set[int]
) -> list[Decision | None]:
    stamped = _stamped([(i.decision, i.output) for i in items], rows)
    return [None if n in skipped else d for n, d in enumerate(stamped)]


def _stamped(items: list[tuple[Decision, Any]], rows: list[dict[str, Any]]) -> list[Decision]:
    """The decisions carrying the audit id and time of their committed records."""
    # (rows is built from items by every caller: strict='s mutants are equivalent)
    return [
        d.model_copy(
            update={"audit_id": r["audit_id"], "decided_at": datetime.fromisoformat(r["ts"])}
        )
        for (d, _), r in zip(items, rows, strict=True)
    ]


#: Anchor fields covered by ``anchor_message``, in hash order.
ANCHOR_COLUMNS = ("anchor_no", "created_at", "through_seq", "through_hash", "pruned", "cutoff")


def anchor_message(prev_anchor_hash: str, anchor: dict[str, Any]) -> str:
    """What a retention anchor's keyed hash covers: the previous anchor, its key, its fields."""
    body = json.dumps([anchor[c] for c in ANCHOR_COLUMNS], separators=(",", ":"))
    return f"anchor|{prev_anchor_hash}|{anchor.get('key_id')}|{body}"


def to_record(row: dict[str, Any]) -> AuditRecord:
    """A stored row as an AuditRecord."""
    return AuditRecord.model_validate(
        {
            **row,
            "output": json.loads(row["output"]),
            "policy_ids": json.loads(row["policy_ids"]),
            "allowed": bool(row["allowed"]),
            "fallback": bool(row["fallback"]),
            "actions": json.loads(row["actions"]) if row.get("actions") else None,
            "refusals": json.loads(row["refusals"]) if row.get("refusals") else None,
            "opa_input": json.loads(row["opa_input"]) if row.get("opa_input") else None,
            "shadow_refusals": json.loads(row["shadow_refusals"])
            if row.get("shadow_refusals")
            else None,
        }
    )


def stored_refusals(decision: Decision) -> list[JSONObject]:
    """The refusal objects a record keeps: every field OPA gave, none dropped.

    Shadow refusals (``"shadow": true``), when the decision carries them apart from its
    enforcing ones (a ``shadow_refusals`` field), are kept in the same list, marked.
    """
    kept = [r.model_dump(mode="json", exclude_none=True) for r in decision.refusals]
    for shadow in getattr(decision, "shadow_refusals", None) or []:
        dumped = shadow.model_dump(mode="json", exclude_none=True)
        kept.append({**dumped, "shadow": True})
    return kept


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
        document: the input document OPA was asked (kept, redacted, for replay).
        stored: ``AuditLog.stored_document(document)`` when already worked out (it must be
            of this very document), else ``None``.
    """

    decision: Decision
    output: Any
    quota: tuple[str, str, int] | None = None
    document: JSONObject | None = None
    stored: tuple[str, Any] | None = None


def claims(log: AuditLog, item: Checked, row: dict[str, Any]) -> list[Check]:
    """The statements that make ``item``'s effects exact, in its record's transaction.

    - An allow takes its quota unit only if the usage is still at most the figure OPA saw
      (a policy that allowed at ``usage`` allows at any lower figure), so concurrent
      requests never pass the quota; a refusal takes nothing, so they never fall short of it.
      The usage is the counter, but never less than the allowed records the chain holds for
      that user and day (``chain_usage``): a counter reset or deleted behind pygate's back
      is not honoured, and the allow writes the corrected figure back.
    - A quota refusal stands only if the usage reached the figure it saw; otherwise (the
      requests ahead of it were refused after all) it is decided again.
    - An allow that used approvals uses each of them up: only one record can, ever. The
      row is re-sealed as used (``log.seal_row``) and only changes if it still is the sealed
      row that was read (same ``mac``): an approval without a valid seal is never used.
    """
    decision = item.decision
    checks: list[Check] = []
    if item.quota is not None:
        user_id, day, usage = item.quota
        # ``used`` never counts below the chain: max(counter, allowed records of the day).
        current = f"{log._GREATEST}(used, {CHAIN_USAGE})"
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
                    f"UPDATE quota_usage SET used = {current} + 1 "
                    f"WHERE user_id = ? AND day = ? AND {current} <= ?",
                    (user_id, day, user_id, day, user_id, day, usage),
                    True,
                )
            )
        elif any(r.action == QUOTA_ACTION for r in decision.refusals):
            checks.append(
                (
                    f"UPDATE quota_usage SET used = used WHERE user_id = ? AND day = ? "
                    f"AND {current} >= ?",
                    (user_id, day, user_id, day, usage),
                    True,
                )
            )
    if decision.allowed and decision.approval_id:
        now = datetime.now(UTC).isoformat()
        for approval_id in decision.approval_id.split(","):
            checks.append(_use_approval(log, approval_id, row["audit_id"], now))
    return checks


#: The allowed records the chain holds for ``(user_id, day)``: what a counter may not be below.
CHAIN_USAGE = "(SELECT count(*) FROM decisions WHERE user_id = ? AND day = ? AND allowed = 1)"


def _use_approval(log: AuditLog, approval_id: str, audit_id: str, now: str) -> Check:
    """The statement that uses up one approval for the record ``audit_id``, re-sealed."""
    rows = log._select_raw("SELECT * FROM approvals WHERE approval_id = ?", (approval_id,))
    if not rows or not log.sealed("approvals", rows[0]):
        # Never honoured: the claim fails, the item is decided again without it.
        return ("UPDATE approvals SET status = status WHERE 1 = 0", (), True)
    used = log.seal_row("approvals", {**rows[0], "status": "used", "used_audit_id": audit_id})
    return (
        "UPDATE approvals SET status = 'used', used_audit_id = ?, key_id = ?, mac = ? "
        "WHERE approval_id = ? AND status = 'approved' AND expires_at > ? AND mac = ?",
        (audit_id, used["key_id"], used["mac"], approval_id, now, rows[0]["mac"]),
        True,
    )
