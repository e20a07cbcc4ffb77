"""Retention and export: prune old records without breaking the chain; JSONL and CSV out.

Pruning deletes a *prefix* of the chain (every record up to the last one older than the cutoff
with nothing newer before it) and, in the same transaction, writes a checkpoint to
``chain_anchor``: the hash and seq of the last pruned record, how many were pruned, the cutoff,
chained to the previous checkpoint and keyed (HMAC under the audit key, ``key_id`` stored), so
an anchor forged by someone who can write the database but lacks the key does not verify.
``verify`` then starts from the latest checkpoint instead
of the all-zero genesis, so the remaining log verifies end to end, and a checkpoint that was
edited or removed is reported.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from pygate._errors import AuditError, InputError
from pygate.audit._base import GENESIS, AuditLog, anchor_message

#: Export columns, in order; ``decision_id`` joins a record with OPA's own decision logs.
EXPORT_COLUMNS = (
    "seq", "audit_id", "decision_id", "ts", "service", "user_id", "allowed", "policy_id",
    "policy_ids", "action", "reason", "fallback", "latency_ms", "bundle_revision",
    "approval_id", "approved_by", "output", "prev_hash", "hash",
)  # fmt: skip


def prune(log: AuditLog, older_than_days: float, now: datetime | None = None) -> dict[str, Any]:
    """Delete records older than ``older_than_days`` days, keeping the chain verifiable.

    The chain is verified first: a log that does not verify is never pruned (pruning could
    hide the tampering). Records older than the cutoff that follow a newer record in the
    chain are kept (only a prefix can go) and counted as ``kept_older``.

    Returns:
        ``{"pruned", "through_seq", "cutoff", "anchor_no", "kept_older"}``.

    Raises:
        InputError: a negative age.
        AuditError: the chain does not verify, or the backend cannot prune.
    """
    if older_than_days < 0:
        raise InputError("older_than", "must be 0 or more days")
    at = now or datetime.now(UTC)
    cutoff = (at - timedelta(days=older_than_days)).isoformat()
    checked = log.verify()
    if not checked.ok:
        raise AuditError(
            f"refusing to prune: the chain does not verify at record {checked.seq} "
            f"({checked.problem})"
        )
    first_new = log._scalar("SELECT min(seq) FROM decisions WHERE ts >= ?", (cutoff,))
    last = log._scalar("SELECT max(seq) FROM decisions")
    through = (int(first_new) - 1) if first_new is not None else (int(last) if last else 0)
    older = int(log._scalar("SELECT count(*) FROM decisions WHERE ts < ?", (cutoff,)))
    doomed = int(log._scalar("SELECT count(*) FROM decisions WHERE seq <= ?", (through,)))
    result = {"pruned": 0, "through_seq": through, "cutoff": cutoff, "anchor_no": None,
              "kept_older": older - doomed}  # fmt: skip
    if doomed == 0:
        return result
    anchors = log.anchors()
    row = log._select_raw("SELECT hash FROM decisions WHERE seq = ?", (through,))
    anchor = {
        "anchor_no": (int(anchors[-1]["anchor_no"]) + 1) if anchors else 1,
        "created_at": at.isoformat(),
        "through_seq": through,
        "through_hash": row[0]["hash"],
        "pruned": doomed,
        "cutoff": cutoff,
    }
    prev = anchors[-1]["anchor_hash"] if anchors else GENESIS
    anchor["prev_anchor_hash"] = prev
    anchor["key_id"] = log.integrity.keyring.current
    anchor["anchor_hash"] = log.integrity.keyring.sign(anchor_message(prev, anchor))
    result["pruned"] = log._prune(through, anchor)
    result["anchor_no"] = anchor["anchor_no"]
    log._checkpoint_quietly()  # the checkpoint moves past the pruned prefix at once
    return result


def _rows(log: AuditLog, since: str | None) -> Iterator[dict[str, Any]]:
    where = " WHERE ts >= ?" if since else ""
    yield from log._select(f"{where} ORDER BY seq", (since,) if since else ())


def export_jsonl(log: AuditLog, out: IO[str], since: str | None = None) -> int:
    """Write one JSON object per record (``EXPORT_COLUMNS``); return how many."""
    n = 0
    for row in _rows(log, since):
        doc = {c: row.get(c) for c in EXPORT_COLUMNS}
        doc["output"] = json.loads(row["output"])
        doc["policy_ids"] = json.loads(row["policy_ids"])
        doc["allowed"] = bool(row["allowed"])
        doc["fallback"] = bool(row["fallback"])
        doc["ts"] = str(row["ts"])
        out.write(json.dumps(doc, separators=(",", ":")) + "\n")
        n += 1
    return n


def export_csv(log: AuditLog, out: IO[str], since: str | None = None) -> int:
    """Write a CSV with a header row (``EXPORT_COLUMNS``; output and policy_ids as JSON)."""
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    n = 0
    for row in _rows(log, since):
        writer.writerow(
            [
                ("true" if row[c] else "false") if c in ("allowed", "fallback") else row.get(c)
                for c in EXPORT_COLUMNS
            ]
        )
        n += 1
    return n
