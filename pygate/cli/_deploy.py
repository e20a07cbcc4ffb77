"""CLI commands that deploy policies: ``pygate sidecar``, ``pygate policy``, ``pygate bundle``.

Kept beside ``_cli.py`` (which registers them) so each CLI module holds one idea; like every
CLI module they call the library, never the other way round. Exit codes: 0 ok, 2 bad input,
configuration, or an OPA/engine that refused the change (the message says which).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import click

from pygate._errors import ConfigError, PolicyDataError, PygateError
from pygate.cli._common import fail, fail_with, settings_from
from pygate.engine._opa_process import LocalOpa, default_policy_dir
from pygate.policy._policy_data import load_policy_data
from pygate.policy._policy_index import check_index


def register(main: click.Group) -> None:
    """Attach the deployment groups to the top-level command."""
    for group in (sidecar, policy, bundle):
        main.add_command(group)


@click.group()
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
@click.option(
    "--docker",
    is_flag=True,
    help="Run OPA as a Docker container (host networking) instead of a process.",
)
@click.option(
    "--image",
    envvar="PYGATE_OPA_IMAGE",
    default=None,
    help="With --docker: the OPA image. Default openpolicyagent/opa:"
    "<pinned version>-static. Env: PYGATE_OPA_IMAGE.",
)
@click.option(
    "--bundle",
    "bundle_file",
    default=None,
    help="With --docker: serve this bundle file (default bundles/pygate.tar.gz "
    "when it exists, else the policy folder).",
)
@click.option(
    "--verification-key",
    default=None,
    help="With --docker: public key that must have signed the bundle "
    "(default keys/bundle-verify.pem when it exists).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the URL and PID as JSON.")
@click.pass_context
def sidecar_up(
    ctx: click.Context,
    port: int,
    writable: bool,
    docker: bool,
    image: str | None,
    bundle_file: str | None,
    verification_key: str | None,
    as_json: bool,
) -> None:
    """Start OPA on 127.0.0.1:PORT, print its URL, and keep it running until Ctrl-C.

    Point services at it with PYGATE_OPA_URL=<the printed URL>. OPA is restarted if it dies.
    With --docker, OPA runs as a container instead (see the --docker options) and this
    command returns once it is healthy; `pygate sidecar down --docker` stops it.
    """
    if docker:
        _sidecar_up_docker(ctx, port, image, bundle_file, verification_key, as_json)
        return
    settings = settings_from(ctx)
    try:
        local = LocalOpa(
            settings.policy_dir, opa_bin=settings.opa_bin, port=port, as_bundle=not writable
        ).start()
    except PygateError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps({"ok": True, "url": local.url, "pid": local.pid}), nl=True)
    else:
        click.echo(local.url)
    click.echo(f"OPA {local.opa_bin} serving {local.policy_dir}; Ctrl-C stops it", err=True)

    def _stop_on(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    # SIGTERM (docker stop, systemd, kill) and SIGHUP (a closed terminal) stop OPA too.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop_on)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        local.stop()


@click.group()
def policy() -> None:
    """Work with rules-as-data policies."""


def _data_path(ctx: click.Context, path: str | None, as_json: bool) -> str:
    """PATH, else the policy data of --policy-dir (pygate/config/data.json in it)."""
    if path is None:
        from pygate.policy._bundle import DATA_PATH

        try:
            folder = settings_from(ctx).policy_dir or str(default_policy_dir())
        except PygateError as exc:
            fail_with(exc, as_json)
        path = str(Path(folder) / DATA_PATH)
    if not Path(path).is_file():
        fail_with(ConfigError(f"policy data file {path} does not exist"), as_json)
    return path


@policy.command("validate")
@click.argument("path", type=click.Path(dir_okay=False), required=False)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def policy_validate(ctx: click.Context, path: str | None, as_json: bool) -> None:
    """Check a policy data file: declarative policies and action contracts (exit 2 names
    the policy or service and the field).

    PATH defaults to pygate/config/data.json in --policy-dir (or pygate's own policies).
    Checks each service's declared actions (names, argument types, patterns, meanings),
    user_facts and identifiers. A ``declarative_index`` in the file must match its
    policies (`pygate policy index`).
    """
    path = _data_path(ctx, path, as_json)
    try:
        data = load_policy_data(path)
        check_index(data, path)
    except PolicyDataError as exc:
        fail_with(exc, as_json)
    count = len(data.get("declarative_policies", []))
    services = data.get("services", {})
    actions = sum(len(entry.get("actions", {})) for entry in services.values())
    if as_json:
        click.echo(json.dumps({"ok": True, "policies": count, "services": len(services),
                               "actions": actions}))  # fmt: skip
    else:
        click.echo(f"ok: {count} declarative policies, {len(services)} services declaring "
                   f"{actions} actions in {path}")  # fmt: skip


@policy.command("index")
@click.argument("path", type=click.Path(dir_okay=False), required=False)
@click.option("--check", is_flag=True, help="Only check that the index is current (exit 2 if not).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def policy_index(ctx: click.Context, path: str | None, check: bool, as_json: bool) -> None:
    """Write the declarative_index of the policies in PATH (and the checked copy) into PATH.

    PATH defaults to pygate/config/data.json in --policy-dir (or pygate's own policies).

    OPA reaches rules-as-data policies through this index (by set and output type), so a
    decision only checks the policies that can apply to it; the checked copy of the action
    contracts and user_facts lets OPA skip validating them again on every decision (a copy
    that differs is ignored). `bundle build` and `policy push` compute both themselves;
    run this after editing PATH by hand (the local OPA loads
    rego/pygate/config/data.json as it is). The policies are validated first.

    Exit codes: 0 written (or current, with --check), 2 invalid policies, or a stale
    index with --check.
    """
    from pygate.policy._checked import with_checked
    from pygate.policy._policy_index import INDEX_KEY, with_index

    path = _data_path(ctx, path, as_json)
    try:
        data = load_policy_data(path)
        if check:
            check_index(data, path)
    except PolicyDataError as exc:
        fail_with(exc, as_json)
    fresh = with_checked(with_index(data))
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


@click.group()
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
    from pygate.policy._bundle import generate_keys

    try:
        pair = generate_keys(directory, force=force)
    except PygateError as exc:
        fail(str(exc))
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

    The policy folder is --policy-dir (default: pygate's own policies); *_test.rego files
    are left out. A policy project of your own (`pygate init`) is built with pygate's Rego
    library beside it, and the .manifest roots are "pygate" plus your top-level names
    (e.g. ["acme", "pygate"]). The revision is r<UTC build time>-<git commit>-<content hash>,
    which OPA reports with every decision and pygate stores in every audit record.
    Revisions sort by build time: a gate refuses decisions (pygate.bundle) from a
    bundle older than the newest one its audit store has seen, so an old signed bundle
    cannot be replayed. To roll back on purpose, build the old policy again: it gets a new
    time, hence a newer revision.

    \b
    Exit codes:
      0  built and signed
      2  a rules-as-data policy is malformed (names policy and field), opa test failed,
         or the key, policy folder or OPA binary is missing
    """
    from pygate.policy._bundle import build_bundle

    settings = settings_from(ctx)
    try:
        built = build_bundle(out, signing_key=signing_key, key_id=key_id,
                             policy_dir=settings.policy_dir, data_files=data_files,
                             opa_bin=settings.opa_bin)  # fmt: skip
    except PygateError as exc:
        fail_with(exc, as_json)
    if as_json:
        click.echo(json.dumps({"ok": True, "path": str(built.path), "revision": built.revision,
                               "commit": built.commit, "content_hash": built.content_hash,
                               "key_id": built.key_id, "files": list(built.files)}))  # fmt: skip
    else:
        click.echo(built.revision)
        click.echo(f"signed bundle {built.path} ({len(built.files)} files, key id "
                   f"{built.key_id}); publish it where sidecars poll", err=True)  # fmt: skip


def _management_url(ctx: click.Context, opa_url: str | None) -> str:
    url = opa_url or settings_from(ctx).opa_url
    if not url:
        fail("--opa-url: required (the OPA to manage; or set PYGATE_OPA_URL)")
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
    from pygate.policy._manage import push_policy_data

    url = _management_url(ctx, opa_url)
    try:
        loaded = push_policy_data(path, url, replace=replace)
    except PygateError as exc:
        fail_with(exc, as_json)
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
    from pygate.policy._manage import list_loaded

    url = _management_url(ctx, opa_url)
    try:
        loaded = list_loaded(url)
    except PygateError as exc:
        fail(str(exc))
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


# --- OPA sidecar as a Docker container (`sidecar up --docker`, `sidecar down --docker`) ---


def _sidecar_up_docker(
    ctx: click.Context,
    port: int,
    image: str | None,
    bundle_file: str | None,
    verification_key: str | None,
    as_json: bool = False,
) -> None:
    from pygate.engine import _docker_sidecar
    from pygate.policy._bundle import DEFAULT_BUNDLE, DEFAULT_KEY_DIR, PUBLIC_KEY_NAME

    settings = settings_from(ctx)
    if bundle_file is None and DEFAULT_BUNDLE.is_file():
        bundle_file = str(DEFAULT_BUNDLE)
    if bundle_file is not None and verification_key is None:
        default_key = DEFAULT_KEY_DIR / PUBLIC_KEY_NAME
        verification_key = str(default_key) if default_key.is_file() else None
    policy_dir = settings.policy_dir or str(Path.cwd() / "rego")
    try:
        started = _docker_sidecar.start(
            port,
            image=image or _docker_sidecar.DEFAULT_IMAGE,
            bundle=bundle_file,
            verification_key=verification_key,
            policy_dir=None if bundle_file else policy_dir,
        )
    except PygateError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps({"ok": True, "url": started.url, "container": started.name}))
    else:
        click.echo(started.url)
    click.echo(f"OPA container {started.name} ({started.image}) serving {started.source}; "
               "`pygate sidecar down --docker` stops it", err=True)  # fmt: skip


@sidecar.command("down")
@click.option("--docker", is_flag=True, required=True,
              help="Stop the OPA container(s) started by `sidecar up --docker`.")  # fmt: skip
@click.option("--port", type=int, default=None, help="Only the one on this port.")
@click.option("--json", "as_json", is_flag=True, help="Print the removed containers as JSON.")
def sidecar_down(docker: bool, port: int | None, as_json: bool) -> None:
    """Stop and remove the sidecar containers started with `pygate sidecar up --docker`.

    (A process sidecar from `pygate sidecar up` stops with Ctrl-C.) Exit 2 when no Docker
    engine answers.
    """
    from pygate.engine import _docker_sidecar

    try:
        removed = _docker_sidecar.stop(port)
    except PygateError as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps({"removed": removed}))
    elif removed:
        click.echo("stopped: " + ", ".join(removed))
    else:
        click.echo("no pygate sidecar container was running")
