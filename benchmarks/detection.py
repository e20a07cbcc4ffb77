"""Recall and false-positive rate of the bundle's code and credential detection.

    .venv/bin/python benchmarks/detection.py [--opa-url URL] [--json] [--verbose]

Runs the labelled corpora in ``tests/corpus/`` (``code.jsonl``: code vs prose answers;
``credentials.jsonl``: secrets vs clean text) through a REAL OPA serving the repo's
``rego/`` (started here unless ``--opa-url`` names one), using the bundle's own decision:
each text is sent as an assistant answer (``{"type": "text", "text": ...}``) for a user
without a code role, in one query to ``data.pygate.gate.batch``. A code snippet counts as
detected when the decision carries ``AST-001`` (code needs a code role); a secret when it
carries ``AST-DATA-001`` (the rules-as-data credential policy). So the figures are those
of the shipped ``code_patterns`` and credential condition, exactly as any service querying
the bundle gets them.

Targets (issue 12): recall >= 98 %, false positives <= 2 %; ``tests/test_detection.py``
asserts them.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"

CODE_POLICY = "AST-001"
CREDENTIAL_POLICY = "AST-DATA-001"
USER = {"id": "detection-bench", "role": "analyst", "account_status": "active",
        "transaction_limit": 1000}  # fmt: skip
CONTEXT = {"service": "assistant", "usage_today": 0}


def load(name: str) -> list[dict[str, str]]:
    """One corpus: ``{"text", "label", "kind"}`` per line."""
    with (CORPUS / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def decide(url: str, texts: list[str]) -> list[set[str]]:
    """The refusing policy ids for each text, from one batch query to the real OPA."""
    items = [{"output": {"type": "text", "text": t}, "user": USER, "context": CONTEXT}
             for t in texts]  # fmt: skip
    body = json.dumps({"input": {"items": items}}).encode()
    request = urllib.request.Request(
        f"{url}/v1/data/pygate/gate/batch", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        decisions = json.loads(response.read())["result"]["decisions"]
    if len(decisions) != len(texts):
        raise RuntimeError(f"OPA answered {len(decisions)} decisions for {len(texts)} texts")
    return [{r["policy_id"] for r in d["refusals"]} for d in decisions]


HELD_OUT = "holdout2/"


def score(rows: list[dict[str, str]], found: list[bool], positive: str) -> dict[str, Any]:
    """Recall over the positive label, false-positive rate over the rest, and the misses.

    ``held_out`` repeats the two rates for the rows written after the patterns were tuned
    (``kind`` starting ``holdout2/``): the estimate of how they do on unseen text.
    """
    result = _rates(rows, found, positive)
    held = [(r, f) for r, f in zip(rows, found, strict=True) if r["kind"].startswith(HELD_OUT)]
    if held:
        part = _rates([r for r, _ in held], [f for _, f in held], positive)
        keys = ("positives", "negatives", "recall", "false_positive_rate")
        result["held_out"] = {k: part[k] for k in keys}
    return result


def _rates(rows: list[dict[str, str]], found: list[bool], positive: str) -> dict[str, Any]:
    pos = [(r, f) for r, f in zip(rows, found, strict=True) if r["label"] == positive]
    neg = [(r, f) for r, f in zip(rows, found, strict=True) if r["label"] != positive]
    missed = [r for r, f in pos if not f]
    false = [r for r, f in neg if f]
    return {
        "positives": len(pos),
        "negatives": len(neg),
        "recall": round(1 - len(missed) / len(pos), 4),
        "false_positive_rate": round(len(false) / len(neg), 4),
        "kinds": len({r["kind"].split("/")[0] for r, _ in pos} - {"holdout", "holdout2"}),
        "missed": [{"kind": r["kind"], "text": r["text"]} for r in missed],
        "false_positives": [{"kind": r["kind"], "text": r["text"]} for r in false],
    }


def measure(url: str) -> dict[str, Any]:
    """Both corpora through the OPA at ``url``."""
    code = load("code.jsonl")
    creds = load("credentials.jsonl")
    code_ids = decide(url, [r["text"] for r in code])
    cred_ids = decide(url, [r["text"] for r in creds])
    return {
        "code": score(code, [CODE_POLICY in ids for ids in code_ids], "code"),
        "credentials": score(creds, [CREDENTIAL_POLICY in ids for ids in cred_ids], "secret"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--opa-url", help="an OPA serving the bundle (default: start one)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--verbose", action="store_true", help="list every miss and FP")
    args = parser.parse_args()
    local = None
    url = args.opa_url
    if url is None:
        sys.path.insert(0, str(ROOT))
        from pygate import LocalOpa

        local = LocalOpa(ROOT / "rego", supervise=False).start()
        url = local.url
    try:
        result = measure(url)
    finally:
        if local is not None:
            local.stop()
    if args.json:
        print(json.dumps(result if args.verbose else {
            k: {f: v for f, v in r.items() if f not in ("missed", "false_positives")}
            for k, r in result.items()}, indent=2))  # fmt: skip
        return
    for name, r in result.items():
        found = r["positives"] - len(r["missed"])
        false = len(r["false_positives"])
        print(f"{name:12} recall {r['recall']:.1%} ({found}/{r['positives']}, {r['kinds']} "
              f"kinds)   false positives {r['false_positive_rate']:.1%} ({false}/"
              f"{r['negatives']})")  # fmt: skip
        if args.verbose:
            for row in r["missed"]:
                print(f"    MISSED  [{row['kind']}] {row['text'][:100]!r}")
            for row in r["false_positives"]:
                print(f"    FALSE+  [{row['kind']}] {row['text'][:100]!r}")
        held = r.get("held_out")
        if held:
            rate = held["false_positive_rate"]
            print(f"{'':12} held out: recall {held['recall']:.1%} of {held['positives']}, "
                  f"false positives {rate:.1%} of {held['negatives']}")  # fmt: skip
        misses = Counter(row["kind"].split("/")[0] for row in r["missed"])
        if misses:
            print(f"    misses by kind: {dict(misses)}")


if __name__ == "__main__":
    main()
