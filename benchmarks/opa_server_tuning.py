"""What pygate's OPA server settings buy, through HTTP, interleaved.

    .venv/bin/python benchmarks/opa_server_tuning.py [--rounds 600] [--quick] [--json out.json]

Starts three ``opa run`` servers on the repository's ``rego/`` bundle: OPA's defaults, with
``--optimize-store-for-read-speed`` (policy data kept as Rego values), and with that flag plus
``GOGC=400`` (what ``LocalOpa``, the Docker sidecar and ``docker-compose.yml`` now run:
``pygate.engine._opa_process.SERVER_TUNING`` / ``GOGC_DEFAULT``). Each round POSTs the same
decision input once to each server, in a shuffled order, on keep-alive connections; per
scenario it reports p50 and p99 wall time, OPA's own ``timer_rego_query_eval_ns`` median and
the median of per-round ratios against the defaults, and checks that the three servers gave
the same decision document. The load average is printed: the machine is shared.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from opa_bench import scenario_inputs  # noqa: E402

from pygate.engine._opa_process import (  # noqa: E402
    GOGC_DEFAULT,
    SERVER_TUNING,
    find_opa_binary,
    free_port,
)

SCENARIOS = (
    "transfer within limit",
    "OpenAI chat completion: transfer tool call",
    "assistant tool call with code",
)
SERVERS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "defaults": ((), {}),
    "store": (SERVER_TUNING, {}),
    "store+gogc": (SERVER_TUNING, {"GOGC": GOGC_DEFAULT}),
}


def start(
    opa: str, flags: tuple[str, ...], env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    base = {k: v for k, v in os.environ.items() if k != "GOGC"}
    proc = subprocess.Popen(
        [opa, "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level", "error",
         *flags, "--bundle", str(ROOT / "rego")],
        env={**base, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"OPA on port {port} did not become healthy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=600)
    parser.add_argument("--quick", action="store_true", help="20 rounds (a smoke run)")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    rounds = 20 if args.quick else args.rounds
    opa = str(find_opa_binary())
    inputs = scenario_inputs()
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, Any] = {"load_before": os.getloadavg()[0], "scenarios": {}}
    try:
        ports = {}
        for name, (flags, env) in SERVERS.items():
            proc, ports[name] = start(opa, flags, env)
            procs.append(proc)
        print(f"load average before: {results['load_before']:.1f}; {rounds} rounds per scenario")
        for scenario in SCENARIOS:
            body = json.dumps({"input": inputs[scenario]}).encode()
            conns = {
                n: http.client.HTTPConnection("127.0.0.1", p, timeout=60) for n, p in ports.items()
            }
            wall: dict[str, list[float]] = {n: [] for n in ports}
            evals: dict[str, list[float]] = {n: [] for n in ports}
            answers: dict[str, set[str]] = {n: set() for n in ports}
            for i in range(rounds + 20):
                order = list(ports)
                random.shuffle(order)
                for n in order:
                    t0 = time.perf_counter()
                    conns[n].request(
                        "POST", "/v1/data/pygate/gate/decision?metrics=true", body,
                        {"Content-Type": "application/json"},
                    )  # fmt: skip
                    doc = json.loads(conns[n].getresponse().read())
                    if i < 20:
                        continue  # warm-up
                    wall[n].append(time.perf_counter() - t0)
                    evals[n].append(doc.pop("metrics")["timer_rego_query_eval_ns"] / 1e3)
                    answers[n].add(json.dumps(doc, sort_keys=True))
            same = len(set().union(*answers.values())) == 1
            row = {}
            print(f"\n{scenario}: identical decisions on all three servers: {same}")
            head = ("server", "p50 us", "p99 us", "eval p50 us", "x defaults")
            print(f"{head[0]:<12} {head[1]:>8} {head[2]:>8} {head[3]:>12} {head[4]:>11}")
            for n in ports:
                w = sorted(wall[n])
                pairs = zip(wall[n], wall["defaults"], strict=True)
                ratio = statistics.median(a / b for a, b in pairs)
                row[n] = {
                    "p50_us": statistics.median(w) * 1e6,
                    "p99_us": w[int(len(w) * 0.99) - 1] * 1e6,
                    "eval_p50_us": statistics.median(evals[n]),
                    "ratio": ratio,
                }
                print(f"{n:<12} {row[n]['p50_us']:>8.0f} {row[n]['p99_us']:>8.0f} "
                      f"{row[n]['eval_p50_us']:>12.0f} {ratio:>11.3f}")  # fmt: skip
            results["scenarios"][scenario] = {"identical": same, "rows": row}
            if not same:
                raise SystemExit("the servers disagreed on a decision")
    finally:
        for proc in procs:
            proc.kill()
    results["load_after"] = os.getloadavg()[0]
    print(f"\nload average after: {results['load_after']:.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
