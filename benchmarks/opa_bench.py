"""What pygate's Rego costs OPA per decision, against the seed's two rules, scenario by scenario.

    .venv/bin/python benchmarks/opa_bench.py [--rounds 3] [--only transfer] [--json out.json]
                                             [--rego DIR [--rego OLD_DIR ...]] [--store-ast]

For every seed scenario (and a few more shapes: an OpenAI envelope, an assistant tool call with
code or a query in its arguments), runs ``opa bench`` on pygate's bundle
(``data.pygate.gate.decision``) and on ``benchmarks/two_rules`` (``data.two_rules.decision``,
the seed's two refusals written plainly) with the same input document. No HTTP: this is OPA's
own evaluation. Each round runs every (scenario, policy) pair once in a shuffled order, so
both sides of a ratio share the machine's load; the table shows, per scenario, the median over
rounds of OPA's median evaluation time (``timer_rego_query_eval_ns``) and the median of the
per-round ratios pygate ÷ two rules. ``--store-ast`` passes ``--optimize-store-for-read-speed``
to both (OPA then keeps data as Rego values instead of converting what a query reads).
Several ``--rego`` folders (e.g. a ``git archive`` of an older commit) are measured in the same
rounds, so a step's gain is read from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pygate._core import build_input  # noqa: E402
from pygate.cli._demo import scenarios  # noqa: E402
from pygate.engine._opa_process import find_opa_binary  # noqa: E402

TWO_RULES = ROOT / "benchmarks" / "two_rules"
CODE = "```python\nimport os\nos.remove('x')\n```"


def scenario_inputs() -> dict[str, dict[str, Any]]:
    """The seed scenarios plus the shapes the issue names, as gate input documents."""
    docs = {}
    for sc in scenarios("bench"):
        docs[sc.name] = build_input(sc.output, sc.user, {"service": sc.service, "usage_today": 0})
    analyst = {
        "id": "ana",
        "role": "analyst",
        "account_status": "active",
        "transaction_limit": 1000,
    }
    extra = {
        "OpenAI chat completion: transfer tool call": (
            "finance",
            {
                "id": "cc-1",
                "object": "chat.completion",
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "tool_calls",
                        "message": {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {
                                    "id": "c1",
                                    "type": "function",
                                    "function": {
                                        "name": "transfer",
                                        "arguments": '{"amount": 500, "to": "acct-2"}',
                                    },
                                }
                            ],
                        },
                    }
                ],
            },
        ),
        "Anthropic message: text and a transfer tool_use": (
            "finance",
            {
                "id": "msg-1",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": [
                    {"type": "text", "text": "Sending it."},
                    {
                        "type": "tool_use",
                        "id": "tu-1",
                        "name": "transfer",
                        "input": {"amount": 500, "to": "acct-2"},
                    },
                ],
                "stop_reason": "tool_use",
                "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 20},
            },
        ),
        "OpenAI Responses: transfer function_call": (
            "finance",
            {
                "id": "resp-1",
                "object": "response",
                "status": "completed",
                "model": "m",
                "output": [
                    {
                        "type": "function_call",
                        "id": "fc-1",
                        "call_id": "call-1",
                        "name": "transfer",
                        "arguments": '{"amount": 500, "to": "acct-2"}',
                        "status": "completed",
                    }
                ],
                "usage": {"total_tokens": 30},
            },
        ),
        "assistant tool call with code": (
            "assistant",
            {"type": "tool_call", "action": "analyze", "arguments": {"text": CODE}},
        ),
        "assistant tool call with a query": (
            "assistant",
            {
                "type": "tool_call",
                "action": "analyze",
                "arguments": {"query": "q3 revenue by region"},
            },
        ),
    }
    for name, (service, output) in extra.items():
        docs[name] = build_input(output, analyst, {"service": service, "usage_today": 0})
    return docs


def bench_once(
    opa: Path, bundle: Path, query: str, input_path: Path, store_ast: bool
) -> dict[str, float]:
    """One ``opa bench`` run: OPA's median eval time and its ns/op (T/N), in ns."""
    cmd = [str(opa), "bench", "-b", str(bundle), "-i", str(input_path), "--format", "json"]
    cmd += ["--benchmem=false", *(["--optimize-store-for-read-speed"] if store_ast else []), query]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    extra = out.get("Extra", {})
    per_op = out["T"] / out["N"]
    median = float(extra.get("histogram_timer_rego_query_eval_ns_median", per_op))
    return {
        "eval_ns": median,
        "min_ns": float(extra.get("histogram_timer_rego_query_eval_ns_min", median)),
        "op_ns": per_op,
    }


def expressions(opa: Path, bundle: Path, query: str, input_path: Path) -> int:
    """How many expressions OPA evaluates for one decision (``opa eval --profile``).

    Independent of the machine's load: the work a decision is, where ns/op is its price.
    """
    cmd = [str(opa), "eval", "-b", str(bundle), "-i", str(input_path), "--profile"]
    cmd += ["--profile-limit", "100000", "--format", "json", query]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return sum(int(p["num_eval"]) for p in out.get("profile", []))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", action="append", default=[], help="scenario name substring")
    parser.add_argument(
        "--rego",
        type=Path,
        action="append",
        default=[],
        help="pygate's policy dir (default rego/); repeat to compare versions in one run",
    )
    parser.add_argument("--store-ast", action="store_true", help="--optimize-store-for-read-speed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    opa = find_opa_binary()
    regos = args.rego or [ROOT / "rego"]
    labels = [f"rego{i}" if len(regos) > 1 else "pygate" for i in range(len(regos))]
    targets = {
        label: (rego, "data.pygate.gate.decision")
        for label, rego in zip(labels, regos, strict=True)
    }
    targets["two_rules"] = (TWO_RULES, "data.two_rules.decision")
    docs = {
        n: d
        for n, d in scenario_inputs().items()
        if not args.only or any(o in n for o in args.only)
    }
    rnd = random.Random(args.seed)
    results = {n: {t: [] for t in targets} for n in docs}
    started = time.time()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for i, (name, doc) in enumerate(docs.items()):
            paths[name] = Path(tmp) / f"s{i}.json"
            paths[name].write_text(json.dumps(doc))
        for r in range(args.rounds):
            pairs = [(n, t) for n in docs for t in targets]
            rnd.shuffle(pairs)
            for name, which in pairs:
                bundle, query = targets[which]
                results[name][which].append(
                    bench_once(opa, bundle, query, paths[name], args.store_ast)
                )
            print(
                f"round {r + 1}/{args.rounds} done ({time.time() - started:.0f} s)", file=sys.stderr
            )
        exprs = {n: {t: expressions(opa, *targets[t], paths[n]) for t in targets} for n in docs}
    load_after = os.getloadavg()

    rows = []
    for name, res in results.items():
        row: dict[str, Any] = {"scenario": name}
        for label in labels:
            pairs_ = zip(res[label], res["two_rules"], strict=True)
            ratios, min_ratios = [], []
            for p, t in pairs_:
                ratios.append(p["eval_ns"] / t["eval_ns"])
                min_ratios.append(p["min_ns"] / t["min_ns"])
            row[f"{label}_min_ns"] = min(x["min_ns"] for x in res[label])
            row[f"{label}_min_ratio"] = statistics.median(min_ratios)
            row[f"{label}_expressions"] = exprs[name][label]
            row[f"{label}_eval_ns"] = statistics.median(x["eval_ns"] for x in res[label])
            row[f"{label}_op_ns"] = statistics.median(x["op_ns"] for x in res[label])
            row[f"{label}_ratio"] = statistics.median(ratios)
            row[f"{label}_ratio_range"] = [min(ratios), max(ratios)]
        row["two_rules_eval_ns"] = statistics.median(x["eval_ns"] for x in res["two_rules"])
        row["two_rules_min_ns"] = min(x["min_ns"] for x in res["two_rules"])
        row["two_rules_expressions"] = exprs[name]["two_rules"]
        rows.append(row)
    width = max(len(r["scenario"]) for r in rows)
    print(f"\nopa bench, median eval ns per decision, {args.rounds} interleaved rounds")
    load = f"load avg {load_before[0]:.2f} -> {load_after[0]:.2f}"
    print(f"store-ast: {args.store_ast}  {load}")
    for label, rego in zip(labels, regos, strict=True):
        print(f"{label}: {rego}")
    print("median: OPA's median eval ns (ratio: median of per-round ratios to the two rules);")
    print("min: fastest eval seen (ratio of mins, less sensitive to load); expr: expressions")
    head = "".join(
        f"  {label + ' median':>14} {'ratio':>6} {'min':>8} {'ratio':>6} {'expr':>5}"
        for label in labels
    )
    print(f"{'scenario':<{width}}{head}  {'2 rules med':>11} {'min':>7} {'expr':>4}")
    for r in rows:
        cells = "".join(
            f"  {r[f'{label}_eval_ns']:>14,.0f} {r[f'{label}_ratio']:>5.1f}x"
            f" {r[f'{label}_min_ns']:>8,.0f} {r[f'{label}_min_ratio']:>5.1f}x"
            f" {r[f'{label}_expressions']:>5}"
            for label in labels
        )
        print(
            f"{r['scenario']:<{width}}{cells}  {r['two_rules_eval_ns']:>11,.0f}"
            f" {r['two_rules_min_ns']:>7,.0f} {r['two_rules_expressions']:>4}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"rounds": args.rounds, "store_ast": args.store_ast,
                 "rego": [str(r) for r in regos], "load_avg": [load_before, load_after],
                 "rows": rows},
                indent=2,
            )
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
