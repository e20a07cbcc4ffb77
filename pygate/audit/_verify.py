"""Verification of an audit log: the keyed chain, the signed checkpoint, the sealed rows.

``AuditLog.verify`` calls ``verify_log``. In order: the retention anchors (chained and keyed),
every record (its link to the previous one and its HMAC under the key its ``key_id`` names),
the latest checkpoint outside the database (its head must still be there, or covered by a
keyed anchor), then what changes a decision beside the chain: sealed approval and follow-up
rows, and quota counters no lower than the allowed decisions the chain holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pygate._errors import AuditError
from pygate.audit._base import GENESIS, VerifyResult, anchor_message, canonical

if TYPE_CHECKING:
    from pygate.audit._base import AuditLog


def chain_start(log: AuditLog) -> tuple[str, int, str]:
    """Where the chain starts: ``(hash, seq, problem)`` after the latest retention anchor.

    A pruned log starts from the hash of the last pruned record, kept in a checkpoint that
    is itself chained and keyed; ``problem`` is non-empty when the checkpoints were
    tampered with or forged (a row written without the key).
    """
    prev_anchor, start, seq = GENESIS, GENESIS, 0
    for anchor in log.anchors():
        no = anchor["anchor_no"]
        if anchor["prev_anchor_hash"] != prev_anchor:
            return start, seq, f"retention anchor {no}: chain broken"
        if not log.integrity.keyring.check(
            anchor.get("key_id"), anchor_message(prev_anchor, anchor), anchor["anchor_hash"]
        ):
            return (
                start,
                seq,
                (
                    f"retention anchor {no} (covering records up to {anchor['through_seq']}): "
                    "content was edited, or it was forged without the audit key"
                ),
            )
        prev_anchor = anchor["anchor_hash"]
        start, seq = anchor["through_hash"], int(anchor["through_seq"])
    return start, seq, ""


def verify_log(log: AuditLog) -> VerifyResult:
    """Walk the keyed chain and hold it to the latest checkpoint; report the first problem.

    After a retention prune the chain starts at the latest anchor in ``chain_anchor``
    (the hash of the last pruned record), so a pruned log still verifies end to end.
    Then the checkpoint: its head must still be in the chain (or covered by a keyed
    anchor), so deleted last records, an emptied or dropped table and a chain rebuilt
    from scratch are reported with the sequence numbers concerned.

    Raises:
        AuditError: the log or the checkpoint cannot be read.
    """
    keyring = log.integrity.keyring
    prev, last_seq, problem = chain_start(log)
    if problem:
        return VerifyResult(False, 0, None, None, problem)
    start_seq = last_seq
    checked = 0
    for row in log._select("ORDER BY seq"):
        checked += 1
        seq = int(row["seq"])
        missing: tuple[int, int] | None = None
        if row["prev_hash"] != prev:
            problem = "chain broken: a record before it was deleted, inserted or reordered"
            if seq != last_seq + 1:
                problem = f"records {last_seq + 1}..{seq - 1} are missing"
                missing = (last_seq + 1, seq - 1)
            return VerifyResult(False, checked, seq, row["audit_id"], problem, missing)
        key_id = row.get("key_id")
        if not log.integrity.check_link(prev, key_id, canonical(row), row["hash"]):
            problem = (
                "record content was edited (its hash does not verify under key "
                f"{key_id}; a chain recomputed without the key looks like this too)"
            )
            if not key_id or key_id not in keyring.keys:
                problem = (
                    f"record {seq} names key {key_id!r}, which the keyring "
                    f"({keyring.source}) does not hold: written without the audit key"
                )
            elif seq != last_seq + 1:
                problem = f"records {last_seq + 1}..{seq - 1} are missing"
                missing = (last_seq + 1, seq - 1)
            return VerifyResult(False, checked, seq, row["audit_id"], problem, missing)
        prev = row["hash"]
        last_seq = seq
    result = against_checkpoint(log, checked, start_seq, last_seq)
    issues = cross_checks(log)
    if not issues:
        return result
    if result.ok:
        return VerifyResult(
            False, checked, None, None, issues[0],
            checkpoint_seq=result.checkpoint_seq, issues=tuple(issues[1:]),
        )  # fmt: skip
    return VerifyResult(**{**result.__dict__, "issues": tuple(issues)})


def against_checkpoint(log: AuditLog, checked: int, start_seq: int, last_seq: int) -> VerifyResult:
    """The second half of ``verify``: the walked chain against the stored checkpoint."""
    cp = log.integrity.read_checkpoint()
    where = log.integrity.checkpoint_path
    if cp is None:
        if last_seq == 0:
            return VerifyResult(True, checked)
        return VerifyResult(
            False, checked, None, None,
            f"no checkpoint at {where}: records 1..{last_seq} cannot be checked for "
            "truncation (was it deleted, or is PYGATE_AUDIT_CHECKPOINT_DIR wrong?)",
        )  # fmt: skip
    if not log.integrity.checkpoint_ok(cp):
        return VerifyResult(
            False, checked, None, None,
            f"checkpoint {where} is not signed by a key of the keyring (forged or edited)",
        )  # fmt: skip
    fail = _Fail(checked, cp.seq)
    anchors = {int(a["anchor_no"]): a for a in log.anchors()}
    if cp.anchor_no and (
        cp.anchor_no not in anchors or anchors[cp.anchor_no]["anchor_hash"] != cp.anchor_hash
    ):
        return fail(f"retention anchor {cp.anchor_no}, recorded in the checkpoint of "
                    f"{cp.at}, is missing or differs")  # fmt: skip
    if cp.seq <= start_seq:
        # Pruned since the checkpoint: the keyed anchor that covers it must agree.
        top = anchors[max(anchors)] if anchors else None
        covered = top is not None and (
            int(top["through_seq"]) > cp.seq or top["through_hash"] == cp.head_hash
        )
        if cp.seq and not covered:
            return fail(f"record {cp.seq} differs from the checkpoint of {cp.at}")
        return VerifyResult(True, checked, checkpoint_seq=cp.seq)
    if last_seq < cp.seq:
        first = last_seq + 1
        what = (
            f"every record is missing: the checkpoint of {cp.at} vouches for records up to "
            f"{cp.seq} and the log has none (emptied, dropped or replaced)"
            if checked == 0
            else f"records {first}..{cp.seq} are missing: the log ends at {last_seq}, the "
            f"checkpoint of {cp.at} vouches for {cp.seq} (the last records were deleted)"
        )
        return fail(what, (first, cp.seq))
    row = log._select_raw("SELECT hash, audit_id FROM decisions WHERE seq = ?", (cp.seq,))
    if not row or row[0]["hash"] != cp.head_hash:
        return fail(
            f"record {cp.seq} differs from the checkpoint of {cp.at}: the chain up to it "
            "was rewritten or replaced",
            seq=cp.seq,
        )
    return VerifyResult(True, checked, checkpoint_seq=cp.seq)


def cross_checks(log: AuditLog) -> list[str]:
    """What ``verify`` checks beside the chain: sealed rows and the quota counters."""
    issues: list[str] = []
    if log.extensions:
        try:
            approvals = log._select_raw("SELECT * FROM approvals ORDER BY created_at")
            followups = log._select_raw("SELECT * FROM followups ORDER BY ts")
        except AuditError as exc:
            return [f"the approvals or follow-ups table cannot be read (dropped?): {exc}"]
        used = log.used_approvals()
        for row in approvals:
            aid = row["approval_id"]
            if not log.sealed("approvals", row):
                issues.append(
                    f"approval {aid} ({row['status']}, decided by {row['decided_by']!r}) is "
                    "not sealed by the audit key: inserted or edited outside pygate, "
                    "not honoured"
                )
            elif row["status"] in ("pending", "approved") and aid in used:
                issues.append(
                    f"approval {aid} says {row['status']} but decision {used[aid]} in the "
                    "chain used it: its row was set back, not honoured"
                )
        for row in followups:
            if not log.sealed("followups", row):
                issues.append(
                    f"follow-up {row['followup_id']} (of {row['audit_id']}) is not sealed by "
                    "the audit key: inserted or edited outside pygate"
                )
    counters = {
        (r["user_id"], r["day"]): int(r["used"])
        for r in log._select_raw("SELECT user_id, day, used FROM quota_usage")
    }
    # A unit reserved just before midnight may be recorded on the next day (the record's
    # day is when OPA answered, at most the 60 s timeout later): those records do not count.
    for row in log._select_raw(
        "SELECT user_id, day, count(*) AS n, "
        "sum(CASE WHEN ts < day || 'T00:01:00' THEN 1 ELSE 0 END) AS early "
        "FROM decisions WHERE allowed = 1 AND user_id IS NOT NULL "
        "GROUP BY user_id, day ORDER BY day, user_id"
    ):
        # Records appended without the gate (no reservation) have no counter to check.
        have = counters.get((row["user_id"], row["day"]))
        if have is not None and have < int(row["n"]) - int(row["early"] or 0):
            issues.append(
                f"quota counter of user {row['user_id']!r} on {row['day']} says {have}, the "
                f"chain holds {row['n']} allowed decisions: the counter was edited"
            )
    return issues


@dataclass(frozen=True)
class _Fail:
    """Builds the failed VerifyResult of a checkpoint comparison."""

    checked: int
    checkpoint_seq: int

    def __call__(
        self, problem: str, missing: tuple[int, int] | None = None, seq: int | None = None
    ) -> VerifyResult:
        return VerifyResult(False, self.checked, seq, None, problem, missing, self.checkpoint_seq)
