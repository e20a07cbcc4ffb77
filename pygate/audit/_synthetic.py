"""A generated decision history, for measuring and demonstrating the audit analytics.

``generate_history`` writes realistic-looking records through the normal append path (so the
hash chain is real): two services, a few hundred users with a day-night rhythm, the repo's
policies refusing at plausible rates, users who retry, escalate or leave after a refusal,
approvals that are approved, rejected or left pending, follow-ups the host app recorded, and a
few engine outages whose decisions are fail-closed fallback refusals.

Every generated record's ``bundle_revision`` is ``synthetic``, so it can always be told apart.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pygate._models import Decision, Refusal
from pygate.audit._base import AuditLog

SYNTHETIC_REVISION = "synthetic"

# (service, weight, output factory, refusal or None). A refusal is
# (policy_id, action, reason template); the template sees the output's fields.
_Refusal = tuple[str, str, str]
_Template = tuple[str, float, Callable[[random.Random], dict[str, Any]], _Refusal | None]

_TEMPLATES: list[_Template] = [
    ("finance", 30, lambda r: {"type": "transfer", "amount": r.randint(10, 900),
                               "to": f"acct-{r.randint(1, 999)}"}, None),
    ("finance", 9, lambda r: {"type": "transfer", "amount": r.randint(1001, 20000),
                              "to": f"acct-{r.randint(1, 999)}"},
     ("FIN-002", "show_user_limit", "Transfer of {amount} exceeds your transaction limit of 1000")),
    ("finance", 2, lambda r: {"type": "transfer", "amount": r.randint(10, 500), "to": "acct-7"},
     ("FIN-001", "log_and_notify", "Your account is under regulatory review")),
    ("finance", 4, lambda r: {"type": "recommendation", "asset": r.choice(["ACME", "UMBRELLA"])},
     ("FIN-004", "log_refusal", "{asset} is a restricted asset")),
    ("finance", 12, lambda r: {"type": "recommendation", "asset": r.choice(["GLOBEX", "INITECH"])},
     None),
    ("finance", 1.5, lambda r: {"type": "transfer", "amount": r.randint(10001, 90000),
                                "currency": r.choice(["BTC", "ETH"])},
     ("FIN-DATA-001", "require_review", "Transfers of crypto over 10000 need human review")),
    ("finance", 0.7, lambda r: {"type": "transfer", "to": "acct-3"},
     ("FIN-003", "log_refusal", "Malformed transfer: amount must be a positive number")),
    ("assistant", 26, lambda r: {"type": "tool_call",
                                 "action": r.choice(["analyze", "explain", "recommend_review"])},
     None),
    ("assistant", 5, lambda r: {"type": "tool_call",
                                "action": r.choice(["delete_records", "send_email", "run_sql"]),
                                "target": f"t{r.randint(1, 50)}"},
     ("AST-002", "require_review", "Action '{action}' needs review")),
    ("assistant", 3, lambda r: {"type": "text", "text": "```python\nimport os\n```"},
     ("AST-001", "log_refusal", "Code generation is limited to the roles developer, admin")),
    ("assistant", 1, lambda r: {"type": "tool_call", "action": "explain"},
     ("AST-003", "show_quota", "You have reached your daily quota of 100 requests")),
    ("assistant", 0.5, lambda r: {"type": "text", "text": "api_key = sk-live-0123456789abcdef",
                                  "api_key": "sk-live-0123456789abcdef"},
     ("AST-DATA-001", "log_refusal", "The answer appears to contain a credential")),
]  # fmt: skip

_FALLBACK_REASON = (
    "The policy engine could not decide (EngineUnavailable: cannot connect to OPA at "
    "http://127.0.0.1:8181); refused to be safe"
)


@dataclass
class _Event:
    ts: datetime
    service: str
    user: str
    output: dict[str, Any]
    refusal: _Refusal | None
    fallback: bool = False
    audit_id: str = ""


def _hourly_weight(hour: int) -> float:
    """More traffic by day than by night (UTC)."""
    return 0.25 + (1.0 if 8 <= hour < 20 else 0.0) + (0.5 if 10 <= hour < 17 else 0.0)


def _decision(ev: _Event, rng: random.Random) -> Decision:
    refusals: list[Refusal] = []
    reason = "allowed"
    if ev.fallback:
        refusals = [Refusal(policy_id="pygate.engine", reason=_FALLBACK_REASON,
                            action="log_refusal", priority=0)]  # fmt: skip
        reason = _FALLBACK_REASON
    elif ev.refusal is not None:
        pid, action, template = ev.refusal
        reason = template.format(**{k: v for k, v in ev.output.items() if isinstance(v, str | int)})
        refusals = [Refusal(policy_id=pid, reason=reason, action=action, priority=20)]
    primary = refusals[0] if refusals else None
    return Decision(
        allowed=not refusals,
        reason=reason,
        policy_id=primary.policy_id if primary else None,
        action=primary.action if primary else None,
        refusals=refusals,
        service=ev.service,
        user_id=ev.user,
        audit_id=ev.audit_id,
        decision_id=None if ev.fallback else str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        bundle_revision=None if ev.fallback else SYNTHETIC_REVISION,
        fallback=ev.fallback,
        latency_ms=round(rng.lognormvariate(0.3, 0.4), 3),
        decided_at=ev.ts,
    )


def _events(records: int, days: int, now: datetime, rng: random.Random) -> list[_Event]:
    start = now - timedelta(days=days)
    hours = [start + timedelta(hours=h) for h in range(days * 24)]
    weights = [_hourly_weight(h.hour) for h in hours]
    users = [f"user-{i:04d}" for i in range(max(20, records // 250))]
    template_weights = [t[1] for t in _TEMPLATES]
    events: list[_Event] = []
    while len(events) < records:
        hour = rng.choices(hours, weights)[0]
        ts = hour + timedelta(seconds=rng.uniform(0, 3600))
        service, _, make, refusal = rng.choices(_TEMPLATES, template_weights)[0]
        user = rng.choice(users)
        events.append(_Event(ts, service, user, make(rng), refusal))
        if refusal is None:
            continue
        # What the user does next: retry (the same kind of output), leave, or something else.
        roll = rng.random()
        if roll < 0.45 and len(events) < records:
            again = make(rng)
            if refusal[0] == "FIN-002":
                again = {**again, "amount": rng.choice([again["amount"], rng.randint(10, 900)])}
            ok = again.get("amount", 2000) <= 1000 if refusal[0] == "FIN-002" else False
            later = ts + timedelta(seconds=rng.uniform(20, 900))
            events.append(_Event(later, service, user, again, None if ok else refusal))
        elif roll < 0.6 and len(events) < records:
            other = next(t for t in _TEMPLATES if t[0] == service and t[3] is None)
            later = ts + timedelta(seconds=rng.uniform(20, 900))
            events.append(_Event(later, service, user, other[2](rng), None))
    events = sorted(events[:records], key=lambda e: e.ts)
    # A few engine outages: every decision inside one is a fail-closed fallback refusal. Each
    # outage is placed around a recorded decision, so it always holds at least one, whatever
    # `now` is (a window drawn at random could fall into a quiet night hour and hold none).
    for _ in range(max(1, days // 7) if events else 0):
        length = timedelta(minutes=rng.uniform(3, 25))
        begin = rng.choice(events).ts - length * rng.random()
        for ev in events:
            if begin <= ev.ts <= begin + length:
                ev.fallback = True
    for ev in events:
        ev.audit_id = uuid.UUID(int=rng.getrandbits(128), version=4).hex
    return events


def _documents(events: list[_Event]) -> list[dict[str, Any] | None]:
    """The input OPA would have been asked for each event (what replay re-decides).

    The user's facts are those the recorded refusal implies (an account under review for
    FIN-001, the quota reached for AST-003); everyone else is an active analyst with the
    default transaction limit. ``usage_today`` counts the user's allowed decisions that
    day so far. Fallback refusals get one too: OPA was asked, it did not answer.
    """
    used: dict[tuple[str, str], int] = {}
    documents: list[dict[str, Any] | None] = []
    for ev in events:
        key = (ev.user, ev.ts.date().isoformat())
        policy = ev.refusal[0] if ev.refusal and not ev.fallback else None
        user: dict[str, Any] = {"id": ev.user, "role": "analyst", "account_status": "active"}
        if policy == "FIN-001":
            user["account_status"] = "under_review"
        usage = used.get(key, 0)
        if policy == "AST-003":
            usage = max(usage, 100)
        context = {"service": ev.service, "usage_today": usage, "approvals": []}
        documents.append({"output": ev.output, "user": user, "context": context})
        if ev.refusal is None and not ev.fallback:
            used[key] = used.get(key, 0) + 1
    return documents


def generate_history(
    log: AuditLog,
    records: int,
    days: int = 30,
    seed: int = 1,
    now: datetime | None = None,
    batch: int = 5000,
) -> dict[str, Any]:
    """Append ``records`` synthetic decisions spread over the last ``days`` days.

    Returns:
        What was written: records, refusals, fallback refusals, approvals, follow-ups.
    """
    rng = random.Random(seed)
    at = now or datetime.now(UTC)
    events = _events(records, days, at, rng)
    documents = _documents(events)
    refused = fallback = 0
    for i in range(0, len(events), batch):
        chunk = events[i : i + batch]
        decisions = [_decision(ev, rng) for ev in chunk]
        refused += sum(not d.allowed for d in decisions)
        fallback += sum(d.fallback for d in decisions)
        log.append_many(
            [(d, ev.output) for d, ev in zip(decisions, chunk, strict=True)],
            documents=documents[i : i + batch],
        )
    approvals, followups = _side_tables(log, events, at, rng)
    return {"records": len(events), "refused": refused, "fallback": fallback,
            "approvals": approvals, "followups": followups, "days": days, "seed": seed}  # fmt: skip


def _insert(table: str, row: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """An INSERT of ``row`` (a sealed extension-table row) into ``table``."""
    return (
        f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
        tuple(row.values()),
    )


def _side_tables(
    log: AuditLog, events: list[_Event], now: datetime, rng: random.Random
) -> tuple[int, int]:
    """Approval requests for review refusals and a few host-recorded follow-ups."""
    if not log.extensions:
        return 0, 0
    statements: list[tuple[str, tuple[Any, ...]]] = []
    approvals = followups = 0
    for ev in events:
        if ev.fallback or ev.refusal is None:
            continue
        pid, action, _ = ev.refusal
        if action == "require_review" and rng.random() < 0.35:
            approvals += 1
            status = rng.choices(["approved", "rejected", "pending", "used"], [3, 2, 1, 3])[0]
            decided = ev.ts + timedelta(minutes=rng.uniform(2, 120))
            expires = (decided if status != "pending" else ev.ts) + timedelta(days=1)
            names = ("approval_id", "audit_id", "created_at", "expires_at", "service",
                     "user_id", "output", "output_hash", "policy_ids", "reason", "status",
                     "decided_by", "decided_at")  # fmt: skip
            row = log.seal_row("approvals", dict(zip(names, (
                uuid.UUID(int=rng.getrandbits(128), version=4).hex[:12], ev.audit_id,
                ev.ts.isoformat(), min(expires, now + timedelta(days=1)).isoformat(), ev.service,
                ev.user, log.redacted_json(ev.output), "0" * 64, json.dumps([pid]),
                "synthetic", status,
                None if status == "pending" else rng.choice(["rita", "omar", "lee"]),
                None if status == "pending" else decided.isoformat()), strict=True)))  # fmt: skip
            statements.append(_insert("approvals", row))
        elif rng.random() < 0.03:
            followups += 1
            row = log.seal_row("followups", {
                "followup_id": uuid.UUID(int=rng.getrandbits(128), version=4).hex[:12],
                "audit_id": ev.audit_id, "kind": rng.choice(["retry", "escalate", "leave"]),
                "ts": ev.ts.isoformat(), "note": "synthetic"})  # fmt: skip
            statements.append(_insert("followups", row))
    log._execute(statements)
    return approvals, followups
