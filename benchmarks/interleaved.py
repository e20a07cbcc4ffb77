"""pygate's benchmark: every contender once per round, in a shuffled order, in one process.

    .venv/bin/python benchmarks/interleaved.py [--rounds N] [--seconds S] [--quick] [--json F]

A round calls each sequential contender once (and runs one burst of each concurrent one),
in an order shuffled anew every round, so a change in the machine's load hits every row
alike. Ratios are the MEDIAN OF PER-ROUND RATIOS (row ÷ reference measured in the same
round), not a ratio of medians taken minutes apart. Each row reports p50, p99 and
decisions/s; the run reports the load average before, during (mean of per-round samples)
and after, because the machine is shared.

Rows (the seed's finance transfer within limit unless named):
* ``floor``: a keep-alive ``http.client`` POST of the gate's input to pygate's decision
  in a local OPA (the repository's ``rego/``): the wire plus pygate's Rego, no Python work.
* ``rego2.http``: the same transport to a two-rule Rego policy (the seed's finance rules:
  the amount within the user's limit, the account active) in a second OPA: the wire cost.
  ``floor - rego2.http`` is the cost of pygate's Rego.
* ``opa_client.rego2``: opa-python-client ``query_rule`` of the two-rule policy.
* ``gate.no_audit`` / ``gate.durable``: ``Gate.evaluate`` on the sidecar, without audit and
  with the durable SQLite audit + quota; ``fsync``: a bare ``os.fsync`` of a 200-byte append
  on the same file system; ``inprocess.*``: the same on the in-process engine.
* ``*.c32``: bursts at 32 in flight: ``AsyncGate`` durable (sidecar and in-process) and
  opa-python-client's ``AsyncOpaClient`` asking the same decision.
* peers (the ``bench`` extra; skipped with a note when not installed): Microsoft Agent
  Governance Toolkit's ``PolicyEvaluator`` and cedarpy (policy parsed once), each with
  the same two rules.

``--quick`` runs a few rounds of every row (``tests/test_benchmark.py`` proves it runs; it
never asserts a speed).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opa_client import AsyncOpaClient, OpaClient  # noqa: E402

from pygate import AsyncGate, Gate, LocalOpa  # noqa: E402
from pygate._core import DECISION_PATH, build_input, request_body  # noqa: E402
from pygate._errors import ConfigError  # noqa: E402
from pygate.engine._transport import data_url  # noqa: E402

REGO = ROOT / "rego"
USER = {"id": "ana", "role": "analyst", "account_status": "active", "transaction_limit": 1000}
OUTPUT = {"type": "transfer", "amount": 10, "to": "acct-2"}
CODE = {"type": "text", "text": "```python\nimport os\nos.remove('x')\n```"}
HEADERS = {"Content-Type": "application/json"}
CONCURRENCY = 32
BURST = 96  # decisions per burst of a concurrent row (3 per worker)
#: Seconds any client waits: a shared machine's load must slow a row, not turn its
#: decisions into fail-closed refusals (which are fast, and would flatter it).
TIMEOUT = 60.0

TWO_RULES = """package bench

import rego.v1

default allow := false

allow if {
	input.output.amount <= input.user.transaction_limit
	input.user.account_status == "active"
}
"""

#: Every row a run can produce, in table order (peers and in-process rows may be skipped).
ROW_IDS = [
    "floor",
    "floor.code",
    "rego2.http",
    "opa_client.rego2",
    "gate.no_audit",
    "gate.durable",
    "fsync",
    "fsync.7pages",
    "inprocess.eval",
    "inprocess.eval.code",
    "inprocess.no_audit",
    "inprocess.durable",
    "peer.agt",
    "peer.cedarpy",
    "opa_client.async.c32",
    "async_gate.durable.c32",
    "async_gate.inprocess.no_audit.c32",
    "async_gate.inprocess.durable.c32",
]


@dataclass
class Contender:
    """One row: ``call`` is timed once per round (``burst``: it returns its latencies)."""

    id: str
    what: str
    call: Callable[[], Any]
    burst: bool = False
    samples: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


class Bench:
    """Builds every contender, runs the rounds, reports."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.loop = asyncio.new_event_loop()
        self.rows: dict[str, Contender] = {}
        self.skipped: dict[str, str] = {}
        self.closers: list[Callable[[], Any]] = []
        self.refused: list[str] = []
        self._n = 0

    def user(self) -> dict[str, Any]:
        """A fresh user per call: the daily quota never refuses the run."""
        self._n += 1
        return {**USER, "id": f"u{self._n}"}

    def add(self, row_id: str, what: str, call: Callable[[], Any], burst: bool = False) -> None:
        self.rows[row_id] = Contender(row_id, what, call, burst)

    def allowed(self, decision: Any) -> Any:
        """Every gated decision of the run must be a real allow (no fail-closed refusal)."""
        if not decision.allowed:
            self.refused.append(f"{decision.policy_id}: {decision.reason}")
        return decision

    def skip(self, row_id: str, why: str) -> None:
        self.skipped[row_id] = why

    # --- contenders -------------------------------------------------------------------
    def sidecar(self, opa: LocalOpa, rego2: LocalOpa) -> None:
        body = request_body(build_input(OUTPUT, USER, {"service": "finance", "usage_today": 0}))
        code = request_body(build_input(CODE, USER, {"service": "assistant", "usage_today": 0}))
        conn = http.client.HTTPConnection("127.0.0.1", opa.port)
        conn2 = http.client.HTTPConnection("127.0.0.1", rego2.port)
        url = data_url(DECISION_PATH)
        url2 = data_url("bench/allow")
        self.closers += [conn.close, conn2.close]

        def post(c: http.client.HTTPConnection, path: str, b: bytes) -> bytes:
            c.request("POST", path, b, HEADERS)
            return c.getresponse().read()

        self.add("floor", "http.client POST to pygate's decision (transfer)",
                 lambda: post(conn, url, body))  # fmt: skip
        self.add("floor.code", "http.client POST to pygate's decision (code check)",
                 lambda: post(conn, url, code))  # fmt: skip
        self.add("rego2.http", "http.client POST to a two-rule Rego policy (same transport)",
                 lambda: post(conn2, url2, body))  # fmt: skip
        oc = OpaClient(host="127.0.0.1", port=rego2.port, timeout=TIMEOUT)
        document = build_input(OUTPUT, USER, {"service": "finance"})
        self.add("opa_client.rego2", "opa-python-client query_rule, two-rule policy",
                 lambda: oc.query_rule(document, "bench", "allow"))  # fmt: skip
        self.closers.append(oc.close_connection)

        plain = Gate("finance", opa_url=opa.url, audit=None, timeout=TIMEOUT)
        durable = Gate("finance", opa_url=opa.url, audit=self.tmp / "sidecar.db", timeout=TIMEOUT)
        self.closers += [plain.close, durable.close]
        self.add("gate.no_audit", "Gate.evaluate, no audit",
                 lambda: self.allowed(plain.evaluate(OUTPUT, self.user())))  # fmt: skip
        self.add("gate.durable", "Gate.evaluate, durable SQLite audit + quota",
                 lambda: self.allowed(durable.evaluate(OUTPUT, self.user())))  # fmt: skip

        fd = os.open(self.tmp / "fsync.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        record = b"x" * 199 + b"\n"
        self.closers.append(lambda: os.close(fd))

        def fsync() -> None:
            os.write(fd, record)
            os.fsync(fd)

        self.add("fsync", "os.write of 200 bytes + os.fsync (same file system)", fsync)
        # What one audit commit writes: SQLite's WAL grows by ~28 KB per decision (7 pages:
        # the record, its three indexes, the autoincrement counter, the quota row and its key).
        pages = b"p" * (7 * 4096)

        def fsync_pages() -> None:
            os.write(fd, pages)
            os.fsync(fd)

        self.add("fsync.7pages", "os.write of 28 KB (7 pages) + os.fsync", fsync_pages)

        agate = AsyncGate("finance", opa_url=opa.url, audit=self.tmp / "async.db", timeout=TIMEOUT)
        self.closers.append(lambda: self.loop.run_until_complete(agate.aclose()))
        self.add("async_gate.durable.c32", "AsyncGate.evaluate, durable audit, 32 in flight",
                 self._async_gate(agate), burst=True)  # fmt: skip
        aoc = self.loop.run_until_complete(
            AsyncOpaClient(host="127.0.0.1", port=opa.port, timeout=TIMEOUT).__aenter__()
        )
        self.closers.append(lambda: self.loop.run_until_complete(aoc.close_connection()))
        full = build_input(OUTPUT, USER, {"service": "finance", "usage_today": 0})
        ask = self._burst(lambda: aoc.query_rule(full, "pygate.gate", "decision"))
        self.add("opa_client.async.c32", "AsyncOpaClient query_rule, same decision, 32 in flight",
                 ask, burst=True)  # fmt: skip

    def inprocess(self) -> None:
        try:
            plain = Gate("finance", engine="inprocess", audit=None, timeout=TIMEOUT)
        except ConfigError as exc:
            for row_id in ROW_IDS:
                if "inprocess" in row_id:
                    self.skip(row_id, str(exc))
            return
        durable = Gate(
            "finance", engine="inprocess", audit=self.tmp / "inprocess.db", timeout=TIMEOUT
        )
        agate = AsyncGate(
            "finance", engine="inprocess", audit=self.tmp / "inprocess-async.db", timeout=TIMEOUT
        )
        bare = AsyncGate("finance", engine="inprocess", audit=None, timeout=TIMEOUT)
        self.closers += [plain.close, durable.close]
        self.closers.append(lambda: self.loop.run_until_complete(agate.aclose()))
        self.closers.append(lambda: self.loop.run_until_complete(bare.aclose()))
        engine = plain.engine
        assert engine is not None
        body = request_body(build_input(OUTPUT, USER, {"service": "finance", "usage_today": 0}))
        code = request_body(build_input(CODE, USER, {"service": "assistant", "usage_today": 0}))
        self.add("inprocess.eval", "in-process engine, raw evaluation (transfer)",
                 lambda: engine.post(DECISION_PATH, body, 1.0))  # fmt: skip
        self.add("inprocess.eval.code", "in-process engine, raw evaluation (code check)",
                 lambda: engine.post(DECISION_PATH, code, 1.0))  # fmt: skip
        self.add("inprocess.no_audit", "Gate(engine='inprocess').evaluate, no audit",
                 lambda: self.allowed(plain.evaluate(OUTPUT, self.user())))  # fmt: skip
        self.add("inprocess.durable", "Gate(engine='inprocess').evaluate, durable audit",
                 lambda: self.allowed(durable.evaluate(OUTPUT, self.user())))  # fmt: skip
        self.add("async_gate.inprocess.no_audit.c32",
                 "AsyncGate(engine='inprocess'), no audit, 32 in flight",
                 self._async_gate(bare), burst=True)  # fmt: skip
        self.add("async_gate.inprocess.durable.c32",
                 "AsyncGate(engine='inprocess'), durable audit, 32 in flight",
                 self._async_gate(agate), burst=True)  # fmt: skip

    def peers(self) -> None:
        try:
            from agent_os.policies import PolicyEvaluator
            from agent_os.policies.schema import (
                PolicyAction,
                PolicyCondition,
                PolicyDocument,
                PolicyOperator,
                PolicyRule,
            )
        except ImportError as exc:
            self.skip(
                "peer.agt", f"agent-os-kernel not installed (pip install -e '.[bench]'): {exc}"
            )
        else:
            doc = PolicyDocument(
                name="finance",
                rules=[
                    PolicyRule(name="over-limit", action=PolicyAction.DENY, priority=2,
                               condition=PolicyCondition(field="amount", operator=PolicyOperator.GT,
                                                         value=USER["transaction_limit"])),
                    PolicyRule(name="account-inactive", action=PolicyAction.DENY, priority=1,
                               condition=PolicyCondition(field="account_status", value="active",
                                                         operator=PolicyOperator.NE)),
                ],
            )  # fmt: skip
            evaluator = PolicyEvaluator([doc])

            def agt() -> bool:
                u = self.user()
                context = {**OUTPUT, "account_status": u["account_status"], "user": u["id"]}
                return bool(evaluator.evaluate(context).allowed)

            self.add("peer.agt", "Agent Governance Toolkit PolicyEvaluator, two rules", agt)
        try:
            import cedarpy
        except ImportError as exc:
            self.skip("peer.cedarpy", f"cedarpy not installed (pip install -e '.[bench]'): {exc}")
        else:
            policies = cedarpy.PolicySet.from_str(
                'permit(principal, action == Action::"transfer", resource);\n'
                "forbid(principal, action, resource) when "
                "{ context.amount > principal.transaction_limit };\n"
                'forbid(principal, action, resource) when { principal.account_status != "active" };'
            )

            def cedar() -> bool:
                u = self.user()
                entities = [{"uid": {"__entity": {"type": "User", "id": u["id"]}},
                             "attrs": {"transaction_limit": u["transaction_limit"],
                                       "account_status": u["account_status"]},
                             "parents": []}]  # fmt: skip
                request = {
                    "principal": f'User::"{u["id"]}"',
                    "action": 'Action::"transfer"',
                    "resource": 'Account::"acct-2"',
                    "context": {"amount": OUTPUT["amount"]},
                }
                return bool(cedarpy.is_authorized(request, policies, entities).allowed)

            self.add("peer.cedarpy", "cedarpy is_authorized, two rules, policy parsed once", cedar)

    def _async_gate(self, gate: AsyncGate) -> Callable[[], list[float]]:
        """A burst of ``gate.evaluate`` calls, each checked to be an allow."""

        async def one() -> Any:
            return self.allowed(await gate.evaluate(OUTPUT, self.user()))

        return self._burst(one)

    def _burst(self, make: Callable[[], Awaitable[Any]]) -> Callable[[], list[float]]:
        """One burst: ``BURST`` calls from ``CONCURRENCY`` workers; returns each latency."""

        async def run() -> list[float]:
            todo = list(range(BURST))
            lat: list[float] = []

            async def worker() -> None:
                while todo:
                    todo.pop()
                    t = time.perf_counter()
                    await make()
                    lat.append(time.perf_counter() - t)

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            return lat

        return lambda: self.loop.run_until_complete(run())

    # --- running ---------------------------------------------------------------------
    def run(self, rounds: int, seconds: float, warmup: int) -> dict[str, Any]:
        rows = list(self.rows.values())
        for _ in range(warmup):
            for row in rows:
                row.call()
        loads: list[float] = []
        before = os.getloadavg()
        started = time.perf_counter()
        done = 0
        rng = random.Random(1)
        while done < rounds and (done < 3 or time.perf_counter() - started < seconds):
            rng.shuffle(rows)
            for row in rows:
                t = time.perf_counter()
                out = row.call()
                elapsed = time.perf_counter() - t
                row.samples.append(elapsed)
                if row.burst:
                    row.latencies.extend(out)
                    row.rates.append(BURST / elapsed)
            loads.append(os.getloadavg()[0])
            done += 1
        return {
            "rounds": done,
            "seconds": round(time.perf_counter() - started, 1),
            "load_before": [round(x, 2) for x in before],
            "load_during_mean": round(statistics.fmean(loads), 2),
            "load_during_max": round(max(loads), 2),
            "load_after": [round(x, 2) for x in os.getloadavg()],
        }

    def close(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception as exc:  # a report must not be lost to a closing error
                print(f"warning: closing: {exc}", file=sys.stderr)
        self.loop.close()

    # --- reporting -------------------------------------------------------------------
    def ratio(self, num: str, den: str | tuple[str, ...], *, rate: bool = False) -> float | None:
        """Median over rounds of ``num / den`` (``den`` a tuple: their per-round sum)."""
        names = (den,) if isinstance(den, str) else den
        if num not in self.rows or any(n not in self.rows for n in names):
            return None
        a = self.rows[num]
        bs = [self.rows[n] for n in names]
        if rate:
            per = [x / y for x, y in zip(a.rates, bs[0].rates, strict=True)]
        else:
            per = [
                x / sum(col) for x, *col in zip(a.samples, *(b.samples for b in bs), strict=True)
            ]
        return round(statistics.median(per), 3)

    def report(self) -> list[dict[str, Any]]:
        out = []
        for row_id in ROW_IDS:
            row = self.rows.get(row_id)
            if row is None:
                out.append({"id": row_id, "skipped": self.skipped.get(row_id, "not run")})
                continue
            lat = row.latencies if row.burst else row.samples
            per_s = statistics.median(row.rates) if row.burst else 1 / statistics.median(lat)
            out.append({
                "id": row_id, "what": row.what, "n": len(lat),
                "p50_us": round(_pct(lat, 0.5) * 1e6, 1), "p99_us": round(_pct(lat, 0.99) * 1e6, 1),
                "per_s": round(per_s, 1),
                "x_floor": None if row.burst else self.ratio(row_id, "floor"),
            })  # fmt: skip
        return out

    def targets(self) -> list[dict[str, Any]]:
        checks = [
            ("Gate.evaluate no audit ÷ floor", self.ratio("gate.no_audit", "floor"), "<=", 1.10),
            ("durable ÷ (no audit + bare fsync), sequential",
             self.ratio("gate.durable", ("gate.no_audit", "fsync")), "<=", 1.2),
            ("durable ÷ (no audit + fsync of the 7 pages a commit writes), sequential",
             self.ratio("gate.durable", ("gate.no_audit", "fsync.7pages")), "info", None),
            ("AsyncGate durable c32 ÷ opa-python-client async c32 (decisions/s)",
             self.ratio("async_gate.durable.c32", "opa_client.async.c32", rate=True), ">=", 3.0),
            ("AsyncGate in-process durable c32 ÷ opa-python-client async c32 (decisions/s)",
             self.ratio("async_gate.inprocess.durable.c32", "opa_client.async.c32", rate=True),
             ">=", 3.0),
            ("group commit: AsyncGate in-process durable c32 ÷ no audit c32 (decisions/s)",
             self.ratio("async_gate.inprocess.durable.c32", "async_gate.inprocess.no_audit.c32",
                        rate=True), "info", None),
            ("in-process durable ÷ (in-process no audit + bare fsync), sequential",
             self.ratio("inprocess.durable", ("inprocess.no_audit", "fsync")), "<=", 1.2),
            ("in-process tier, full seed decision (Gate, no audit) ÷ floor",
             self.ratio("inprocess.no_audit", "floor"), "<=", 0.25),
            ("in-process tier, full seed decision ÷ AGT, 2 rules",
             self.ratio("inprocess.no_audit", "peer.agt"), "<=", 1.0),
            ("pygate's Rego, raw in-process evaluation ÷ two-rule policy over HTTP",
             self.ratio("inprocess.eval", "rego2.http"), "info", None),
            ("wire: two-rule policy over HTTP ÷ floor", self.ratio("rego2.http", "floor"),
             "info", None),
        ]  # fmt: skip
        out = []
        for name, value, op, bound in checks:
            met = None
            if value is not None and bound is not None:
                met = value <= bound if op == "<=" else value >= bound
            out.append({"target": name, "value": value, "op": op, "bound": bound, "met": met})
        return out


def print_report(
    rows: list[dict[str, Any]], checks: list[dict[str, Any]], run: dict[str, Any]
) -> None:
    head = f"{'row':34} {'p50 µs':>9} {'p99 µs':>9} {'decisions/s':>12} {'x floor':>8}  what"
    print(head)
    print("-" * len(head))
    for r in rows:
        if "skipped" in r:
            print(f"{r['id']:34} skipped: {r['skipped']}")
            continue
        ratio = "" if r["x_floor"] is None else f"{r['x_floor']:.3f}"
        print(f"{r['id']:34} {r['p50_us']:9.0f} {r['p99_us']:9.0f} {r['per_s']:12,.0f} "
              f"{ratio:>8}  {r['what']}")  # fmt: skip
    print()
    for c in checks:
        value = "n/a" if c["value"] is None else f"{c['value']:.3f}"
        if c["met"] is None:
            mark = "       " if c["bound"] is None else "SKIPPED"
            bound = "" if c["bound"] is None else f" (target {c['op']} {c['bound']})"
        else:
            mark = "MET    " if c["met"] else "NOT MET"
            bound = f" (target {c['op']} {c['bound']})"
        print(f"{mark} {c['target']}: {value}{bound}")
    print(
        f"\n{run['rounds']} rounds in {run['seconds']} s; load average before "
        f"{run['load_before'][0]}, during {run['load_during_mean']} (max "
        f"{run['load_during_max']}), after {run['load_after'][0]}; {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2000, help="rounds at most (default 2000)")
    parser.add_argument("--seconds", type=float, default=120.0, help="stop after this long")
    parser.add_argument("--warmup", type=int, default=20, help="unrecorded rounds first")
    parser.add_argument("--quick", action="store_true", help="a few rounds of every row (smoke)")
    parser.add_argument("--no-peers", action="store_true", help="skip the peer rows")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.warmup = 5, 10.0, 1
    with tempfile.TemporaryDirectory(prefix="pygate-bench-") as d:
        tmp = Path(d)
        (tmp / "rego2").mkdir()
        (tmp / "rego2" / "bench.rego").write_text(TWO_RULES)
        bench = Bench(tmp)
        with (
            LocalOpa(REGO, supervise=False) as opa,
            LocalOpa(tmp / "rego2", supervise=False, library=False, as_bundle=False) as rego2,
        ):
            try:
                bench.sidecar(opa, rego2)
                bench.inprocess()
                if args.no_peers:
                    bench.skip("peer.agt", "--no-peers")
                    bench.skip("peer.cedarpy", "--no-peers")
                else:
                    bench.peers()
                run = bench.run(args.rounds, args.seconds, args.warmup)
                rows, checks = bench.report(), bench.targets()
                if bench.refused:
                    print(f"error: {len(bench.refused)} gated decisions were refusals, e.g. "
                          f"{bench.refused[0]}", file=sys.stderr)  # fmt: skip
                    return 1
            finally:
                bench.close()
    print_report(rows, checks, run)
    if args.json:
        args.json.write_text(json.dumps({
            "mode": "quick" if args.quick else "full",
            "command": " ".join(["benchmarks/interleaved.py", *(argv or sys.argv[1:])]),
            "cores": os.cpu_count(), "python": platform.python_version(),
            "run": run, "rows": rows, "targets": checks,
        }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
