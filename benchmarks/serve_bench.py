#!/usr/bin/env python3
"""What `pygate serve` costs over the library: decisions/s and latency, interleaved.

Two contenders decide the same allowed finance transfer, audited to SQLite, on ONE real OPA:

- ``library``: ``AsyncGate.evaluate`` in this process;
- ``serve``:   ``POST /v1/decisions`` to a ``pygate serve`` process (the real command, its own
  audit file) through an aiohttp client in this process.

Each at 1 and at 32 requests in flight. Every round runs each (contender, concurrency) pair
once, in a shuffled order (CONVENTIONS.md: rows measured minutes apart are not comparable on a
shared machine); the report gives the median decisions/s over rounds, p50/p99 latency over
every request, and the median of per-round ratios serve/library.

Usage:
    .venv/bin/python benchmarks/serve_bench.py [--rounds 5] [--n1 200] [--n32 1000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from pygate import AsyncGate, LocalOpa
from pygate.engine._opa_process import PROJECT_ROOT
from pygate.integrations.serve import hash_token

#: Seconds per decision before refusing, for both: a shared 2-core machine under load must
#: not turn slowness into refusals (a refusal stops the run).
TIMEOUT = 5.0
TOKEN = "pgt_bench_" + "b" * 32
OUTPUT = {"type": "transfer", "amount": 10}
USER = {"id": "bench", "role": "analyst", "account_status": "active", "transaction_limit": 1000}

#: One decision: ``None`` when allowed, else why not (a refusal is counted and reported: on
#: an overloaded machine an engine timeout refuses, and the row must say so).
Decide = Callable[[], Awaitable[str | None]]


async def _run(
    decide: Decide, total: int, concurrency: int, refused: list[str]
) -> tuple[float, list[float]]:
    """``total`` decisions with ``concurrency`` in flight: (decisions/s, latencies in ms)."""
    latencies: list[float] = []
    left = total

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            started = time.perf_counter()
            problem = await decide()
            latencies.append((time.perf_counter() - started) * 1000)
            if problem is not None:
                refused.append(problem)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - started), latencies


def _start_serve(opa_url: str, work: Path) -> tuple[subprocess.Popen[str], str]:
    tokens = work / "tokens"
    tokens.write_text(f"finance {hash_token(TOKEN)}\n")
    env = {**os.environ, "PYGATE_AUDIT_DB": str(work / "serve-audit.db")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pygate", "--opa-url", opa_url, "--timeout", str(TIMEOUT),
         "serve", "--port", "0", "--tokens", str(tokens), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError("pygate serve did not start")
    return proc, json.loads(line)["url"]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench(rounds: int, sizes: dict[int, int], seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="pygate-serve-bench-"))
    opa = LocalOpa(PROJECT_ROOT / "rego", supervise=False).start()
    proc, url = _start_serve(opa.url, work)
    body = json.dumps({"output": OUTPUT, "user": USER}).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    try:
        async with (
            AsyncGate(
                "finance", opa_url=opa.url, audit=work / "library-audit.db", timeout=TIMEOUT
            ) as gate,
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256), headers=headers
            ) as session,
        ):

            async def library() -> str | None:
                decision = await gate.evaluate(OUTPUT, USER)
                return None if decision.allowed else decision.reason

            async def serve() -> str | None:
                async with session.post(f"{url}/v1/decisions", data=body) as reply:
                    doc = await reply.json()
                if reply.status == 200 and doc["allowed"] is True:
                    return None
                return f"HTTP {reply.status}: {doc.get('reason') or doc.get('error')}"

            contenders: dict[str, Decide] = {"library": library, "serve": serve}
            for decide in contenders.values():  # warm up: connections, caches
                await _run(decide, 50, 8, [])
            rates: dict[tuple[str, int], list[float]] = {}
            lat: dict[tuple[str, int], list[float]] = {}
            refusals: dict[tuple[str, int], list[str]] = {}
            for _ in range(rounds):
                pairs = [(name, c) for name in contenders for c in sizes]
                rng.shuffle(pairs)
                for name, c in pairs:
                    refused = refusals.setdefault((name, c), [])
                    rate, latencies = await _run(contenders[name], sizes[c], c, refused)
                    rates.setdefault((name, c), []).append(rate)
                    lat.setdefault((name, c), []).extend(latencies)
    finally:
        proc.terminate()
        proc.wait(30)
        opa.stop()
    rows = []
    for (name, c), per_round in sorted(rates.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rows.append({
            "contender": name, "in_flight": c, "decisions_per_s": statistics.median(per_round),
            "p50_ms": _pct(lat[(name, c)], 0.50), "p99_ms": _pct(lat[(name, c)], 0.99),
            "requests": len(lat[(name, c)]), "refused": len(refusals[(name, c)]),
            "first_refusal": (refusals[(name, c)] or [None])[0],
        })  # fmt: skip
    ratios = {
        c: statistics.median(
            s / li for s, li in zip(rates[("serve", c)], rates[("library", c)], strict=True)
        )
        for c in sizes
    }
    return {"rounds": rounds, "rows": rows, "throughput_ratio_serve_over_library": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n1", type=int, default=200, help="decisions per run at 1 in flight")
    parser.add_argument("--n32", type=int, default=1000, help="decisions per run at 32 in flight")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(bench(args.rounds, {1: args.n1, 32: args.n32}, args.seed))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{'contender':<10} {'in flight':>9} {'decisions/s':>12} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'refused':>8}")  # fmt: skip
    for row in result["rows"]:
        print(f"{row['contender']:<10} {row['in_flight']:>9} {row['decisions_per_s']:>12,.0f} "
              f"{row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['refused']:>8}")  # fmt: skip
        if row["first_refusal"]:
            print(f"    first refusal: {row['first_refusal'][:160]}")
    for c, ratio in result["throughput_ratio_serve_over_library"].items():
        print(f"serve/library throughput at {c} in flight: {ratio:.2f} "
              f"(median of {result['rounds']} per-round ratios)")  # fmt: skip


if __name__ == "__main__":
    main()
