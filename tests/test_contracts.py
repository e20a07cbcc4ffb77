"""Action contracts in policy data: validated before publishing, enforced by the real OPA."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pygate import LocalOpa, PolicyDataError
from pygate.engine._opa_process import PROJECT_ROOT
from pygate.policy._contracts import FIELD_TYPES, MEANINGS, validate_contracts
from pygate.policy._policy_data import load_policy_data

DATA = PROJECT_ROOT / "rego" / "pygate" / "config" / "data.json"


def _data() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DATA.read_text())
    return loaded


def test_the_shipped_contracts_are_valid() -> None:
    data = load_policy_data(DATA)
    assert set(data["services"]["finance"]["actions"]) >= {"transfer", "recommendation", "text"}
    assert data["services"]["assistant"]["undeclared_action"] == "require_review"


def _broken(path: list[str], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(_data())
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (["services", "finance", "actions", "Transfer"], {"arguments": {}}, "actions.Transfer"),
        (["services", "finance", "actions", "pay ment"], {"arguments": {}}, "actions.pay ment"),
        (["services", "finance", "actions", "transfer", "arguments", "amount", "type"], "money",
         "actions.transfer.arguments.amount.type"),
        (["services", "finance", "actions", "transfer", "arguments", "amount", "meaning"], "cash",
         "actions.transfer.arguments.amount.meaning"),
        (["services", "finance", "actions", "transfer", "arguments", "to", "pattern"], "([",
         "actions.transfer.arguments.to"),
        (["services", "finance", "actions", "transfer", "arguments", "amount", "maximum"], "9",
         "actions.transfer.arguments.amount.maximum"),
        (["services", "finance", "actions", "transfer", "arguments", "amount", "colour"], "red",
         "actions.transfer.arguments.amount.colour"),
        (["services", "finance", "actions", "recommendation", "one_of_required"], ["symbol"],
         "actions.recommendation"),
        (["services", "finance", "undeclared_action"], "allow", "undeclared_action"),
        (["services", "finance", "actions"], ["transfer"], "actions"),
        (["user_facts", "account_status", "enum"], "active", "account_status.enum"),
        (["user_facts", "role", "type"], "enum", "role.type"),
        (["identifiers", "asset", "pattern"], "[", "asset.pattern"),
        (["identifiers", "asset", "canonical"], "nfkc", "asset.canonical"),
    ],
)  # fmt: skip
def test_malformed_contracts_are_named(path: list[str], value: Any, where: str) -> None:
    with pytest.raises(PolicyDataError) as caught:
        validate_contracts(_broken(path, value))
    assert caught.value.field.startswith(where), caught.value


def test_policy_validate_cli_refuses_a_malformed_contract(tmp_path: Path) -> None:
    bad = tmp_path / "data.json"
    bad.write_text(
        json.dumps(_broken(["services", "finance", "actions", "Pay"], {"arguments": {}}))
    )
    done = subprocess.run(
        [sys.executable, "-m", "pygate", "policy", "validate", "--json", str(bad)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "actions.Pay" in done.stdout + done.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "pygate", "policy", "validate", "--json", str(DATA)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["actions"] >= 10


def _get(opa: LocalOpa, path: str) -> Any:
    with urllib.request.urlopen(f"{opa.url}/v1/data/{path}", timeout=30) as response:
        return json.load(response)["result"]


def test_python_and_rego_agree_on_meanings_and_types(opa: LocalOpa) -> None:
    assert sorted(_get(opa, "pygate/contracts/meanings")) == sorted(MEANINGS)
    assert sorted(_get(opa, "pygate/contracts/field_types")) == sorted(FIELD_TYPES)


def test_a_new_action_is_a_data_change(tmp_path: Path, policy_copy: Path) -> None:
    """Declare ``quote`` for finance in data only: it passes validation and the gate allows it."""
    data_path = policy_copy / "pygate" / "config" / "data.json"
    data = json.loads(data_path.read_text())
    data["services"]["finance"]["actions"]["quote"] = {
        "arguments": {"asset": {"type": "string", "meaning": "asset", "required": True}}
    }
    data_path.write_text(json.dumps(data))
    load_policy_data(data_path)
    local = LocalOpa(policy_copy, supervise=False).start()
    try:
        user = {"id": "q", "role": "analyst", "account_status": "active", "transaction_limit": 10}
        items = [
            {
                "output": {"type": "quote", "asset": a},
                "user": user,
                "context": {"service": "finance"},
            }
            for a in ("GLOBEX", "ACME", "GLOBEX ")
        ]
        request = urllib.request.Request(
            f"{local.url}/v1/data/pygate/gate/batch",
            data=json.dumps({"input": {"items": items}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            decisions = json.load(response)["result"]["decisions"]
    finally:
        local.stop()
    # The new action inherits the restricted-asset check through its field's meaning.
    assert [d["allowed"] for d in decisions] == [True, False, False]
    assert [d["primary"]["policy_id"] for d in decisions[1:]] == ["FIN-004", "FIN-006"]
