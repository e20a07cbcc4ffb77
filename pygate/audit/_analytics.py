"""Questions the refusal dataset answers, written once against the ``AuditLog`` base.

Every function takes an ``AuditLog`` and returns JSON-ready dicts (what ``--json`` prints and
the HTML report draws). The SQL is portable (SQLite and PostgreSQL): ``?`` placeholders through
the base class's ``_select_raw``/``_scalar``; the only dialect-specific piece, reading one field
of the stored output JSON, sits in ``_JSON_FIELD``, keyed by ``AuditLog.dialect``.

Timestamps are ISO-8601 UTC text (``2025-01-31T14:05:09.123456+00:00``), so an hour bucket is
its first 13 characters and a time filter is a text comparison.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pygate._errors import AuditError, ConfigError, InputError
from pygate.audit._base import AuditLog

FOLLOWUP_KINDS = ("retry", "escalate", "leave")

#: Policy ids pygate itself refuses with (not Rego policies).
INTERNAL_POLICIES = {
    "pygate.engine": "the policy engine could not decide (fail closed)",
    "pygate.input": "the input could not be gated",
    "pygate.audit": "the decision could not be audited",
}

# Read one top-level field of the stored output JSON. The key comes from a fixed set below,
# never from a user, so it is safe to splice into the SQL.
_JSON_FIELD = {
    "sqlite": "json_extract(output, '$.{key}')",
    # PostgreSQL cannot turn the JSON escape \u0000 into text, and one such output would fail
    # the whole query: it becomes \ufffd first (same JSON shape; a field it sits in changes).
    "postgres": "(CAST(replace(output, '\\u0000', '\\ufffd') AS json) ->> '{key}')",
}
_FIELDS = ("type", "action")

_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _field(log: AuditLog, key: str) -> str:
    if key not in _FIELDS:
        raise ValueError(f"unsupported output field {key!r}")
    try:
        return _JSON_FIELD[log.dialect].format(key=key)
    except KeyError:
        raise AuditError(f"no analytics SQL for the {log.dialect!r} dialect") from None


def parse_duration(text: str, field: str = "window") -> timedelta:
    """``90s``, ``30m``, ``24h``, ``7d``, ``2w`` as a timedelta.

    Raises:
        InputError: anything else (names ``field``).
    """
    match = _DURATION.match(text.strip().lower())
    if not match or int(match.group(1)) <= 0:
        raise InputError(field, f"expected a positive duration like 30m, 24h or 7d, got {text!r}")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_since(text: str | None, now: datetime | None = None) -> str | None:
    """A ``--since`` value (a duration back from now, or an ISO date/time) as an ISO bound.

    Raises:
        InputError: neither a duration nor an ISO date/time (names ``since``).
    """
    if text is None:
        return None
    if _DURATION.match(text.strip().lower()):
        return ((now or datetime.now(UTC)) - parse_duration(text, "since")).isoformat()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InputError("since", f"expected 7d, 24h or an ISO date/time, got {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat()


def _where(since: str | None, *conditions: str) -> tuple[str, tuple[Any, ...]]:
    parts = list(conditions)
    params: tuple[Any, ...] = ()
    if since is not None:  # first, so a caller's own ``?`` params follow it
        parts.insert(0, "ts >= ?")
        params = (since,)
    return (" WHERE " + " AND ".join(parts)) if parts else "", params


def _rate(refused: int, total: int) -> float:
    return round(refused / total, 4) if total else 0.0


def _example(row: dict[str, Any]) -> dict[str, Any]:
    try:
        output = json.loads(row["output"])
    except (TypeError, ValueError):
        output = row["output"]
    return {
        "audit_id": row["audit_id"],
        "ts": str(row["ts"]),
        "service": row["service"],
        "user_id": row["user_id"],
        "policy_id": row["policy_id"],
        "reason": row["reason"],
        "output": output,
    }


# --- which outputs get refused, and what they look like ----------------------------------
def refused_outputs(log: AuditLog, since: str | None = None, examples: int = 3) -> dict[str, Any]:
    """Refusals grouped by the refusing action and by the output's type, with examples.

    Returns:
        ``{"refused": n, "by_action": [...], "by_type": [...]}``; each group has ``refusals``,
        ``share`` (of all refusals), ``policies`` (primary policy ids, most frequent first)
        and up to ``examples`` of the latest refused outputs (already redacted).
    """
    where, params = _where(since, "allowed = 0")
    refused = int(log._scalar(f"SELECT count(*) FROM decisions{where}", params))
    groups: dict[str, list[dict[str, Any]]] = {}
    for name, expr in (("action", "action"), ("type", _field(log, "type"))):
        rows = log._select_raw(
            f"SELECT {expr} AS k, policy_id, count(*) AS n FROM decisions{where} "
            f"GROUP BY {expr}, policy_id",
            params,
        )
        per: dict[Any, Counter[str]] = defaultdict(Counter)
        for r in rows:
            per[r["k"]][str(r["policy_id"])] += int(r["n"])
        out = []
        for key, policies in sorted(per.items(), key=lambda kv: (-kv[1].total(), str(kv[0]))):
            cond = f"{expr} IS NULL" if key is None else f"{expr} = ?"
            ex_where, ex_params = _where(since, "allowed = 0", cond)
            ex_rows = log._select_raw(
                f"SELECT audit_id, ts, service, user_id, policy_id, reason, output "
                f"FROM decisions{ex_where} ORDER BY seq DESC LIMIT ?",
                (*ex_params, *(() if key is None else (key,)), examples),
            )
            out.append(
                {
                    name: key,
                    "refusals": policies.total(),
                    "share": _rate(policies.total(), refused),
                    "policies": [p for p, _ in policies.most_common()],
                    "examples": [_example(r) for r in ex_rows],
                }
            )
        groups[f"by_{name}"] = out
    return {"refused": refused, **groups}


# --- how often: rate over time, per service, per user, per policy ------------------------
RATE_DIMENSIONS = ("hour", "day", "service", "user", "policy")


def refusal_rates(
    log: AuditLog, by: str = "day", since: str | None = None, top: int = 20
) -> dict[str, Any]:
    """Decisions, refusals and the refusal rate per time bucket, service, user or policy.

    Args:
        log: the audit store.
        by: ``hour`` or ``day`` (every bucket, oldest first), ``service``, ``user`` (the
            ``top`` users with most refusals) or ``policy`` (every refusing policy, counting
            a decision once for each policy that refused it, and once as ``primary``).
        since: ISO lower bound on the record time.
        top: how many users to list.

    Raises:
        InputError: an unknown ``by`` (names the field).
    """
    if by not in RATE_DIMENSIONS:
        raise InputError("by", f"expected one of {', '.join(RATE_DIMENSIONS)}, got {by!r}")
    where, params = _where(since)
    total = int(log._scalar(f"SELECT count(*) FROM decisions{where}", params))
    if by == "policy":
        rows = log._select_raw(
            f"SELECT policy_id, policy_ids, count(*) AS n FROM decisions"
            f"{_where(since, 'allowed = 0')[0]} GROUP BY policy_id, policy_ids",
            params,
        )
        primary: Counter[str] = Counter()
        anywhere: Counter[str] = Counter()
        for r in rows:
            primary[str(r["policy_id"])] += int(r["n"])
            for pid in set(json.loads(r["policy_ids"]) or [r["policy_id"]]):
                anywhere[str(pid)] += int(r["n"])
        buckets = [
            {
                "policy": pid,
                "refusals": n,
                "primary": primary[pid],
                "rate": _rate(n, total),
            }
            for pid, n in sorted(anywhere.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        return {"by": by, "total": total, "buckets": buckets}
    expr = {
        "hour": "substr(CAST(ts AS TEXT), 1, 13)",
        "day": "day",
        "service": "service",
        "user": "user_id",
    }[by]
    order = "k" if by in ("hour", "day") else "refused DESC, n DESC, k"
    limit = " LIMIT ?" if by == "user" else ""
    rows = log._select_raw(
        f"SELECT {expr} AS k, count(*) AS n, "
        f"sum(CASE WHEN allowed = 0 THEN 1 ELSE 0 END) AS refused, "
        f"sum(CASE WHEN fallback = 1 THEN 1 ELSE 0 END) AS fallback "
        f"FROM decisions{where} GROUP BY {expr} ORDER BY {order}{limit}",
        (*params, top) if limit else params,
    )
    buckets = []
    for r in rows:
        key = r["k"]
        if by == "hour" and isinstance(key, str):
            key = key.replace(" ", "T") + ":00"
        n, refused = int(r["n"]), int(r["refused"] or 0)
        buckets.append(
            {
                by: key,
                "decisions": n,
                "refused": refused,
                "fallback": int(r["fallback"] or 0),
                "rate": _rate(refused, n),
            }
        )
    return {"by": by, "total": total, "buckets": buckets}


# --- which policies trigger most, and which never do -------------------------------------
def known_policies(policy_dir: str | Path, opa_bin: str | Path) -> dict[str, dict[str, Any]]:
    """Every policy id the policies can refuse with, from OPA's own view of the source.

    Rego refusal rules come from ``opa inspect -a`` (their METADATA ``custom.id``); rules-as-data
    policies from every ``declarative_policies`` list in the policy folder's ``data.json`` files.

    Returns:
        ``{policy_id: {"title", "action", "source", "where"}}``.

    Raises:
        ConfigError: ``opa inspect`` failed or the folder is missing.
    """
    folder = Path(policy_dir)
    if not folder.is_dir():
        raise ConfigError(f"policy_dir {folder}: not a folder")
    try:
        done = subprocess.run(
            [str(opa_bin), "inspect", "-a", "--format", "json", str(folder)],
            capture_output=True,
            check=True,
            timeout=60,
        )
        inspected = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise ConfigError(f"opa inspect of {folder} failed: {exc}") from exc
    found: dict[str, dict[str, Any]] = {}
    for entry in inspected.get("annotations") or []:
        notes = entry.get("annotations") or {}
        custom = notes.get("custom") or {}
        pid = custom.get("id")
        if isinstance(pid, str) and not entry.get("location", {}).get("file", "").endswith(
            "_test.rego"
        ):
            location = entry.get("location") or {}
            found[pid] = {
                "title": notes.get("title", pid),
                "action": custom.get("action"),
                "source": "rego",
                "where": f"{location.get('file', '?')}:{location.get('row', '?')}",
            }
    for path in sorted(folder.rglob("data.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        policies = doc.get("declarative_policies") if isinstance(doc, dict) else None
        for policy in policies if isinstance(policies, list) else []:
            if isinstance(policy, dict) and isinstance(policy.get("id"), str):
                found[policy["id"]] = {
                    "title": policy.get("title", policy["id"]),
                    "action": policy.get("action"),
                    "source": "data",
                    "where": str(path),
                    "shadow": policy.get("shadow") is True,
                }
    return found


def policy_triggers(
    log: AuditLog, known: dict[str, dict[str, Any]], since: str | None = None
) -> dict[str, Any]:
    """How often each policy refused (as primary and at all), and which never did.

    Shadow policies (which never refuse) are counted beside the enforcing ones: each row has
    ``refusals`` and ``rate`` (refused, per decision) and ``shadow_refusals`` and
    ``shadow_rate`` (would have refused, per decision), and ``mode``: ``enforcing``,
    ``shadow`` or ``both`` (the policy did both in the window: promoted or demoted, or
    shadow for some services only).

    Args:
        log: the audit store.
        known: ``known_policies(...)``; policies seen in the log but not known (renamed or
            removed since) are listed with ``"source": "log only"``.
        since: ISO lower bound on the record time.
    """
    all_rates = refusal_rates(log, "policy", since)
    total = int(all_rates["total"])
    rates = list(all_rates["buckets"])
    shadow = shadow_counts(log, since)
    enforcing = {str(r["policy"]) for r in rates}
    rates += [
        {"policy": pid, "refusals": 0, "primary": 0}
        for pid in sorted(shadow, key=lambda p: (-shadow[p], p))
        if pid not in enforcing
    ]
    last = {
        str(r["policy_id"]): str(r["last"])
        for r in log._select_raw(
            f"SELECT policy_id, max(ts) AS last FROM decisions"
            f"{_where(since, 'allowed = 0')[0]} GROUP BY policy_id",
            _where(since)[1],
        )
    }
    triggered = []
    for row in rates:
        pid = row["policy"]
        meta = known.get(pid) or (
            {"title": INTERNAL_POLICIES[pid], "action": None, "source": "pygate"}
            if pid in INTERNAL_POLICIES
            else {"title": pid, "action": None, "source": "log only"}
        )
        triggered.append(
            {
                "policy_id": pid,
                "title": meta["title"],
                "source": meta["source"],
                "action": meta.get("action"),
                "refusals": row["refusals"],
                "primary": row["primary"],
                "rate": _rate(int(row["refusals"]), total),
                "shadow_refusals": shadow.get(pid, 0),
                "shadow_rate": _rate(shadow.get(pid, 0), total),
                "mode": _mode(int(row["refusals"]), shadow.get(pid, 0)),
                "last_seen": last.get(pid),
            }
        )
    seen = {t["policy_id"] for t in triggered}
    never = [
        {"policy_id": pid, **{k: meta.get(k) for k in ("title", "source", "action", "where")}}
        for pid, meta in sorted(known.items())
        if pid not in seen
    ]
    return {"triggered": triggered, "never": never, "known": len(known), "decisions": total}


def _mode(refusals: int, shadow: int) -> str:
    if refusals and shadow:
        return "both"
    return "shadow" if shadow else "enforcing"


def shadow_counts(log: AuditLog, since: str | None = None) -> dict[str, int]:
    """How many decisions each shadow policy would have refused (once per decision)."""
    where, params = _where(since, "shadow_refusals IS NOT NULL")
    counts: Counter[str] = Counter()
    rows = log._select_raw(
        f"SELECT shadow_refusals, count(*) AS n FROM decisions{where} GROUP BY shadow_refusals",
        params,
    )
    for row in rows:
        try:
            refusals = json.loads(row["shadow_refusals"])
        except (TypeError, ValueError):
            continue
        ids = {r.get("policy_id") for r in refusals if isinstance(r, dict)}
        for pid in ids:
            if isinstance(pid, str):
                counts[pid] += int(row["n"])
    return dict(counts)


# --- what users do after a refusal -------------------------------------------------------
def record_followup(log: AuditLog, audit_id: str, kind: str, note: str | None = None) -> str:
    """Record the follow-up to a refusal, as the host application saw it.

    Raises:
        InputError: ``kind`` is not retry/escalate/leave.
        AuditError: no refusal with this audit id, or the write failed.
    """
    if kind not in FOLLOWUP_KINDS:
        raise InputError("kind", f"expected one of {', '.join(FOLLOWUP_KINDS)}, got {kind!r}")
    allowed = log._select_raw("SELECT allowed FROM decisions WHERE audit_id = ?", (audit_id,))
    if not allowed:
        raise AuditError(f"no audit record with id {audit_id!r}")
    if allowed[0]["allowed"]:
        raise AuditError(f"audit record {audit_id} was allowed; follow-ups are for refusals")
    followup_id = uuid.uuid4().hex[:12]
    row = log.seal_row(
        "followups",
        {"followup_id": followup_id, "audit_id": audit_id, "kind": kind,
         "ts": datetime.now(UTC).isoformat(), "note": note},
    )  # fmt: skip
    log._execute(
        [
            (
                f"INSERT INTO followups ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )
        ]
    )
    return followup_id


def followups(log: AuditLog, window: timedelta, since: str | None = None) -> dict[str, Any]:
    """Classify each refusal by what its user did next, within ``window``.

    In order of precedence: a follow-up the host application recorded; ``escalate`` when an
    approval was requested for the refusal; ``retry`` when the same user's next decision of the
    same kind (same output type and ``action`` field) came within the window (and whether that
    retry was allowed); ``other`` when the user did something else within the window; ``leave``
    when nothing came from that user within the window.

    Returns:
        ``{"window_seconds", "refusals", "counts", "retry_allowed", "escalations",
        "recorded", "by_policy"}``.
    """
    where, params = _where(since)
    rows = log._select_raw(
        f"SELECT audit_id, ts, user_id, allowed, policy_id, {_field(log, 'type')} AS t, "
        f"{_field(log, 'action')} AS a FROM decisions{where} ORDER BY user_id, seq",
        params,
    )
    recorded = _latest_followups(log, since)
    escalated = _approval_states(log, since)
    counts: Counter[str] = Counter({k: 0 for k in (*FOLLOWUP_KINDS, "other")})
    by_policy: dict[str, Counter[str]] = defaultdict(Counter)
    retry_allowed = 0
    refusals = 0
    for i, row in enumerate(rows):
        if row["allowed"]:
            continue
        refusals += 1
        kind, retried_ok = _classify(rows, i, window, recorded, escalated)
        retry_allowed += retried_ok
        counts[kind] += 1
        by_policy[str(row["policy_id"])][kind] += 1
    return {
        "window_seconds": int(window.total_seconds()),
        "refusals": refusals,
        "counts": dict(counts),
        "retry_allowed": retry_allowed,
        "escalations": dict(Counter(escalated.values())),
        "recorded": len(recorded),
        "by_policy": [
            {"policy_id": pid, "refusals": c.total(), **{k: c[k] for k in counts}}
            for pid, c in sorted(by_policy.items(), key=lambda kv: (-kv[1].total(), kv[0]))
        ],
    }


def _ts(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _classify(
    rows: list[dict[str, Any]],
    i: int,
    window: timedelta,
    recorded: dict[str, str],
    escalated: dict[str, str],
) -> tuple[str, int]:
    row = rows[i]
    if row["audit_id"] in recorded:
        return recorded[row["audit_id"]], 0
    if row["audit_id"] in escalated:
        return "escalate", 0
    start = _ts(row["ts"])
    kind = "leave"
    for j in range(i + 1, len(rows)):  # index, not a slice: no copy per refusal
        later = rows[j]
        if later["user_id"] != row["user_id"] or _ts(later["ts"]) - start > window:
            break
        if (later["t"], later["a"]) == (row["t"], row["a"]):
            return "retry", int(bool(later["allowed"]))
        kind = "other"
    return kind, 0


def _latest_followups(log: AuditLog, since: str | None) -> dict[str, str]:
    if not log.extensions:
        return {}
    rows = log._select_raw(
        "SELECT audit_id, kind FROM followups"
        + (" WHERE ts >= ?" if since else "")
        + " ORDER BY ts",
        (since,) if since else (),
    )
    return {r["audit_id"]: r["kind"] for r in rows}


def _approval_states(log: AuditLog, since: str | None) -> dict[str, str]:
    if not log.extensions:
        return {}
    rows = log._select_raw(
        "SELECT audit_id, status, expires_at FROM approvals"
        + (" WHERE created_at >= ?" if since else ""),
        (since,) if since else (),
    )
    now = datetime.now(UTC)
    states = {}
    for r in rows:
        status = r["status"]
        if status in ("pending", "approved") and _ts(r["expires_at"]) <= now:
            status = "expired"
        states[r["audit_id"]] = status
    return states


# --- engine health -----------------------------------------------------------------------
_ERROR_KIND = re.compile(r"\((\w+):")


def engine_health(
    log: AuditLog, since: str | None = None, gap: timedelta = timedelta(minutes=5)
) -> dict[str, Any]:
    """Fallback refusals (OPA could not decide): how many, per hour, and as incidents.

    An incident is a run of fallback refusals with no more than ``gap`` between two of them.
    """
    where, params = _where(since)
    total = int(log._scalar(f"SELECT count(*) FROM decisions{where}", params))
    f_where, f_params = _where(since, "fallback = 1")
    rows = log._select_raw(
        f"SELECT ts, service, reason, policy_id FROM decisions{f_where} ORDER BY seq", f_params
    )
    per_hour: Counter[str] = Counter()
    incidents: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for r in rows:
        when = _ts(r["ts"])
        per_hour[when.strftime("%Y-%m-%dT%H:00")] += 1
        match = _ERROR_KIND.search(r["reason"] or "")
        cause = match.group(1) if match else str(r["policy_id"])
        if current is None or when - _ts(current["end"]) > gap:
            current = {"start": when.isoformat(), "end": when.isoformat(), "refusals": 0,
                       "causes": Counter(), "services": Counter()}  # fmt: skip
            incidents.append(current)
        current["end"] = when.isoformat()
        current["refusals"] += 1
        current["causes"][cause] += 1
        current["services"][str(r["service"])] += 1
    for incident in incidents:
        incident["causes"] = dict(incident["causes"].most_common())
        incident["services"] = dict(incident["services"].most_common())
    return {
        "decisions": total,
        "fallback": len(rows),
        "rate": _rate(len(rows), total),
        "first": incidents[0]["start"] if incidents else None,
        "last": incidents[-1]["end"] if incidents else None,
        "by_hour": [{"hour": h, "fallback": n} for h, n in sorted(per_hour.items())],
        "incidents": incidents,
    }


def iter_chunks(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    """``items`` in lists of ``size`` (the last may be shorter)."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
