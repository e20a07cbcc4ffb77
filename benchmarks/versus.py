"""This checkout's pygate against another revision's, interleaved in one process.

    .venv/bin/python benchmarks/versus.py --ref main [--seconds 90] [--no-async]

The other revision's ``pygate/`` is taken with ``git archive`` into a temporary folder and
imported as ``pygate_base`` (its imports rewritten), so both run in the same rounds of
``interleaved.py``'s harness: the floor, a bare fsync, ``Gate.evaluate`` without audit and
durable, and ``AsyncGate`` durable at 32 in flight beside opa-python-client's async client,
each row once per round for each side. Reports medians of per-round ratios, new against old.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import interleaved as il  # noqa: E402

from pygate import LocalOpa  # noqa: E402

_IMPORT = re.compile(r"\b(from|import) pygate(\.| )")


def extract(ref: str, into: Path) -> None:
    """``ref``'s ``pygate/`` as the package ``pygate_base`` under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "pygate"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "pygate").rename(into / "pygate_base")
    for path in (into / "pygate_base").rglob("*.py"):
        path.write_text(_IMPORT.sub(r"\1 pygate_base\2", path.read_text()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default="main", help="the revision to compare against")
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--no-async", action="store_true", help="skip the 32-in-flight rows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pygate-versus-") as d:
        tmp = Path(d)
        extract(args.ref, tmp / "old")
        sys.path.insert(0, str(tmp / "old"))
        import pygate_base  # type: ignore[import-not-found]  # extracted above

        (tmp / "rego2").mkdir()
        (tmp / "rego2" / "bench.rego").write_text(il.TWO_RULES)
        bench = il.Bench(tmp)
        with (
            LocalOpa(il.REGO, supervise=False) as opa,
            LocalOpa(tmp / "rego2", supervise=False, library=False, as_bundle=False) as rego2,
        ):
            bench.sidecar(opa, rego2)
            keep = {"floor", "fsync", "gate.no_audit", "gate.durable"}
            if not args.no_async:
                keep |= {"opa_client.async.c32", "async_gate.durable.c32"}
            bench.rows = {k: v for k, v in bench.rows.items() if k in keep}
            plain = pygate_base.Gate("finance", opa_url=opa.url, audit=None, timeout=il.TIMEOUT)
            durable = pygate_base.Gate(
                "finance", opa_url=opa.url, audit=tmp / "old.db", timeout=il.TIMEOUT
            )
            bench.closers += [plain.close, durable.close]
            bench.add("old.no_audit", "old Gate.evaluate, no audit",
                      lambda: bench.allowed(plain.evaluate(il.OUTPUT, bench.user())))  # fmt: skip
            bench.add("old.durable", "old Gate.evaluate, durable",
                      lambda: bench.allowed(durable.evaluate(il.OUTPUT, bench.user())))  # fmt: skip
            if not args.no_async:
                agate = pygate_base.AsyncGate(
                    "finance", opa_url=opa.url, audit=tmp / "old-async.db", timeout=il.TIMEOUT
                )
                bench.closers.append(lambda: bench.loop.run_until_complete(agate.aclose()))
                bench.add("old.async.c32", "old AsyncGate, durable, 32 in flight",
                          bench._async_gate(agate), burst=True)  # fmt: skip
            try:
                run = bench.run(args.rounds, args.seconds, 10)
                ratios = {
                    "no audit ÷ floor, new": bench.ratio("gate.no_audit", "floor"),
                    "no audit ÷ floor, old": bench.ratio("old.no_audit", "floor"),
                    "durable ÷ (no audit + fsync), new": bench.ratio(
                        "gate.durable", ("gate.no_audit", "fsync")
                    ),
                    "durable ÷ (no audit + fsync), old": bench.ratio(
                        "old.durable", ("old.no_audit", "fsync")
                    ),
                    "no audit, new ÷ old": bench.ratio("gate.no_audit", "old.no_audit"),
                    "durable, new ÷ old": bench.ratio("gate.durable", "old.durable"),
                    "AsyncGate c32 ÷ opa-python-client c32, new": bench.ratio(
                        "async_gate.durable.c32", "opa_client.async.c32", rate=True
                    ),
                    "AsyncGate c32 ÷ opa-python-client c32, old": bench.ratio(
                        "old.async.c32", "opa_client.async.c32", rate=True
                    ),
                    "AsyncGate c32, new ÷ old (decisions/s)": bench.ratio(
                        "async_gate.durable.c32", "old.async.c32", rate=True
                    ),
                }
                rows = {
                    r.id: round(statistics.median(r.rates), 1)
                    if r.burst
                    else round(statistics.median(r.samples) * 1e6, 1)
                    for r in bench.rows.values()
                }
            finally:
                bench.close()
    print(json.dumps({"ref": args.ref, "run": run, "p50_us_or_per_s": rows, "ratios": ratios},
                     indent=1, ensure_ascii=False))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
