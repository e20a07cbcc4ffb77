"""The MCP gateway: every ``tools/call`` between MCP clients and MCP servers is gated.

``McpGateway`` sits between MCP clients (stdio or streamable HTTP) and one or more upstream
MCP servers (stdio child processes or streamable HTTP URLs), built on the official ``mcp``
SDK. For each ``tools/call`` it asks an ``AsyncGate`` for the configured service and the
user (stdio: the configured user; HTTP: the user whose bearer token the request carries):

- The gate sees the call in MCP's own ``tools/call`` shape,
  ``{"name": "<server>.<tool>", "arguments": {...}}`` (``pygate.canonical`` reads it as
  the canonical action ``<server>.<tool>``), so the service's contract declares
  ``<server>.<tool>`` and the audit record's output and actions name both the MCP server
  and the tool.
- A refusal never reaches the upstream: the client gets a tool result with
  ``isError: true`` whose text is :func:`tool_error_text` (the user message, then the
  model hint), and ``structuredContent.pygate`` with the policy ids, the audit id and,
  while a review is pending, the approval request id.
- An allowed call is forwarded unchanged (same tool, same arguments) and the upstream's
  result returned as it came.
- The gate fails closed: engine down, audit down, bad input → refused.

``tools/list`` hides the tools the service can never call (not declared in its contract,
when undeclared actions are refused) unless ``hide_tools = false``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar

try:
    import anyio
    import httpx
    import mcp.types as types
    from anyio.abc import TaskGroup, TaskStatus
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import get_default_environment, stdio_client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("the MCP gateway needs the 'mcp' extra: pip install 'pygate[mcp]'") from exc

from pygate._errors import EngineError
from pygate._gate import AsyncGate
from pygate._models import Decision
from pygate.integrations._common import tool_error_text
from pygate.integrations._mcp_config import (
    GatewayConfig,
    GatewayUser,
    HttpUpstream,
    StdioUpstream,
    load_config,
    parse_config,
    token_digest,
)

__all__ = [
    "GatewayConfig",
    "GatewayUser",
    "McpGateway",
    "UpstreamUnavailable",
    "action_name",
    "load_config",
    "parse_config",
    "run_gateway",
    "token_digest",
]

log = logging.getLogger("pygate.mcp")
T = TypeVar("T")

#: What pygate's canonical reading accepts as an action name (``pygate.canonical.valid_name``).
_VALID_ACTION = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
REVIEW_ACTION = "require_review"


class _Link:
    """One upstream connection: its session while it is up, and how to stop it."""

    def __init__(self) -> None:
        self.session: ClientSession | None = None
        self.stop = anyio.Event()
        self.lock = anyio.Lock()
        #: The requests in flight on this connection: cancelled when it goes down (the SDK's
        #: session would leave them waiting for an answer that never comes).
        self.requests: set[anyio.CancelScope] = set()


class UpstreamUnavailable(ConnectionError):
    """An upstream MCP server could not be started or reached (names the upstream)."""


def _first(exc: BaseException) -> BaseException:
    """The first real error inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


async def _list_page(session: ClientSession, cursor: str | None) -> types.ListToolsResult:
    return await session.list_tools(params=types.PaginatedRequestParams(cursor=cursor))


def action_name(upstream: str, tool: str) -> str:
    """The canonical action a tool call is gated as: ``<server>.<tool>``, lower case."""
    return f"{upstream}.{tool}".lower()


def _error(text: str, structured: dict[str, Any] | None = None) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structuredContent=structured,
        isError=True,
    )


class McpGateway:
    """A gate between MCP clients and upstream MCP servers.

    Use as an async context manager: entering connects to every upstream (and fails if
    one cannot be reached), leaving disconnects. ``gate`` is owned by the caller.

    Args:
        config: the validated configuration (see ``_mcp_config``).
        gate: the ``AsyncGate`` for ``config.service``; its audit log records every call.
    """

    def __init__(self, config: GatewayConfig, gate: AsyncGate) -> None:
        if gate.service != config.service:
            raise ValueError(
                f"the gate is for service {gate.service!r}, the config for {config.service!r}"
            )
        self.config = config
        self.gate = gate
        self._links = {u.name: _Link() for u in config.upstreams}
        self._upstreams = {u.name: u for u in config.upstreams}
        #: Each upstream's tool names as it last listed them (exact spelling).
        self._names: dict[str, set[str]] = {}
        self._listing = {u.name: anyio.Lock() for u in config.upstreams}
        self._group: TaskGroup | None = None

    async def __aenter__(self) -> McpGateway:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        try:
            for upstream in self.config.upstreams:
                await self._start(upstream.name)
                try:
                    await self._upstream_tools(upstream.name)
                except Exception as exc:
                    raise UpstreamUnavailable(
                        f"upstream {upstream.name!r}: cannot list its tools: {_first(exc)}"
                    ) from exc
        except BaseException as exc:
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for link in self._links.values():
            link.stop.set()
        group, self._group = self._group, None
        if group is not None:
            await group.__aexit__(None, None, None)

    async def _start(self, name: str) -> ClientSession:
        """Connect ``name`` in its own task (its transport's failures stay in that task).

        Raises:
            UpstreamUnavailable: it could not be started, reached or initialised.
        """
        assert self._group is not None, "use McpGateway as an async context manager"
        link = self._links[name]
        link.stop = anyio.Event()
        try:
            await self._group.start(self._hold, self._upstreams[name], link)
        except Exception as exc:
            raise UpstreamUnavailable(f"upstream {name!r}: {_first(exc)}") from exc
        assert link.session is not None
        return link.session

    async def _hold(
        self,
        upstream: StdioUpstream | HttpUpstream,
        link: _Link,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Open the upstream's transport and session and keep them until the gateway stops.

        A failure before the session is ready goes to ``_start``; a later one (the server
        died) marks the link down and is logged: the next call tries to connect again.
        """
        started = False
        try:
            async with AsyncExitStack() as stack:
                link.session = await self._open(stack, upstream)
                started = True
                task_status.started()
                await link.stop.wait()
        except Exception as exc:
            if not started:
                raise
            log.error("upstream %s failed, reconnecting on the next call: %s", upstream.name, exc)
        finally:
            link.session = None
            for scope in link.requests:
                scope.cancel()
            link.requests.clear()

    async def _session(self, name: str) -> ClientSession:
        """The live session to ``name``, connecting again (once at a time) if it went down."""
        link = self._links[name]
        if link.session is not None:
            return link.session
        async with link.lock:
            if link.session is not None:
                return link.session
            return await self._start(name)

    async def _ask(self, name: str, request: Callable[[ClientSession], Awaitable[T]]) -> T:
        """Run one request on ``name``'s session; fail if the connection goes down meanwhile.

        Raises:
            UpstreamUnavailable: it cannot be reached, or was lost during the request.
        """
        session = await self._session(name)
        link = self._links[name]
        with anyio.CancelScope() as scope:
            link.requests.add(scope)
            if link.session is not session:  # lost between the two lines above
                scope.cancel()
            try:
                return await request(session)
            finally:
                link.requests.discard(scope)
        raise UpstreamUnavailable(f"upstream {name!r}: the connection was lost")

    @staticmethod
    async def _open(stack: AsyncExitStack, upstream: StdioUpstream | HttpUpstream) -> ClientSession:
        if isinstance(upstream, StdioUpstream):
            params = StdioServerParameters(
                command=upstream.command,
                args=upstream.args,
                env={**get_default_environment(), **upstream.env},
                cwd=upstream.cwd,
            )
            read, write = await stack.enter_async_context(stdio_client(params, errlog=sys.stderr))
        else:
            client = await stack.enter_async_context(
                httpx.AsyncClient(headers=upstream.headers, timeout=httpx.Timeout(30, read=300))
            )
            read, write, _ = await stack.enter_async_context(
                streamable_http_client(upstream.url, http_client=client)
            )
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        return session

    # --- tools/list -------------------------------------------------------------------------
    def _exposed(self, upstream: str, tool: str) -> str:
        return f"{upstream}.{tool}" if self.config.namespaced else tool

    def _resolve(self, name: str) -> tuple[str, str] | None:
        """The upstream and tool a client's tool name stands for (``None``: no upstream)."""
        if not self.config.namespaced:
            return self.config.upstreams[0].name, name
        upstream, dot, tool = name.partition(".")
        if not dot or not tool or upstream not in self._upstreams:
            return None
        return upstream, tool

    async def _upstream_tools(self, name: str) -> list[types.Tool]:
        tools: list[types.Tool] = []
        cursor: str | None = None
        while True:
            page = await self._ask(name, functools.partial(_list_page, cursor=cursor))
            tools.extend(page.tools)
            cursor = page.nextCursor
            if not cursor:
                self._names[name] = {t.name for t in tools}
                return tools

    async def _clash(self, upstream: str, tool: str) -> str | None:
        """Another tool of ``upstream`` that differs from ``tool`` only in case, if any.

        The gate decides on the canonical (lower-case) name, so ``ECHO`` and ``echo`` are one
        action to it; forwarding ``ECHO`` to a server that has both would run a tool the
        decision did not name. Such a call is refused before it is decided.
        """
        names = self._names.get(upstream)
        if names is None or tool not in names:
            async with self._listing[upstream]:  # one listing at a time, not one per call
                names = self._names.get(upstream)
                if names is None or tool not in names:
                    await self._upstream_tools(upstream)
                    names = self._names[upstream]
        return next((n for n in sorted(names) if n != tool and n.lower() == tool.lower()), None)

    async def callable_actions(self) -> set[str] | None:
        """The actions the service may ever call (``None``: any, reviewed if undeclared).

        Read from the engine's policy data (``services.<service>``), so tools/list agrees
        with the contract the gate decides by. Fails closed: an unreadable contract hides
        every tool (an empty set).
        """
        path = f"pygate/config/services/{self.config.service}"
        try:
            status, body = await self.gate._transport.post(path, b"{}")
            service = json.loads(body).get("result") if status == 200 else None
        except (EngineError, ValueError) as exc:
            log.error("cannot read the contract of %s, hiding every tool: %s", path, exc)
            return set()
        if not isinstance(service, dict):
            return set()
        if service.get("undeclared_action") == REVIEW_ACTION:
            return None
        actions = service.get("actions")
        return set(actions) if isinstance(actions, dict) else set()

    async def list_tools(self) -> list[types.Tool]:
        """Every upstream's tools under the names clients call them by (hidden ones left out)."""
        allowed = await self.callable_actions() if self.config.hide_tools else None
        listed: list[types.Tool] = []
        for upstream in self.config.upstreams:
            try:
                tools = await self._upstream_tools(upstream.name)
            except Exception as exc:  # one server down leaves the others listed
                log.error("upstream %s cannot list its tools: %s", upstream.name, exc)
                continue
            for tool in tools:
                action = action_name(upstream.name, tool.name)
                if allowed is not None and (
                    action not in allowed or not _VALID_ACTION.match(action)
                ):
                    continue
                listed.append(
                    tool.model_copy(update={"name": self._exposed(upstream.name, tool.name)})
                )
        return listed

    # --- tools/call -------------------------------------------------------------------------
    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None, user: GatewayUser
    ) -> types.CallToolResult:
        """Gate one ``tools/call`` for ``user``; forward it only when allowed.

        Returns:
            The upstream's result, unchanged, or an ``isError`` result saying why not.
        """
        target = self._resolve(name)
        if target is None:
            return _error(f"Unknown tool {name!r}: no upstream server has this prefix.")
        upstream, tool = target
        try:
            clash = await self._clash(upstream, tool)
        except Exception as exc:  # its tool list cannot be read: nothing is decided or sent
            log.error("upstream %s cannot list its tools: %s", upstream, exc)
            return _error(f"The MCP server {upstream!r} failed: {exc}")
        if clash is not None:
            return _error(
                f"Tool {name!r} is ambiguous: the server also has {clash!r}, the same action to "
                "the policy. Call the tool by its exact listed name."
            )
        args = {} if arguments is None else arguments
        output = {"name": f"{upstream}.{tool}", "arguments": args}
        decision = await self.gate.evaluate(output, user.as_dict())
        if not decision.allowed:
            return await self._refused(decision)
        expected = action_name(upstream, tool)
        decided = decision.actions
        if len(decided) != 1 or decided[0].name != expected or decided[0].arguments != args:
            # Never happens with pygate's canonical reading; refuse rather than run a guess.
            log.error("decision %s does not hold exactly the call %s", decision.audit_id, expected)
            return _error("The call could not be matched to what was decided; refused.")
        request = types.ClientRequest(
            types.CallToolRequest(params=types.CallToolRequestParams(name=tool, arguments=args))
        )
        try:
            return await self._ask(
                upstream, lambda session: session.send_request(request, types.CallToolResult)
            )
        except Exception as exc:  # the upstream failed; the allow is already audited
            log.error("upstream %s failed on %s: %s", upstream, tool, exc)
            return _error(f"The MCP server {upstream!r} failed: {exc}")

    async def _refused(self, decision: Decision) -> types.CallToolResult:
        info: dict[str, Any] = {
            "allowed": False,
            "policy_id": decision.policy_id,
            "policy_ids": decision.policy_ids,
            "audit_id": decision.audit_id,
            "fallback": decision.fallback,
        }
        content = [types.TextContent(type="text", text=tool_error_text(decision))]
        approval_id = await self._pending_approval(decision)
        if approval_id is not None:
            info["review"] = {"approval_id": approval_id, "output_hash": decision.output_hash}
            content.append(
                types.TextContent(
                    type="text",
                    text=f"Waiting for review: approval request {approval_id}. Once it is "
                    "approved, the same call passes once.",
                )
            )
        return types.CallToolResult(
            content=list(content), structuredContent={"pygate": info}, isError=True
        )

    async def _pending_approval(self, decision: Decision) -> str | None:
        """The pending approval request this refusal opened (or found open), if any."""
        approvals = self.gate.approvals
        if approvals is None or not decision.output_hash:
            return None
        if not any(r.action == REVIEW_ACTION for r in decision.refusals):
            return None
        try:
            pending = await asyncio.to_thread(approvals.find, "pending")
        except Exception as exc:  # the refusal stands either way
            log.error("cannot read pending approvals: %s", exc)
            return None
        for approval in pending:
            if (
                approval.user_id == decision.user_id
                and approval.output_hash == decision.output_hash
            ):
                return approval.approval_id
        return None

    # --- the client side ----------------------------------------------------------------------
    def server(
        self, identify: Callable[[Server[Any, Any]], GatewayUser | None]
    ) -> Server[Any, Any]:
        """An MCP server (the SDK's low-level ``Server``) whose tools are the gated ones.

        Args:
            identify: who sends the current request (``None``: nobody known, refused).
        """
        server: Server[Any, Any] = Server("pygate-mcp", instructions=None)

        async def list_tools(_: types.ListToolsRequest) -> types.ServerResult:
            if identify(server) is None:
                return types.ServerResult(types.ListToolsResult(tools=[]))
            return types.ServerResult(types.ListToolsResult(tools=await self.list_tools()))

        async def call_tool(request: types.CallToolRequest) -> types.ServerResult:
            user = identify(server)
            if user is None:
                return types.ServerResult(_error("Unknown caller: refused."))
            params = request.params
            return types.ServerResult(await self.call_tool(params.name, params.arguments, user))

        server.request_handlers[types.ListToolsRequest] = list_tools
        server.request_handlers[types.CallToolRequest] = call_tool
        return server

    async def serve_stdio(self) -> None:
        """Serve one MCP client on this process's stdin/stdout as the configured stdio user."""
        if self.config.stdio is None:
            raise ValueError("stdio.user is not configured")
        user = self.config.stdio.user
        server = self.server(lambda _: user)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    def http_app(self) -> Any:
        """A Starlette ASGI app serving streamable HTTP at ``http.path`` with bearer tokens."""
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        config = self.config.http
        if config is None:
            raise ValueError("the [http] section is not configured")
        http = config

        def identify(server: Server[Any, Any]) -> GatewayUser | None:
            request = server.request_context.request
            headers = getattr(request, "headers", None)
            return http.user_for(_bearer(headers.get("authorization") if headers else None))

        manager = StreamableHTTPSessionManager(app=self.server(identify))

        class _Authenticated:
            async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
                # Exactly one Authorization header: with two, the check here and the
                # lookup in ``identify`` could read different ones.
                given = [v for k, v in scope.get("headers") or [] if k.lower() == b"authorization"]
                raw = given[0].decode("latin-1") if len(given) == 1 else None
                if http.user_for(_bearer(raw)) is None:
                    response = JSONResponse(
                        {"error": "missing or unknown bearer token"},
                        status_code=401,
                        headers={"WWW-Authenticate": 'Bearer realm="pygate-mcp"'},
                    )
                    await response(scope, receive, send)
                    return
                await manager.handle_request(scope, receive, send)

        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            async with manager.run():
                yield

        return Starlette(
            routes=[Route(http.path, endpoint=_Authenticated())],
            lifespan=lifespan,
        )

    async def serve_http(self, host: str | None = None, port: int | None = None) -> None:
        """Serve streamable HTTP until cancelled (uvicorn)."""
        import uvicorn

        http = self.config.http
        if http is None:
            raise ValueError("the [http] section is not configured")
        config = uvicorn.Config(
            self.http_app(),
            host=host or http.host,
            port=http.port if port is None else port,
            log_level="warning",
            lifespan="on",
        )
        await uvicorn.Server(config).serve()


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def run_gateway(config: GatewayConfig, gate: AsyncGate, transport: str) -> None:
    """Connect the upstreams and serve clients over ``transport`` (``stdio`` or ``http``)."""
    async with McpGateway(config, gate) as gateway:
        if transport == "stdio":
            await gateway.serve_stdio()
        else:
            await gateway.serve_http()
