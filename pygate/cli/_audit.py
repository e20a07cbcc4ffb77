"""CLI commands over the refusal dataset: ``pygate audit …`` analytics, ``pygate approvals …``.

Kept beside ``_cli.py`` (which registers them) so the main CLI module stays one idea; both call
the library, never the other way round. Every command prints for people by default and JSON
with ``--json``. Exit codes: 0 ok, 1 a check failed (e.g. the report's chain does not verify),
2 bad input or configuration (the message names the field).
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import click

from pygate._errors import PygateError
from pygate.audit import _analytics as analytics
from pygate.audit._approvals import STATUSES, Approval, Approvals, check_ttl
from pygate.audit._integrity import KEY_FILE, default_state_dir, rotate_key
from pygate.audit._mask import MASK_POLICY_PATH, render_mask_policy
from pygate.audit._retention import export_csv, export_jsonl, prune
from pygate.audit._synthetic import generate_history
from pygate.cli._common import audit_from, fail, progress, settings_from
from pygate.engine._opa_process import default_policy_dir, find_opa_binary

EXIT_FAILED = 1

_SINCE = click.option(
    "--since", help="Only records from then on: a duration back from now (24h, 7d) or ISO time."
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print as JSON.")


def _since(text: str | None) -> str | None:
    try:
        return analytics.parse_since(text)
    except PygateError as exc:
        fail(str(exc))


def _known_policies(ctx: click.Context) -> dict[str, dict[str, Any]]:
    """The policies of the configured policy folder, as ``opa inspect`` reports them."""
    settings = settings_from(ctx)
    opa = find_opa_binary(settings.opa_bin)
    return analytics.known_policies(settings.policy_dir or default_policy_dir(), opa)


def _emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _pct(x: float) -> str:
    return f"{x:.1%}"


def register(audit: click.Group) -> None:
    """Add the analytics, report, export, retention and generator commands to ``audit``."""
    for command in (
        refusals,
        rates,
        policies,
        followups,
        followup,
        explain,
        health,
        report,
        export,
        prune_cmd,
        generate,
        mask_policy,
        rotate_key_cmd,
        checkpoint_cmd,
    ):
        audit.add_command(command)


# --- questions ---------------------------------------------------------------------------
@click.command("refusals")
@_SINCE
@click.option("--examples", type=click.IntRange(0, 20), default=3, show_default=True)
@_JSON
@click.pass_context
def refusals(ctx: click.Context, since: str | None, examples: int, as_json: bool) -> None:
    """Which outputs get refused, and what they look like: by action and by output type.

    Each group lists its policies and the latest refused outputs (as stored: redacted).
    """
    data = analytics.refused_outputs(audit_from(ctx), _since(since), examples)
    if as_json:
        _emit(data)
        return
    click.echo(f"{data['refused']:,} refusals")
    for key in ("action", "type"):
        click.secho(f"\nby {key}:", bold=True)
        for g in data[f"by_{key}"]:
            click.echo(
                f"  {g[key] or '-':20} {g['refusals']:8,}  {_pct(g['share']):>6}  "
                f"{', '.join(g['policies'][:5])}"
            )
            for ex in g["examples"]:
                click.echo(f"      e.g. {json.dumps(ex['output'])[:90]}  -> {ex['reason'][:60]}")


@click.command("rates")
@click.option(
    "--by", type=click.Choice(analytics.RATE_DIMENSIONS), default="day", show_default=True
)
@_SINCE
@click.option(
    "--top",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="How many users with --by user.",
)
@_JSON
@click.pass_context
def rates(ctx: click.Context, by: str, since: str | None, top: int, as_json: bool) -> None:
    """How often refusals happen: per hour or day, per service, per user, per policy."""
    data = analytics.refusal_rates(audit_from(ctx), by, _since(since), top)
    if as_json:
        _emit(data)
        return
    click.echo(f"{data['total']:,} decisions")
    for b in data["buckets"]:
        if by == "policy":
            click.echo(
                f"  {b['policy']:16} {b['refusals']:8,} refusals  (primary "
                f"{b['primary']:,})  {_pct(b['rate'])} of all decisions"
            )
        else:
            click.echo(
                f"  {b[by] or '-':20} {b['decisions']:8,} decisions  {b['refused']:8,} "
                f"refused  {_pct(b['rate']):>6}  fallback {b['fallback']}"
            )


@click.command("policies")
@_SINCE
@_JSON
@click.pass_context
def policies(ctx: click.Context, since: str | None, as_json: bool) -> None:
    """Which policies trigger most, and which never do.

    Known policies come from OPA itself (`opa inspect -a` on the policy folder: every refusal
    rule's METADATA id) plus the rules-as-data policies in the folder's data.json files.
    Shadow policies (which never refuse) show their would-be refusals and rate beside the
    enforcing ones' refusals and rate (per decision in the window).
    """
    try:
        known = _known_policies(ctx)
    except PygateError as exc:
        fail(str(exc))
    data = analytics.policy_triggers(audit_from(ctx), known, _since(since))
    if as_json:
        _emit(data)
        return
    click.secho(
        f"triggered ({len(data['triggered'])}, of {data['decisions']:,} decisions):", bold=True
    )
    click.echo(f"  {'policy':16} {'refused':>8} {'rate':>7} {'shadow':>8} {'rate':>7}  mode")
    for p in data["triggered"]:
        click.echo(
            f"  {p['policy_id']:16} {p['refusals']:8,} {_pct(p['rate']):>7} "
            f"{p['shadow_refusals']:8,} {_pct(p['shadow_rate']):>7}  {p['mode']:9} "
            f"{p['source']:8} {p['title']}"
        )
    click.secho(f"never triggered ({len(data['never'])} of {data['known']} known):", bold=True)
    for p in data["never"]:
        click.echo(f"  {p['policy_id']:16} {p['source']:8} {p['title']}")


@click.command("followups")
@click.option(
    "--window",
    default="30m",
    show_default=True,
    help="How long after a refusal to look for the user's next step (90s, 30m, 2h).",
)
@_SINCE
@_JSON
@click.pass_context
def followups(ctx: click.Context, window: str, since: str | None, as_json: bool) -> None:
    """What users do after a refusal: retry, escalate, leave (or something else).

    \b
    Per refusal, first match wins:
      recorded  what the host app recorded (`pygate audit followup`, Gate.record_followup)
      escalate  an approval was requested for it
      retry     the user's next output of the same kind (type and action) within the window
      other     the user did something else within the window
      leave     nothing from the user within the window
    """
    try:
        span = analytics.parse_duration(window)
    except PygateError as exc:
        fail(str(exc))
    data = analytics.followups(audit_from(ctx), span, _since(since))
    if as_json:
        _emit(data)
        return
    n = data["refusals"] or 1
    click.echo(
        f"{data['refusals']:,} refusals, window {window} "
        f"({data['recorded']:,} follow-ups recorded by the host app)"
    )
    for kind, count in data["counts"].items():
        click.echo(f"  {kind:9} {count:8,}  {_pct(count / n)}")
    click.echo(f"  retries allowed: {data['retry_allowed']:,}")
    if data["escalations"]:
        click.echo(
            "  approval requests: "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(data["escalations"].items()))
        )


@click.command("followup")
@click.argument("audit_id")
@click.argument("kind", type=click.Choice(analytics.FOLLOWUP_KINDS))
@click.option("--note", help="Free text kept with the follow-up.")
@_JSON
@click.pass_context
def followup(ctx: click.Context, audit_id: str, kind: str, note: str | None, as_json: bool) -> None:
    """Record what the user did after the refusal AUDIT_ID: retry, escalate or leave."""
    try:
        fid = analytics.record_followup(audit_from(ctx), audit_id, kind, note)
    except PygateError as exc:
        fail(str(exc))
    if as_json:
        _emit({"followup_id": fid, "audit_id": audit_id, "kind": kind})
    else:
        click.echo(f"recorded {kind} for {audit_id} ({fid})")


#: Refusal fields shown first, in this order; any other field follows, as stored.
_REFUSAL_ORDER = ("reason", "action", "priority", "title", "description", "message",
                  "suggestion", "policy_set", "source")  # fmt: skip


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _show_refusal(refusal: dict[str, Any]) -> None:
    click.echo(f"  {refusal.get('policy_id', '-')}")
    rest = [k for k in refusal if k not in _REFUSAL_ORDER and k not in ("policy_id", "shadow")]
    for key in (*(k for k in _REFUSAL_ORDER if k in refusal), *sorted(rest)):
        if key == "invalid" and refusal[key] is False:
            continue
        click.echo(f"    {key + ':':13} {_value(refusal[key])}")


@click.command("explain")
@click.argument("audit_id")
@_JSON
@click.pass_context
def explain(ctx: click.Context, audit_id: str, as_json: bool) -> None:
    """Show one recorded decision and why: every refusal as the policy reported it.

    AUDIT_ID is a record's audit id (or a unique prefix of 8+ characters), as printed by
    `pygate check`, `audit tail` and `pygate replay`. Each refusal is shown with every
    field the record kept (reason, action, and whatever the policy added, such as the
    failing condition and what would pass); refusals marked shadow are listed apart as
    "would have refused". Also shown: the input OPA was asked (user, quota usage,
    approvals), and whether `pygate replay` can re-decide it.

    \b
    Exit codes:
      0  shown
      2  no such record, or the log cannot be read
    """
    from pygate._replay import unreplayable

    log = audit_from(ctx)
    record = log.find(audit_id)
    if record is None:
        fail(f"no audit record with id {audit_id}", field="audit_id")
    refusals = record.refusals
    if refusals is None and not record.allowed:
        # Written before refusal objects were kept: what the columns say.
        refusals = [{"policy_id": p} for p in record.policy_ids] or [{"policy_id": "-"}]
        refusals[0] = {**refusals[0], "reason": record.reason, "action": record.action}
    refusals = refusals or []
    enforcing = [r for r in refusals if not r.get("shadow")]
    shadow = [r for r in refusals if r.get("shadow")]
    cause = unreplayable(record)
    if as_json:
        doc = record.model_dump(mode="json")
        doc.update(refusals=enforcing, shadow_refusals=shadow, replayable=cause is None)
        doc["not_replayable_because"] = cause
        _emit(doc)
        return
    verdict = (
        click.style("ALLOWED", fg="green") if record.allowed else click.style("REFUSED", fg="red")
    )
    click.echo(f"audit id     {record.audit_id} (record {record.seq})")
    click.echo(f"time         {record.ts.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC")
    click.echo(f"service      {record.service or '-'}    user {record.user_id or '-'}")
    click.echo(
        f"decision     {verdict}"
        + (f" by {record.policy_id} ({record.action})" if not record.allowed else "")
        + (" [engine fallback]" if record.fallback else "")
    )
    click.echo(f"bundle       {record.bundle_revision or '-'}    decision id "
               f"{record.decision_id or '-'}    {record.latency_ms:.2f} ms")  # fmt: skip
    if record.approval_id:
        click.echo(f"approved     {record.approval_id} by {record.approved_by}")
    click.echo(f"output       {_value(record.output)[:300]}")
    if enforcing:
        click.secho("refusals:", bold=True)
        for refusal in enforcing:
            _show_refusal(refusal)
    if shadow:
        click.secho("shadow (would have refused, did not enforce):", bold=True)
        for refusal in shadow:
            _show_refusal(refusal)
    stored = record.opa_input
    if stored is not None:
        context = stored.get("context") or {}
        click.echo(f"input        user {_value(stored.get('user'))[:200]}")
        click.echo(f"             usage_today {context.get('usage_today', '-')}, "
                   f"approvals {len(context.get('approvals') or [])}")  # fmt: skip
    reasons = {
        None: "yes",
        "redacted": f"no: redacted {', '.join((stored or {}).get('redacted') or [])}",
        "no_recorded_input": "no: the input was not recorded",
        "not_decided_by_opa": "no: pygate refused on its own (OPA did not decide)",
    }
    click.echo(f"replayable   {reasons.get(cause, cause)}")


@click.command("health")
@_SINCE
@click.option(
    "--gap",
    default="5m",
    show_default=True,
    help="Fallback refusals further apart than this are separate incidents.",
)
@_JSON
@click.pass_context
def health(ctx: click.Context, since: str | None, gap: str, as_json: bool) -> None:
    """Engine health: fallback refusals (OPA could not decide), per hour and as incidents."""
    try:
        span = analytics.parse_duration(gap, "gap")
    except PygateError as exc:
        fail(str(exc))
    data = analytics.engine_health(audit_from(ctx), _since(since), span)
    if as_json:
        _emit(data)
        return
    click.echo(
        f"{data['fallback']:,} fallback refusals of {data['decisions']:,} decisions "
        f"({_pct(data['rate'])}); first {data['first']}, last {data['last']}"
    )
    for i in data["incidents"]:
        click.echo(
            f"  {i['start'][:19]} .. {i['end'][11:19]}  {i['refusals']:5}  {', '.join(i['causes'])}"
        )


# --- report, export, retention -----------------------------------------------------------
@click.command("report")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True),
    default="report.html",
    show_default=True,
    help="The HTML file to write.",
)
@click.option("--window", default="30m", show_default=True, help="Follow-up window.")
@click.option(
    "--replay",
    "replay_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A saved `pygate replay --json` result: adds the Replay section.",
)
@_SINCE
@_JSON
@click.pass_context
def report(
    ctx: click.Context,
    out: str,
    window: str,
    replay_file: str | None,
    since: str | None,
    as_json: bool,
) -> None:
    """Write one self-contained HTML report: charts (inline SVG) and the tables behind them.

    Refusal rate over time, top policies (and those never triggered), refusals by action with
    examples, the follow-up funnel, fallback incidents, latency p50/p99 over time and per
    service, refusals per bundle revision (a publish that changes them shows as a jump),
    per-service trends, shadow policies' would-be refusals, the replay of a candidate bundle
    (--replay), and whether the hash chain verifies. Every chart's bars link to the audit
    ids behind them (the drill-down at the end; `pygate audit explain ID` shows one).
    """
    from pygate._replay import load_report
    from pygate.audit._report import build_report  # matplotlib loads only for this command

    try:
        span = analytics.parse_duration(window)
        replayed = load_report(replay_file) if replay_file else None
        known = _known_policies(ctx)
        started = time.perf_counter()
        log = audit_from(ctx)
        with progress("building the report"):
            page = build_report(log, known, span, _since(since), replay=replayed)
    except PygateError as exc:
        fail(str(exc))
    Path(out).write_text(page, encoding="utf-8")
    seconds = round(time.perf_counter() - started, 2)
    if as_json:
        _emit({"out": out, "bytes": len(page.encode()), "seconds": seconds})
    else:
        click.echo(f"wrote {out} ({len(page.encode()) // 1024} KiB, {seconds} s)")


@click.command("export")
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
@click.option(
    "--out",
    type=click.File("w"),
    default="-",
    show_default=True,
    help="File to write, - for stdout.",
)
@_SINCE
@_JSON
@click.pass_context
def export(ctx: click.Context, fmt: str, out: Any, since: str | None, as_json: bool) -> None:
    """Export records as JSONL or CSV, with OPA decision ids to join OPA's decision logs.

    Columns: seq, audit_id, decision_id, ts, service, user_id, allowed, policy_id,
    policy_ids, action, reason, fallback, latency_ms, bundle_revision, approval_id,
    approved_by, output (redacted, JSON), prev_hash, hash.
    With --json the summary ({"ok", "records", "out"}) is the one line on stdout, so the
    records need --out FILE.
    """
    log = audit_from(ctx)
    if as_json and getattr(out, "name", "-") in ("-", "<stdout>"):
        fail("--out: a file is needed with --json (stdout carries the JSON summary)")
    n = (export_jsonl if fmt == "jsonl" else export_csv)(log, out, _since(since))
    if as_json:
        _emit({"ok": True, "records": n, "out": out.name})
    else:
        click.echo(f"exported {n:,} records", err=True)


@click.command("prune")
@click.option(
    "--older-than",
    "days",
    type=click.FloatRange(min=0),
    required=True,
    help="Delete records older than this many days.",
)
@click.option("--yes", is_flag=True, help="Do it (without it, only say what would go).")
@_JSON
@click.pass_context
def prune_cmd(ctx: click.Context, days: float, yes: bool, as_json: bool) -> None:
    """Retention: delete records older than N days and keep the chain verifiable.

    The chain is verified first (a tampered log is never pruned). The pruned prefix is replaced
    by a checkpoint in chain_anchor (hash of the last pruned record, count, cutoff), chained
    to earlier checkpoints; `pygate audit verify` then starts from it. Exit 1 if the chain
    does not verify.
    """
    log = audit_from(ctx)
    if not yes:
        cutoff = analytics.parse_since(f"{max(int(days * 86400), 1)}s")
        n = int(log._scalar("SELECT count(*) FROM decisions WHERE ts < ?", (cutoff,)))
        msg = {"would_prune_at_most": n, "cutoff": cutoff, "dry_run": True}
        _emit(msg) if as_json else click.echo(
            f"{n:,} records are older than {cutoff}; run again with --yes to prune them"
        )
        return
    try:
        result = prune(log, days)
    except PygateError as exc:
        fail(str(exc), EXIT_FAILED)
    if as_json:
        _emit(result)
    else:
        click.echo(
            f"pruned {result['pruned']:,} records through seq {result['through_seq']} "
            f"(anchor {result['anchor_no']}); kept {result['kept_older']:,} older "
            "records that follow newer ones"
        )


@click.command("rotate-key")
@_JSON
@click.pass_context
def rotate_key_cmd(ctx: click.Context, as_json: bool) -> None:
    """Add a new current audit key to the keyring; older keys keep verifying old records.

    The keyring is audit_key_file (PYGATE_AUDIT_KEY_FILE), else the default beside the log.
    Every service writing the same log must be given the new keyring before it writes.
    """
    settings = settings_from(ctx)
    path = Path(settings.audit_key_file or default_state_dir(settings.audit_db) / KEY_FILE)
    try:
        key_id = rotate_key(path)
    except OSError as exc:
        fail(f"cannot write audit key file {path}: {exc}")
    if as_json:
        _emit({"key_id": key_id, "key_file": str(path)})
    else:
        click.echo(f"new current audit key {key_id} in {path}")


@click.command("checkpoint")
@_JSON
@click.pass_context
def checkpoint_cmd(ctx: click.Context, as_json: bool) -> None:
    """Write a signed checkpoint of the chain's head now (e.g. before a backup).

    Refused (exit 1) when the log no longer holds the head of the stored checkpoint: the old
    one is kept as evidence for `pygate audit verify`.
    """
    log = audit_from(ctx)
    try:
        cp = log.checkpoint()
    except (PygateError, OSError) as exc:
        fail(str(exc))
    if cp is None:
        stored = log.integrity.read_checkpoint()
        if stored is not None and not log._holds(stored):
            fail(f"the log no longer holds record {stored.seq} of the stored checkpoint; "
                 "kept it (run pygate audit verify)", EXIT_FAILED)  # fmt: skip
    body = {"written": cp is not None, "path": str(log.integrity.checkpoint_path),
            **(cp.__dict__ if cp else {})}  # fmt: skip
    body.pop("mac", None)
    if as_json:
        _emit(body)
    elif cp is None:
        click.echo(f"checkpoint {log.integrity.checkpoint_path} already up to date")
    else:
        click.echo(f"checkpoint at record {cp.seq} ({cp.count} records) written to "
                   f"{log.integrity.checkpoint_path}")  # fmt: skip


@click.command("generate")
@click.option("--records", type=click.IntRange(1, 10_000_000), default=100_000, show_default=True)
@click.option("--days", type=click.IntRange(1, 3650), default=30, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--append", is_flag=True, help="Allow writing into a log that has records.")
@_JSON
@click.pass_context
def generate(
    ctx: click.Context, records: int, days: int, seed: int, append: bool, as_json: bool
) -> None:
    """Write a synthetic decision history (for measuring and demonstrating the analytics).

    Records carry bundle_revision "synthetic". Refuses a log that already has records
    unless --append: point --audit-db at a scratch file.
    """
    log = audit_from(ctx, must_exist=False)
    if log.count() and not append:
        fail(
            f"the audit log {settings_from(ctx).audit_db} has records; use a scratch --audit-db "
            "or pass --append"
        )
    started = time.perf_counter()
    with progress(f"writing {records:,} synthetic decisions"):
        result = generate_history(log, records, days, seed)
    result["seconds"] = round(time.perf_counter() - started, 2)
    if as_json:
        _emit(result)
    else:
        click.echo(
            f"wrote {result['records']:,} synthetic decisions over {days} days "
            f"({result['refused']:,} refused, {result['fallback']} fallback, "
            f"{result['approvals']:,} approval requests) in {result['seconds']} s"
        )


@click.command("mask-policy")
@click.option(
    "--out", type=click.Path(dir_okay=False), help=f"Write here (e.g. {MASK_POLICY_PATH})."
)
@_JSON
def mask_policy(out: str | None, as_json: bool) -> None:
    """Print (or write) OPA's decision-log mask policy for the redact settings.

    OPA sidecars that log decisions then mask the same fields the audit log masks.
    """
    ctx = click.get_current_context()
    settings = settings_from(ctx)
    try:
        text = render_mask_policy(settings.redact_keys, settings.redact_patterns)
    except re.error as exc:
        fail(f"setting 'redact_patterns': {exc}")
    if as_json:
        if out:
            Path(out).write_text(text)
        _emit({"ok": True, "out": out, "policy": text})
    elif out:
        Path(out).write_text(text)
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text, nl=False)


# --- approvals ---------------------------------------------------------------------------
@click.group("approvals")
def approvals() -> None:
    """Human approval for refusals whose action is require_review.

    \b
    A require_review refusal (e.g. AST-002) opens a pending approval. Once approved, the same
    user re-submitting the same output is allowed by policy (pygate.approvals in Rego), once:
    the allow that uses it uses it up in its own audit transaction, so a batch, threads or
    processes get one allow between them. It expires after approval_ttl (default 24 h; --ttl
    at most approval_ttl_max, default 7 days). The requesting user cannot decide their own
    request. `list` and `show` display a pending request's output exactly as submitted
    (unmasked, for the approver; dropped once decided or expired).
    Exit codes: 0 ok, 2 unknown id / not pending / self-approval / bad --ttl / bad input.
    """


def _queue(ctx: click.Context) -> Approvals:
    settings = settings_from(ctx)
    log = audit_from(ctx)
    try:
        return Approvals(log, settings.approval_ttl, settings.approval_ttl_max)
    except PygateError as exc:
        fail(str(exc))


def _show(a: Approval, full: bool = False) -> None:
    click.echo(
        f"{a.approval_id}  {a.status:8}  user {a.user_id}  {', '.join(a.policy_ids)}  "
        f"audit {a.audit_id}"
    )
    click.echo(f"    why:     {a.reason}")
    if full and a.review_output is not None:
        click.echo("    output (as submitted, unmasked, for the approver):")
        click.echo(json.dumps(a.review_output, indent=2, sort_keys=True))
    elif a.review_output is not None:
        click.echo(f"    output:  {json.dumps(a.review_output, sort_keys=True)[:160]}")
    else:
        click.echo(f"    output:  {json.dumps(a.output)[:120]}")
    when = f"    created {a.created_at:%Y-%m-%d %H:%M:%S}, expires {a.expires_at:%Y-%m-%d %H:%M:%S}"
    click.echo(when + (f", {a.status} by {a.decided_by}" if a.decided_by else ""))


@approvals.command("list")
@click.option(
    "--status", type=click.Choice([*STATUSES, "all"]), default="pending", show_default=True
)
@_JSON
@click.pass_context
def approvals_list(ctx: click.Context, status: str, as_json: bool) -> None:
    """List approval requests (newest first): who, what output, why, the audit id."""
    found = _queue(ctx).find(None if status == "all" else status)
    if as_json:
        _emit([a.model_dump(mode="json") for a in found])
        return
    if not found:
        click.echo(f"no {'' if status == 'all' else status + ' '}approvals")
    for a in found:
        _show(a)


@approvals.command("show")
@click.argument("approval_id")
@_JSON
@click.pass_context
def approvals_show(ctx: click.Context, approval_id: str, as_json: bool) -> None:
    """One request in full: for a pending one, the output exactly as it was submitted."""
    try:
        found = _queue(ctx).get(approval_id)
    except PygateError as exc:
        fail(str(exc))
    if as_json:
        _emit(found.model_dump(mode="json"))
    else:
        _show(found, full=True)


def _decide(
    ctx: click.Context,
    approval_id: str,
    by: str,
    note: str | None,
    ttl: float | None,
    as_json: bool,
    verb: str,
) -> None:
    queue = _queue(ctx)
    try:
        if ttl is not None:
            check_ttl(ttl, queue.max_ttl, "--ttl")
        if verb == "approve":
            done = queue.approve(approval_id, by, note, ttl)
        else:
            done = queue.reject(approval_id, by, note)
    except PygateError as exc:
        fail(str(exc))
    if as_json:
        _emit(done.model_dump(mode="json"))
    else:
        _show(done)


@approvals.command("approve")
@click.argument("approval_id")
@click.option("--by", required=True, help="Who approves (recorded, and audited on use).")
@click.option("--note", help="Why.")
@click.option(
    "--ttl",
    type=float,
    help="Seconds it stays usable (default approval_ttl; at most approval_ttl_max).",
)
@_JSON
@click.pass_context
def approvals_approve(
    ctx: click.Context,
    approval_id: str,
    by: str,
    note: str | None,
    ttl: float | None,
    as_json: bool,
) -> None:
    """Approve a pending request: the same output for the same user passes, once."""
    _decide(ctx, approval_id, by, note, ttl, as_json, "approve")


@approvals.command("reject")
@click.argument("approval_id")
@click.option("--by", required=True, help="Who rejects.")
@click.option("--note", help="Why.")
@_JSON
@click.pass_context
def approvals_reject(
    ctx: click.Context, approval_id: str, by: str, note: str | None, as_json: bool
) -> None:
    """Reject a pending request; the output stays refused."""
    _decide(ctx, approval_id, by, note, None, as_json, "reject")
