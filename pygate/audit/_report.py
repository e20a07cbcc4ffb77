"""``pygate audit report``: one self-contained HTML file a person would rather look at than read.

Charts are drawn with matplotlib into inline SVG (no JavaScript, no network, no files beside
it): refusal rate over time, top policies, refusals by action, the follow-up funnel and
fallback incidents, each followed by the table it was drawn from. Every string from the log is
HTML-escaped; outputs in the examples are already redacted when they were written.
"""

from __future__ import annotations

import html
import io
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: never open a window, never need a display

from matplotlib.figure import Figure

from pygate.audit import AuditLog
from pygate.audit import _analytics as analytics

_RED, _GREEN, _GREY, _BLUE, _AMBER = "#c0392b", "#27ae60", "#7f8c8d", "#2c6fbb", "#e67e22"
_SVG_HEAD = re.compile(r"^.*?(?=<svg)", re.S)


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "pygate"}):
        fig.savefig(buf, format="svg", bbox_inches="tight")
    return _SVG_HEAD.sub("", buf.getvalue(), count=1)


def _figure(height: float = 3.0) -> tuple[Figure, Any]:
    fig = Figure(figsize=(9, height))
    ax = fig.add_subplot()
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    return fig, ax


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=_GREY)
    ax.set_xticks([])
    ax.set_yticks([])


def chart_rate(rates: dict[str, Any]) -> str:
    """Refusals (bars) and refusal rate (line) per time bucket."""
    fig, ax = _figure()
    buckets = rates["buckets"]
    key = rates["by"]
    ax.set_title(f"Refusal rate per {key}")
    if not buckets:
        _empty(ax, "no decisions")
        return _svg(fig)
    labels = [str(b[key]) for b in buckets]
    xs = range(len(labels))
    bars = ax.bar(xs, [b["refused"] for b in buckets], color=_RED, alpha=0.35, label="refusals")
    _link(bars, [anchor("refused", lbl) for lbl in labels])
    ax.set_ylabel("refusals")
    twin = ax.twinx()
    twin.plot(xs, [b["rate"] * 100 for b in buckets], color=_RED, marker=".", label="rate")
    twin.set_ylabel("refusal rate (%)")
    twin.set_ylim(bottom=0)
    step = max(1, len(labels) // 12)
    ax.set_xticks(list(xs)[::step], [lbl[5:] for lbl in labels][::step], rotation=30, ha="right")
    return _svg(fig)


def anchor(kind: str, key: Any) -> str:
    """The id of a drill-down entry (``drill-<kind>-<key>``, only ``[A-Za-z0-9_-]``)."""
    return f"drill-{kind}-" + re.sub(r"[^A-Za-z0-9_-]", "-", str(key).replace("T", " "))


def _link(bars: Any, anchors: list[str]) -> None:
    """Make each bar a link to its drill-down entry (SVG ``<a>`` around the bar)."""
    for patch, target in zip(bars.patches, anchors, strict=False):
        patch.set_url(f"#{target}")


def chart_bars(
    pairs: list[tuple[str, int]],
    title: str,
    color: str,
    xlabel: str,
    links: list[str] | None = None,
) -> str:
    """A horizontal bar chart, largest on top; ``links``: a drill-down anchor per pair."""
    fig, ax = _figure(max(2.0, 0.35 * len(pairs) + 1))
    ax.set_title(title)
    if not pairs:
        _empty(ax, "nothing to show")
        return _svg(fig)
    names = [p for p, _ in reversed(pairs)]
    values = [n for _, n in reversed(pairs)]
    bars = ax.barh(names, values, color=color)
    if links:
        _link(bars, list(reversed(links)))
    ax.grid(axis="x", alpha=0.3)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(xlabel)
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:,}", va="center", fontsize=8)
    return _svg(fig)


def chart_funnel(follow: dict[str, Any]) -> str:
    """Refusals and what followed them."""
    counts = follow["counts"]
    esc = follow["escalations"]
    steps = [
        ("refusals", follow["refusals"], _RED),
        ("retry", counts.get("retry", 0), _BLUE),
        ("retry allowed", follow["retry_allowed"], _GREEN),
        ("escalate", counts.get("escalate", 0), _AMBER),
        ("approved", esc.get("approved", 0) + esc.get("used", 0), _GREEN),
        ("other action", counts.get("other", 0), _GREY),
        ("leave", counts.get("leave", 0), _GREY),
    ]
    fig, ax = _figure()
    ax.bar([s[0] for s in steps], [s[1] for s in steps], color=[s[2] for s in steps])
    for x, (_, v, _) in enumerate(steps):
        ax.text(x, v, f"{v:,}", ha="center", va="bottom", fontsize=8)
    minutes = follow["window_seconds"] // 60
    ax.set_title(f"What users did within {minutes} min of a refusal")
    return _svg(fig)


def chart_incidents(health: dict[str, Any]) -> str:
    """Fallback refusals per incident (OPA could not decide)."""
    fig, ax = _figure()
    incidents = health["incidents"]
    ax.set_title("Engine incidents (fail-closed refusals)")
    if not incidents:
        _empty(ax, "no fallback refusals: the engine always decided")
        return _svg(fig)
    labels = [i["start"][:16].replace("T", " ") for i in incidents]
    ax.bar(range(len(labels)), [i["refusals"] for i in incidents], color=_AMBER)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylabel("fallback refusals")
    return _svg(fig)


def _table(
    headers: list[str], rows: list[list[Any]], empty: str = "none", ids: list[str] | None = None
) -> str:
    """A table; with no rows it still has its headers and one row saying what is missing.

    ``ids``: an ``id`` per row (a chart bar's drill-down target).
    """
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    row_ids = ids or [""] * len(rows)
    body = "".join(
        (f"<tr id='{html.escape(i)}'>" if i else "<tr>")
        + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row)
        + "</tr>"
        for row, i in zip(rows, row_ids, strict=True)
    )
    if not rows:
        body = f"<tr><td class='empty' colspan='{len(headers)}'>{html.escape(empty)}</td></tr>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1%}" if value <= 1 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)[:200]
    return str(value)


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1000px;
color:#222;padding:0 1rem}h1{margin-bottom:.2rem}h2{margin-top:2.5rem;border-bottom:1px solid #ddd}
.meta{color:#666}.cards{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.card{border:1px solid #ddd;border-radius:8px;padding:.7rem 1rem;min-width:130px}
.card b{display:block;font-size:1.5rem}table{border-collapse:collapse;width:100%;font-size:.85rem;
margin:.8rem 0}th,td{border-bottom:1px solid #eee;padding:.3rem .5rem;text-align:left;
vertical-align:top}th{background:#f7f7f7}svg{max-width:100%;height:auto}.ok{color:#27ae60}
.bad{color:#c0392b}.empty{color:#888;font-style:italic}code{font-size:.8rem}
.drill{font-size:.8rem;margin:.4rem 0;padding:.3rem .5rem;border-left:3px solid #ddd;
word-break:break-all}.drill:target,tr:target{background:#fff6d5}
"""


def build_report(
    log: AuditLog,
    known: dict[str, dict[str, Any]],
    window: timedelta = timedelta(minutes=30),
    since: str | None = None,
    now: datetime | None = None,
    replay: dict[str, Any] | None = None,
) -> str:
    """The whole report as one HTML document (charts inline, no external resources).

    Args:
        log: the audit log.
        known: the policies of the bundle (``known_policies``).
        window: how long after a refusal a user's next step counts as its follow-up.
        since: ISO lower bound on the record time.
        now: the time the report says it was generated.
        replay: a ``pygate replay --json`` result: adds the "Replay" section.
    """
    from pygate.audit import _report_sections as sections
    from pygate.audit._trends import readable, shadow_refusals, trends

    tr = trends(log, since)
    shadow = shadow_refusals(log, since)
    summary = analytics.refusal_rates(log, "service", since)
    total = summary["total"]
    refused = sum(b["refused"] for b in summary["buckets"])
    days = analytics.refusal_rates(log, "day", since)
    by_time = days if len(days["buckets"]) > 2 else analytics.refusal_rates(log, "hour", since)
    outputs = analytics.refused_outputs(log, since, examples=2)
    policies = analytics.policy_triggers(log, known, since)
    follow = analytics.followups(log, window, since)
    health = analytics.engine_health(log, since)
    users = analytics.refusal_rates(log, "user", since, top=10)
    verify = log.verify()
    generated = readable(now or datetime.now(UTC))
    chain = (
        f'<span class="ok">hash chain verified ({verify.checked:,} records)</span>'
        if verify.ok
        else f'<span class="bad">hash chain BROKEN at record {verify.seq}: '
        f"{html.escape(verify.problem)}</span>"
    )
    cards = [
        ("decisions", f"{total:,}"),
        ("refused", f"{refused:,}"),
        ("refusal rate", f"{refused / total:.1%}" if total else "-"),
        ("fallback refusals", f"{health['fallback']:,}"),
        ("policies never triggered", f"{len(policies['never'])} of {policies['known']}"),
    ]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>pygate refusal report</title><style>{_CSS}</style></head><body>",
        "<h1 id='top'>pygate refusal report</h1>",
        f"<p class='meta'>generated {generated}"
        f"{' · since ' + html.escape(since) if since else ''} · {chain}</p>",
        "<div class='cards'>"
        + "".join(f"<div class='card'>{html.escape(k)}<b>{v}</b></div>" for k, v in cards)
        + "</div>",
        "<h2>How often are outputs refused?</h2>",
        chart_rate(by_time),
        _table(
            ["service", "decisions", "refused", "rate", "fallback"],
            [
                [b["service"], b["decisions"], b["refused"], b["rate"], b["fallback"]]
                for b in summary["buckets"]
            ],
            "no decisions recorded",
        ),
        "<h3>Users with the most refusals</h3>",
        _table(
            ["user", "decisions", "refused", "rate"],
            [[b["user"], b["decisions"], b["refused"], b["rate"]] for b in users["buckets"]],
            "no decisions recorded",
        ),
        "<h2>Which policies trigger most, and which never do?</h2>",
        chart_bars(
            [(p["policy_id"], p["refusals"]) for p in policies["triggered"][:15]],
            "Refusals per policy",
            _RED,
            "refusals",
            links=[anchor("policy", p["policy_id"]) for p in policies["triggered"][:15]],
        ),
        _table(
            ["policy", "title", "source", "action", "refusals", "as primary", "last seen"],
            [
                [
                    p["policy_id"],
                    p["title"],
                    p["source"],
                    p["action"],
                    p["refusals"],
                    p["primary"],
                    readable(p["last_seen"]) if p["last_seen"] else None,
                ]
                for p in policies["triggered"]
            ],
            "no policy refused anything",
        ),
        "<h3>Never triggered</h3>",
        _table(
            ["policy", "title", "source", "action"],
            [[p["policy_id"], p["title"], p["source"], p["action"]] for p in policies["never"]],
            "every known policy refused at least once",
        ),
        "<h2>Which outputs get refused, and what do they look like?</h2>",
        chart_bars(
            [(str(g["action"]), g["refusals"]) for g in outputs["by_action"]],
            "Refusals by action",
            _BLUE,
            "refusals",
        ),
        _table(
            ["action", "refusals", "share", "policies", "example output", "example reason"],
            [
                [
                    g["action"],
                    g["refusals"],
                    g["share"],
                    ", ".join(g["policies"][:4]),
                    g["examples"][0]["output"] if g["examples"] else None,
                    g["examples"][0]["reason"] if g["examples"] else None,
                ]
                for g in outputs["by_action"]
            ],
            "no refusals",
        ),
        _table(
            ["output type", "refusals", "share", "policies"],
            [
                [g["type"], g["refusals"], g["share"], ", ".join(g["policies"][:4])]
                for g in outputs["by_type"]
            ],
            "no refusals",
        ),
        "<h2>What do users do after a refusal?</h2>",
        chart_funnel(follow),
        _table(
            ["policy", "refusals", "retry", "escalate", "other", "leave"],
            [
                [p["policy_id"], p["refusals"], p["retry"], p["escalate"], p["other"], p["leave"]]
                for p in follow["by_policy"]
            ],
            "no refusals",
        ),
        _table(
            ["approval requests", "count"],
            [[k, v] for k, v in sorted(follow["escalations"].items())],
            "no approval requests",
        ),
        "<h2>Engine health</h2>",
        chart_incidents(health),
        _table(
            ["start", "end", "fallback refusals", "causes", "services"],
            [
                [
                    readable(i["start"]),
                    readable(i["end"]),
                    i["refusals"],
                    i["causes"],
                    i["services"],
                ]
                for i in health["incidents"]
            ],
            "no engine incidents: the policy engine decided every request",
        ),
        *sections.trend_sections(tr),
        *sections.shadow_section(
            shadow, {p["policy_id"]: p["refusals"] for p in policies["triggered"]}
        ),
        *sections.replay_section(replay),
        *sections.drill_section(
            tr, [(p["policy_id"], p["refusals"]) for p in policies["triggered"]], shadow, replay
        ),
        "</body></html>",
    ]
    return "\n".join(parts)
