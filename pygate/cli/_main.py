"""The ``pygate`` command line. It calls the library; the library never calls it."""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any

import click

from pygate import _core
from pygate._errors import ConfigError, InputError, PygateError
from pygate._gate import Gate
from pygate._input import loads
from pygate._models import Decision
from pygate.audit import open_audit
from pygate.cli._common import (
    EXIT_OK,
    EXIT_REFUSED,
    PygateGroup,
    audit_from,
    fail,
    progress,
    settings_from,
)
from pygate.cli._demo import Scenario, scenarios
from pygate.engine._opa_process import LocalOpa


def _value_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _show(decision: Decision, title: str | None = None) -> None:
    mark = (
        click.style("ALLOWED", fg="green") if decision.allowed else click.style("REFUSED", fg="red")
    )
    head = f"{mark}  {title}" if title else mark
    click.echo(head)
    if not decision.allowed:
        click.echo(f"    reason:  {decision.reason}")
        click.echo(f"    policy:  {decision.policy_id}   action: {decision.action}")
        click.echo(f"    to user: {decision.user_message()}")
        if decision.hint:
            click.echo(f"    to model: {decision.hint}")
        for condition in decision.why:
            click.echo(f"    why:     {condition.text()} (was {_value_text(condition.value)})")
        if decision.would_pass:
            passing = " or ".join(c.text() for c in decision.would_pass)
            click.echo(f"    passes:  {passing}")
        if len(decision.refusals) > 1:
            click.echo(f"    also:    {', '.join(decision.policy_ids[1:])}")
        if decision.fallback:
            click.echo("    fallback: the policy engine could not decide")
    for refusal in decision.shadow_refusals:
        click.echo(f"    shadow:  {refusal.policy_id} would have refused ({refusal.reason})")
    if decision.approved_by:
        click.echo(f"    approved by {decision.approved_by} (approval {decision.approval_id})")
    for action in decision.actions:
        arguments = json.dumps(action.arguments, ensure_ascii=False)
        click.echo(f"    action:  {action.kind} {action.name} {arguments[:200]}  ({action.source})")
    click.echo(f"    audit:   {decision.audit_id}   ({decision.latency_ms:.2f} ms)")


def _dump(decision: Decision) -> dict[str, Any]:
    return decision.model_dump(mode="json")


@click.group(cls=PygateGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--opa-url",
    help="Use this OPA (http://host:port or unix:///path). "
    "Default: start a local OPA process (the embedded default). Env: PYGATE_OPA_URL.",
)
@click.option(
    "--policy-dir",
    help="Your policy folder (e.g. from `pygate init`), loaded beside pygate's Rego library, "
    "or a whole pygate tree. Default: pygate's example policies. Env: PYGATE_POLICY_DIR.",
)
@click.option(
    "--audit-db",
    help="Audit database: a SQLite path (default .pygate/audit.db) or "
    "postgresql://user:password@host:port/db (shared by services). Env: PYGATE_AUDIT_DB.",
)
@click.option("--timeout", type=float, help="Seconds per decision before refusing. Default 0.5.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines on stderr.")
@click.version_option(package_name="pygate")
@click.pass_context
def main(
    ctx: click.Context,
    opa_url: str | None,
    policy_dir: str | None,
    audit_db: str | None,
    timeout: float | None,
    quiet: bool,
) -> None:
    """pygate: ask OPA whether an AI model's output may be acted on, refuse clearly, audit all.

    \b
    Quick start:
      pygate demo                          gate the seed scenarios on a local OPA
      echo '{"output": {"type": "transfer", "amount": 5000},
             "user": {"id": "u1", "transaction_limit": 1000}}' \\
        | pygate check --service finance -
      pygate audit summary                 what was refused, and how often

    Settings come from flags, then PYGATE_* environment variables, then ./pygate.toml.
    Global options (--opa-url, --policy-dir, --audit-db, --timeout, --quiet) may also
    follow the subcommand. Every command takes --json: its result, and any error, as
    one JSON object on stdout. Exit 2 always means bad input or configuration.
    """
    ctx.obj = {"opa_url": opa_url, "policy_dir": policy_dir, "audit_db": audit_db,
               "timeout": timeout}  # fmt: skip


def _read_check_document(raw: str) -> dict[str, Any]:
    """The ``check`` input: strict JSON (no duplicate keys), an object with output and user.

    Raises:
        InputError: naming ``input``, ``output`` or ``user``.
    """
    doc = loads(raw, "input")
    if not isinstance(doc, dict):
        raise InputError("input", "expected a JSON object with output, user and context")
    unknown = set(doc) - {"output", "user", "context"}
    if unknown:
        raise InputError("input", f"unknown field(s) {', '.join(sorted(unknown))}")
    for name in ("output", "user"):
        if name not in doc:
            raise InputError(name, "required")
    return doc


@main.command()
@click.argument("source", type=click.File("r"), default="-")
@click.option(
    "--service",
    help="The service to gate for (selects its policy sets). Default: PYGATE_SERVICE or "
    "the config file. Without one the input is refused (exit 2).",
)
@click.option(
    "--service-from-input",
    is_flag=True,
    help="Let the document's context.service choose the service when none is configured. "
    "Opt-in: a caller who picks the service picks the policies.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@click.pass_context
def check(
    ctx: click.Context, source: Any, service: str | None, service_from_input: bool, as_json: bool
) -> None:
    """Gate one model output read from SOURCE (a JSON file, or - for stdin).

    SOURCE holds {"output": ..., "user": {"id": ...}, "context": {...}}. The decision shows
    the canonical actions the bundle read from the output (what an executor runs; --json:
    "actions"). The service comes
    from --service (or PYGATE_SERVICE); a context.service in the document must agree with
    it. Ambiguous or oversized input (duplicate keys, lone surrogates, nesting deeper than
    max_depth, an output over max_output_bytes, a user id with invisible characters) is
    refused before anything is reserved or sent, audited as policy pygate.input.

    \b
    Exit codes:
      0  allowed
      1  refused (including fail-closed refusals when OPA cannot decide)
      2  bad input or configuration (the message names the field; audited)
    """
    if source.isatty():  # a terminal: say why nothing happens yet
        click.echo("reading the input document from stdin (end with Ctrl-D) ...", err=True)
    try:
        raw = source.read()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"input: cannot read: {exc}")
    settings = settings_from(ctx, service=service)
    try:
        gate = Gate(settings=settings, allow_caller_service=service_from_input)
    except ConfigError as exc:
        fail(str(exc))
    with gate:
        try:
            doc = _read_check_document(raw)
        except InputError as exc:
            decision = gate.refuse_input(exc, raw)
        else:
            decision = gate.evaluate(doc["output"], doc["user"], doc.get("context"))
    if as_json:
        click.echo(json.dumps(_dump(decision), indent=2))
    elif decision.policy_id != _core.INPUT_POLICY_ID:
        _show(decision)
    if decision.policy_id == _core.INPUT_POLICY_ID:
        fail(f"{decision.reason.removeprefix('Invalid input: ')} (audit {decision.audit_id})")
    sys.exit(EXIT_OK if decision.allowed else EXIT_REFUSED)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print every decision as JSON lines.")
@click.pass_context
def demo(ctx: click.Context, as_json: bool) -> None:
    """Gate the seed scenarios on a local OPA, with approval, quota and OPA-down drills.

    Starts OPA with pygate's example policies (unless --opa-url is given), gates each
    scenario for two services (finance, assistant) sharing one OPA and one audit log,
    approves the refusal that asks for review and re-submits it, uses up one user's daily
    quota, stops OPA to show fail-closed refusals, restarts it, prints an audit summary
    and stops OPA on exit.
    Exit 1 if any decision differs from the seed's answer.
    """
    settings = settings_from(ctx)
    run_id = uuid.uuid4().hex[:6]
    results: list[tuple[str, Decision, bool]] = []

    def emit(title: str, decision: Decision, ok: bool) -> None:
        results.append((title, decision, ok))
        if as_json:
            click.echo(json.dumps({"scenario": title, "as_expected": ok, **_dump(decision)}))
        else:
            flag = "" if ok else click.style("   <-- NOT the seed's answer", fg="red")
            _show(decision, title + flag)

    def note(text: str) -> None:
        if not as_json:
            click.secho(text, bold=True)

    started = time.perf_counter()
    local: LocalOpa | None = None
    try:
        if settings.opa_url is None:
            local = LocalOpa(settings.policy_dir, opa_bin=settings.opa_bin, supervise=False)
            local.start()
        url = settings.opa_url or (local.url if local else "")
        audit = open_audit(settings.audit_db)
    except PygateError as exc:
        if local is not None:
            local.stop()
        fail(str(exc))
    review: tuple[Scenario, Decision] | None = None
    gates = {
        name: Gate(settings=settings.model_copy(update={"service": name, "opa_url": url}),
                   audit=audit)
        for name in ("finance", "assistant")
    }  # fmt: skip
    try:
        note(f"OPA at {url} (policies: {local.policy_dir if local else 'the sidecar'}), "
             f"audit: {settings.audit_db}\n")  # fmt: skip
        for sc in scenarios(run_id):
            decision = gates[sc.service].evaluate(sc.output, sc.user, sc.context)
            ok = decision.allowed == sc.expect_allowed and (
                sc.expect_policy is None or decision.policy_id == sc.expect_policy
            )
            emit(f"[{sc.service}] {sc.name}", decision, ok)
            if decision.action == "require_review":
                review = (sc, decision)

        assistant = gates["assistant"]
        if review is not None and assistant.approvals is not None:
            sc, refused = review
            pending = [a for a in assistant.approvals.find() if a.audit_id == refused.audit_id]
            if pending:
                note(f"\napproval: rita approves request {pending[0].approval_id[:8]}… "
                     "(pygate approvals approve ID --by rita) ...")  # fmt: skip
                assistant.approvals.approve(pending[0].approval_id, by="rita")
            again = gates[sc.service].evaluate(sc.output, sc.user, sc.context)
            emit(f"[{sc.service}] {sc.name}, approved and re-submitted", again,
                 again.allowed and again.approved_by == "rita")  # fmt: skip

        busy = {"id": f"busy-{run_id}", "role": "analyst"}
        ask = {"type": "tool_call", "action": "explain"}
        note(f"\nquota: user {busy['id']} asks 100 times today ...")
        used = [gates["assistant"].evaluate(ask, busy) for _ in range(100)]
        emit("[assistant] requests 1-100 (quota 100): last one", used[-1],
             all(d.allowed for d in used))  # fmt: skip
        over = gates["assistant"].evaluate(ask, busy)
        emit("[assistant] request 101: daily quota exceeded", over,
             not over.allowed and over.policy_id == "AST-003")  # fmt: skip

        if local is not None:
            transfer = {"type": "transfer", "amount": 500, "to": "acct-2"}
            user = {"id": f"drill-{run_id}", "transaction_limit": 1000}
            note("\ndrill: OPA stopped ...")
            local.stop()
            down = gates["finance"].evaluate(transfer, user)
            emit("[finance] transfer within limit, OPA down", down,
                 not down.allowed and down.fallback)  # fmt: skip
            note("drill: OPA restarted ...")
            local.start()
            back = gates["finance"].evaluate(transfer, user)
            emit("[finance] transfer within limit, OPA back", back, back.allowed)
        summary = audit.summary()
        verify = audit.verify()
    finally:
        for gate in gates.values():
            gate.close()
        audit.close()
        if local is not None:
            local.stop()
    failed = [title for title, _, ok in results if not ok]
    seconds = round(time.perf_counter() - started, 2)
    if as_json:
        click.echo(json.dumps({"summary": {
            "scenarios": len(results), "as_expected": len(results) - len(failed),
            "audit_records": summary.total, "refusal_rate": round(summary.refusal_rate, 4),
            "fallback": summary.fallback, "top_policies": summary.top_policies,
            "chain_ok": verify.ok, "seconds": seconds}}))  # fmt: skip
    else:
        click.echo(f"\n{len(results) - len(failed)}/{len(results)} scenarios as the seed says "
                   f"({seconds} s)")  # fmt: skip
        click.echo(
            f"audit log {settings.audit_db}: {summary.total} records, refusal rate "
            f"{summary.refusal_rate:.0%}, fallback refusals {summary.fallback}, "
            f"hash chain {'verified' if verify.ok else 'BROKEN at ' + str(verify.seq)}"
        )
        click.echo(
            "top refusing policies: " + ", ".join(f"{p} ({n})" for p, n in summary.top_policies)
        )
    sys.exit(1 if failed or not verify.ok else 0)


@main.group()
def audit() -> None:
    """Read the audit log: recent decisions, statistics, chain verification, and the refusal
    dataset's questions (refusals, rates, policies, followups, health), the HTML report,
    export, retention and a synthetic history for trying them."""


@audit.command("tail")
@click.option(
    "-n",
    "count",
    type=click.IntRange(1, 10_000),
    default=10,
    show_default=True,
    help="How many of the latest records.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def audit_tail(ctx: click.Context, count: int, as_json: bool) -> None:
    """Show the latest decisions, oldest first."""
    log = audit_from(ctx)
    for rec in log.tail(count):
        if as_json:
            click.echo(rec.model_dump_json())
            continue
        mark = click.style("allow ", fg="green") if rec.allowed else click.style("REFUSE", fg="red")
        what = json.dumps(rec.output)[:60]
        why = "" if rec.allowed else f"  {rec.policy_id}: {rec.reason[:70]}"
        click.echo(f"{rec.ts:%Y-%m-%d %H:%M:%S} {mark} {rec.service or '-':9} "
                   f"{rec.user_id or '-':14} {what}{why}")  # fmt: skip


@audit.command("summary")
@click.option("--top", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def audit_summary(ctx: click.Context, top: int, as_json: bool) -> None:
    """Totals, refusal rate, fallback refusals and the policies that refuse most."""
    s = audit_from(ctx).summary(top)
    if as_json:
        click.echo(json.dumps({"total": s.total, "allowed": s.allowed, "refused": s.refused,
                               "refusal_rate": round(s.refusal_rate, 4), "fallback": s.fallback,
                               "top_policies": [{"policy_id": p, "refusals": n}
                                                for p, n in s.top_policies]}))  # fmt: skip
        return
    click.echo(f"decisions {s.total}: allowed {s.allowed}, refused {s.refused} "
               f"(refusal rate {s.refusal_rate:.1%}), fallback refusals {s.fallback}")  # fmt: skip
    for policy, n in s.top_policies:
        click.echo(f"  {n:8d}  {policy}")


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def audit_verify(ctx: click.Context, as_json: bool) -> None:
    """Check the keyed hash chain against the latest signed checkpoint.

    Needs the audit key (PYGATE_AUDIT_KEY_FILE, or the default beside the log) and the
    checkpoint folder (PYGATE_AUDIT_CHECKPOINT_DIR). Exit 0 when every record verifies and
    the log still holds what the checkpoint vouches for; exit 1 naming the first problem and
    the records concerned (edited, missing, rebuilt without the key, a forged retention
    anchor, a log emptied or dropped); exit 2 when the log or key cannot be read.
    """
    log = audit_from(ctx)
    with progress("verifying the hash chain"):
        result = log.verify()
    if as_json:
        click.echo(json.dumps(result.__dict__))
    elif result.ok:
        vouched = f", checkpoint at record {result.checkpoint_seq}" if result.checkpoint_seq else ""
        click.echo(f"ok: {result.checked} records, keyed hash chain intact{vouched}")
    else:
        where = f"record {result.seq}" if result.seq is not None else "the log"
        audit_id = f" (audit id {result.audit_id})" if result.audit_id else ""
        click.echo(f"TAMPERED at {where}{audit_id}: {result.problem}")
    for issue in result.issues:
        click.echo(f"  also: {issue}")
    sys.exit(0 if result.ok else 1)


# The refusal-dataset commands (analytics, report, export, retention, approvals) live in
# _cli_audit so this module stays one idea; they attach to the same `audit` group.
from pygate.cli._audit import approvals as _approvals_group  # noqa: E402
from pygate.cli._audit import register as _register_audit  # noqa: E402
from pygate.cli._deploy import register as _register_deploy  # noqa: E402

_register_audit(audit)
main.add_command(_approvals_group)
_register_deploy(main)
from pygate.cli._project import register as _register_project  # noqa: E402

_register_project(main)
from pygate.cli._mcp import register as _register_mcp  # noqa: E402

_register_mcp(main)
from pygate.cli._replay import register as _register_replay  # noqa: E402

_register_replay(main)
from pygate.cli._serve import register as _register_serve  # noqa: E402

_register_serve(main)
