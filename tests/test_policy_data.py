"""Rules-as-data: pygate rejects malformed policies by name and field; OPA refuses them too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pygate import AuditLog, Gate, LocalOpa, PolicyDataError, validate_policies, validate_policy
from pygate.engine._opa_process import PROJECT_ROOT
from pygate.policy._policy_data import load_policy_data
from pygate.policy._policy_index import with_index
from tests.conftest import ANALYST

GOOD: dict[str, Any] = {
    "id": "T-1",
    "set": "finance",
    "reason": "too big",
    "action": "require_review",
    "conditions": [{"type": "field_compare", "field": "amount", "op": "gt", "value": 10}],
}


def test_shipped_policy_data_is_valid() -> None:
    data = load_policy_data(PROJECT_ROOT / "rego/pygate/config/data.json")
    assert data["declarative_policies"], "the repo ships at least one rules-as-data policy"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"conditions": [{"type": "moon_phase"}]}, "conditions[0].type", "unknown condition"),
        ({"conditions": []}, "conditions", "at least 1"),
        ({"reason": 5}, "reason", "string"),
        ({"action": None}, "action", "string"),
        ({"set": ""}, "set", "at least 1"),
        ({"extra": 1}, "extra", "not permitted"),
        (
            {"conditions": [{"type": "field_compare", "field": "amount", "op": "bigger",
                             "value": 1}]},
            "conditions[0].op", "gt",
        ),
        (
            {"conditions": [{"type": "field_compare", "field": "amount", "op": "gt",
                             "value": "1"}]},
            "conditions[0].value", "int",
        ),
        ({"conditions": [{"type": "field_in", "field": "x"}]}, "conditions[0].values", "Field"),
        (
            {"conditions": [{"type": "text_matches", "field": "t", "pattern": "(unclosed"}]},
            "conditions[0].pattern", "invalid regex",
        ),
        ({"conditions": ["field_in"]}, "conditions[0]", ""),
    ],
)  # fmt: skip
def test_malformed_policy_names_policy_and_field(
    change: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(PolicyDataError) as info:
        validate_policy({**GOOD, **change})
    assert info.value.policy_id == "T-1"
    assert info.value.field == field
    assert words in info.value.problem


def test_missing_id_is_named_by_position() -> None:
    raw = {k: v for k, v in GOOD.items() if k != "id"}
    with pytest.raises(PolicyDataError) as info:
        validate_policies([GOOD, raw])
    assert info.value.policy_id == "#1"
    assert info.value.field == "id"


def test_duplicate_ids_are_rejected() -> None:
    with pytest.raises(PolicyDataError, match="duplicate"):
        validate_policies([GOOD, GOOD])


def _with_policies(policy_dir: Path, policies: list[Any]) -> None:
    path = policy_dir / "pygate/config/data.json"
    data = json.loads(path.read_text())
    data["declarative_policies"] = policies
    path.write_text(json.dumps(with_index(data)))  # as `pygate policy index` would


def test_declarative_policy_decides_in_opa(policy_copy: Path, audit: AuditLog) -> None:
    _with_policies(policy_copy, [GOOD])
    with (
        LocalOpa(policy_copy, supervise=False) as local,
        Gate("finance", opa_url=local.url, audit=audit) as gate,
    ):
        assert gate.evaluate({"type": "transfer", "amount": 5}, ANALYST).allowed
        refused = gate.evaluate({"type": "transfer", "amount": 50}, ANALYST)
    assert refused.policy_id == "T-1"
    assert refused.refusals[0].source == "data"
    assert refused.action == "require_review"


@pytest.mark.parametrize(
    "bad",
    [
        {**GOOD, "conditions": [{"type": "moon_phase"}]},
        {**GOOD, "conditions": []},
        {**GOOD, "conditions": [{"type": "text_matches", "field": "t", "pattern": "(x"}]},
        {k: v for k, v in GOOD.items() if k != "set"},
    ],
    ids=["unknown-type", "no-conditions", "bad-regex", "no-set"],
)
def test_invalid_policy_that_reaches_opa_refuses(
    policy_copy: Path, audit: AuditLog, bad: dict[str, Any]
) -> None:
    """The seed returned False (allow) for an unknown condition type: we refuse."""
    _with_policies(policy_copy, [bad])
    with LocalOpa(policy_copy, supervise=False) as local:
        # a policy without a set applies to every service, so the assistant is refused too
        service = "finance" if "set" in bad else "assistant"
        with Gate(service, opa_url=local.url, audit=audit) as gate:
            decision = gate.evaluate({"type": "tool_call", "action": "analyze"}, ANALYST)
    assert not decision.allowed
    assert "invalid policy" in decision.reason
    assert decision.refusals[0].invalid is True
