"""What every CLI module shares: settings from the root context, and how errors are reported.

``PygateGroup`` is the top-level group's class. It makes the CLI never surprise:
- global options (``--opa-url``, ``--policy-dir``, ``--audit-db``, ``--timeout``,
  ``--quiet``) are accepted before or after the subcommand;
- with ``--json`` anywhere on the line, every error (a usage error too) is one JSON
  object on stdout: ``{"ok": false, "error": "...", ...}``;
- no traceback for any input: a pygate error exits 2 with its message, anything
  unexpected exits 2 as "internal error" (``PYGATE_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

import click

from pygate._errors import ConfigError, PolicyDataError, PygateError
from pygate._settings import Settings
from pygate.audit import AuditLog, open_audit

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 2

#: Global options that take a value, and the flags, hoisted in front of the subcommand.
GLOBAL_VALUE_OPTIONS = ("--opa-url", "--policy-dir", "--audit-db", "--timeout")
GLOBAL_FLAGS = ("--quiet", "-q")

_state: dict[str, bool] = {"json": False, "quiet": False}


def json_mode() -> bool:
    """True when the command line asked for ``--json`` (errors then go out as JSON)."""
    return _state["json"]


def quiet() -> bool:
    """True with ``--quiet``: no progress lines."""
    return _state["quiet"]


def fail(message: str, code: int = EXIT_BAD_INPUT, **fields: Any) -> NoReturn:
    """Report an error and exit (2 unless told otherwise).

    Plain: ``error: message`` on stderr. With ``--json``: one object on stdout.
    """
    if json_mode():
        click.echo(json.dumps({"ok": False, "error": message, **fields}))
    else:
        click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


def fail_with(exc: PygateError, as_json: bool) -> NoReturn:
    """Report a pygate error and exit 2: JSON naming the step (and policy/field) or a line."""
    if not (as_json or json_mode()):
        fail(str(exc))
    body: dict[str, Any] = {"ok": False, "step": getattr(exc, "step", "config")}
    if isinstance(exc, PolicyDataError):
        body.update(step="validate", policy_id=exc.policy_id, field=exc.field)
        body["problem"] = exc.problem
    else:
        body["problem"] = str(exc)
    body["error"] = str(exc)
    click.echo(json.dumps(body))
    sys.exit(EXIT_BAD_INPUT)


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """Move global options typed after the subcommand in front of it (before ``--``)."""
    head: list[str] = []
    rest: list[str] = []
    items = list(args)
    i = 0
    while i < len(items):
        arg = items[i]
        if arg == "--":
            rest.extend(items[i:])
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_VALUE_OPTIONS:
            if "=" in arg:
                head.append(arg)
            else:
                head.extend(items[i : i + 2])
                i += 1
        elif arg in GLOBAL_FLAGS:
            head.append(arg)
        else:
            rest.append(arg)
        i += 1
    return head + rest


class PygateGroup(click.Group):
    """The top-level group: hoisted global options, JSON errors, no tracebacks."""

    def main(  # always exits, like click in standalone mode
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> NoReturn:
        argv = list(sys.argv[1:] if args is None else args)
        _state["json"] = "--json" in argv
        _state["quiet"] = any(a in GLOBAL_FLAGS for a in argv)
        argv = hoist_global_options(argv)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            if json_mode():
                fail(exc.format_message(), exc.exit_code, step="usage")
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        except PygateError as exc:
            fail_with(exc, json_mode())
        except (SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("PYGATE_DEBUG"):
                raise
            fail(
                f"internal error: {type(exc).__name__}: {exc} "
                "(PYGATE_DEBUG=1 shows the traceback; please report it)"
            )
        sys.exit(code if isinstance(code, int) else EXIT_OK)


def settings_from(ctx: click.Context, **overrides: Any) -> Settings:
    """The settings: top-level flags (kept in ``ctx.obj``), env, config file, ``overrides``."""
    try:
        return Settings.load({**(ctx.find_root().obj or {}), **overrides})
    except ConfigError as exc:
        fail(str(exc))


def _sqlite_path(target: str) -> Path | None:
    """The file of a SQLite audit target, or None for a server URL."""
    if target.startswith("sqlite:///"):
        return Path(target[len("sqlite:///") :])
    if "://" in target:
        return None
    return Path(target)


def audit_from(ctx: click.Context, *, must_exist: bool = True) -> AuditLog:
    """The configured audit log, with the configured redaction (exit 2 if it cannot open).

    Args:
        must_exist: a SQLite file must already exist (read commands): a misspelled path
            is an error, never a new empty database and folders.
    """
    settings = settings_from(ctx)
    path = _sqlite_path(settings.audit_db)
    if must_exist and path is not None and not path.is_file():
        fail(
            f"audit database {settings.audit_db} does not exist (set --audit-db or "
            "PYGATE_AUDIT_DB; a gate creates it with its first decision)",
            field="audit_db",
        )
    try:
        log = open_audit(
            settings.audit_db,
            settings.redact_keys,
            settings.redact_patterns,
            **settings.audit_options(),
        )
    except PygateError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"audit database {settings.audit_db}: {exc}", field="audit_db")
    # Closed when the command ends: a PostgreSQL connection is not left for the collector.
    ctx.call_on_close(log.close)
    return log


@contextlib.contextmanager
def progress(label: str, *, after: float = 2.0, stream: IO[str] | None = None) -> Iterator[None]:
    """Show ``label … N s`` on stderr while a step runs longer than ``after`` seconds.

    Only on a terminal and without ``--quiet``: piped output and logs stay clean.
    """
    out = stream or sys.stderr
    if quiet() or not out.isatty():
        yield
        return
    done = threading.Event()
    started = time.monotonic()

    def tick() -> None:
        shown = False
        while not done.wait(0.5 if shown else after):
            shown = True
            out.write(f"\r{label} … {time.monotonic() - started:.0f} s")
            out.flush()
        if shown:
            out.write(f"\r{label} … done in {time.monotonic() - started:.1f} s\n")
            out.flush()

    thread = threading.Thread(target=tick, name="pygate-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
