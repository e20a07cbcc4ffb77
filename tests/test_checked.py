"""checked: pygate's copy of what it validated, which OPA trusts instead of validating again."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from pygate import LocalOpa
from pygate.engine._opa_process import PROJECT_ROOT, find_opa_binary
from pygate.policy._bundle import merge_policy_data
from pygate.policy._checked import (
    build_checked,
    contract_ok,
    entry_ok,
    field_spec_ok,
    policy_ok,
    re2_safe,
    with_checked,
)
from pygate.policy._manage import push_policy_data
from tests.test_cli import pygate

DATA = PROJECT_ROOT / "rego" / "pygate" / "config" / "data.json"

# Specs on both sides of every check of field_spec_ok, and patterns Python and RE2 disagree on.
SPECS: list[Any] = [
    {"type": "string"}, {"type": "number", "minimum": 0}, {"type": "integer", "maximum": 3},
    {"type": "boolean", "required": True}, {"type": "string", "enum": ["a", 1, None]},
    {"type": "string", "pattern": "^[A-Z]{3,5}$"}, {"type": "string", "meaning": "asset"},
    {"type": "string", "description": "x", "min_length": 1, "max_length": 9},
    {"type": "number", "exclusive_minimum": 0},
    {"type": "money"}, {"type": None}, {}, "string", None, [], {"type": "string", "colour": 1},
    {"type": "string", "meaning": "cash"}, {"type": "string", "meaning": None},
    {"type": "string", "required": None}, {"type": "string", "required": "yes"},
    {"type": "string", "enum": None}, {"type": "string", "enum": "a"},
    {"type": "string", "pattern": None}, {"type": "string", "pattern": 5},
    {"type": "string", "pattern": "(["}, {"type": "string", "pattern": "(?=a)b"},
    {"type": "string", "pattern": "(?<!a)b"}, {"type": "string", "pattern": r"(a)\1"},
    {"type": "string", "pattern": "a{1001}"}, {"type": "string", "pattern": r"\p{L}+"},
    {"type": "string", "pattern": "[[:alpha:]]"}, {"type": "string", "pattern": "(?x) a"},
    {"type": "string", "pattern": "a*+"}, {"type": "string", "pattern": r"\Z"},
    {"type": "string", "pattern": "(?i)abc"}, {"type": "string", "pattern": "(?P<n>a)"},
    {"type": "number", "minimum": "0"}, {"type": "number", "maximum": True},
    {"type": "number", "min_length": None}, {"type": "string", "description": 5},
]  # fmt: skip


def _rego_ok(specs: list[Any], rule: str = "data.pygate.contracts.field_spec_ok") -> set[int]:
    """The positions of specs that a Rego check accepts (a real OPA)."""
    query = f"{{i | some i, s in input.specs; {rule}(s)}}"
    done = subprocess.run(
        [str(find_opa_binary()), "eval", "-b", str(PROJECT_ROOT / "rego"), "--stdin-input",
         "--format", "raw", query],
        input=json.dumps({"specs": specs}), capture_output=True, text=True, check=True,
    )  # fmt: skip
    return set(json.loads(done.stdout))


def test_python_is_never_looser_than_the_rego() -> None:
    python_ok = {i for i, spec in enumerate(SPECS) if field_spec_ok(spec)}
    rego_ok = _rego_ok(SPECS)
    assert python_ok <= rego_ok, [SPECS[i] for i in python_ok - rego_ok]
    # and not so strict that the shipped kinds of spec miss the fast path
    assert python_ok >= set(range(9))


_POLICY = {
    "id": "P-1", "set": "finance", "reason": "r", "action": "log_refusal", "priority": 5,
    "title": "t",
    "conditions": [{"type": "field_compare", "field": "amount", "op": "gt", "value": 1}],
}  # fmt: skip
_CONDITIONS: list[Any] = [
    {"type": "account_status", "in": ["frozen"]}, {"type": "amount_exceeds_limit"},
    {"type": "asset_restricted", "field": "asset_id"}, {"type": "role_not_in", "roles": []},
    {"type": "field_in", "field": "type", "values": ["transfer"]},
    {"type": "field_not_in", "field": "to", "values": []},
    {"type": "user_attribute_in", "attribute": "role", "values": ["x"]},
    {"type": "text_matches", "field": "text", "pattern": "(?i)secret"},
    {"type": "account_status", "in": "frozen"}, {"type": "amount_exceeds_limit", "field": ""},
    {"type": "asset_restricted", "field": 5}, {"type": "role_not_in"},
    {"type": "field_compare", "field": "a", "op": "bigger", "value": 1},
    {"type": "field_compare", "field": "a", "op": "gt", "value": "1"},
    {"type": "field_in", "field": "", "values": []}, {"type": "field_not_in", "field": "to"},
    {"type": "user_attribute_in", "attribute": "", "values": []},
    {"type": "text_matches", "field": "text", "pattern": "(["},
    {"type": "text_matches", "field": "text", "pattern": "(?=x)"}, {"type": "nope"}, "x", None,
]  # fmt: skip
POLICIES: list[Any] = [
    _POLICY,
    *[{**_POLICY, "conditions": [c]} for c in _CONDITIONS],
    *[{**_POLICY, key: bad} for key in ("id", "set", "reason", "action") for bad in ("", None, 5)],
    *[{**_POLICY, key: ""} for key in ("title", "description", "suggestion", "message")],
    {**_POLICY, "priority": "1"}, {**_POLICY, "conditions": []}, {**_POLICY, "conditions": {}},
    "policy", None,
]  # fmt: skip


def test_python_is_never_looser_than_the_rego_on_declarative_policies() -> None:
    python_ok = {i for i, policy in enumerate(POLICIES) if policy_ok(policy)}
    rego_ok = _rego_ok(POLICIES, "data.pygate.declarative._valid")
    assert python_ok <= rego_ok, [POLICIES[i] for i in python_ok - rego_ok]
    assert python_ok >= set(range(9))


ENTRIES: list[Any] = [
    {"policy_sets": ["finance"]}, {"packages": ["acme.pay"]},
    {"policy_sets": ["a"], "packages": ["b"]}, {}, {"policy_sets": []},
    {"policy_sets": "finance"}, {"policy_sets": [""]}, {"policy_sets": [5]},
    {"policy_sets": ["a"], "packages": None}, {"policy_sets": None}, "finance", None, [],
]  # fmt: skip


def test_python_is_never_looser_than_the_rego_on_service_entries() -> None:
    python_ok = {i for i, entry in enumerate(ENTRIES) if entry_ok(entry)}
    assert python_ok <= _rego_ok(ENTRIES, "data.pygate.gate._entry_ok")
    assert python_ok == {0, 1, 2}


def test_patterns_rego_reads_differently_are_not_copied() -> None:
    for pattern in ["(?=a)b", r"(a)\1", "a{1001}", r"\p{L}", "[[:alpha:]]", "(?x) a", "a*+",
                    r"[\b]", "[a[:digit:]]"]:  # fmt: skip
        assert not re2_safe(pattern), pattern
    for pattern in ["^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$", r"^\d+\.\d{2}$", "(?i)abc", "",
                    "[a-z*+]", "a[:=]b", "[]a]", r"\bkey\s*[:=]"]:  # fmt: skip
        assert re2_safe(pattern), pattern


def test_contract_ok() -> None:
    assert contract_ok({"arguments": {"a": {"type": "string"}}, "one_of_required": ["a"]})
    assert not contract_ok({"arguments": {"a": {"type": "string"}}, "one_of_required": ["b"]})
    assert not contract_ok({"arguments": {"a": {"type": "money"}}})
    assert not contract_ok({"arguments": []})
    assert not contract_ok("transfer")


def test_only_what_passes_is_copied() -> None:
    good = {"arguments": {"amount": {"type": "number"}}}
    data = {
        "services": {
            "finance": {
                "actions": {"transfer": good, "broken": {"arguments": {"x": {"type": "?"}}}}
            },
            "empty": {"policy_sets": ["x"]},
        },
        "user_facts": {"role": {"type": "string"}},
    }
    assert build_checked(data) == {
        "services": {
            "empty": {"policy_sets": ["x"], "packages": []},
            "finance": {
                "actions": {"transfer": good},
                "field_meanings": {"transfer": {}},
                "meanings": {"transfer": {}},
            },
        },
        "user_facts": {"role": {"type": "string"}},
    }
    assert "user_facts" not in build_checked({"user_facts": {"role": {"type": "enum"}}})
    assert with_checked({"daily_quota": 3, "checked": {"stale": 1}}) == {"daily_quota": 3}
    assert with_checked({"services": {}}) == {"services": {}, "checked": {"services": {}}}


def test_the_shipped_data_carries_a_current_copy() -> None:
    data = json.loads(DATA.read_text())
    assert data["checked"] == build_checked(data), "rewrite it with `pygate policy index`"
    # every contract and the user_facts of the shipped data take the fast path
    for name, entry in data["services"].items():
        assert data["checked"]["services"][name]["actions"] == entry["actions"]
        assert data["checked"]["services"][name]["policy_sets"] == entry["policy_sets"]
    assert data["checked"]["user_facts"] == data["user_facts"]
    assert data["checked"]["declarative_policies"] == data["declarative_policies"]


def _unchecked(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    data = json.loads(DATA.read_text())
    data.pop("checked")
    data["user_facts"]["role"]["enum"].append("auditor")
    path = tmp_path / "data.json"
    path.write_text(json.dumps(data))
    return data, path


def test_bundle_build_and_policy_index_write_the_copy(tmp_path: Path) -> None:
    data, path = _unchecked(tmp_path)
    assert merge_policy_data(tmp_path / "none", [path])["checked"] == build_checked(data)
    done = pygate("policy", "index", str(path))
    assert done.returncode == 0, done.stderr
    assert json.loads(path.read_text())["checked"] == build_checked(data)
    assert json.loads(path.read_text())["checked"]["user_facts"]["role"]["enum"][-1] == "auditor"


def test_policy_push_writes_the_copy(policy_copy: Path, tmp_path: Path) -> None:
    data, path = _unchecked(tmp_path)
    with LocalOpa(policy_copy, supervise=False, as_bundle=False) as local:
        loaded = push_policy_data(path, local.url)
    assert loaded["checked"] == build_checked(data)
