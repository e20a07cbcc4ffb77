"""``pygate mcp``: the MCP gateway (``pygate.integrations.mcp``) as a command."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import TYPE_CHECKING

import click

from pygate._errors import ConfigError, PygateError
from pygate.cli._common import fail, settings_from

if TYPE_CHECKING:
    from pygate._gate import AsyncGate
    from pygate.integrations._mcp_config import GatewayConfig


def register(main: click.Group) -> None:
    """Attach ``mcp`` to the top-level command."""
    main.add_command(mcp)


@click.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The gateway's TOML file: service, upstreams, users (see README 'MCP gateway').",
)
@click.option(
    "--transport",
    type=click.Choice(["stdio", "http"]),
    default="stdio",
    show_default=True,
    help="How MCP clients reach the gateway: stdio (as the [stdio] user) or streamable HTTP "
    "(each request's bearer token names the user, from [http]).",
)
@click.option("--host", default=None, help="With --transport http: overrides http.host.")
@click.option("--port", type=int, default=None, help="With --transport http: overrides http.port.")
@click.option("--check", is_flag=True, help="Validate the config file and exit (0 ok, 2 not).")
@click.option("--json", "as_json", is_flag=True, help="With --check: the result as JSON.")
@click.pass_context
def mcp(
    ctx: click.Context,
    config_path: str,
    transport: str,
    host: str | None,
    port: int | None,
    check: bool,
    as_json: bool,
) -> None:
    """Gate every MCP tools/call between MCP clients and your MCP servers.

    \b
    Each tools/call is decided by pygate for the configured service and user
    (the gate sees {"name": "<server>.<tool>", "arguments": {...}}, so the
    service's contract declares "<server>.<tool>"). A refused call never
    reaches the server: the client gets a tool error with the user message
    and the model hint. An allowed call is forwarded unchanged. Engine or
    audit down: refused. tools/list hides tools the service can never call
    (hide_tools = false shows all).

    \b
    Examples:
      pygate mcp --config mcp.toml                      # stdio, for Claude Desktop etc.
      pygate mcp --config mcp.toml --transport http     # http://127.0.0.1:8765/mcp
      pygate mcp --config mcp.toml --check

    \b
    Exit codes: 0 stopped cleanly (or --check ok), 2 bad configuration (names the
    field) or the mcp extra is missing, 1 an upstream could not be reached.
    """
    from pygate.integrations._mcp_config import load_config

    try:
        config = load_config(config_path)
        if transport == "stdio" and config.stdio is None and not check:
            raise ConfigError(f"{config_path}: stdio.user: required for --transport stdio")
        if transport == "http" and config.http is None and not check:
            raise ConfigError(f"{config_path}: http: required for --transport http")
    except ConfigError as exc:
        fail(str(exc))
    if check:
        names = [u.name for u in config.upstreams]
        if as_json:
            click.echo(json.dumps({"ok": True, "service": config.service, "upstreams": names}))
        else:
            click.echo(f"ok: service {config.service}, upstreams {', '.join(names)}")
        return
    try:
        import pygate.integrations.mcp  # noqa: F401  # the extra is installed
    except ImportError as exc:
        fail(str(exc))
    from pygate._gate import AsyncGate

    settings = settings_from(ctx, service=config.service)
    # stdout is the MCP channel on stdio: logs go to stderr only.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    if transport == "http" and config.http is not None and (host or port is not None):
        where = {
            "host": host or config.http.host,
            "port": config.http.port if port is None else port,
        }
        http = config.http.model_copy(update=where)
        config = config.model_copy(update={"http": http})
    try:
        gate = AsyncGate(config.service, settings=settings)
    except PygateError as exc:
        fail(str(exc))
    try:
        asyncio.run(_serve(config, gate, transport))
    except KeyboardInterrupt:
        pass
    except (OSError, RuntimeError) as exc:
        fail(f"the gateway stopped: {exc}", code=1)
    except BaseExceptionGroup as group:
        fail(f"the gateway stopped: {group.exceptions[0]}", code=1)


async def _serve(config: GatewayConfig, gate: AsyncGate, transport: str) -> None:
    from pygate.integrations.mcp import run_gateway

    try:
        await run_gateway(config, gate, transport)
    finally:
        await gate.aclose()
