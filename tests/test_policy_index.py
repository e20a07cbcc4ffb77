"""declarative_index: built by pygate, published with the data, and read by Rego."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pygate import Gate, LocalOpa, PolicyDataError
from pygate.engine._opa_process import PROJECT_ROOT
from pygate.policy._bundle import merge_policy_data
from pygate.policy._manage import push_policy_data
from pygate.policy._policy_index import build_index, check_index, with_index
from tests.conftest import ANALYST
from tests.test_cli import pygate

DATA = PROJECT_ROOT / "rego/pygate/config/data.json"


def _policy(pid: str, set_name: str, *conditions: dict[str, Any]) -> dict[str, Any]:
    return {"id": pid, "set": set_name, "reason": f"{pid} refuses", "action": "log_refusal",
            "priority": 60, "conditions": list(conditions)}  # fmt: skip


def _type_in(*types: Any) -> dict[str, Any]:
    return {"type": "field_in", "field": "type", "values": list(types)}


def _over(n: int) -> dict[str, Any]:
    return {"type": "field_compare", "field": "amount", "op": "gt", "value": n}


def test_the_shipped_index_is_current() -> None:
    check_index(json.loads(DATA.read_text()), str(DATA))


def test_policies_are_filed_by_set_and_output_type() -> None:
    policies = [
        _policy("T", "finance", _type_in("transfer", "payment"), _over(5)),
        _policy("A", "finance", _over(5)),
        _policy("N", "finance", _type_in("transfer", 3)),  # a non-string type: any type
        {**_policy("X", "finance", _type_in("transfer")), "priority": "high"},  # invalid: all
        _policy("S", "assistant", _type_in("text")),
        {"id": "no-set", "reason": "r", "action": "a", "conditions": [_type_in("x")]},
        5,
    ]
    assert build_index(policies) == {
        "count": 7,
        "sets": {
            "finance": {"all": [1, 2, 3], "by_type": {"payment": [0], "transfer": [0]}},
            "assistant": {"all": [], "by_type": {"text": [4]}},
        },
        "unscoped": [5, 6],
    }


def test_with_index_adds_only_for_policies_and_check_index_catches_a_stale_one() -> None:
    assert with_index({"daily_quota": 3, "declarative_index": {"count": 9}}) == {"daily_quota": 3}
    data = with_index({"declarative_policies": [_policy("A", "finance", _over(1))]})
    check_index(data)
    stale = {**data, "declarative_policies": []}
    with pytest.raises(PolicyDataError) as info:
        check_index(stale, "x.json")
    assert info.value.field == "declarative_index"
    assert "pygate policy index" in info.value.problem
    with pytest.raises(PolicyDataError):
        build_index({"not": "a list"})


def test_bundle_data_carries_a_fresh_index(tmp_path: Path) -> None:
    extra = tmp_path / "more.json"
    policies = [_policy("B-1", "finance", _type_in("refund"))]
    extra.write_text(json.dumps({"declarative_policies": policies}))
    merged = merge_policy_data(PROJECT_ROOT / "rego", [extra])
    assert merged["declarative_index"] == build_index(policies)


def test_bundle_build_refuses_a_folder_with_a_stale_index(policy_copy: Path) -> None:
    path = policy_copy / "pygate/config/data.json"
    data = json.loads(path.read_text())
    data["declarative_policies"] = data["declarative_policies"][:1]
    path.write_text(json.dumps(data))
    with pytest.raises(PolicyDataError, match="declarative_index"):
        merge_policy_data(policy_copy, [])


def test_cli_index_writes_checks_and_validate_reports_stale(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    empty = {"count": 0, "sets": {}, "unscoped": []}
    path.write_text(json.dumps({"declarative_policies": [_policy("A", "finance", _over(1))],
                                "declarative_index": empty}))  # fmt: skip
    stale = pygate("policy", "validate", str(path))
    assert stale.returncode == 2
    assert "declarative_index" in stale.stderr
    assert "Traceback" not in stale.stderr
    assert pygate("policy", "index", "--check", str(path)).returncode == 2
    done = pygate("policy", "index", "--json", str(path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ok": True, "path": str(path), "policies": 1,
                                       "sets": ["finance"], "written": True}  # fmt: skip
    check_index(json.loads(path.read_text()))
    assert pygate("policy", "index", "--check", str(path)).returncode == 0
    assert pygate("policy", "validate", str(path)).returncode == 0


def test_push_sends_a_fresh_index(policy_copy: Path, tmp_path: Path) -> None:
    policies = [_policy("P-1", "finance", _type_in("transfer"), _over(100))]
    path = tmp_path / "push.json"
    path.write_text(json.dumps({"declarative_policies": policies}))
    with LocalOpa(policy_copy, supervise=False, as_bundle=False) as local:
        loaded = push_policy_data(path, local.url)
        assert loaded["declarative_index"] == build_index(policies)
        with Gate("finance", opa_url=local.url, audit=None) as gate:
            assert gate.evaluate({"type": "transfer", "amount": 50}, ANALYST).allowed
            refused = gate.evaluate({"type": "transfer", "amount": 500}, ANALYST)
    assert [r.policy_id for r in refused.refusals] == ["P-1"]


def _many() -> list[Any]:
    types = ["transfer", "payment", "refund", "recommendation"]
    policies: list[Any] = []
    for i in range(120):
        set_name = ("finance", "assistant", "other")[i % 3]
        if i % 4 == 3:
            policies.append(_policy(f"G-{i}", set_name, _over(100 + i)))
        else:
            policies.append(_policy(f"G-{i}", set_name, _type_in(types[i % 4]), _over(100 + i)))
    policies.append({**_policy("BAD", "finance", _type_in("refund")), "priority": "high"})
    return policies


@pytest.mark.parametrize("indexed", [True, False], ids=["indexed", "scanned"])
def test_indexed_and_scanned_decisions_agree(policy_copy: Path, indexed: bool) -> None:
    path = policy_copy / "pygate/config/data.json"
    data = {**json.loads(path.read_text()), "declarative_policies": _many()}
    data = with_index(data) if indexed else {**data, "declarative_index": None}
    path.write_text(json.dumps(data))
    outputs = [{"type": t, "amount": a} for t in ("transfer", "payment", "refund", "recommendation",
                                                   "text") for a in (50, 150, 5000)]  # fmt: skip
    with LocalOpa(policy_copy, supervise=False) as local, \
            Gate("finance", opa_url=local.url, audit=None) as gate:  # fmt: skip
        got = [sorted({r.policy_id for r in gate.evaluate(o, ANALYST).refusals}) for o in outputs]
    expected = _expected(outputs)
    assert got == expected


def _expected(outputs: list[dict[str, Any]]) -> list[list[str]]:
    """What the policies say, computed in Python: the same for both ways of reaching them."""
    out = []
    for o in outputs:
        ids = {"BAD"}  # invalid, so it refuses for the whole finance set
        if o["type"] == "transfer" and o["amount"] > 1000:
            ids.add("FIN-002")
        if o["type"] == "recommendation":
            ids.add("FIN-003")  # no asset
        if o["type"] in ("payment", "refund"):
            ids.add("GATE-010")  # not declared for finance
        if o["type"] == "recommendation":
            ids.add("GATE-012")  # an amount is not one of its arguments
        if o["type"] == "text":
            ids.add("GATE-009")  # text without a text cannot be read
        for p in _many():
            if p["id"] == "BAD" or p["set"] != "finance":
                continue
            conds = p["conditions"]
            typed = [c for c in conds if c["type"] == "field_in"]
            if typed and o["type"] not in typed[0]["values"]:
                continue
            if o["amount"] > conds[-1]["value"]:
                ids.add(p["id"])
        out.append(sorted(ids))
    return out


def test_a_stale_index_refuses_instead_of_skipping(policy_copy: Path) -> None:
    path = policy_copy / "pygate/config/data.json"
    data = json.loads(path.read_text())
    data["declarative_policies"].append(_policy("NEW", "finance", _over(1)))  # index not rebuilt
    path.write_text(json.dumps(data))
    with LocalOpa(policy_copy, supervise=False) as local, \
            Gate("finance", opa_url=local.url, audit=None) as gate:  # fmt: skip
        refused = gate.evaluate({"type": "transfer", "amount": 5}, ANALYST)
    assert not refused.allowed
    assert refused.policy_id == "invalid-policy"
    assert "declarative_index" in (refused.reason or "")
