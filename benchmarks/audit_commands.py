"""Time every `pygate audit` question on the demo data plus a generated history.

    .venv/bin/python benchmarks/audit_commands.py [--records 100000] [--runs 3] [--json]

Builds a scratch audit log (never the configured one): runs `pygate demo` into it, appends
`pygate audit generate --records N`, then times each command end to end as a user runs it
(a fresh process each time, so CLI start-up is included) and prints the median of --runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYGATE = str(Path(sys.executable).parent / "pygate")

COMMANDS = [
    ["audit", "summary", "--json"],
    ["audit", "refusals", "--json"],
    ["audit", "rates", "--by", "hour", "--json"],
    ["audit", "rates", "--by", "day", "--json"],
    ["audit", "rates", "--by", "service", "--json"],
    ["audit", "rates", "--by", "user", "--json"],
    ["audit", "rates", "--by", "policy", "--json"],
    ["audit", "policies", "--json"],
    ["audit", "followups", "--window", "30m", "--json"],
    ["audit", "health", "--json"],
    ["approvals", "list", "--json"],
    ["audit", "verify", "--json"],
    ["audit", "export", "--format", "jsonl", "--out", "{tmp}/export.jsonl"],
    ["audit", "export", "--format", "csv", "--out", "{tmp}/export.csv"],
    ["audit", "report", "--out", "{tmp}/report.html", "--json"],
    ["--version"],
]


def _run(args: list[str], env: dict[str, str], tmp: str) -> float:
    argv = [PYGATE, *(a.format(tmp=tmp) for a in args)]
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr[-500:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="pygate-bench-")
    env = {**os.environ, "PYGATE_AUDIT_DB": f"{tmp}/audit.db"}
    try:
        started = time.perf_counter()
        subprocess.run(
            [PYGATE, "demo", "--json"], env=env, capture_output=True, check=False, timeout=300
        )
        demo_s = time.perf_counter() - started
        started = time.perf_counter()
        subprocess.run(
            [PYGATE, "audit", "generate", "--records", str(args.records), "--append"],
            env=env,
            check=True,
            capture_output=True,
            timeout=600,
        )
        gen_s = time.perf_counter() - started
        rows = []
        for command in COMMANDS:
            times = [_run(command, env, tmp) for _ in range(args.runs)]
            rows.append(
                {
                    "command": "pygate " + " ".join(command).replace("{tmp}", "$TMP"),
                    "median_s": round(statistics.median(times), 2),
                    "max_s": round(max(times), 2),
                }
            )
        shutil.copy(f"{tmp}/audit.db", f"{tmp}/prune.db")
        prune_env = {**env, "PYGATE_AUDIT_DB": f"{tmp}/prune.db"}
        prune_s = _run(["audit", "prune", "--older-than", "15", "--yes", "--json"], prune_env, tmp)
        verify_s = _run(["audit", "verify"], prune_env, tmp)
        rows.append(
            {
                "command": "pygate audit prune --older-than 15 --yes (once)",
                "median_s": round(prune_s, 2),
                "max_s": round(prune_s, 2),
            }
        )
        rows.append(
            {
                "command": "pygate audit verify (after the prune, once)",
                "median_s": round(verify_s, 2),
                "max_s": round(verify_s, 2),
            }
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "records": args.records,
        "runs": args.runs,
        "demo_s": round(demo_s, 1),
        "generate_s": round(gen_s, 1),
        "commands": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"demo data + {args.records:,} generated decisions "
        f"(demo {demo_s:.1f} s, generate {gen_s:.1f} s); median of {args.runs} runs"
    )
    print("| command | median s | max s |\n|---|---|---|")
    for row in rows:
        print(f"| `{row['command']}` | {row['median_s']} | {row['max_s']} |")


if __name__ == "__main__":
    main()
