"""Human approval for refusals whose action is ``require_review``.

The flow, end to end:

1. OPA refuses an output with a ``require_review`` policy (e.g. AST-002) and says what a person
   must approve: the output's canonical hash (computed in Rego) and the policy ids.
2. The gate records a *pending* approval (who, what output, why, the audit id).
3. ``pygate approvals approve ID --by NAME`` (or ``Approvals.approve``) approves it; it then stays
   usable for ``approval_ttl`` seconds (at most ``approval_ttl_max``). ``reject`` closes it.
   The approver is named, is never the requesting user, and sees the output exactly as it
   was submitted (``review_output``, unmasked; kept only until the request is decided or
   expires, never in the decision records).
4. When the same user submits the same output again, the gate puts the user's approved,
   unexpired approvals into ``input.context.approvals`` (never the caller's own) and the Rego
   package ``pygate.approvals`` decides whether one applies. An allow that used an approval is
   audited with ``approval_id`` and ``approved_by``, and the approval is used up in the
   same transaction as that record (``UPDATE … WHERE status = 'approved'``, one row or
   nothing): one approval lets exactly one decision through, whatever runs concurrently
   (a batch, threads, processes, services sharing PostgreSQL).

Approvals live in the audit store's ``approvals`` table, beside the hash-chained decisions.
Each row carries a keyed seal (``mac``, ``key_id``; ``AuditLog.seal_row``) over what it says;
the gate hands OPA only rows whose seal verifies and that no allow in the chain has used, so a
row inserted or edited in the database without the audit key is never honoured.
"""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from pygate._errors import ApprovalError, AuditError
from pygate._models import Decision, JSONObject
from pygate.audit import AuditLog

REVIEW_ACTION = "require_review"

Status = Literal["pending", "approved", "rejected", "used", "expired"]
STATUSES: tuple[str, ...] = ("pending", "approved", "rejected", "used", "expired")

#: The most approvals one decision carries to OPA (newest first); bounds the input size.
MAX_IN_CONTEXT = 20

#: The default upper bound of any approval's life, in seconds (7 days).
DEFAULT_MAX_TTL = 7 * 86400.0


def check_ttl(ttl: float, max_ttl: float, name: str = "ttl") -> float:
    """``ttl`` if it is a finite number of seconds in ``(0, max_ttl]``.

    Raises:
        ApprovalError: names ``name``, says what was expected.
    """
    if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or not math.isfinite(ttl):
        raise ApprovalError(f"{name}: expected a finite number of seconds, got {ttl!r}")
    if ttl <= 0 or ttl > max_ttl:
        raise ApprovalError(
            f"{name}: expected seconds in (0, {max_ttl:g}] (approval_ttl_max), got {ttl:g}"
        )
    return float(ttl)


def _same_person(a: str, b: str) -> bool:
    """Identities compared as people type them: case and surrounding spaces ignored."""
    return a.strip().casefold() == b.strip().casefold()


class Approval(BaseModel):
    """One request for human review and its outcome.

    ``status`` is ``expired`` when a pending or approved request is past ``expires_at``.
    """

    model_config = ConfigDict(frozen=True)

    approval_id: str
    audit_id: str
    created_at: datetime
    expires_at: datetime
    service: str | None
    user_id: str
    output: Any
    output_hash: str
    policy_ids: list[str]
    reason: str
    status: Status
    decided_by: str | None = None
    decided_at: datetime | None = None
    note: str | None = None
    used_audit_id: str | None = None
    #: The output exactly as submitted, for the approver; ``None`` once decided or expired.
    review_output: Any = None


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _to_approval(row: dict[str, Any], now: datetime) -> Approval:
    expires = datetime.fromisoformat(row["expires_at"])
    status = row["status"]
    if status in ("pending", "approved") and expires <= now:
        status = "expired"
    review = row.get("review_output")
    return Approval.model_validate(
        {
            **row,
            "output": json.loads(row["output"]),
            "review_output": json.loads(review) if review and status == "pending" else None,
            "policy_ids": json.loads(row["policy_ids"]),
            "status": status,
        }
    )


class Approvals:
    """The approval queue of one audit store.

    Args:
        log: the audit store holding the ``approvals`` table.
        ttl: seconds a pending request waits, and an approval stays usable once given.
        max_ttl: the longest life any approval may be given (``approve(ttl=…)`` included).
    """

    def __init__(
        self, log: AuditLog, ttl: float = 86400.0, max_ttl: float = DEFAULT_MAX_TTL
    ) -> None:
        self.max_ttl = check_ttl(max_ttl, 100 * 365 * 86400.0, "approval_ttl_max")
        self.log = log
        self.ttl = timedelta(seconds=check_ttl(ttl, self.max_ttl, "approval_ttl"))

    # --- what the gate calls --------------------------------------------------------------
    def for_context(self, user_id: str, now: datetime | None = None) -> list[JSONObject]:
        """The user's approved, unexpired, unused approvals, as OPA sees them.

        ``expires_at_ns`` lets Rego check expiry itself (``time.now_ns()``).
        """
        at = _now(now)
        rows = self.log._select_raw(
            "SELECT * FROM approvals WHERE user_id = ? AND status = 'approved' AND expires_at > ? "
            "ORDER BY expires_at DESC LIMIT ?",
            (user_id, at.isoformat(), MAX_IN_CONTEXT),
        )
        # Only rows pygate wrote with the audit key count, and never one the chain shows used:
        # an approval inserted (or set back to approved) in the database is not honoured.
        used = self.log.used_approvals(user_id) if rows else {}
        rows = [r for r in rows if self.log.sealed("approvals", r) and r["approval_id"] not in used]
        return [
            {
                "approval_id": r["approval_id"],
                "status": "approved",
                "user_id": r["user_id"],
                "output_hash": r["output_hash"],
                "policy_ids": json.loads(r["policy_ids"]),
                "approved_by": r["decided_by"],
                "expires_at_ns": int(datetime.fromisoformat(r["expires_at"]).timestamp() * 1e9),
            }
            for r in rows
        ]

    def after_decision(self, decision: Decision, output: Any) -> Approval | None:
        """Book-keeping after an audited decision: open a review request for a refusal.

        (An approval an allow used was used up in that allow's own audit transaction.)

        Returns:
            The pending approval a refusal created (or found already open), else ``None``.
        """
        if decision.allowed or decision.fallback or not decision.output_hash:
            return None
        return self.request(decision, output)

    def request(
        self, decision: Decision, output: Any, now: datetime | None = None
    ) -> Approval | None:
        """Open a pending approval for a ``require_review`` refusal (one per user and output).

        A request already pending for the same user and output is returned instead of a
        second one, so a user who retries does not flood the approvers.
        """
        policy_ids = [r.policy_id for r in decision.refusals if r.action == REVIEW_ACTION]
        if not policy_ids or not decision.output_hash or not decision.user_id:
            return None
        at = _now(now)
        open_ = self.log._select_raw(
            "SELECT * FROM approvals WHERE user_id = ? AND output_hash = ? "
            "AND status = 'pending' AND expires_at > ? ORDER BY created_at DESC LIMIT 1",
            (decision.user_id, decision.output_hash, at.isoformat()),
        )
        if open_ and self.log.sealed("approvals", open_[0]):
            return _to_approval(open_[0], at)
        approval_id = uuid.uuid4().hex[:12]
        row = self.log.seal_row(
            "approvals",
            {
                "approval_id": approval_id,
                "audit_id": decision.audit_id or "",
                "created_at": at.isoformat(),
                "expires_at": (at + self.ttl).isoformat(),
                "service": decision.service,
                "user_id": decision.user_id,
                "output": self.log.redacted_json(output),
                "output_hash": decision.output_hash,
                "policy_ids": json.dumps(sorted(policy_ids)),
                "reason": decision.reason,
                "status": "pending",
            },
        )
        # The approver's view: the output exactly as submitted, outside the seal (it never
        # decides anything, OPA matches the sealed ``output_hash``) and cleared on decision.
        row["review_output"] = json.dumps(output, sort_keys=True, default=repr)
        self.log._execute(
            [
                self._forget_expired(at),
                (
                    f"INSERT INTO approvals ({', '.join(row)}) "
                    f"VALUES ({', '.join('?' * len(row))})",
                    tuple(row.values()),
                ),
            ]
        )
        return self.get(approval_id, at)

    @staticmethod
    def _forget_expired(at: datetime) -> tuple[str, tuple[Any, ...]]:
        """The statement that drops the unmasked output of requests past their expiry."""
        return (
            "UPDATE approvals SET review_output = NULL "
            "WHERE review_output IS NOT NULL AND expires_at <= ?",
            (at.isoformat(),),
        )

    # --- what people call -----------------------------------------------------------------
    def get(self, approval_id: str, now: datetime | None = None) -> Approval:
        """One approval by id.

        Raises:
            ApprovalError: no approval has this id.
        """
        rows = self.log._select_raw("SELECT * FROM approvals WHERE approval_id = ?", (approval_id,))
        if not rows:
            raise ApprovalError(f"no approval with id {approval_id!r}")
        return _to_approval(rows[0], _now(now))

    def find(
        self, status: str | None = "pending", now: datetime | None = None, limit: int = 1000
    ) -> list[Approval]:
        """Approvals with ``status`` (``None``: all), newest first.

        Raises:
            ApprovalError: an unknown status.
        """
        if status is not None and status not in STATUSES:
            raise ApprovalError(f"status: expected one of {', '.join(STATUSES)}, got {status!r}")
        at = _now(now)
        # A read-only store: listing still works (an expired copy is never shown, see below).
        with contextlib.suppress(AuditError):
            self.log._execute([self._forget_expired(at)])
        rows = self.log._select_raw(
            "SELECT * FROM approvals ORDER BY created_at DESC, approval_id LIMIT ?", (limit,)
        )
        found = [_to_approval(r, at) for r in rows]
        return [a for a in found if status is None or a.status == status]

    def approve(
        self,
        approval_id: str,
        by: str,
        note: str | None = None,
        ttl: float | None = None,
        now: datetime | None = None,
    ) -> Approval:
        """Approve a pending request; it stays usable for ``ttl`` (default: the queue's TTL).

        Raises:
            ApprovalError: unknown id, empty approver, the approver is the requesting user,
                ``ttl`` not in ``(0, max_ttl]``, or the request is not pending (already
                decided, used, or expired).
        """
        at = _now(now)
        life = self.ttl if ttl is None else timedelta(seconds=check_ttl(ttl, self.max_ttl))
        return self._decide(approval_id, by, "approved", note, at, at + life)

    def reject(
        self, approval_id: str, by: str, note: str | None = None, now: datetime | None = None
    ) -> Approval:
        """Reject a pending request.

        Raises:
            ApprovalError: unknown id, empty approver, or the request is not pending.
        """
        at = _now(now)
        return self._decide(approval_id, by, "rejected", note, at, None)

    def _decide(
        self,
        approval_id: str,
        by: str,
        status: str,
        note: str | None,
        at: datetime,
        expires: datetime | None,
    ) -> Approval:
        if not isinstance(by, str) or not by.strip():
            raise ApprovalError("by: the approver's name is required")
        current = self.get(approval_id, at)
        if current.status != "pending":
            raise ApprovalError(
                f"approval {approval_id} is {current.status}, not pending; nothing to decide"
            )
        if _same_person(by, current.user_id):
            raise ApprovalError(
                f"by: {by.strip()!r} requested approval {approval_id}; someone else must decide it"
            )
        new_expiry = (expires or current.expires_at).isoformat()
        change = {"status": status, "decided_by": by.strip(), "decided_at": at.isoformat(),
                  "note": note, "expires_at": new_expiry}  # fmt: skip
        # The approver's unmasked copy goes with the decision (it is outside the seal).
        update = self._sealed_update(approval_id, change, "pending", at)
        self.log._execute([update])
        done = self.get(approval_id, at)
        if done.decided_by != by.strip() or done.decided_at != at:
            raise ApprovalError(f"approval {approval_id} was decided by someone else meanwhile")
        return done

    def _sealed_update(
        self, approval_id: str, change: dict[str, Any], status: str, at: datetime
    ) -> tuple[str, tuple[Any, ...]]:
        """The UPDATE that applies ``change`` to a row still in ``status`` and unexpired at
        ``at``, re-sealed, and clearing ``review_output``."""
        rows = self.log._select_raw("SELECT * FROM approvals WHERE approval_id = ?", (approval_id,))
        if not rows:
            raise ApprovalError(f"no approval with id {approval_id!r}")
        if not self.log.sealed("approvals", rows[0]):
            # Deciding it would put the key's seal on a row someone wrote without the key.
            raise ApprovalError(
                f"approval {approval_id} is not sealed by the audit key (inserted or edited "
                "outside pygate); it cannot be decided or used"
            )
        sealed = self.log.seal_row("approvals", {**rows[0], **change})
        change = {**change, "key_id": sealed["key_id"], "mac": sealed["mac"]}
        sets = ", ".join(f"{c} = ?" for c in change)
        return (
            f"UPDATE approvals SET {sets}, review_output = NULL "
            "WHERE approval_id = ? AND status = ? AND expires_at > ? AND mac = ?",
            (*change.values(), approval_id, status, at.isoformat(), rows[0]["mac"]),
        )
