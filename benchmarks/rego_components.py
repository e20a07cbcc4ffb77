"""Where a decision's Rego time goes: each part of pygate's bundle taken out in turn.

    .venv/bin/python benchmarks/rego_components.py [--rounds 5] [--only transfer] [--json F]

The decision (``data.pygate.gate.decision``) is evaluated by ``opa bench`` on the repository's
``rego/`` and on copies with one part removed from the refusals the gate collects (the copies
are built in a temporary folder; nothing in ``rego/`` changes):

* ``no declarative``: the rules-as-data policies (on the raw output and on each action);
* ``no contracts``: default deny and argument contracts (``contracts.refusals``);
* ``no policy sets``: the seed's Rego policy sets (finance, assistant);
* and, as queries of the full bundle, ``canonical.actions`` alone (reading the output into
  canonical actions) and the two-rule policy of ``benchmarks/two_rules``.

For each variant it reports OPA's median evaluation time (rounds interleaved, shuffled, so
the machine's load hits every row alike), the median per-round ratio to the two-rule policy,
and the number of expressions OPA evaluated (``opa eval --profile``: a count, the same on
any machine and under any load). "Removing X saves" is full minus the variant.
These copies are not policies anyone should run: a copy without contracts allows
undeclared actions. They exist to show what each part of the protection costs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from opa_bench import TWO_RULES, scenario_inputs  # noqa: E402

from pygate.engine._opa_process import find_opa_binary  # noqa: E402

GATE = "pygate/gate/gate.rego"
EVALUATED = (
    "_evaluated_refusals := (((_rego_refusals | _package_refusals) | "
    "declarative.refusals_for(_policy_sets, input.output, input.user)) | "
    "_declarative_on_actions) | contracts.refusals"
)
# variant -> [(file, old text, new text)]
ABLATIONS: dict[str, list[tuple[str, str, str]]] = {
    "no declarative": [
        (
            GATE,
            EVALUATED,
            "_evaluated_refusals := (_rego_refusals | _package_refusals) | contracts.refusals",
        ),
    ],
    "no contracts": [
        (GATE, EVALUATED, EVALUATED.replace(" | contracts.refusals", "")),
    ],
    "no policy sets": [
        (
            GATE,
            EVALUATED,
            EVALUATED.replace("(_rego_refusals | _package_refusals)", "_package_refusals"),
        ),
        # _input_ok asks whether each set's refusals are defined, which computes them:
        # the copy answers that without evaluating the package.
        (GATE, "\t_ := data.pygate.policies[set_name].refusals", "\tis_string(set_name)"),
    ],
}
SCENARIOS = (
    "transfer within limit",
    "OpenAI chat completion: transfer tool call",
    "Anthropic message: text and a transfer tool_use",
    "assistant tool call with code",
)
DECISION = "data.pygate.gate.decision"


def build_variants(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (policy folder, query)."""
    rego = ROOT / "rego"
    variants: dict[str, tuple[Path, str]] = {
        "full decision": (rego, DECISION),
        "canonical.actions only": (rego, "data.pygate.canonical.actions"),
        "two-rule policy": (TWO_RULES, "data.two_rules.decision"),
    }
    for name, edits in ABLATIONS.items():
        folder = tmp / name.replace(" ", "_")
        shutil.copytree(rego, folder, ignore=shutil.ignore_patterns("*_test.rego"))
        for rel, old, new in edits:
            path = folder / rel
            text = path.read_text()
            if old not in text:
                raise SystemExit(
                    f"{name}: the text to replace is gone from {rel}; update ABLATIONS"
                )
            path.write_text(text.replace(old, new, 1))
        variants[name] = (folder, DECISION)
    return variants


def bench(opa: str, folder: Path, query: str, input_path: Path) -> float:
    """OPA's median evaluation time in µs."""
    done = subprocess.run(
        [opa, "bench", "--optimize-store-for-read-speed", "--format", "json", "--benchmem=false",
         "-b", str(folder), "--input", str(input_path), query],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    out = json.loads(done.stdout)
    per_op = out["T"] / out["N"]
    return (
        float(out.get("Extra", {}).get("histogram_timer_rego_query_eval_ns_median", per_op)) / 1e3
    )


def expressions(opa: str, folder: Path, query: str, input_path: Path) -> int:
    """How many expressions OPA evaluated for one query (deterministic)."""
    done = subprocess.run(
        [opa, "eval", "--profile", "--profile-limit", "100000", "--format", "json",
         "-b", str(folder),
         "--input", str(input_path), query],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return sum(int(p["num_eval"]) for p in json.loads(done.stdout).get("profile", []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", help="run the scenarios whose name contains this")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    opa = str(find_opa_binary())
    inputs = scenario_inputs()
    scenarios = [s for s in SCENARIOS if not args.only or args.only in s]
    results: dict[str, Any] = {"load_before": os.getloadavg()[0], "scenarios": {}}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        variants = build_variants(tmp)
        for scenario in scenarios:
            input_path = tmp / "input.json"
            input_path.write_text(json.dumps(inputs[scenario]))
            times: dict[str, list[float]] = {v: [] for v in variants}
            ratios: dict[str, list[float]] = {v: [] for v in variants}
            for _ in range(args.rounds):
                order = list(variants)
                random.shuffle(order)
                got = {v: bench(opa, *variants[v], input_path) for v in order}
                for v in variants:
                    times[v].append(got[v])
                    ratios[v].append(got[v] / got["two-rule policy"])
            counts = {v: expressions(opa, *variants[v], input_path) for v in variants}
            full = statistics.median(times["full decision"])
            print(f"\n{scenario} ({args.rounds} rounds, load {os.getloadavg()[0]:.1f})")
            head = ("variant", "eval us", "x two rules", "expressions", "saves us")
            print(f"{head[0]:<24} {head[1]:>9} {head[2]:>12} {head[3]:>12} {head[4]:>9}")
            rows = {}
            for v in variants:
                med = statistics.median(times[v])
                rows[v] = {
                    "eval_us": med,
                    "ratio_two_rules": statistics.median(ratios[v]),
                    "expressions": counts[v],
                }
                saves = f"{full - med:>9.0f}" if v in ABLATIONS else f"{'':>9}"
                print(f"{v:<24} {med:>9.0f} {rows[v]['ratio_two_rules']:>12.1f} "
                      f"{counts[v]:>12} {saves}")  # fmt: skip
            results["scenarios"][scenario] = rows
    results["load_after"] = os.getloadavg()[0]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
