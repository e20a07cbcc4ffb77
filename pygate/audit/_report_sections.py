"""The report's trend, shadow, replay and drill-down sections (``_report`` lays out the page).

Every bar of these charts links (an SVG ``<a>``) to an entry of the drill-down section at the
end of the page, which lists the audit ids behind it; ``pygate audit explain ID`` shows one.
"""

from __future__ import annotations

import html
from typing import Any

from pygate.audit._report import (
    _AMBER,
    _BLUE,
    _GREEN,
    _GREY,
    _RED,
    _empty,
    _figure,
    _link,
    _svg,
    _table,
    anchor,
    chart_bars,
)
from pygate.audit._trends import DRILL_IDS, readable

_PALETTE = (_BLUE, _AMBER, _RED, _GREEN, "#8e44ad", "#16a085", "#d35400", _GREY)


def _ticks(ax: Any, labels: list[str]) -> None:
    step = max(1, len(labels) // 12)
    xs = list(range(len(labels)))
    ax.set_xticks(xs[::step], labels[::step], rotation=30, ha="right")


def _short_revision(revision: str) -> str:
    return revision if len(revision) <= 22 else revision[:22] + "…"


def chart_latency(tr: dict[str, Any]) -> str:
    """Latency p99 (bars, linking to the slowest decisions) and p50 (line) per bucket."""
    fig, ax = _figure()
    buckets = tr["buckets"]
    ax.set_title(f"Decision latency per {tr['by']} (ms): p50 and p99")
    if not buckets:
        _empty(ax, "no decisions")
        return _svg(fig)
    labels = [b["bucket"] for b in buckets]
    xs = range(len(labels))
    bars = ax.bar(xs, [b["p99"] for b in buckets], color=_BLUE, alpha=0.35, label="p99")
    _link(bars, [anchor("slow", lbl) for lbl in labels])
    ax.plot(xs, [b["p50"] for b in buckets], color=_BLUE, marker=".", label="p50")
    ax.set_ylabel("ms")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    _ticks(ax, labels)
    return _svg(fig)


def chart_latency_services(tr: dict[str, Any]) -> str:
    """p50 and p99 per service (bars link to the service's row)."""
    fig, ax = _figure(max(2.0, 0.5 * len(tr["services"]) + 1))
    ax.set_title("Decision latency per service (ms)")
    if not tr["services"]:
        _empty(ax, "no decisions")
        return _svg(fig)
    names = [s["service"] for s in tr["services"]]
    ys = range(len(names))
    p99 = ax.barh(
        [y + 0.2 for y in ys],
        [s["p99"] for s in tr["services"]],
        height=0.4,
        color=_BLUE,
        alpha=0.4,
        label="p99",
    )
    p50 = ax.barh(
        [y - 0.2 for y in ys],
        [s["p50"] for s in tr["services"]],
        height=0.4,
        color=_BLUE,
        label="p50",
    )
    for bars in (p99, p50):
        _link(bars, [anchor("service", n) for n in names])
    ax.set_yticks(list(ys), names)
    ax.grid(axis="x", alpha=0.3)
    ax.grid(axis="y", visible=False)
    ax.legend(fontsize=8, frameon=False)
    return _svg(fig)


def chart_revisions(tr: dict[str, Any]) -> str:
    """Refusals per bucket, stacked by bundle revision; a dashed line where one is published."""
    fig, ax = _figure(3.4)
    buckets = tr["buckets"]
    ax.set_title(f"Refusals per {tr['by']} by bundle revision")
    if not buckets:
        _empty(ax, "no decisions")
        return _svg(fig)
    labels = [b["bucket"] for b in buckets]
    xs = list(range(len(labels)))
    bottom = [0] * len(xs)
    revisions = [r["revision"] for r in tr["revisions"]]
    for n, revision in enumerate(revisions):
        values = [b["refused_by_revision"].get(revision, 0) for b in buckets]
        if not any(values):
            continue
        color = _PALETTE[n % len(_PALETTE)]
        bars = ax.bar(xs, values, bottom=bottom, color=color, label=_short_revision(revision))
        _link(bars, [anchor("refused", lbl) for lbl in labels])
        bottom = [a + b for a, b in zip(bottom, values, strict=True)]
    width = 10 if tr["by"] == "day" else 13
    # A revision's first decision marks its publish; "(none)" (no bundle: pygate's own
    # refusals, a policy folder) is never published.
    published = [r for r in tr["revisions"] if r["revision"] != "(none)"][1:]
    for r in published:
        first = str(r["first"])[:width].replace("T", " ") + (":00" if tr["by"] == "hour" else "")
        if first in labels:
            x = labels.index(first) - 0.5
            ax.axvline(x, color=_GREY, linestyle="--", linewidth=1)
            label = f" {_short_revision(r['revision'])} published"
            ax.text(x, ax.get_ylim()[1], label, fontsize=7, color=_GREY, va="top")
    ax.set_ylabel("refusals")
    if any(bottom):
        ax.legend(fontsize=7, frameon=False, loc="upper left")
    _ticks(ax, labels)
    return _svg(fig)


def chart_services(tr: dict[str, Any]) -> str:
    """Refusal rate per bucket, one line per service."""
    fig, ax = _figure()
    buckets = tr["buckets"]
    ax.set_title(f"Refusal rate per {tr['by']} and service (%)")
    if not buckets:
        _empty(ax, "no decisions")
        return _svg(fig)
    labels = [b["bucket"] for b in buckets]
    xs = range(len(labels))
    for n, s in enumerate(tr["services"]):
        name = s["service"]
        rates = [
            100 * b["refused_by_service"].get(name, 0) / b["decisions_by_service"][name]
            if b["decisions_by_service"].get(name)
            else float("nan")
            for b in buckets
        ]
        ax.plot(xs, rates, marker=".", color=_PALETTE[n % len(_PALETTE)], label=name)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, frameon=False)
    _ticks(ax, labels)
    return _svg(fig)


def trend_sections(tr: dict[str, Any]) -> list[str]:
    """Latency, refusals by bundle revision, per-service trends."""
    service_rows = []
    for s in tr["services"]:
        refused = sum(b["refused_by_service"].get(s["service"], 0) for b in tr["buckets"])
        service_rows.append(
            [
                s["service"],
                s["decisions"],
                refused,
                refused / s["decisions"] if s["decisions"] else 0.0,
                f"{s['p50']:.2f} ms",
                f"{s['p99']:.2f} ms",
            ]
        )
    return [
        "<h2>How fast are decisions?</h2>",
        chart_latency(tr),
        chart_latency_services(tr),
        _table(
            ["service", "decisions", "refused", "rate", "latency p50", "latency p99"],
            service_rows,
            "no decisions recorded",
            ids=[anchor("service", r[0]) for r in service_rows],
        ),
        "<h2>Did a bundle publish change the refusals?</h2>",
        chart_revisions(tr),
        _table(
            ["bundle revision", "first seen", "last seen", "decisions", "refused", "rate"],
            [
                [
                    r["revision"],
                    readable(r["first"]),
                    readable(r["last"]),
                    r["decisions"],
                    r["refused"],
                    r["refused"] / r["decisions"] if r["decisions"] else 0.0,
                ]
                for r in tr["revisions"]
            ],
            "no decisions recorded",
        ),
        "<h2>Per-service trends</h2>",
        chart_services(tr),
    ]


def shadow_section(shadow: dict[str, Any], enforcing: dict[str, int]) -> list[str]:
    """Shadow policies: how often each would have refused, next to the enforcing counts."""
    parts = ["<h2>Shadow policies: what would have been refused</h2>"]
    if not shadow["policies"]:
        parts.append(
            "<p class='empty'>no shadow refusals recorded: a policy marked shadow is "
            "evaluated and audited as &quot;would have refused&quot; without refusing; its "
            "refusals show here.</p>"
        )
        return parts
    pairs = [(p["policy_id"], p["would_refuse"]) for p in shadow["policies"][:15]]
    parts.append(
        chart_bars(
            pairs,
            "Would have refused (shadow)",
            _AMBER,
            "decisions",
            links=[anchor("shadow", p) for p, _ in pairs],
        )
    )
    parts.append(
        _table(
            [
                "shadow policy",
                "would have refused",
                "rate",
                "of which allowed",
                "enforcing policies' refusals (same id)",
            ],
            [
                [
                    p["policy_id"],
                    p["would_refuse"],
                    p["rate"],
                    p["of_which_allowed"],
                    enforcing.get(p["policy_id"], 0),
                ]
                for p in shadow["policies"]
            ],
        )
    )
    return parts


def chart_replay(replay: dict[str, Any]) -> str:
    """Per policy: recorded allows that would be refused, and refusals that would pass."""
    policies = replay["by_policy"][:15]
    fig, ax = _figure(max(2.0, 0.5 * len(policies) + 1))
    ax.set_title("Replay: decisions that would flip, per policy")
    if not policies:
        _empty(ax, "no recorded decision would change")
        return _svg(fig)
    names = [p["policy_id"] for p in reversed(policies)]
    ys = list(range(len(names)))
    a2r = ax.barh(
        ys, [p["allow_to_refuse"] for p in reversed(policies)], color=_RED, label="allow → refuse"
    )
    r2a = ax.barh(
        ys,
        [-(p["refuse_to_allow"] + p.get("no_longer_refuses", 0)) for p in reversed(policies)],
        color=_GREEN,
        label="refuse → allow / no longer refuses",
    )
    lefts = [p["allow_to_refuse"] for p in reversed(policies)]
    other = ax.barh(
        ys,
        [p["changed_policies"] for p in reversed(policies)],
        left=lefts,
        color=_GREY,
        alpha=0.5,
        label="refused by other policies",
    )
    for bars in (a2r, r2a, other):
        _link(bars, [anchor("replay", n) for n in names])
    ax.set_yticks(ys, names)
    ax.axvline(0, color=_GREY, linewidth=0.8)
    ax.grid(axis="x", alpha=0.3)
    ax.grid(axis="y", visible=False)
    ax.legend(fontsize=8, frameon=False)
    return _svg(fig)


def replay_section(replay: dict[str, Any] | None) -> list[str]:
    """What a candidate bundle would have decided differently (``pygate replay --json``)."""
    if replay is None:
        return []
    causes = ", ".join(
        f"{n:,} {c.replace('_', ' ')}" for c, n in replay["not_replayable_by_cause"].items()
    )
    return [
        "<h2>Replay: what the candidate bundle would change</h2>",
        f"<p class='meta'>candidate {html.escape(str(replay['candidate']))} "
        f"({html.escape(str(replay.get('candidate_revision') or 'no revision'))}): "
        f"{replay['replayed']:,} of {replay['records']:,} records replayed, "
        f"{replay['unchanged']:,} unchanged, {replay['allow_to_refuse']:,} allow→refuse, "
        f"{replay['refuse_to_allow']:,} refuse→allow, {replay['changed_policies']:,} refused by "
        f"other policies; not replayable {replay['not_replayable']:,}"
        f"{' (' + html.escape(causes) + ')' if causes else ''}.</p>",
        chart_replay(replay),
        _table(
            [
                "policy",
                "allow→refuse",
                "refuse→allow",
                "refused by other policies",
                "no longer refuses",
            ],
            [
                [
                    p["policy_id"],
                    p["allow_to_refuse"],
                    p["refuse_to_allow"],
                    p["changed_policies"],
                    p.get("no_longer_refuses", 0),
                ]
                for p in replay["by_policy"]
            ],
            "no recorded decision would change",
        ),
        _table(
            ["service", "replayed", "allow→refuse", "refuse→allow", "not replayable"],
            [
                [
                    s["service"],
                    s["replayed"],
                    s["allow_to_refuse"],
                    s["refuse_to_allow"],
                    s["not_replayable"],
                ]
                for s in replay["by_service"]
            ],
            "nothing replayed",
        ),
    ]


def _ids(ids: list[str], total: int | None = None) -> str:
    shown = " ".join(f"<code>{html.escape(i)}</code>" for i in ids)
    more = (total or len(ids)) - len(ids)
    if more > 0:
        shown += f" <span class='empty'>and {more:,} more (pygate audit export)</span>"
    return shown or "<span class='empty'>none</span>"


def _entry(target: str, title: str, body: str) -> str:
    return (
        f"<div class='drill' id='{target}'><b>{html.escape(title)}</b> "
        f"<a href='#top'>↑</a><br>{body}</div>"
    )


def drill_section(
    tr: dict[str, Any],
    policies: list[tuple[str, int]],
    shadow: dict[str, Any],
    replay: dict[str, Any] | None,
) -> list[str]:
    """The audit ids behind every bar (each entry is a chart bar's link target)."""
    parts = [
        "<h2 id='drill'>Drill-down: the audit ids behind each bar</h2>",
        f"<p class='meta'>Up to {DRILL_IDS} ids per bar, oldest first; "
        "<code>pygate audit explain ID</code> shows one decision and why.</p>",
        f"<h3>Refusals per {tr['by']}</h3>",
    ]
    for b in tr["buckets"]:
        # Every bucket, a quiet one too: each bar of the rate chart links here.
        title = f"{b['bucket']}: {b['refused']:,} refusals of {b['decisions']:,} decisions"
        parts.append(
            _entry(anchor("refused", b["bucket"]), title, _ids(b["refused_ids"], b["refused"]))
        )
    parts.append(f"<h3>Slowest decisions per {tr['by']}</h3>")
    for b in tr["buckets"]:
        slow = ", ".join(
            f"<code>{html.escape(s['audit_id'])}</code> {s['latency_ms']:.1f} ms"
            for s in b["slowest"]
        )
        parts.append(
            _entry(
                anchor("slow", b["bucket"]),
                f"{b['bucket']}: p50 {b['p50']:.2f} ms, p99 {b['p99']:.2f} ms",
                slow,
            )
        )
    parts.append("<h3>Refusals per policy</h3>")
    for pid, n in policies:
        parts.append(
            _entry(
                anchor("policy", pid),
                f"{pid}: {n:,} refusals",
                _ids(tr["policy_ids"].get(pid, []), n),
            )
        )
    if shadow["policies"]:
        parts.append("<h3>Shadow refusals per policy</h3>")
        for p in shadow["policies"]:
            parts.append(
                _entry(
                    anchor("shadow", p["policy_id"]),
                    f"{p['policy_id']}: would have refused {p['would_refuse']:,}",
                    _ids(p["audit_ids"], p["would_refuse"]),
                )
            )
    if replay is not None and replay["by_policy"]:
        parts.append("<h3>Replay flips per policy</h3>")
        for p in replay["by_policy"]:
            body = "<br>".join(
                f"{html.escape(kind.replace('_', ' '))}: {_ids(ids[:DRILL_IDS], len(ids))}"
                for kind, ids in p["audit_ids"].items()
            )
            parts.append(_entry(anchor("replay", p["policy_id"]), p["policy_id"], body))
    return parts
