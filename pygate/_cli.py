"""The ``pygate`` command line. It calls the library; the library never calls it."""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any, NoReturn

import click

from pygate import _core
from pygate._audit import AuditLog, open_audit
from pygate._demo import scenarios
from pygate._errors import ConfigError, InputError, PolicyDataError, PygateError
from pygate._gate import Gate
from pygate._models import Decision
from pygate._opa_process import LocalOpa
from pygate._policy_data import load_policy_data
from pygate._policy_index import check_index
from pygate._settings import Settings

EXIT_ALLOWED, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 2


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    try:
        return Settings.load({**ctx.obj, **overrides})
    except ConfigError as exc:
        _fail(str(exc))


def _show(decision: Decision, title: str | None = None) -> None:
    mark = (
        click.style("ALLOWED", fg="green") if decision.allowed else click.style("REFUSED", fg="red")
    )
    head = f"{mark}  {title}" if title else mark
    click.echo(head)
    if not decision.allowed:
        click.echo(f"    reason:  {decision.reason}")
        click.echo(f"    policy:  {decision.policy_id}   action: {decision.action}")
        if decision.suggestion or decision.message:
            click.echo(f"    to user: {decision.user_message()}")
        if len(decision.refusals) > 1:
            click.echo(f"    also:    {', '.join(decision.policy_ids[1:])}")
        if decision.fallback:
            click.echo("    fallback: the policy engine could not decide")
    click.echo(f"    audit:   {decision.audit_id}   ({decision.latency_ms:.2f} ms)")


def _dump(decision: Decision) -> dict[str, Any]:
    return decision.model_dump(mode="json")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--opa-url",
    help="Use this OPA (http://host:port or unix:///path). "
    "Default: start a local OPA process (the embedded default). Env: PYGATE_OPA_URL.",
)
@click.option(
    "--policy-dir",
    help="Policies and data for the local OPA. Default: ./rego. Env: PYGATE_POLICY_DIR.",
)
@click.option(
    "--audit-db",
    help="Audit database: a SQLite path (default .pygate/audit.db) or "
    "postgresql://user:password@host:port/db (shared by services). Env: PYGATE_AUDIT_DB.",
)
@click.option("--timeout", type=float, help="Seconds per decision before refusing. Default 0.5.")
@click.version_option(package_name="pygate")
@click.pass_context
def main(
    ctx: click.Context,
    opa_url: str | None,
    policy_dir: str | None,
    audit_db: str | None,
    timeout: float | None,
) -> None:
    """pygate: ask OPA whether an AI model's output may be acted on, refuse clearly, audit all.

    \b
    Quick start:
      pygate demo                          gate the seed scenarios on a local OPA
      echo '{"output": {"type": "transfer", "amount": 5000},
             "user": {"id": "u1", "transaction_limit": 1000},
             "context": {"service": "finance"}}' | pygate check -
      pygate audit summary                 what was refused, and how often

    Settings come from flags, then PYGATE_* environment variables, then ./pygate.toml.
    """
    ctx.obj = {"opa_url": opa_url, "policy_dir": policy_dir, "audit_db": audit_db,
               "timeout": timeout}  # fmt: skip


@main.command()
@click.argument("source", type=click.File("r"), default="-")
@click.option("--service", help="Service name (overrides context.service).")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@click.pass_context
def check(ctx: click.Context, source: Any, service: str | None, as_json: bool) -> None:
    """Gate one model output read from SOURCE (a JSON file, or - for stdin).

    SOURCE holds {"output": ..., "user": {"id": ...}, "context": {"service": ...}}.

    \b
    Exit codes:
      0  allowed
      1  refused (including fail-closed refusals when OPA cannot decide)
      2  bad input or configuration (the message names the field)
    """
    try:
        doc = json.load(source)
    except ValueError as exc:
        _fail(f"input is not valid JSON: {exc}")
    if not isinstance(doc, dict):
        _fail("input: expected a JSON object with output, user and context")
    unknown = set(doc) - {"output", "user", "context"}
    if unknown:
        _fail(f"input: unknown field(s) {', '.join(sorted(unknown))}")
    for name in ("output", "user"):
        if name not in doc:
            _fail(f"{name}: required")
    context = doc.get("context") or {}
    try:
        _core.normalize_output(doc["output"])
        _core.normalize_user(doc["user"])
        context = _core.normalize_context(context)
    except InputError as exc:
        _fail(str(exc))
    if service:
        context["service"] = service
    if not isinstance(context.get("service"), str):
        _fail("context.service: required (or pass --service)")
    settings = _settings(ctx, service=context["service"])
    try:
        with Gate(settings=settings) as gate:
            decision = gate.evaluate(doc["output"], doc["user"], context)
    except ConfigError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(_dump(decision), indent=2))
    else:
        _show(decision)
    sys.exit(EXIT_ALLOWED if decision.allowed else EXIT_REFUSED)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print every decision as JSON lines.")
@click.pass_context
def demo(ctx: click.Context, as_json: bool) -> None:
    """Gate the seed scenarios on a local OPA, with a quota run and an OPA-down drill.

    Starts OPA with ./rego (unless --opa-url is given), gates each scenario for two
    services (finance, assistant) sharing one OPA and one audit log, uses up one user's
    daily quota, stops OPA to show fail-closed refusals, restarts it, prints an audit
    summary and stops OPA on exit. Exit 1 if any decision differs from the seed's answer.
    """
    settings = _settings(ctx)
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
        _fail(str(exc))
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
def sidecar() -> None:
    """Run a long-lived local OPA with the repo's policies."""


@sidecar.command("up")
@click.option("--port", type=int, default=8181, show_default=True, help="TCP port on 127.0.0.1.")
@click.option(
    "--writable",
    is_flag=True,
    help="Load the policy folder as plain files, not as a bundle, so `pygate policy push` "
    "can change its data live (a bundle owns its paths; decisions then carry no revision).",
)
@click.pass_context
def sidecar_up(ctx: click.Context, port: int, writable: bool) -> None:
    """Start OPA on 127.0.0.1:PORT, print its URL, and keep it running until Ctrl-C.

    Point services at it with PYGATE_OPA_URL=<the printed URL>. OPA is restarted if it dies.
    """
    settings = _settings(ctx.find_root())
    try:
        local = LocalOpa(
            settings.policy_dir, opa_bin=settings.opa_bin, port=port, as_bundle=not writable
        ).start()
    except PygateError as exc:
        _fail(str(exc))
    click.echo(local.url)
    click.echo(f"OPA {local.opa_bin} serving {local.policy_dir}; Ctrl-C stops it", err=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        local.stop()


@main.group()
def audit() -> None:
    """Read the audit log: recent decisions, statistics, chain verification, and the refusal
    dataset's questions (refusals, rates, policies, followups, health), the HTML report,
    export, retention and a synthetic history for trying them."""


def _open_audit(ctx: click.Context) -> AuditLog:
    root = ctx.find_root()
    settings = _settings(root)
    try:
        return open_audit(settings.audit_db)
    except PygateError as exc:
        _fail(str(exc))


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
    log = _open_audit(ctx)
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
    s = _open_audit(ctx).summary(top)
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
    """Check the hash chain; exit 1 and name the first bad record if it was tampered with."""
    result = _open_audit(ctx).verify()
    if as_json:
        click.echo(json.dumps(result.__dict__))
    elif result.ok:
        click.echo(f"ok: {result.checked} records, hash chain intact")
    else:
        click.echo(
            f"TAMPERED at record {result.seq} (audit id {result.audit_id}): {result.problem}"
        )
    sys.exit(0 if result.ok else 1)


@main.group()
def policy() -> None:
    """Work with rules-as-data policies."""


@policy.command("validate")
@click.argument(
    "path", type=click.Path(exists=True, dir_okay=False), default="rego/pygate/config/data.json"
)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def policy_validate(path: str, as_json: bool) -> None:
    """Check the declarative policies in a policy data file (exit 2 names policy and field).

    A ``declarative_index`` in the file must match its policies (`pygate policy index`).
    """
    try:
        data = load_policy_data(path)
        check_index(data, path)
    except PolicyDataError as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "policy_id": exc.policy_id, "field": exc.field,
                                   "problem": exc.problem}))  # fmt: skip
            sys.exit(EXIT_BAD_INPUT)
        _fail(str(exc))
    count = len(data.get("declarative_policies", []))
    if as_json:
        click.echo(json.dumps({"ok": True, "policies": count}))
    else:
        click.echo(f"ok: {count} declarative policies in {path}")


@main.group()
def bundle() -> None:
    """Build and sign the policy bundle that OPA sidecars poll.

    \b
    Publish a policy change to every service:
      pygate bundle keys                      once: a demo RSA key pair in keys/
      pygate bundle build                     validate, opa test, opa build, sign
      cp bundles/pygate.tar.gz <bundle server>  sidecars pick it up within 2 s
    Sidecars run with deploy/opa-config.yaml (see that file for the command line).
    """


@bundle.command("keys")
@click.option(
    "--dir",
    "directory",
    default="keys",
    show_default=True,
    help="Folder for bundle-signing.pem (private) and bundle-verify.pem (public).",
)
@click.option("--force", is_flag=True, help="Replace existing keys.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def bundle_keys(directory: str, force: bool, as_json: bool) -> None:
    """Create an RSA key pair for signing bundles (kept if it exists, unless --force).

    The keys are for the demo and tests and are never committed (keys/ is ignored by git).
    Exit 2 when no key can be generated (needs openssl).
    """
    from pygate._bundle import generate_keys

    try:
        pair = generate_keys(directory, force=force)
    except PygateError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps({"private": str(pair.private), "public": str(pair.public),
                               "created": pair.created}))  # fmt: skip
    else:
        verb = "created" if pair.created else "kept existing"
        click.echo(f"{verb}: {pair.private} (private, signs) and {pair.public} (public, verifies)")


@bundle.command("build")
@click.option(
    "--out",
    default="bundles/pygate.tar.gz",
    show_default=True,
    help="The bundle file to write (replaced atomically).",
)
@click.option(
    "--signing-key",
    default="keys/bundle-signing.pem",
    show_default=True,
    help="PEM private key that signs the bundle (RS256).",
)
@click.option(
    "--key-id",
    default="pygate",
    show_default=True,
    help="Key id in the signature; sidecars look their public key up by it.",
)
@click.option(
    "--data",
    "data_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A JSON file whose top-level keys replace those of the policy data "
    "(rego/pygate/config/data.json). Repeatable; later files win.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def bundle_build(ctx: click.Context, out: str, signing_key: str, key_id: str,
                 data_files: tuple[str, ...], as_json: bool) -> None:  # fmt: skip
    """Validate the policies, run opa test, build and sign the bundle; print its revision.

    The policy folder is --policy-dir (default ./rego); *_test.rego files are left out.
    The .manifest holds roots ["pygate"] and the revision <git commit>-<content hash>,
    which OPA reports with every decision and pygate stores in every audit record.

    \b
    Exit codes:
      0  built and signed
      2  a rules-as-data policy is malformed (names policy and field), opa test failed,
         or the key, policy folder or OPA binary is missing
    """
    from pygate._bundle import build_bundle

    settings = _settings(ctx.find_root())
    try:
        built = build_bundle(out, signing_key=signing_key, key_id=key_id,
                             policy_dir=settings.policy_dir, data_files=data_files,
                             opa_bin=settings.opa_bin)  # fmt: skip
    except PolicyDataError as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "step": "validate", "policy_id": exc.policy_id,
                                   "field": exc.field, "problem": exc.problem}))  # fmt: skip
            sys.exit(EXIT_BAD_INPUT)
        _fail(str(exc))
    except PygateError as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "step": getattr(exc, "step", "config"),
                                   "problem": str(exc)}))  # fmt: skip
            sys.exit(EXIT_BAD_INPUT)
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps({"ok": True, "path": str(built.path), "revision": built.revision,
                               "commit": built.commit, "content_hash": built.content_hash,
                               "key_id": built.key_id, "files": list(built.files)}))  # fmt: skip
    else:
        click.echo(built.revision)
        click.echo(f"signed bundle {built.path} ({len(built.files)} files, key id "
                   f"{built.key_id}); publish it where sidecars poll", err=True)  # fmt: skip


# The refusal-dataset commands (analytics, report, export, retention, approvals) live in
# _cli_audit so this module stays one idea; they attach to the same `audit` group.
from pygate._cli_audit import approvals as _approvals_group  # noqa: E402
from pygate._cli_audit import register as _register_audit  # noqa: E402

_register_audit(audit)
main.add_command(_approvals_group)


def _management_url(ctx: click.Context, opa_url: str | None) -> str:
    url = opa_url or _settings(ctx.find_root()).opa_url
    if not url:
        _fail("--opa-url: required (the OPA to manage; or set PYGATE_OPA_URL)")
    return url


@policy.command("push")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--opa-url", help="The OPA to update (http://host:port). Env: PYGATE_OPA_URL.")
@click.option("--replace", is_flag=True,
              help="Make PATH the whole policy data document instead of replacing only its "
                   "top-level keys.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def policy_push(
    ctx: click.Context, path: str, opa_url: str | None, replace: bool, as_json: bool
) -> None:
    """Validate policy data in PATH and load it live into one OPA (no restart).

    PATH has the shape of rego/pygate/config/data.json; its top-level keys replace those
    OPA has now (--replace: the whole document). The result is validated first, exactly as
    `pygate bundle build` does; the next decision uses it.

    For one sidecar started without a bundle (pygate sidecar up --writable, or
    opa run --server rego/). An OPA that loaded a bundle owns its paths and refuses the
    write: publish a bundle instead (pygate bundle build).

    \b
    Exit codes:
      0  pushed
      2  invalid policy data (names policy and field), OPA owns the path through a
         bundle or refused the write, or OPA could not be reached
    """
    from pygate._manage import push_policy_data

    url = _management_url(ctx, opa_url)
    try:
        loaded = push_policy_data(path, url, replace=replace)
    except PolicyDataError as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "step": "validate", "policy_id": exc.policy_id,
                                   "field": exc.field, "problem": exc.problem}))  # fmt: skip
            sys.exit(EXIT_BAD_INPUT)
        _fail(str(exc))
    except PygateError as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "step": getattr(exc, "step", "config"),
                                   "problem": str(exc)}))  # fmt: skip
            sys.exit(EXIT_BAD_INPUT)
        _fail(str(exc))
    count = len(loaded.get("declarative_policies", []))
    if as_json:
        click.echo(json.dumps({"ok": True, "opa_url": url, "data_keys": sorted(loaded),
                               "declarative_policies": count}))  # fmt: skip
    else:
        click.echo(f"pushed {path} to {url}: {len(loaded)} data keys, "
                   f"{count} declarative policies now loaded")  # fmt: skip


@policy.command("list")
@click.option("--opa-url", help="The OPA to ask (http://host:port). Env: PYGATE_OPA_URL.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def policy_list(ctx: click.Context, opa_url: str | None, as_json: bool) -> None:
    """List what one OPA has loaded: bundles and revisions, Rego modules, policy data.

    Exit 2 when OPA cannot be reached.
    """
    from pygate._manage import list_loaded

    url = _management_url(ctx, opa_url)
    try:
        loaded = list_loaded(url)
    except PygateError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps({
            "opa_url": loaded.url, "modules": loaded.modules,
            "bundles": {n: (b.get("manifest") or {}) for n, b in loaded.bundles.items()},
            "data_keys": loaded.data_keys,
            "declarative_policies": [
                {k: p.get(k) for k in ("id", "set", "action", "priority")}
                for p in loaded.declarative_policies
            ],
        }))  # fmt: skip
        return
    click.echo(f"OPA {loaded.url}")
    if loaded.bundles:
        for name, info in sorted(loaded.bundles.items()):
            manifest = info.get("manifest") or {}
            click.echo(f"  bundle {name}: revision {manifest.get('revision') or '-'}, "
                       f"roots {manifest.get('roots')}")  # fmt: skip
    else:
        click.echo("  no bundle (policy data can be pushed)")
    click.echo(f"  rego modules ({len(loaded.modules)}):")
    for module in loaded.modules:
        click.echo(f"    {module}")
    click.echo(f"  policy data keys: {', '.join(loaded.data_keys) or '-'}")
    click.echo(f"  declarative policies ({len(loaded.declarative_policies)}):")
    for p in loaded.declarative_policies:
        click.echo(f"    {p.get('id')}  set {p.get('set')}  action {p.get('action')}")


@policy.command("index")
@click.argument(
    "path", type=click.Path(exists=True, dir_okay=False), default="rego/pygate/config/data.json"
)
@click.option("--check", is_flag=True, help="Only check that the index is current (exit 2 if not).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def policy_index(path: str, check: bool, as_json: bool) -> None:
    """Write the declarative_index of the policies in PATH into PATH.

    OPA reaches rules-as-data policies through this index (by set and output type), so a
    decision only checks the policies that can apply to it. `bundle build` and `policy
    push` compute it themselves; run this after editing PATH by hand (the local OPA loads
    rego/pygate/config/data.json as it is). The policies are validated first.

    Exit codes: 0 written (or current, with --check), 2 invalid policies, or a stale
    index with --check.
    """
    from pathlib import Path

    from pygate._policy_index import INDEX_KEY, with_index

    try:
        data = load_policy_data(path)
        if check:
            check_index(data, path)
    except PolicyDataError as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "policy_id": exc.policy_id, "field": exc.field,
                                   "problem": exc.problem}))  # fmt: skip
            sys.exit(EXIT_BAD_INPUT)
        _fail(str(exc))
    fresh = with_index(data)
    written = not check and fresh != data
    if written:
        Path(path).write_text(json.dumps(fresh, indent=2) + "\n")
    index = fresh.get(INDEX_KEY) or {"count": 0, "sets": {}}
    if as_json:
        click.echo(json.dumps({"ok": True, "path": path, "policies": index["count"],
                               "sets": sorted(index["sets"]), "written": written}))  # fmt: skip
    else:
        verb = "written" if written else "current"
        click.echo(f"{verb}: index of {index['count']} declarative policies "
                   f"({len(index['sets'])} sets) in {path}")  # fmt: skip
