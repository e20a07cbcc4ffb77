"""Trends for the report: latency, refusals by bundle revision, per-service rates, shadow.

One pass over the records' small columns (no outputs) gives every series the report draws,
each bucket keeping the audit ids behind it, so each bar of a chart can link to them.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pygate.audit._base import AuditLog

#: Audit ids listed per bar in the report's drill-down (the rest: ``pygate audit export``).
DRILL_IDS = 60


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0..100) of ``values`` (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def readable(ts: str | datetime | None) -> str:
    """A timestamp for people: ``2026-03-14 21:15 UTC`` (``-`` when missing)."""
    if ts is None:
        return "-"
    when = ts if isinstance(ts, datetime) else datetime.fromisoformat(str(ts))
    return when.strftime("%Y-%m-%d %H:%M UTC")


@dataclass
class _Bucket:
    decisions: int = 0
    refused: int = 0
    latencies: list[tuple[float, str]] = field(default_factory=list)
    refused_ids: list[str] = field(default_factory=list)
    by_revision: Counter[str] = field(default_factory=Counter)
    by_service: Counter[str] = field(default_factory=Counter)
    refused_by_service: Counter[str] = field(default_factory=Counter)


def trends(log: AuditLog, since: str | None = None) -> dict[str, Any]:
    """Per time bucket (day, or hour when the records span two days or less): decisions,
    refusals by bundle revision and service, latency p50/p99; per service latency; when
    each bundle revision was first and last seen; the audit ids behind every bar.
    """
    where, params = (" WHERE ts >= ?", (since,)) if since else ("", ())
    rows = log._select_raw(
        "SELECT audit_id, ts, service, allowed, latency_ms, bundle_revision, policy_id, "
        f"policy_ids FROM decisions{where} ORDER BY seq",
        params,
    )
    days = {str(r["ts"])[:10] for r in rows}
    by = "day" if len(days) > 2 else "hour"
    width = 10 if by == "day" else 13
    buckets: dict[str, _Bucket] = defaultdict(_Bucket)
    services: dict[str, list[float]] = defaultdict(list)
    revisions: dict[str, dict[str, Any]] = {}
    policy_ids: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        ts = str(r["ts"])
        key = ts[:width].replace("T", " ") + (":00" if by == "hour" else "")
        b = buckets[key]
        service = str(r["service"] or "-")
        revision = str(r["bundle_revision"] or "(none)")
        latency = float(r["latency_ms"])
        b.decisions += 1
        b.by_service[service] += 1
        b.latencies.append((latency, str(r["audit_id"])))
        services[service].append(latency)
        seen = revisions.setdefault(
            revision, {"revision": revision, "first": ts, "last": ts, "decisions": 0, "refused": 0}
        )
        seen["last"] = ts
        seen["decisions"] += 1
        if not int(r["allowed"]):
            b.refused += 1
            b.by_revision[revision] += 1
            b.refused_by_service[service] += 1
            seen["refused"] += 1
            if len(b.refused_ids) < DRILL_IDS:
                b.refused_ids.append(str(r["audit_id"]))
            for pid in dict.fromkeys(json.loads(r["policy_ids"]) or [r["policy_id"]]):
                if len(policy_ids[str(pid)]) < DRILL_IDS:
                    policy_ids[str(pid)].append(str(r["audit_id"]))
    out = []
    for key in sorted(buckets):
        b = buckets[key]
        values = [v for v, _ in b.latencies]
        slowest = sorted(b.latencies, reverse=True)[:10]
        out.append(
            {
                "bucket": key,
                "decisions": b.decisions,
                "refused": b.refused,
                "p50": percentile(values, 50),
                "p99": percentile(values, 99),
                "refused_by_revision": dict(b.by_revision),
                "decisions_by_service": dict(b.by_service),
                "refused_by_service": dict(b.refused_by_service),
                "refused_ids": b.refused_ids,
                "slowest": [{"audit_id": a, "latency_ms": v} for v, a in slowest],
            }
        )
    return {
        "by": by,
        "buckets": out,
        "services": [
            {
                "service": s,
                "decisions": len(v),
                "p50": percentile(v, 50),
                "p99": percentile(v, 99),
            }
            for s, v in sorted(services.items())
        ],
        "revisions": sorted(revisions.values(), key=lambda r: str(r["first"])),
        "policy_ids": dict(policy_ids),
    }


def shadow_refusals(log: AuditLog, since: str | None = None) -> dict[str, Any]:
    """Refusals marked ``"shadow": true`` (would have refused, did not enforce), per policy,
    next to how often each policy refused for real."""
    where = " WHERE refusals LIKE ?" + (" AND ts >= ?" if since else "")
    params: tuple[Any, ...] = ('%"shadow": true%', *((since,) if since else ()))
    rows = log._select_raw(f"SELECT audit_id, allowed, refusals FROM decisions{where}", params)
    total = int(
        log._scalar(
            "SELECT count(*) FROM decisions" + (" WHERE ts >= ?" if since else ""),
            (since,) if since else (),
        )
    )
    would: Counter[str] = Counter()
    allowed_anyway: Counter[str] = Counter()
    ids: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        for refusal in json.loads(r["refusals"] or "[]"):
            if not isinstance(refusal, dict) or refusal.get("shadow") is not True:
                continue
            pid = str(refusal.get("policy_id"))
            would[pid] += 1
            allowed_anyway[pid] += int(r["allowed"])
            if len(ids[pid]) < DRILL_IDS:
                ids[pid].append(str(r["audit_id"]))
    return {
        "decisions": total,
        "policies": [
            {
                "policy_id": p,
                "would_refuse": n,
                "rate": n / total if total else 0.0,
                "of_which_allowed": allowed_anyway[p],
                "audit_ids": ids[p],
            }
            for p, n in would.most_common()
        ],
    }
