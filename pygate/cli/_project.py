"""CLI commands for using pygate outside its repository: ``pygate opa``, ``pygate init``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pygate._errors import ConfigError, PygateError
from pygate._resources import decision_schema_path, library_dirs, rego_root
from pygate.cli._common import fail_with
from pygate.engine._inprocess import build_inprocess_library
from pygate.engine._opa_process import OPA_VERSION, find_opa_binary, install_opa, opa_cache_dir
from pygate.policy._scaffold import scaffold


def register(main: click.Group) -> None:
    """Attach ``opa`` and ``init`` to the top-level command."""
    main.add_command(opa)
    main.add_command(init)


@click.group()
def opa() -> None:
    """Find or install the OPA binary the embedded engine runs.

    \b
    Search order (first match wins):
      1. --opa-bin / PYGATE_OPA_BIN
      2. `opa` on PATH
      3. the user cache: $XDG_CACHE_HOME/pygate/opa/<version>/opa (`pygate opa install`)
      4. a pygate checkout's .tools/bin/opa
    Without any: use a running OPA (--opa-url) or a container (`pygate sidecar up --docker`).
    """


@opa.command("install")
@click.option(
    "--inprocess",
    is_flag=True,
    help="Build the in-process engine instead (engine='inprocess'; needs Go and gcc).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def opa_install(inprocess: bool, as_json: bool) -> None:
    """Build the pinned OPA with `go install` into the user cache (needs Go; ~70 s).

    With --inprocess, build OPA's engine at the same version as a shared library for
    Gate(engine="inprocess") into the same cache (`go build -buildmode=c-shared`, a few
    minutes the first time). Exit 2 when Go is missing or the build fails (the message
    names the alternatives).
    """
    try:
        path = build_inprocess_library() if inprocess else install_opa()
    except PygateError as exc:
        fail_with(exc, as_json)
    if as_json:
        click.echo(json.dumps({"ok": True, "path": str(path), "version": OPA_VERSION}))
    else:
        click.echo(str(path))


@opa.command("path")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def opa_path(as_json: bool) -> None:
    """Print the OPA binary pygate would run (exit 2 naming the options when none)."""
    try:
        path = find_opa_binary()
    except PygateError as exc:
        fail_with(exc, as_json)
    if as_json:
        click.echo(json.dumps({"ok": True, "path": str(path), "cache": str(opa_cache_dir())}))
    else:
        click.echo(str(path))


@opa.command("library")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def opa_library(as_json: bool) -> None:
    """Print the folders of pygate's Rego library, one a line (for `opa test`/`opa eval`).

    \b
    Test your own policies together with pygate's library:
      opa test $(pygate opa library) policies/
    """
    try:
        dirs = library_dirs()
        root = rego_root()
    except ConfigError as exc:
        fail_with(exc, as_json)
    if as_json:
        click.echo(json.dumps({"ok": True, "root": str(root), "library": [str(d) for d in dirs],
                               "decision_schema": str(decision_schema_path())}))  # fmt: skip
    else:
        for d in dirs:
            click.echo(str(d))


@click.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--service", default="payments", show_default=True, help="The service to set up.")
@click.option(
    "--package",
    "package",
    default="acme.payments",
    show_default=True,
    help="Your policy package (your own namespace).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the files written as JSON.")
def init(directory: str, service: str, package: str, as_json: bool) -> None:
    """Create a working policy project in DIRECTORY (which must be empty or new).

    \b
    Writes:
      pygate.toml                     service and policy folder for every pygate command
      policies/<package>/policy.rego  one refusal rule with METADATA (a plain `deny` set)
      policies/<package>/policy_test.rego
      policies/data.json              services -> packages, read by pygate's entry point
      example.json                    an input for `pygate check`
    Then, in DIRECTORY: `opa test policies`, `pygate check example.json`,
    `pygate bundle keys && pygate bundle build`.
    """
    try:
        written = scaffold(Path(directory), service=service, package=package)
    except PygateError as exc:
        fail_with(exc, as_json)
    if as_json:
        click.echo(json.dumps({"ok": True, "directory": directory,
                               "files": [str(p) for p in written]}))  # fmt: skip
        return
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"\nnext: cd {directory} && opa test policies && pygate check example.json")
