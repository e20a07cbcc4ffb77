"""What the MCP gateway adds per tools/call, measured interleaved in one run.

    .venv/bin/python benchmarks/mcp_overhead.py [--rounds 300] [--transport stdio|http] [--json]

Four contenders, each once per round in a shuffled order, one process driving them all:

- ``evaluate``: ``AsyncGate.evaluate`` of the same MCP call (what the gateway asks per call),
  audited to its own SQLite log; ``sync_evaluate``: the same with ``Gate.evaluate``.
- ``gateway``:  a tools/call from the SDK's ClientSession through ``pygate mcp`` (a child
  process, audit to SQLite) to the upstream FastMCP server (tests/mcp_notes_server.py).
- ``upstream``: the same tools/call from a ClientSession straight to a second instance of
  that server (no gate).

All on one OPA started here, with policy data that declares the service and a quota no
run reaches. Reports median and p99 per contender and the median of per-round ratios
(gateway / upstream, and the gateway's added time against evaluate).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from pygate import AsyncGate, Gate
from pygate.engine._opa_process import LocalOpa, free_port

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "tests" / "mcp_notes_server.py"
SERVICE = "mcpbench"
TOKEN = "bench-token-0123456789"
CALL = {"text": "hello"}
#: Seconds per decision: generous, so a loaded machine measures slowness, not refusals.
TIMEOUT = 5.0


def _policy(tmp: Path) -> Path:
    target = tmp / "rego"
    shutil.copytree(ROOT / "rego", target)
    data_file = target / "pygate" / "config" / "data.json"
    data = json.loads(data_file.read_text())
    text = {"type": "string", "meaning": "text", "max_length": 200}
    data["services"][SERVICE] = {
        "policy_sets": ["assistant"],
        "actions": {"notes.echo": {"arguments": {"text": text}}},
    }
    data["daily_quota"] = 10**9
    data["action_allowlist"] = [*data["action_allowlist"], "notes.echo"]
    data_file.write_text(json.dumps(data))
    return target


def _config(tmp: Path, upstream: str) -> Path:
    path = tmp / "mcp.toml"
    path.write_text(
        f'service = "{SERVICE}"\n[stdio]\nuser = {{ id = "bench" }}\n'
        f'[http]\n[[http.users]]\ntoken = "{TOKEN}"\nuser = {{ id = "bench" }}\n'
        f"[[upstreams]]\n{upstream}\n"
    )
    return path


def _pygate(opa_url: str, tmp: Path) -> list[str]:
    """``python -m pygate`` with the run's OPA, its own audit log and the timeout."""
    return ["-m", "pygate", "--timeout", str(TIMEOUT), "--opa-url", opa_url,
            "--audit-db", str(tmp / "gateway.db")]  # fmt: skip


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


async def _session(stack: AsyncExitStack, target: StdioServerParameters | str) -> ClientSession:
    if isinstance(target, str):
        client = await stack.enter_async_context(
            httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        )
        read, write, _ = await stack.enter_async_context(
            streamable_http_client(target, http_client=client)
        )
    else:
        quiet = stack.enter_context(open(os.devnull, "w"))  # noqa: SIM115  # closed by the stack
        read, write = await stack.enter_async_context(stdio_client(target, errlog=quiet))
    session = await stack.enter_async_context(ClientSession(read, write))
    await session.initialize()
    return session


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
    }


async def run(rounds: int, transport: str) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="pygate-mcp-bench-"))
    opa = LocalOpa(_policy(tmp))
    opa.start()
    children: list[subprocess.Popen[bytes]] = []
    env = {"NOTES_RECORD": str(tmp / "record.jsonl"), "PATH": "/usr/bin:/bin"}
    try:
        async with AsyncExitStack() as stack:
            gate = AsyncGate(SERVICE, opa_url=opa.url, audit=tmp / "direct.db", timeout=TIMEOUT)
            stack.push_async_callback(gate.aclose)
            sync_gate = Gate(SERVICE, opa_url=opa.url, audit=tmp / "sync.db", timeout=TIMEOUT)
            stack.callback(sync_gate.close)
            if transport == "stdio":
                upstream_cfg = (
                    f'name = "notes"\ncommand = "{sys.executable}"\nargs = ["{SERVER}", "stdio"]\n'
                    f'env = {{ NOTES_RECORD = "{env["NOTES_RECORD"]}" }}'
                )
                _config(tmp, upstream_cfg)
                gateway_target: StdioServerParameters | str = StdioServerParameters(
                    command=sys.executable,
                    args=[*_pygate(opa.url, tmp), "mcp", "--config", str(tmp / "mcp.toml")],
                    cwd=str(tmp),
                )  # fmt: skip
                direct_target: StdioServerParameters | str = StdioServerParameters(
                    command=sys.executable, args=[str(SERVER), "stdio"], env=env
                )
            else:
                up1, up2, port = free_port(), free_port(), free_port()
                for p in (up1, up2):
                    children.append(
                        subprocess.Popen(
                            [sys.executable, str(SERVER), "http", str(p)],
                            env=env,
                            stdout=subprocess.DEVNULL,  # uvicorn's access log
                            stderr=subprocess.DEVNULL,
                        )
                    )
                    _wait_port(p)
                _config(tmp, f'name = "notes"\nurl = "http://127.0.0.1:{up1}/mcp"')
                children.append(
                    subprocess.Popen(
                        [sys.executable, *_pygate(opa.url, tmp), "mcp", "--config",
                         str(tmp / "mcp.toml"), "--transport", "http", "--port", str(port)],
                        stderr=subprocess.DEVNULL,
                    )
                )  # fmt: skip
                _wait_port(port)
                gateway_target = f"http://127.0.0.1:{port}/mcp"
                direct_target = f"http://127.0.0.1:{up2}/mcp"
            through = await _session(stack, gateway_target)
            direct = await _session(stack, direct_target)
            output = {"name": "notes.echo", "arguments": CALL}

            async def evaluate() -> None:
                decision = await gate.evaluate(output, {"id": "bench"})
                assert decision.allowed, decision.reason

            async def sync_evaluate() -> None:
                decision = sync_gate.evaluate(output, {"id": "bench"})
                assert decision.allowed, decision.reason

            async def gateway() -> None:
                result = await through.call_tool("echo", CALL)
                assert not result.isError, result.content

            async def upstream() -> None:
                assert not (await direct.call_tool("echo", CALL)).isError

            contenders: dict[str, Callable[[], Awaitable[None]]] = {
                "evaluate": evaluate,
                "sync_evaluate": sync_evaluate,
                "gateway": gateway,
                "upstream": upstream,
            }
            for fn in contenders.values():  # warm up connections and caches
                for _ in range(20):
                    await fn()
            times: dict[str, list[float]] = {name: [] for name in contenders}
            rng = random.Random(15)
            for _ in range(rounds):
                order = list(contenders)
                rng.shuffle(order)
                for name in order:
                    started = time.perf_counter()
                    await contenders[name]()
                    times[name].append((time.perf_counter() - started) * 1000)
    finally:
        for child in children:
            child.terminate()
            child.wait(10)
        opa.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    ratio = [g / u for g, u in zip(times["gateway"], times["upstream"], strict=True)]
    added = [g - u for g, u in zip(times["gateway"], times["upstream"], strict=True)]
    vs_eval = [a / e for a, e in zip(added, times["evaluate"], strict=True)]
    return {
        "transport": transport,
        "rounds": rounds,
        **{name: _summary(values) for name, values in times.items()},
        "gateway_over_upstream_ratio_median": statistics.median(ratio),
        "added_by_gateway_ms_median": statistics.median(added),
        "added_over_evaluate_ratio_median": statistics.median(vs_eval),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args.rounds, args.transport))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"MCP tools/call over {result['transport']}, {result['rounds']} interleaved rounds")
    for name in ("evaluate", "sync_evaluate", "gateway", "upstream"):
        row = result[name]
        print(f"  {name:13} median {row['median_ms']:7.2f} ms   p99 {row['p99_ms']:7.2f} ms")
    print(f"  gateway / upstream (median of per-round ratios): "
          f"{result['gateway_over_upstream_ratio_median']:.2f}x")  # fmt: skip
    print(f"  added by the gateway: {result['added_by_gateway_ms_median']:.2f} ms per call "
          f"({result['added_over_evaluate_ratio_median']:.2f}x a direct evaluate)")  # fmt: skip


if __name__ == "__main__":
    main()
