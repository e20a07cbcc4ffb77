"""``pygate replay``: what a candidate bundle would have decided about the recorded past.

Calls ``pygate._replay`` (the library); prints for people by default, JSON with ``--json``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from pygate._errors import PygateError
from pygate._replay import ALLOW_TO_REFUSE, CHANGED, REFUSE_TO_ALLOW, replay
from pygate.audit import _analytics as analytics
from pygate.cli._common import audit_from, fail, fail_with, quiet, settings_from

EXIT_FLIPPED = 1

_LABELS = {
    ALLOW_TO_REFUSE: "allow→refuse",
    REFUSE_TO_ALLOW: "refuse→allow",
    CHANGED: "refused by other policies",
    "no_longer_refuses": "no longer refuses",
}
_CAUSES = {
    "redacted": "a redacted value in the input",
    "no_recorded_input": "no recorded input (older record, or invalid input)",
    "not_decided_by_opa": "not decided by OPA (fallback, audit or rollback refusal)",
    "candidate_error": "the candidate's answer broke the decision contract",
}


def register(main: click.Group) -> None:
    """Add ``replay`` to the top-level group."""
    main.add_command(replay_cmd)


class _Progress:
    """``replay: N/M records`` on stderr: updated in place on a terminal, else a line a while."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.last = 0.0
        self.tty = sys.stderr.isatty()
        self.finished = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        final = done >= total
        if quiet() or self.finished or (now - self.last < (0.5 if self.tty else 5.0) and not final):
            return
        self.finished = final
        self.last = now
        rate = done / max(now - self.started, 1e-9)
        line = f"replay: {done:,}/{total:,} records ({rate:,.0f}/s)"
        if self.tty:
            click.echo(f"\r{line}", nl=final, err=True)
        else:
            click.echo(line, err=True)


@click.command("replay")
@click.option(
    "--bundle",
    "candidate",
    required=True,
    help="The candidate: a bundle .tar.gz (`pygate bundle build --out ...`) or a policy folder.",
)
@click.option(
    "--since", help="Only records from then on: a duration back from now (24h, 7d) or ISO time."
)
@click.option("--service", help="Only this service's records.")
@click.option(
    "--examples",
    type=click.IntRange(0, 50),
    default=3,
    show_default=True,
    help="Example flips shown per policy.",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 10_000),
    default=500,
    show_default=True,
    help="Recorded inputs per OPA query.",
)
@click.option(
    "--verification-key",
    type=click.Path(exists=True, dir_okay=False),
    help="Public key a signed bundle must verify with (default: signature not checked).",
)
@click.option("--key-id", default="pygate", show_default=True, help="The bundle's signing key id.")
@click.option("--fail-on-flip", is_flag=True, help="Exit 1 when any recorded decision flips.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.pass_context
def replay_cmd(
    ctx: click.Context,
    candidate: str,
    since: str | None,
    service: str | None,
    examples: int,
    batch: int,
    verification_key: str | None,
    key_id: str,
    fail_on_flip: bool,
    as_json: bool,
) -> None:
    """Re-decide recorded inputs with a candidate bundle: which past decisions would flip.

    Each audit record keeps what OPA was asked (the output, the user, the context with
    that day's quota usage and the approvals as they were); they are sent, in batches, to
    a real OPA running the candidate, and compared with what was decided. Reported: how
    many flip allow→refuse and refuse→allow, or are refused by other policies, per policy
    and per service, with examples and every audit id (--json). Records whose input had a
    value redacted, records written before inputs were kept, and refusals pygate made
    itself (engine fallback, invalid input) are counted as not replayable, never guessed.
    Progress goes to stderr (--quiet hides it). `pygate audit report --replay FILE` adds
    a saved --json report to the HTML report.

    \b
    Exit codes:
      0  the replay ran (with --fail-on-flip: and nothing flips)
      1  with --fail-on-flip: at least one recorded decision flips
      2  bad input or configuration (a missing bundle, an unreadable log, OPA cannot load
         the candidate or stops answering)
    """
    try:
        bound = analytics.parse_since(since)
    except PygateError as exc:
        fail(str(exc), field="since")
    log = audit_from(ctx)
    settings = settings_from(ctx)
    try:
        result = replay(
            log,
            candidate,
            since=bound,
            service=service,
            opa_bin=settings.opa_bin,
            batch=batch,
            examples=examples,
            progress=_Progress(),
            verification_key=verification_key,
            key_id=key_id,
        )
    except PygateError as exc:
        fail_with(exc, as_json)
    flipped = sum(result[k] for k in (ALLOW_TO_REFUSE, REFUSE_TO_ALLOW, CHANGED))
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        show(result)
    sys.exit(EXIT_FLIPPED if fail_on_flip and flipped else 0)


def _short(value: Any, width: int) -> str:
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"


def show(result: dict[str, Any]) -> None:
    """The replay report for people."""
    revision = result["candidate_revision"] or "no revision"
    click.echo(
        f"replayed {result['replayed']:,} of {result['records']:,} records against "
        f"{result['candidate']} ({revision}) in {result['seconds']:.1f} s"
    )
    click.echo(
        f"  unchanged {result['unchanged']:,} · allow→refuse {result[ALLOW_TO_REFUSE]:,} · "
        f"refuse→allow {result[REFUSE_TO_ALLOW]:,} · refused by other policies "
        f"{result[CHANGED]:,}"
    )
    if result["not_replayable"]:
        causes = ", ".join(
            f"{n:,} {_CAUSES.get(c, c)}" for c, n in result["not_replayable_by_cause"].items()
        )
        click.echo(f"  not replayable {result['not_replayable']:,}: {causes}")
        if result["redacted_paths"]:
            paths = ", ".join(f"{p} ({n:,})" for p, n in list(result["redacted_paths"].items())[:5])
            click.echo(f"    redacted: {paths}")
    if result["by_policy"]:
        click.secho("\nby policy:", bold=True)
    for p in result["by_policy"]:
        counts = " · ".join(
            f"{_LABELS[k]} {p[k]:,}"
            for k in (ALLOW_TO_REFUSE, REFUSE_TO_ALLOW, CHANGED, "no_longer_refuses")
            if p[k]
        )
        click.echo(f"  {p['policy_id']:14} {counts}")
        for kind, flips in p["examples"].items():
            for f in flips:
                after = f["after"]["reason"] if not f["after"]["allowed"] else "allowed"
                before = f["before"]["reason"] if not f["before"]["allowed"] else "allowed"
                click.echo(
                    f"    {_LABELS[kind]:13} {f['audit_id']}  {f['ts'][:19].replace('T', ' ')}  "
                    f"{f['user_id'] or '-'}  {_short(f['output'], 50)}"
                )
                click.echo(f"      was: {before[:90]}")
                click.echo(f"      now: {after[:90]}")
    if result["by_service"]:
        click.secho("\nby service:", bold=True)
    for s in result["by_service"]:
        click.echo(
            f"  {s['service']:12} replayed {s['replayed']:,} · allow→refuse "
            f"{s[ALLOW_TO_REFUSE]:,} · refuse→allow {s[REFUSE_TO_ALLOW]:,} · other policies "
            f"{s[CHANGED]:,} · not replayable {s['not_replayable']:,}"
        )
    if not (result[ALLOW_TO_REFUSE] or result[REFUSE_TO_ALLOW] or result[CHANGED]):
        click.echo("\nno recorded decision would change")
