"""``pygate serve`` and ``pygate serve-token``: the gate's decisions over HTTP."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import click

from pygate._errors import ConfigError
from pygate.cli._common import fail, settings_from
from pygate.integrations.serve import (
    DecisionService,
    Limits,
    TokenTable,
    hash_token,
    new_token,
    run,
)


def _tokens(tokens_file: str | None) -> TokenTable:
    """The tokens: from ``--tokens`` (or PYGATE_SERVE_TOKENS_FILE), else PYGATE_SERVE_TOKENS."""
    if tokens_file:
        try:
            text = Path(tokens_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"tokens: cannot read {tokens_file}: {exc}", field="tokens")
        return TokenTable.parse(text, f"tokens file {tokens_file}")
    env = os.environ.get("PYGATE_SERVE_TOKENS")
    if env:
        return TokenTable.parse(env, "PYGATE_SERVE_TOKENS")
    fail(
        "no tokens: give --tokens FILE (or PYGATE_SERVE_TOKENS_FILE) or PYGATE_SERVE_TOKENS, "
        "'<service> sha256:<hex>' per line (`pygate serve-token SERVICE` makes one)",
        field="tokens",
    )


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="PYGATE_SERVE_HOST",
              help="Address to listen on. Env: PYGATE_SERVE_HOST.")  # fmt: skip
@click.option("--port", type=click.IntRange(0, 65535), default=8180, show_default=True,
              envvar="PYGATE_SERVE_PORT",
              help="Port (0: any free one). Env: PYGATE_SERVE_PORT.")  # fmt: skip
@click.option("--tokens", "tokens_file", envvar="PYGATE_SERVE_TOKENS_FILE",
              help="File of '<service> sha256:<hex>' lines, one per calling service. "
              "Env: PYGATE_SERVE_TOKENS_FILE, or the lines themselves in PYGATE_SERVE_TOKENS "
              "(comma-separated).")  # fmt: skip
@click.option("--max-body-bytes", type=click.IntRange(1024), default=Limits.max_body_bytes,
              show_default=True, help="Larger request bodies are refused (413).")  # fmt: skip
@click.option("--max-batch", type=click.IntRange(1, 10_000), default=Limits.max_batch_items,
              show_default=True, help="Most items in one batch request (more: 400).")  # fmt: skip
@click.option("--request-timeout", type=click.FloatRange(0.1, 600),
              default=Limits.request_timeout, show_default=True,
              help="Seconds to read and decide one request (past it: 503).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True,
              help="Print the start-up line (and any error) as one JSON object.")  # fmt: skip
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    tokens_file: str | None,
    max_body_bytes: int,
    max_batch: int,
    request_timeout: float,
    as_json: bool,
) -> None:
    """Serve the gate's decisions over HTTP, for services in any language.

    \b
    POST /v1/decisions        {"output": ..., "user": {"id": ...}, "context": {...}}
                              -> 200 the Decision (allowed true or false)
    POST /v1/decisions/batch  {"items": [...]} -> 200 {"allowed", "decisions": [...]}
    GET  /health              liveness          GET /ready   engine + audit + bundle revision
    GET  /openapi.json        the OpenAPI 3.1 document of all of this

    Every request to /v1 needs "Authorization: Bearer <token>"; the token names the calling
    service (its policies), never the body. Decisions are the library's: audited, daily
    quota, approvals, canonical actions, fail closed. Not a decision: 400 (bad request,
    names the field), 401 (token), 413 (too large), 503 (engine or audit down, timeout:
    refused); every such body says "allowed": false.

    \b
    Exit codes:
      0  stopped (SIGINT/SIGTERM)
      2  bad configuration (tokens, settings, OPA, audit database)
    """
    settings = settings_from(ctx)
    tokens = _tokens(tokens_file)
    limits = Limits(max_body_bytes=max_body_bytes, max_batch_items=max_batch,
                    request_timeout=request_timeout)  # fmt: skip
    try:
        service = DecisionService(settings, tokens, limits=limits)
    except OSError as exc:
        raise ConfigError(f"cannot start: {exc}") from exc
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    def ready(url: str) -> None:
        if as_json:
            click.echo(json.dumps({"ok": True, "url": url, "services": tokens.services}))
        else:
            click.echo(f"pygate serve: decisions on {url} for {', '.join(tokens.services)}")

    try:
        run(service, host, port, ready=ready)
    except OSError as exc:  # the address is taken or not ours: say so, never a traceback
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", field="port")


@click.command("serve-token")
@click.argument("service_name", metavar="SERVICE")
@click.option("--json", "as_json", is_flag=True, help="Print the token and its line as JSON.")
def serve_token(service_name: str, as_json: bool) -> None:
    """Make a bearer token for SERVICE and the line that configures it in `pygate serve`.

    The token is shown once: give it to the calling service. Put the line (the token's
    SHA-256, not the token) in the tokens file or PYGATE_SERVE_TOKENS.

    \b
    Exit codes:
      0  printed
      2  SERVICE is not a service name
    """
    token = new_token()
    line = f"{service_name} {hash_token(token)}"
    TokenTable.parse(line)  # the same check `pygate serve` makes (ConfigError: exit 2)
    if as_json:
        click.echo(json.dumps({"service": service_name, "token": token, "line": line}))
    else:
        click.echo(f"token: {token}")
        click.echo(f"line:  {line}")


def register(main: click.Group) -> None:
    """Attach ``serve`` and ``serve-token`` to the top-level group."""
    main.add_command(serve)
    main.add_command(serve_token)
