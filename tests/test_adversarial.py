"""The gate attacked: every family of variants of the seed's refusals stays refused.

Against the real OPA, three ways in: the library (``Gate``), the CLI (``pygate check``) and a
bare HTTP POST to OPA's batch entry point (what a client in any language does). Next to
each family, controls that must be allowed, so a refusal is never just a broken gate.
Property tests (hypothesis) mutate refused outputs and assert that no mutation passes.
"""

# ruff: noqa: E501  -- variant tables read best one variant to a line

from __future__ import annotations

import json
import random
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pygate import Gate, LocalOpa, Refused
from pygate.engine._opa_process import PROJECT_ROOT
from tests import adversarial_cases as cases
from tests.conftest import load_script

JSON = dict[str, Any]

# (service, user, families): the seed's refusals and the variants that must not pass.
FAMILIES: dict[str, tuple[str, JSON, dict[str, list[JSON]]]] = {
    "FIN-002 transfer limit": ("finance", cases.ANALYST, cases.transfer_over_limit()),
    "FIN-004 restricted asset": ("finance", cases.ANALYST, cases.restricted_asset()),
    "AST-001 code for an analyst": ("assistant", cases.ANALYST, cases.code_for_analyst()),
    "AST-002 tool allowlist": ("assistant", cases.ANALYST, cases.tool_outside_allowlist()),
}

CASES = [
    pytest.param(service, user, family, outputs, id=f"{policy}: {family}")
    for policy, (service, user, families) in FAMILIES.items()
    for family, outputs in families.items()
]

# Outputs that must be allowed: the same shapes, carrying what the policies allow.
CONTROLS: list[tuple[str, JSON, JSON]] = [
    *[("finance", cases.ANALYST, o) for o in cases.envelopes("transfer", {"amount": 500, "to": "acct-2"})],
    *[("finance", cases.ANALYST, o) for o in cases.envelopes("recommendation", {"asset": "GLOBEX"})],
    *[("finance", cases.ANALYST, o) for o in cases.envelopes("buy", {"asset_id": "initech", "quantity": 3})],
    *[("assistant", cases.ANALYST, o) for o in cases.envelopes("analyze", {"topic": "rates"})],
    *[("assistant", cases.ANALYST, o) for o in cases.envelopes("explain", {})],
    *[("assistant", cases.DEVELOPER, o) for o in cases.code_for_analyst()["places"]
      if o != {"type": "code"}],  # no text: refused as malformed, for everyone
    ("finance", cases.ANALYST, {"type": "transfer", "amount": 1000, "to": "acct-2", "currency": "USD"}),
    ("finance", cases.ANALYST, {"type": "Transfer", "amount": 999.5}),
    ("assistant", cases.ANALYST, {"role": "assistant", "content": "The capital of France is Paris."}),
    ("assistant", cases.ANALYST, {"id": "msg", "type": "message", "role": "assistant",
                                  "content": [{"type": "text", "text": "Use a function to compute it."}]}),
]  # fmt: skip


def _item(service: str, user: JSON, output: JSON) -> JSON:
    # usage_today 0: the quota is not what refuses here.
    return {"output": output, "user": user, "context": {"service": service, "usage_today": 0}}


def bare_batch(opa: LocalOpa, items: list[JSON]) -> list[JSON]:
    """POST items to OPA's batch rule with nothing but the standard library."""
    request = urllib.request.Request(
        f"{opa.url}/v1/data/pygate/gate/batch",
        data=json.dumps({"input": {"items": items}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        decisions: list[JSON] = json.load(response)["result"]["decisions"]
    return decisions


def _passed(decisions: list[JSON], outputs: list[JSON]) -> list[str]:
    return [json.dumps(o, ensure_ascii=False) for d, o in zip(decisions, outputs, strict=True)
            if d.get("allowed") is not False]  # fmt: skip


COUNTS: dict[str, int] = {}


@pytest.mark.parametrize(("service", "user", "family", "outputs"), CASES)
def test_family_refused_by_a_bare_http_post(
    opa: LocalOpa, service: str, user: JSON, family: str, outputs: list[JSON]
) -> None:
    assert len(outputs) >= 20, f"family {family} has only {len(outputs)} variants"
    decisions = bare_batch(opa, [_item(service, user, o) for o in outputs])
    assert _passed(decisions, outputs) == []
    assert all(d["refusals"] for d in decisions)


@pytest.mark.parametrize(("service", "user", "family", "outputs"), CASES)
def test_family_refused_through_the_library(
    make_gate: Callable[..., Gate], service: str, user: JSON, family: str, outputs: list[JSON]
) -> None:
    gate = make_gate(service)
    tag = uuid.uuid4().hex[:8]
    # A user id per item, so that no item is refused for the daily quota alone.
    decisions = gate.evaluate_many(
        [(o, {**user, "id": f"{user['id']}-{tag}-{i}"}) for i, o in enumerate(outputs)]
    )
    passed = [json.dumps(o) for d, o in zip(decisions, outputs, strict=True) if d.allowed]
    assert passed == []


@pytest.mark.parametrize("family", sorted(cases.host_facts()))
def test_host_facts_outside_their_declared_form_refuse(opa: LocalOpa, family: str) -> None:
    users = cases.host_facts()[family]
    assert len(users) >= 8
    out = {"type": "transfer", "amount": 10, "to": "acct-2"}
    decisions = bare_batch(opa, [{"output": out, "user": u, "context": {"service": "finance"}}
                                 for u in users])  # fmt: skip
    for user, decision in zip(users, decisions, strict=True):
        assert decision["allowed"] is False, user
        assert any(r["policy_id"] == "GATE-014" and f"user.{family}" in r["reason"]
                   for r in decision["refusals"]), decision["refusals"]  # fmt: skip


def test_controls_are_allowed(opa: LocalOpa) -> None:
    decisions = bare_batch(opa, [_item(s, u, o) for s, u, o in CONTROLS])
    refused = [(o, d["refusals"]) for (_, _, o), d in zip(CONTROLS, decisions, strict=True)
               if not d["allowed"]]  # fmt: skip
    assert refused == []
    # Every control was read as at least one canonical action, and reported.
    assert all(d["actions"] for d in decisions)


def test_every_call_of_an_output_is_reported_and_gated(opa: LocalOpa) -> None:
    out = {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "transfer", "arguments": '{"amount": 500, "to": "a"}'}},
        {"type": "function", "function": {"name": "Transfer", "arguments": '{"amount": 5000, "to": "b"}'}},
    ]}  # fmt: skip
    [decision] = bare_batch(opa, [_item("finance", cases.ANALYST, out)])
    assert decision["allowed"] is False
    assert [r["policy_id"] for r in decision["refusals"]] == ["FIN-002"]
    assert [(a["name"], a["arguments"]["amount"]) for a in decision["actions"]] == [
        ("transfer", 500), ("transfer", 5000)]  # fmt: skip
    assert all("strings" not in a for a in decision["actions"])


def test_reasons_name_what_was_refused(opa: LocalOpa) -> None:
    outs = [{"type": "payment", "amount": 5},
            {"type": "transfer", "amount": 5, "to": "a", "memo2": "x"},
            {"type": "recommendation", "asset": "NYSE:ACME"},
            {"type": "function", "function": {"name": "transfer", "arguments": "{"}},
            {"weird": 1}]  # fmt: skip
    decisions = bare_batch(opa, [_item("finance", cases.ANALYST, o) for o in outs])
    reasons = [d["primary"]["reason"] for d in decisions]
    assert reasons == [
        "action 'payment' is not declared for service 'finance'",
        "action 'transfer': unknown argument 'memo2'",
        'asset of recommendation is not a valid asset identifier: "NYSE:ACME"',
        "cannot read the output: output: the openai.chat.tool_call call's arguments are not a JSON object",
        'cannot read the output: output: cannot read an object with keys ["weird"]',
    ]


def test_cli_refuses_each_family(opa: LocalOpa, tmp_path: Any) -> None:
    """One process per family (the CLI is slow to start): the family's first three variants."""
    for service, user, families in FAMILIES.values():
        for family, outputs in families.items():
            for output in outputs[:3]:
                doc = {"output": output, "user": {**user, "id": f"cli-{uuid.uuid4().hex[:8]}"},
                       "context": {"service": service}}  # fmt: skip
                run = subprocess.run(
                    [sys.executable, "-m", "pygate", "--opa-url", opa.url,
                     "--audit-db", str(tmp_path / "a.db"), "check", "--service", service,
                     "--json", "-"],
                    input=json.dumps(doc), capture_output=True, text=True, timeout=120,
                )  # fmt: skip
                assert run.returncode == 1, (family, output, run.stdout, run.stderr)
                assert json.loads(run.stdout)["allowed"] is False


# Property tests: mutations of refused outputs.

_REFUSED: list[tuple[str, JSON, JSON]] = [
    ("finance", cases.ANALYST, {"type": "transfer", "amount": 5000, "to": "acct-2"}),
    (
        "finance",
        cases.ANALYST,
        {"type": "tool_call", "action": "transfer", "arguments": {"amount": 5000}},
    ),
    ("finance", cases.ANALYST, {"type": "recommendation", "asset": "ACME"}),
    ("finance", cases.ANALYST, {"type": "buy", "asset_id": "umbrella", "quantity": 1}),
    ("assistant", cases.ANALYST, {"type": "tool_call", "action": "delete_records"}),
    ("assistant", cases.ANALYST, {"type": "text", "text": cases.CODE_SNIPPETS[0]}),
    ("assistant", cases.ANALYST, {"type": "code", "text": "x = 1"}),
]
# Strings under these keys are names and identifiers: the mutations change them.
_NAME_KEYS = {"type", "action", "name", "asset", "asset_id"}
_NOISE = [" ", "\t", "\n", *cases.INVISIBLES, "\u0430", "\u0435", ":"]


def _mutate_strings(x: Any, rnd: random.Random, key: str | None = None) -> Any:
    if isinstance(x, dict):
        items = [(k, _mutate_strings(v, rnd, k)) for k, v in x.items()]
        rnd.shuffle(items)  # key order
        return dict(items)
    if isinstance(x, list):
        return [_mutate_strings(v, rnd) for v in x]
    if isinstance(x, str) and key in _NAME_KEYS:
        choice = rnd.randrange(4)
        if choice == 0:
            return rnd.choice([x.upper(), x.lower(), x.title(), x.swapcase(), x.capitalize()])
        if choice == 1:
            at = rnd.randrange(len(x) + 1)
            return x[:at] + rnd.choice(_NOISE) + x[at:]
    return x


def _wrap(x: JSON, how: int) -> JSON:
    return [
        x,
        {"actions": [x]},
        {"actions": [{"type": "text", "text": "ok"}, x]},
        {"role": "assistant", "content": [x]},
        {"output": [x]},
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": [x]}}]},
        {"wrapper": x},
        {"type": "text", "text": "ok", "extra": x},
        {"actions": [{"actions": [x]}]},
    ][how]


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    base=st.sampled_from(range(len(_REFUSED))),
    seed=st.integers(0, 2**32 - 1),
    wraps=st.lists(st.integers(0, 8), max_size=3),
)
def test_no_mutation_of_a_refused_output_is_allowed(
    opa: LocalOpa, base: int, seed: int, wraps: list[int]
) -> None:
    service, user, output = _REFUSED[base]
    mutated = _mutate_strings(output, random.Random(seed))
    for how in wraps:
        mutated = _wrap(mutated, how)
    [decision] = bare_batch(opa, [_item(service, user, mutated)])
    assert decision["allowed"] is False, json.dumps(mutated, ensure_ascii=False)


def test_the_rego_copy_of_the_families_is_current(opa: LocalOpa, tmp_path: Any) -> None:
    """rego/pygate/canonical/families_test.rego is what scripts/adversarial-rego.py writes."""
    module = load_script("adversarial_rego", PROJECT_ROOT / "scripts" / "adversarial-rego.py")
    fresh = tmp_path / "families_test.rego"
    fresh.write_text(module.render())
    subprocess.run([str(opa.opa_bin), "fmt", "-w", str(fresh)], check=True, timeout=60)
    assert fresh.read_text() == module.TARGET.read_text(), "run scripts/adversarial-rego.py"


def test_guard_on_a_transfer_tool_is_limit_checked(make_gate: Callable[..., Gate]) -> None:
    """The issue's first family: guard's tool_call shape now meets the transfer limit."""
    gate = make_gate("finance")
    ran: list[float] = []

    @gate.guard
    def transfer(amount: float, to: str) -> str:
        ran.append(amount)
        return f"sent {amount} to {to}"

    user = {**cases.ANALYST, "id": f"guard-{uuid.uuid4().hex[:8]}"}
    assert transfer(500, "acct-2", user=user) == "sent 500 to acct-2"
    with pytest.raises(Refused) as refused:
        transfer(5000, "acct-2", user=user)
    assert refused.value.decision.policy_id == "FIN-002"

    @gate.guard
    def payment(amount: float) -> None:  # not declared for finance
        ran.append(amount)

    with pytest.raises(Refused) as undeclared:
        payment(1, user=user)
    assert undeclared.value.decision.policy_id == "GATE-010"
    assert ran == [500]
