"""``pygate mcp``: a real MCP client (the SDK's ClientSession) → the gateway → a real MCP
server (the SDK's FastMCP, ``tests/mcp_notes_server.py``), over stdio and streamable HTTP.

The server records every call it receives, so "refused never reached the server" is read
from the server's own record, not from the gateway's word.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from pygate import AsyncGate, Gate
from pygate._errors import ConfigError
from pygate.audit import open_audit
from pygate.engine._opa_process import LocalOpa, free_port
from pygate.integrations._common import tool_error_text
from pygate.integrations._mcp_config import (
    GatewayUser,
    load_config,
    parse_config,
    token_digest,
)
from pygate.integrations.mcp import McpGateway

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
SERVER = Path(__file__).resolve().parent / "mcp_notes_server.py"
SERVICE = "mcptest"
QUOTA = 5
TOKEN_ALICE = "alice-token-0123456789"
TOKEN_BOB = "bob-token-0123456789abc"
#: Seconds per decision: a loaded CI machine must not turn allows into engine timeouts.
DECISION_TIMEOUT = 30

_TEXT = {"type": "string", "meaning": "text", "max_length": 200}
#: The test service: notes.echo and notes.add pass, notes.delete_note waits for review
#: (declared, not on the assistant allowlist), notes.read_secrets is not declared.
SERVICE_DATA = {
    "policy_sets": ["assistant"],
    "undeclared_action": "refuse",
    "actions": {
        "notes.echo": {"arguments": {"text": _TEXT}},
        "notes.add": {"arguments": {"a": {"type": "number"}, "b": {"type": "number"}}},
        "notes.delete_note": {"arguments": {"name": _TEXT}},
    },
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def mcp_opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalOpa]:
    """An OPA whose policy data declares the test service, with a small daily quota."""
    target = tmp_path_factory.mktemp("mcp-policy") / "rego"
    import shutil

    shutil.copytree(ROOT / "rego", target)
    data_file = target / "pygate" / "config" / "data.json"
    data = json.loads(data_file.read_text())
    data["services"][SERVICE] = SERVICE_DATA
    data["daily_quota"] = QUOTA
    data["action_allowlist"] = [*data["action_allowlist"], "notes.echo", "notes.add"]
    data_file.write_text(json.dumps(data))
    opa = LocalOpa(target)
    opa.start()
    yield opa
    opa.stop()


class Setup:
    """One test's files: the gateway config, the audit database, the server's record."""

    def __init__(self, tmp_path: Path, opa_url: str) -> None:
        self.dir = tmp_path
        self.opa_url = opa_url
        self.audit_db = tmp_path / "audit.db"
        self.record = tmp_path / "record.jsonl"
        self.record.touch()
        self.config = tmp_path / "mcp.toml"
        self.env = {**os.environ, "NOTES_RECORD": str(self.record)}

    def received(self) -> list[dict[str, Any]]:
        """What the upstream server says it received."""
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def write_config(self, upstream: str, extra: str = "") -> None:
        self.config.write_text(
            f"""service = "{SERVICE}"
{extra}
[stdio]
user = {{ id = "alice", role = "analyst" }}

[http]
host = "127.0.0.1"
[[http.users]]
token = "{TOKEN_ALICE}"
user = {{ id = "alice", role = "analyst" }}
[[http.users]]
token_sha256 = "{token_digest(TOKEN_BOB)}"
user = {{ id = "bob", role = "developer" }}

[[upstreams]]
{upstream}
"""
        )

    def gateway_args(self, *more: str) -> list[str]:
        return ["-m", "pygate", "--opa-url", self.opa_url, "--timeout", str(DECISION_TIMEOUT),
                "--audit-db", str(self.audit_db),
                "mcp", "--config", str(self.config), *more]  # fmt: skip


def _stdio_upstream() -> str:
    return f'name = "notes"\ncommand = "{sys.executable}"\nargs = ["{SERVER}", "stdio"]\n' + (
        'env = { NOTES_RECORD = "%s" }'
    )


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


@pytest.fixture
def setup(tmp_path: Path, mcp_opa: LocalOpa) -> Setup:
    return Setup(tmp_path, mcp_opa.url)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@asynccontextmanager
async def stdio_gateway(setup: Setup) -> AsyncIterator[ClientSession]:
    """A ClientSession to ``pygate mcp`` over stdio, upstream the notes server over stdio."""
    setup.write_config(_stdio_upstream() % setup.record)
    params = StdioServerParameters(
        command=sys.executable, args=setup.gateway_args(), env=setup.env, cwd=str(setup.dir)
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def start_http_gateway(
    setup: Setup, processes: list[subprocess.Popen[bytes]], opa_url: str | None = None
) -> str:
    """``pygate mcp --transport http`` with the notes server over HTTP; returns its URL."""
    upstream_port, port = free_port(), free_port()
    server = subprocess.Popen(
        [sys.executable, str(SERVER), "http", str(upstream_port)], env=setup.env, cwd=setup.dir
    )
    processes.append(server)
    _wait_port(upstream_port, server)
    setup.write_config(f'name = "notes"\nurl = "http://127.0.0.1:{upstream_port}/mcp"')
    if opa_url is not None:
        setup.opa_url = opa_url
    args = setup.gateway_args("--transport", "http", "--port", str(port))
    gateway = subprocess.Popen([sys.executable, *args], env=setup.env, cwd=setup.dir)
    processes.append(gateway)
    _wait_port(port, gateway)
    return f"http://127.0.0.1:{port}/mcp"


@asynccontextmanager
async def http_client(url: str, token: str | None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx.AsyncClient(headers=headers, timeout=60) as client,
        streamable_http_client(url, http_client=client) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def text(result: CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, TextContent)
    return first.text


def last_records(setup: Setup, count: int) -> list[Any]:
    log = open_audit(str(setup.audit_db))
    try:
        return list(log.records())[-count:]
    finally:
        log.close()


# --- the behaviour, over both transports ---------------------------------------------------


async def _allowed_refused_hidden(session: ClientSession, setup: Setup, user: str) -> None:
    listed = sorted(t.name for t in (await session.list_tools()).tools)
    # read_secrets is not declared by the service: it can never be called, so it is hidden.
    assert listed == ["add", "delete_note", "echo"]

    allowed = await session.call_tool("echo", {"text": "hello"})
    assert not allowed.isError
    assert text(allowed) == "echo: hello"
    added = await session.call_tool("add", {"a": 2, "b": 3})
    assert not added.isError
    assert added.structuredContent == {"sum": 5.0}

    refused = await session.call_tool("read_secrets", {})
    assert refused.isError
    assert refused.structuredContent is not None
    assert refused.structuredContent["pygate"]["allowed"] is False
    bad_args = await session.call_tool("echo", {"text": "hi", "extra": "x"})
    assert bad_args.isError

    assert setup.received() == [
        {"tool": "echo", "arguments": {"text": "hello"}},
        {"tool": "add", "arguments": {"a": 2, "b": 3}},
    ]
    records = last_records(setup, 4)
    assert [r.allowed for r in records] == [True, True, False, False]
    assert {r.user_id for r in records} == {user}
    # The audit keeps the MCP server and tool names: the output and the decided action.
    assert records[0].output == {"name": "notes.echo", "arguments": {"text": "hello"}}
    assert records[0].actions is not None
    assert records[0].actions[0]["name"] == "notes.echo"
    assert records[0].actions[0]["source"] == "mcp.tools_call"
    assert records[2].output == {"name": "notes.read_secrets", "arguments": {}}
    expected = tool_error_text_of(setup, records[2].output, {"id": user})
    assert text(refused) == expected


def tool_error_text_of(setup: Setup, output: dict[str, Any], user: dict[str, Any]) -> str:
    """What a refusal's text must be: ``tool_error_text`` of the gate's own decision."""
    with Gate(SERVICE, opa_url=setup.opa_url, audit=None, timeout=DECISION_TIMEOUT) as gate:
        decision = gate.evaluate(output, user, {"usage_today": 0})
    assert not decision.allowed
    return tool_error_text(decision)


async def test_stdio_allowed_pass_unchanged_refused_never_reach_the_server(setup: Setup) -> None:
    async with stdio_gateway(setup) as session:
        await _allowed_refused_hidden(session, setup, "alice")


async def test_http_allowed_pass_unchanged_refused_never_reach_the_server(
    setup: Setup, processes: list[subprocess.Popen[bytes]]
) -> None:
    url = start_http_gateway(setup, processes)
    async with http_client(url, TOKEN_BOB) as session:
        await _allowed_refused_hidden(session, setup, "bob")


# --- failing closed --------------------------------------------------------------------------


async def test_engine_down_refuses_every_call_and_hides_every_tool(setup: Setup) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        setup.opa_url = f"http://127.0.0.1:{s.getsockname()[1]}"
    async with stdio_gateway(setup) as session:
        assert (await session.list_tools()).tools == []
        refused = await session.call_tool("echo", {"text": "hello"})
    assert refused.isError
    assert refused.structuredContent is not None
    assert refused.structuredContent["pygate"]["fallback"] is True
    assert refused.structuredContent["pygate"]["policy_id"] == "pygate.engine"
    assert setup.received() == []
    assert [r.allowed for r in last_records(setup, 5)] == [False]


async def test_missing_or_unknown_token_is_refused_with_401(
    setup: Setup, processes: list[subprocess.Popen[bytes]]
) -> None:
    url = start_http_gateway(setup, processes)
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "x"}}}  # fmt: skip
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient() as client:
        for auth in (
            None,
            "Bearer wrong-token-0123456789",
            f"Basic {TOKEN_ALICE}",
            f"Bearer  {TOKEN_ALICE}x",
        ):
            sent = {**headers, "Authorization": auth} if auth else headers
            response = await client.post(url, json=call, headers=sent)
            assert response.status_code == 401, auth
            assert response.headers["www-authenticate"].startswith("Bearer")
        twice = httpx.Headers([*headers.items(), ("Authorization", "Bearer wrong-token-0123456789"),
                               ("Authorization", f"Bearer {TOKEN_ALICE}")])  # fmt: skip
        response = await client.post(url, json=call, headers=twice)
        assert response.status_code == 401  # two Authorization headers: ambiguous, refused
    with pytest.raises(Exception):  # noqa: B017, PT011  # the SDK's own error for a 401
        async with http_client(url, "wrong-token-0123456789"):
            pass
    assert setup.received() == []
    assert not setup.audit_db.exists() or last_records(setup, 5) == []


# --- approvals through the gateway -------------------------------------------------------------


async def test_a_call_needing_review_passes_once_after_approval(setup: Setup) -> None:
    async with stdio_gateway(setup) as session:
        first = await session.call_tool("delete_note", {"name": "old"})
        assert first.isError
        assert first.structuredContent is not None
        review = first.structuredContent["pygate"]["review"]
        assert len(review["output_hash"]) == 64
        assert review["approval_id"] in text_all(first)
        assert setup.received() == []

        approve = subprocess.run(
            [sys.executable, "-m", "pygate", "--audit-db", str(setup.audit_db), "approvals",
             "approve", review["approval_id"], "--by", "rita"],
            env=setup.env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert approve.returncode == 0, approve.stderr

        second = await session.call_tool("delete_note", {"name": "old"})
        assert not second.isError, text(second)
        assert text(second) == "deleted old"
        third = await session.call_tool("delete_note", {"name": "old"})
        assert third.isError  # used up: one approval, one call
    assert setup.received() == [{"tool": "delete_note", "arguments": {"name": "old"}}]
    allowed = [r for r in last_records(setup, 10) if r.allowed]
    assert [r.approved_by for r in allowed] == ["rita"]


def text_all(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


# --- concurrency and the quota ------------------------------------------------------------------


async def test_twenty_concurrent_calls_keep_the_daily_quota_exact(
    setup: Setup, processes: list[subprocess.Popen[bytes]]
) -> None:
    url = start_http_gateway(setup, processes)
    results: list[CallToolResult] = []

    async def one(i: int, session: ClientSession) -> None:
        results.append(await session.call_tool("echo", {"text": f"n{i}"}))

    async with http_client(url, TOKEN_ALICE) as session, anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(one, i, session)
    passed = [r for r in results if not r.isError]
    refused = [r for r in results if r.isError]
    assert len(passed) == QUOTA
    assert len(setup.received()) == QUOTA
    assert sorted(text(r) for r in passed) == sorted(
        f"echo: {c['arguments']['text']}" for c in setup.received()
    )
    for result in refused:
        assert result.structuredContent is not None
        assert "AST-003" in result.structuredContent["pygate"]["policy_ids"]
    assert sum(r.allowed for r in last_records(setup, 50)) == QUOTA


# --- listing, namespacing, configuration ---------------------------------------------------------


async def test_several_upstreams_are_namespaced_and_hiding_can_be_turned_off(setup: Setup) -> None:
    two = (
        (_stdio_upstream() % setup.record)
        + "\n\n[[upstreams]]\n"
        + (_stdio_upstream() % setup.record).replace('name = "notes"', 'name = "more"')
    )
    setup.write_config(two, extra="hide_tools = false")
    params = StdioServerParameters(
        command=sys.executable, args=setup.gateway_args(), env=setup.env, cwd=str(setup.dir)
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listed = sorted(t.name for t in (await session.list_tools()).tools)
        assert listed == sorted(
            f"{server}.{tool}"
            for server in ("notes", "more")
            for tool in ("add", "delete_note", "echo", "read_secrets")
        )
        allowed = await session.call_tool("notes.echo", {"text": "a"})
        other = await session.call_tool("more.echo", {"text": "b"})  # not declared: refused
        unknown = await session.call_tool("nope.echo", {"text": "c"})
        bare = await session.call_tool("echo", {"text": "d"})
        # The policy decides on "notes.echo" for "notes.ECHO" too; forwarding "ECHO" to a
        # server that also had an "ECHO" tool would run what was not decided: refused.
        case = await session.call_tool("notes.ECHO", {"text": "e"})
    assert not allowed.isError
    assert case.isError
    assert "ambiguous" in text(case)
    assert other.isError
    assert unknown.isError
    assert bare.isError
    assert setup.received() == [{"tool": "echo", "arguments": {"text": "a"}}]
    outputs = [r.output["name"] for r in last_records(setup, 10)]
    assert outputs == ["notes.echo", "more.echo"]


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"upstreams": [{"name": "a", "command": "x"}]}, "service: Field required"),
        ({"service": "s", "upstreams": []}, "upstreams: List should have at least 1 item"),
        ({"service": "s", "upstreams": [{"name": "a"}]}, "upstreams[0]: an upstream needs"),
        ({"service": "s", "upstreams": [{"name": "A.b", "command": "x"}]}, "upstreams[0].name"),
        ({"service": "s", "upstreams": [{"name": "a", "url": "ftp://x"}]}, "upstreams[0].url"),
        ({"service": "s", "upstreams": [{"name": "a", "command": "x", "cmd": 1}]},
         "upstreams[0].cmd: Extra inputs"),
        ({"service": "s", "upstreams": [{"name": "a", "command": "x"}] * 2}, "used twice"),
        ({"service": "s", "upstreams": [{"name": "a", "command": "x"}],
          "http": {"users": [{"token": "t" * 20, "token_sha256": "0" * 64,
                              "user": {"id": "u"}}]}}, "http.users[0]: give exactly one"),
        ({"service": "s", "upstreams": [{"name": "a", "command": "x"}],
          "http": {"users": [{"token": "short", "user": {"id": "u"}}]}}, "http.users[0].token"),
        ({"service": "s", "upstreams": [{"name": "a", "command": "x"}],
          "stdio": {"user": {"role": "x"}}}, "stdio.user.id: Field required"),
    ],
)  # fmt: skip
def test_bad_config_names_the_field(document: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=r"^cfg: ") as caught:
        parse_config(document, "cfg")
    assert field in str(caught.value)


def test_bad_config_file_is_a_clear_cli_error(tmp_path: Path) -> None:
    bad = tmp_path / "mcp.toml"
    bad.write_text('service = "s"\n[[upstreams]]\nname = "notes"\nurl = "nowhere"\n')
    run = subprocess.run(
        [sys.executable, "-m", "pygate", "mcp", "--config", str(bad), "--check"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 2
    assert "upstreams[0].url: must be an http:// or https:// URL" in run.stderr
    assert "Traceback" not in run.stderr
    bad.write_text("service = [")
    run = subprocess.run(
        [sys.executable, "-m", "pygate", "mcp", "--config", str(bad)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 2
    assert "not valid TOML" in run.stderr
    good = tmp_path / "ok.toml"
    good.write_text('service = "s"\n[[upstreams]]\nname = "notes"\ncommand = "x"\n')
    run = subprocess.run(
        [sys.executable, "-m", "pygate", "mcp", "--config", str(good)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 2
    assert "stdio.user: required for --transport stdio" in run.stderr
    assert load_config(good).service == "s"


def test_tokens_map_to_users_and_nothing_else() -> None:
    config = parse_config(
        {"service": "s", "upstreams": [{"name": "a", "command": "x"}],
         "http": {"users": [{"token": TOKEN_ALICE, "user": {"id": "alice"}},
                            {"token_sha256": token_digest(TOKEN_BOB), "user": {"id": "bob"}}]}}
    )  # fmt: skip
    assert config.http is not None
    assert config.http.user_for(TOKEN_ALICE).id == "alice"  # type: ignore[union-attr]
    assert config.http.user_for(TOKEN_BOB).id == "bob"  # type: ignore[union-attr]
    for presented in (None, "", TOKEN_ALICE.upper(), TOKEN_ALICE + " ", token_digest(TOKEN_BOB)):
        assert config.http.user_for(presented) is None


async def test_audit_down_refuses_and_nothing_reaches_the_server(
    setup: Setup, mcp_opa: LocalOpa
) -> None:
    """The library API in-process: McpGateway with an AsyncGate whose audit log goes away."""
    setup.write_config(_stdio_upstream() % setup.record)
    config = load_config(setup.config)
    log = open_audit(str(setup.audit_db))
    alice = GatewayUser(id="alice", role="analyst")
    async with (
        AsyncGate(SERVICE, opa_url=mcp_opa.url, audit=log, timeout=DECISION_TIMEOUT) as gate,
        McpGateway(config, gate) as gateway,
    ):
        assert not (await gateway.call_tool("echo", {"text": "one"}, alice)).isError
        log.close()  # the database is gone from under the gate
        refused = await gateway.call_tool("echo", {"text": "two"}, alice)
    assert refused.isError
    assert refused.structuredContent is not None
    assert refused.structuredContent["pygate"]["policy_id"] == "pygate.audit"
    assert refused.structuredContent["pygate"]["fallback"] is True
    assert setup.received() == [{"tool": "echo", "arguments": {"text": "one"}}]
    with pytest.raises(ValueError, match="service"):
        McpGateway(config.model_copy(update={"service": "other"}), gate)


@pytest.mark.parametrize(
    "upstream",
    ['command = "no-such-command-for-pygate"', 'url = "http://127.0.0.1:{port}/mcp"'],
)
def test_an_unreachable_upstream_is_a_clear_error_naming_it(setup: Setup, upstream: str) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    setup.write_config(f'name = "gone"\n{upstream.format(port=dead)}')
    run = subprocess.run(
        [sys.executable, *setup.gateway_args()], env=setup.env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert "error: the gateway stopped: upstream 'gone': " in run.stderr
    assert "Traceback" not in run.stderr


async def test_an_upstream_that_dies_gives_tool_errors_not_a_broken_gateway(
    setup: Setup, processes: list[subprocess.Popen[bytes]]
) -> None:
    url = start_http_gateway(setup, processes)
    async with http_client(url, TOKEN_ALICE) as session:
        assert not (await session.call_tool("echo", {"text": "before"})).isError
        upstream = processes[0]
        upstream.terminate()
        upstream.wait(10)
        with anyio.fail_after(60):
            assert (await session.list_tools()).tools == []  # its only upstream is down
            failed = await session.call_tool("echo", {"text": "after"})
    assert failed.isError
    assert "The MCP server 'notes' failed" in text(failed)
    assert setup.received() == [{"tool": "echo", "arguments": {"text": "before"}}]
