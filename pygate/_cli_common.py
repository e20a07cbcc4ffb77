"""What every CLI module shares: settings from the root context, and how errors are reported."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

from pygate._audit import AuditLog, open_audit
from pygate._errors import ConfigError, PolicyDataError, PygateError
from pygate._settings import Settings

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 2


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print ``error: message`` to stderr and exit (2 unless told otherwise)."""
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


def fail_with(exc: PygateError, as_json: bool) -> NoReturn:
    """Report a pygate error and exit 2: JSON naming the step (and policy/field) or a line."""
    if not as_json:
        fail(str(exc))
    body: dict[str, Any] = {"ok": False, "step": getattr(exc, "step", "config")}
    if isinstance(exc, PolicyDataError):
        body.update(step="validate", policy_id=exc.policy_id, field=exc.field)
        body["problem"] = exc.problem
    else:
        body["problem"] = str(exc)
    click.echo(json.dumps(body))
    sys.exit(EXIT_BAD_INPUT)


def settings_from(ctx: click.Context, **overrides: Any) -> Settings:
    """The settings: top-level flags (kept in ``ctx.obj``), env, config file, ``overrides``."""
    try:
        return Settings.load({**(ctx.find_root().obj or {}), **overrides})
    except ConfigError as exc:
        fail(str(exc))


def audit_from(ctx: click.Context) -> AuditLog:
    """The configured audit log, with the configured redaction (exit 2 if it cannot open)."""
    settings = settings_from(ctx)
    try:
        log = open_audit(
            settings.audit_db,
            settings.redact_keys,
            settings.redact_patterns,
            settings.audit_timeout,
        )
    except PygateError as exc:
        fail(str(exc))
    # Closed when the command ends: a PostgreSQL connection is not left for the collector.
    ctx.call_on_close(log.close)
    return log
