"""pygate's benchmark: what a decision costs, side by side, against one OPA in one run.

    .venv/bin/python benchmarks/bench.py [--quick] [--json out.json]

Starts its own OPA (the repository's ``rego/``, a free port on 127.0.0.1), then measures
every row on the same inputs: the bare ``http.client`` floor, opa-python-client, httpx,
aiohttp, ``Gate``/``AsyncGate`` with and without the durable audit, batches, OPA's own
evaluation time, and how the cost grows with output size, rules-as-data policies and the
size of the audit log. Prints one table and the targets of issue 7 as ratios measured in
this run; ``--json`` writes the same. ``--quick`` runs every row briefly (CI proves the
benchmark still runs; it never asserts a speed).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
from opa_client import AsyncOpaClient, OpaClient  # noqa: E402

from pygate import AsyncGate, Gate, LocalOpa, SqliteAuditLog  # noqa: E402
from pygate._core import DECISION_PATH, build_input, request_body  # noqa: E402
from pygate.audit._base import COLUMNS, GENESIS, canonical  # noqa: E402
from pygate.engine._transport import data_url  # noqa: E402
from pygate.policy._policy_index import with_index  # noqa: E402

REGO = ROOT / "rego"
USER = {"id": "ana", "role": "analyst", "account_status": "active", "transaction_limit": 1000}
OUTPUT = {"type": "transfer", "amount": 10, "to": "acct-2"}
DOCUMENT = build_input(OUTPUT, USER, {"service": "finance", "usage_today": 0})
BODY = request_body(DOCUMENT)
URL_PATH = data_url(DECISION_PATH)  # what Gate posts: the same work for OPA in every row
HEADERS = {"Content-Type": "application/json"}

#: Every row a run produces, in table order (the pytest smoke test checks them all).
ROW_IDS = [
    "floor.http_client",
    "opa_client.sync",
    "opa_client.async",
    "httpx.client",
    "httpx.async_client",
    "gate.no_audit",
    "gate.audit",
    "opa_client.async.c32",
    "httpx.async_client.c32",
    "aiohttp.c32",
    "async_gate.no_audit.c32",
    "async_gate.audit.c1",
    "async_gate.audit.c8",
    "async_gate.audit.c32",
    "async_gate.audit.c128",
    "batch.gate.no_audit.100",
    "batch.gate.audit.100",
    "batch.async_gate.audit.100x4",
    "opa.eval_metrics",
    "opa.bench",
    "output.1KB",
    "output.10KB",
    "output.100KB",
    "output.1MB",
    "policies.10",
    "policies.100",
    "policies.1000",
    "policies.10000",
    "audit_db.empty.evaluate",
    "audit_db.large.evaluate",
    "audit_db.empty.reserve",
    "audit_db.large.reserve",
]


@dataclass
class Row:
    """One measured row of the table."""

    id: str
    what: str
    n: int
    p50_us: float
    p99_us: float
    per_s: float
    client_rss_mb: float
    opa_rss_mb: float
    ratio: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Budget:
    """How much each kind of row runs (``--quick`` shrinks all of them)."""

    seq: int
    conc: int
    batches: int
    seconds: float
    large_audit: int
    warmup: int


FULL = Budget(seq=3000, conc=8000, batches=100, seconds=4.0, large_audit=1_000_000, warmup=200)
QUICK = Budget(seq=60, conc=300, batches=4, seconds=0.5, large_audit=20_000, warmup=10)


# --- memory ---------------------------------------------------------------------------------
def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


class RssSampler:
    """Samples this process's and OPA's resident memory every 20 ms; peak per row."""

    def __init__(self) -> None:
        self.opa_pid: int | None = None
        self._peak = (0.0, 0.0)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            self.sample()

    def sample(self) -> None:
        me = _rss_mb(os.getpid())
        opa = _rss_mb(self.opa_pid) if self.opa_pid else 0.0
        with self._lock:
            self._peak = (max(self._peak[0], me), max(self._peak[1], opa))

    def reset(self) -> None:
        with self._lock:
            self._peak = (0.0, 0.0)
        self.sample()

    def peak(self) -> tuple[float, float]:
        self.sample()
        with self._lock:
            return self._peak

    def stop(self) -> None:
        self._stop.set()


SAMPLER = RssSampler()


# --- measuring ------------------------------------------------------------------------------
def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _row(
    row_id: str, what: str, lat: list[float], elapsed: float, per_call: int = 1, **notes: Any
) -> Row:
    client, opa = SAMPLER.peak()
    return Row(
        id=row_id,
        what=what,
        n=len(lat) * per_call,
        p50_us=_pct(lat, 0.5) * 1e6,
        p99_us=_pct(lat, 0.99) * 1e6,
        per_s=len(lat) * per_call / elapsed if elapsed else 0.0,
        client_rss_mb=round(client, 1),
        opa_rss_mb=round(opa, 1),
        notes=notes,
    )


def seq(
    row_id: str,
    what: str,
    fn: Callable[[], object],
    b: Budget,
    n: int | None = None,
    per_call: int = 1,
    **notes: Any,
) -> Row:
    """Call ``fn`` sequentially: warm-up, then up to ``n`` calls within the time budget."""
    n = n or b.seq
    for _ in range(min(b.warmup, max(1, n // 10))):
        fn()
    SAMPLER.reset()
    lat: list[float] = []
    start = time.perf_counter()
    deadline = start + b.seconds
    while len(lat) < n and (len(lat) < 3 or time.perf_counter() < deadline):
        t = time.perf_counter()
        fn()
        lat.append(time.perf_counter() - t)
    return _row(row_id, what, lat, time.perf_counter() - start, per_call, **notes)


Call = Callable[[], Awaitable[object]]
Close = Callable[[], Awaitable[object]]


def conc(
    row_id: str,
    what: str,
    make: Callable[[], Awaitable[tuple[Call, Close]]],
    c: int,
    b: Budget,
    n: int | None = None,
    per_call: int = 1,
    **notes: Any,
) -> Row:
    """``make()`` a client inside a fresh event loop, then call it from ``c`` workers."""
    n = n or b.conc

    async def run() -> tuple[list[float], float]:
        fn, close = await make()
        try:
            for _ in range(min(b.warmup, max(c, n // 10))):
                await fn()
            SAMPLER.reset()
            lat: list[float] = []
            start = time.perf_counter()
            deadline = start + b.seconds

            async def worker() -> None:
                while len(lat) < n and (len(lat) < 3 or time.perf_counter() < deadline):
                    t = time.perf_counter()
                    await fn()
                    lat.append(time.perf_counter() - t)

            await asyncio.gather(*(worker() for _ in range(c)))
            return lat, time.perf_counter() - start
        finally:
            await close()

    lat, elapsed = asyncio.run(run())
    return _row(row_id, what, lat, elapsed, per_call, concurrency=c, **notes)


@contextmanager
def tempdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pygate-bench-") as d:
        yield Path(d)


# --- the rows -------------------------------------------------------------------------------
def clients(opa: LocalOpa, b: Budget) -> list[Row]:
    rows = []
    conn = http.client.HTTPConnection("127.0.0.1", opa.port)

    def floor() -> None:
        conn.request("POST", URL_PATH, BODY, HEADERS)
        conn.getresponse().read()

    rows.append(seq("floor.http_client", "http.client keep-alive POST, no validation", floor, b))
    conn.close()

    oc = OpaClient(host="127.0.0.1", port=opa.port, timeout=60)  # load slows, never fails
    rows.append(
        seq(
            "opa_client.sync",
            "opa-python-client query_rule",
            lambda: oc.query_rule(DOCUMENT, "pygate.gate", "decision"),
            b,
        )
    )
    oc.close_connection()

    with httpx.Client(base_url=opa.url, headers=HEADERS) as hc:
        rows.append(
            seq(
                "httpx.client",
                "httpx Client POST",
                lambda: hc.post(URL_PATH, content=BODY).content,
                b,
            )
        )

    def opa_async(c: int, row_id: str) -> Row:
        async def make() -> tuple[Call, Close]:
            client = await AsyncOpaClient(host="127.0.0.1", port=opa.port, timeout=60).__aenter__()
            return (
                lambda: client.query_rule(DOCUMENT, "pygate.gate", "decision"),
                client.close_connection,
            )

        return conc(
            row_id,
            f"opa-python-client AsyncOpaClient query_rule, {c} in flight",
            make,
            c,
            b,
            n=b.seq if c == 1 else None,
        )

    def httpx_async(c: int, row_id: str) -> Row:
        async def make() -> tuple[Call, Close]:
            client = httpx.AsyncClient(base_url=opa.url, headers=HEADERS)

            async def call() -> None:
                (await client.post(URL_PATH, content=BODY)).read()

            return call, client.aclose

        return conc(
            row_id,
            f"httpx AsyncClient POST, {c} in flight",
            make,
            c,
            b,
            n=b.seq if c == 1 else None,
        )

    def aiohttp_c(c: int, row_id: str) -> Row:
        async def make() -> tuple[Call, Close]:
            session = aiohttp.ClientSession(
                base_url=opa.url, connector=aiohttp.TCPConnector(limit=256)
            )

            async def call() -> None:
                async with session.post(URL_PATH, data=BODY, headers=HEADERS) as r:
                    await r.read()

            return call, session.close

        return conc(row_id, f"aiohttp ClientSession POST, {c} in flight", make, c, b)

    rows.append(opa_async(1, "opa_client.async"))
    rows.append(httpx_async(1, "httpx.async_client"))
    rows.append(opa_async(32, "opa_client.async.c32"))
    rows.append(httpx_async(32, "httpx.async_client.c32"))
    rows.append(aiohttp_c(32, "aiohttp.c32"))
    return rows


def gates(opa: LocalOpa, b: Budget) -> list[Row]:
    rows = []
    with Gate("finance", opa_url=opa.url, audit=None) as gate:
        rows.append(
            seq("gate.no_audit", "Gate.evaluate, no audit", lambda: gate.evaluate(OUTPUT, USER), b)
        )
    with tempdir() as d, Gate("finance", opa_url=opa.url, audit=d / "a.db") as gate:
        rows.append(
            seq(
                "gate.audit",
                "Gate.evaluate, durable audit + quota",
                lambda: gate.evaluate(OUTPUT, USER),
                b,
            )
        )
    users = [{**USER, "id": f"user{i}"} for i in range(1000)]

    def async_gate(row_id: str, what: str, c: int, audit: bool) -> Row:
        with tempdir() as d:

            async def make() -> tuple[Call, Close]:
                gate = AsyncGate("finance", opa_url=opa.url, audit=(d / "a.db") if audit else None)
                counter = iter(range(10**9))

                def call() -> Awaitable[object]:
                    # spread over users: the quota must not refuse the run
                    return gate.evaluate(OUTPUT, users[next(counter) % len(users)])

                return call, gate.aclose

            return conc(row_id, what, make, c, b)

    rows.append(
        async_gate(
            "async_gate.no_audit.c32", "AsyncGate.evaluate, no audit, 32 in flight", 32, False
        )
    )
    for c in (1, 8, 32, 128):
        rows.append(
            async_gate(
                f"async_gate.audit.c{c}",
                f"AsyncGate.evaluate, durable audit + quota, {c} in flight",
                c,
                True,
            )
        )
    return rows


def batches(opa: LocalOpa, b: Budget) -> list[Row]:
    rows = []
    items = [(OUTPUT, {**USER, "id": f"user{i}"}) for i in range(100)]
    with Gate("finance", opa_url=opa.url, audit=None, timeout=10) as gate:
        rows.append(
            seq(
                "batch.gate.no_audit.100",
                "Gate.evaluate_many, 100 items, no audit",
                lambda: gate.evaluate_many(items),
                b,
                n=b.batches,
                per_call=100,
            )
        )
    with tempdir() as d, Gate("finance", opa_url=opa.url, audit=d / "a.db", timeout=10) as gate:
        rows.append(
            seq(
                "batch.gate.audit.100",
                "Gate.evaluate_many, 100 items, durable audit",
                lambda: gate.evaluate_many(items),
                b,
                n=b.batches,
                per_call=100,
            )
        )
    with tempdir() as d:

        async def make() -> tuple[Call, Close]:
            gate = AsyncGate("finance", opa_url=opa.url, audit=d / "a.db", timeout=10)
            return (lambda: gate.evaluate_many(items)), gate.aclose

        rows.append(
            conc(
                "batch.async_gate.audit.100x4",
                "AsyncGate.evaluate_many, 100 items, 4 batches in flight, durable audit",
                make,
                4,
                b,
                n=b.batches,
                per_call=100,
            )
        )
    return rows


def opa_itself(opa: LocalOpa, b: Budget) -> list[Row]:
    rows = []
    conn = http.client.HTTPConnection("127.0.0.1", opa.port)
    evals: list[float] = []

    def call() -> None:
        conn.request("POST", URL_PATH + "&metrics=true", BODY, HEADERS)
        metrics = json.loads(conn.getresponse().read())["metrics"]
        evals.append(metrics["timer_rego_query_eval_ns"] / 1e9)

    outer = seq("opa.eval_metrics", "OPA's own eval time (?metrics=true)", call, b)
    conn.close()
    evals = evals[-outer.n :]
    outer.notes["round_trip_p50_us"] = round(outer.p50_us, 1)
    outer.p50_us, outer.p99_us = _pct(evals, 0.5) * 1e6, _pct(evals, 0.99) * 1e6
    outer.per_s = 0.0
    rows.append(outer)

    with tempdir() as d:
        (d / "input.json").write_text(json.dumps(DOCUMENT))
        cmd = [
            str(opa.opa_bin),
            "bench",
            "-b",
            str(REGO),
            "-i",
            str(d / "input.json"),
            "--format",
            "json",
            "--benchmem=false",
            "data.pygate.gate.decision",
        ]
        SAMPLER.reset()
        out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        extra = out.get("Extra", {})
        p50 = extra.get("histogram_timer_rego_query_eval_ns_median", out["T"] / out["N"]) / 1e3
        p99 = extra.get("histogram_timer_rego_query_eval_ns_99%", 0) / 1e3
        client, _ = SAMPLER.peak()
        rows.append(
            Row(
                "opa.bench",
                "opa bench (no HTTP, one core)",
                out["N"],
                p50,
                p99,
                out["N"] / (out["T"] / 1e9),
                client,
                0.0,
            )
        )
    return rows


def output_sizes(opa: LocalOpa, b: Budget) -> list[Row]:
    rows = []
    with tempdir() as d, Gate("finance", opa_url=opa.url, audit=d / "a.db", timeout=10) as gate:
        for label, size in (
            ("1KB", 1 << 10),
            ("10KB", 10 << 10),
            ("100KB", 100 << 10),
            ("1MB", 1 << 20),
        ):
            output = {**OUTPUT, "note": "x" * (size - 60)}
            n = max(10, b.seq * 1024 // size) if size > 1024 else b.seq
            rows.append(
                seq(
                    f"output.{label}",
                    f"Gate.evaluate, durable audit, {label} output",
                    lambda o=output: gate.evaluate(o, USER),
                    b,
                    n=n,
                    bytes=size,
                )
            )
    return rows


def _declarative(n: int) -> list[dict[str, Any]]:
    """``n`` valid finance policies, each about its own output type (none match a transfer)."""
    return [
        {
            "id": f"GEN-{i:05d}",
            "set": "finance",
            "priority": 60,
            "reason": f"generated policy {i}",
            "action": "log_refusal",
            "conditions": [
                {"type": "field_in", "field": "type", "values": [f"op{i}"]},
                {"type": "field_compare", "field": "amount", "op": "gt", "value": 1000000},
            ],
        }
        for i in range(n)
    ]


def policies(b: Budget) -> list[Row]:
    rows = []
    for n in (10, 100, 1000, 10000):
        with tempdir() as d:
            rego = d / "rego"
            shutil.copytree(REGO, rego, ignore=shutil.ignore_patterns("*_test.rego"))
            data_file = rego / "pygate" / "config" / "data.json"
            data = json.loads(data_file.read_text())
            data["declarative_policies"] = _declarative(n)
            data_file.write_text(json.dumps(with_index(data)))  # as bundle build/push do
            with LocalOpa(rego, supervise=False) as local:
                SAMPLER.opa_pid = local.pid
                with Gate("finance", opa_url=local.url, audit=None, timeout=60) as gate:
                    rows.append(
                        seq(
                            f"policies.{n}",
                            f"Gate.evaluate, {n} rules-as-data policies",
                            lambda g=gate: g.evaluate(OUTPUT, USER),
                            b,
                            n=max(20, b.seq // 10),
                            policies=n,
                        )
                    )
    return rows


def _fill_audit(path: Path, n: int) -> float:
    """``n`` records with a valid hash chain, on past days, via bulk SQL; returns seconds."""
    start = time.perf_counter()
    schema = SqliteAuditLog(path)  # the schema, and the audit key the chain is keyed with
    schema.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("BEGIN")
    insert = (
        f"INSERT INTO decisions ({', '.join(COLUMNS)}, key_id, prev_hash, hash) "
        f"VALUES ({', '.join('?' * (len(COLUMNS) + 3))})"
    )
    prev = GENESIS
    chunk: list[tuple[Any, ...]] = []
    output = json.dumps(OUTPUT, sort_keys=True)
    for i in range(n):
        day = f"2020-{1 + i % 12:02d}-{1 + i % 28:02d}"
        row = {
            "audit_id": f"{i:032x}",
            "ts": f"{day}T00:00:00+00:00",
            "day": day,
            "service": "finance",
            "user_id": f"user{i % 5000}",
            "output": output,
            "allowed": i % 5 != 0,
            "reason": "allowed",
            "policy_id": None,
            "policy_ids": "[]",
            "action": None,
            "decision_id": None,
            "bundle_revision": None,
            "fallback": 0,
            "latency_ms": 0.5,
        }
        key_id, digest = schema.integrity.link(prev, canonical(row))
        chunk.append((*(row[c] for c in COLUMNS), key_id, prev, digest))
        prev = digest
        if len(chunk) == 50_000:
            db.executemany(insert, chunk)
            chunk.clear()
    db.executemany(insert, chunk)
    db.execute("COMMIT")
    db.close()
    return time.perf_counter() - start


def audit_sizes(opa: LocalOpa, b: Budget) -> list[Row]:
    rows = []
    for label, n in (("empty", 0), ("large", b.large_audit)):
        with tempdir() as d:
            path = d / "a.db"
            fill_s = _fill_audit(path, n)
            with Gate("finance", opa_url=opa.url, audit=path) as gate:
                assert gate.audit is not None
                rows.append(
                    seq(
                        f"audit_db.{label}.evaluate",
                        f"Gate.evaluate, durable audit, log of {n:,} records",
                        lambda g=gate: g.evaluate(OUTPUT, USER),
                        b,
                        records=n,
                        fill_seconds=round(fill_s, 1),
                    )
                )
                audit = gate.audit
                day = "2099-01-01"  # a day of its own: the quota never refuses
                rows.append(
                    seq(
                        f"audit_db.{label}.reserve",
                        f"quota reservation alone, log of {n:,} records",
                        lambda a=audit, day=day: a.reserve("ana", day),
                        b,
                        records=n,
                    )
                )
    return rows


# --- report ---------------------------------------------------------------------------------
def targets(rows: dict[str, Row]) -> list[dict[str, Any]]:
    def r(a: str, b: str, attr: str) -> float:
        x, y = getattr(rows[a], attr), getattr(rows[b], attr)
        return x / y if y else float("inf")

    checks = [
        (
            "Gate.evaluate (no audit) p50 / floor p50",
            r("gate.no_audit", "floor.http_client", "p50_us"),
            "<=",
            1.3,
        ),
        (
            "Gate.evaluate (no audit) decisions/s / opa-python-client sync",
            r("gate.no_audit", "opa_client.sync", "per_s"),
            ">=",
            2.0,
        ),
        (
            "AsyncGate c32 (no audit) decisions/s / opa-python-client async c32",
            r("async_gate.no_audit.c32", "opa_client.async.c32", "per_s"),
            ">=",
            2.0,
        ),
        (
            "Gate durable audit / no audit, decisions/s (sequential)",
            r("gate.audit", "gate.no_audit", "per_s"),
            ">=",
            0.7,
        ),
        (
            "AsyncGate c32 durable audit / no audit, decisions/s",
            r("async_gate.audit.c32", "async_gate.no_audit.c32", "per_s"),
            ">=",
            0.7,
        ),
        (
            "AsyncGate c32 durable audit, decisions/s",
            rows["async_gate.audit.c32"].per_s,
            ">=",
            5000,
        ),
        (
            "Batch of 100, durable audit, decisions/s",
            rows["batch.gate.audit.100"].per_s,
            ">=",
            20000,
        ),
        (
            "Quota reservation p50, large log / empty log",
            r("audit_db.large.reserve", "audit_db.empty.reserve", "p50_us"),
            "<=",
            1.2,
        ),
        (
            "Gate.evaluate p50, large log / empty log",
            r("audit_db.large.evaluate", "audit_db.empty.evaluate", "p50_us"),
            "<=",
            1.2,
        ),
        (
            "10,000 rules-as-data policies p50 / 10 policies p50",
            r("policies.10000", "policies.10", "p50_us"),
            "<=",
            2.0,
        ),
    ]
    out = []
    for name, value, op, bound in checks:
        met = value <= bound if op == "<=" else value >= bound
        out.append({"target": name, "value": round(value, 3), "op": op, "bound": bound, "met": met})
    return out


def print_table(rows: list[Row], checks: list[dict[str, Any]]) -> None:
    head = (
        f"{'row':30} {'p50 µs':>9} {'p99 µs':>9} {'decisions/s':>12} {'x floor':>8} "
        f"{'RSS MB':>7} {'OPA MB':>7}  what"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else ""
        per_s = f"{row.per_s:,.0f}" if row.per_s else ""
        print(
            f"{row.id:30} {row.p50_us:9.0f} {row.p99_us:9.0f} {per_s:>12} {ratio:>8} "
            f"{row.client_rss_mb:7.0f} {row.opa_rss_mb:7.0f}  {row.what}"
        )
    print()
    for c in checks:
        mark = "MET    " if c["met"] else "NOT MET"
        print(f"{mark} {c['target']}: {c['value']:,} (target {c['op']} {c['bound']:,})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every row, briefly (for CI)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    b = QUICK if args.quick else FULL
    started = time.perf_counter()
    rows: list[Row] = []
    with LocalOpa(REGO, supervise=False) as opa:
        SAMPLER.opa_pid = opa.pid
        for part in (clients, gates, batches, opa_itself, output_sizes, audit_sizes):
            rows.extend(part(opa, b))
            print(
                f"  ... {part.__name__} done ({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
        rows.extend(policies(b))
    SAMPLER.stop()
    by_id = {row.id: row for row in rows}
    floor = by_id["floor.http_client"].p50_us
    for row in rows:
        if row.id not in ("opa.eval_metrics", "opa.bench"):
            row.ratio = round(row.p50_us / floor, 2) if floor else None
    order = {rid: i for i, rid in enumerate(ROW_IDS)}
    rows.sort(key=lambda row: order.get(row.id, len(order)))
    checks = targets(by_id)
    print_table(rows, checks)
    elapsed = time.perf_counter() - started
    print(
        f"\n{'quick' if args.quick else 'full'} run, {elapsed:.0f} s, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "mode": "quick" if args.quick else "full",
                    "seconds": round(elapsed, 1),
                    "cores": os.cpu_count(),
                    "python": platform.python_version(),
                    "budget": asdict(b),
                    "rows": [asdict(r) for r in rows],
                    "targets": checks,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
