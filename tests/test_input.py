"""Bad input never allows: the library refuses (audited) naming the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pygate import AuditLog, Gate, InputError
from pygate._core import INPUT_POLICY_ID, normalize_user
from tests.conftest import ANALYST


@pytest.mark.parametrize(
    ("output", "user", "context", "field"),
    [
        ({"type": "transfer", "amount": {1, 2}}, ANALYST, None, "output.amount"),
        ({"type": "transfer", "amount": float("nan")}, ANALYST, None, "output.amount"),
        ({"type": "x", "blob": b"\x00"}, ANALYST, None, "output.blob"),
        ({"type": "x", 3: "int key"}, ANALYST, None, "output"),
        (42, ANALYST, None, "output"),
        ({"type": "transfer", "amount": 1}, {"role": "analyst"}, None, "user.id"),
        ({"type": "transfer", "amount": 1}, {"id": ""}, None, "user.id"),
        ({"type": "transfer", "amount": 1}, {"id": None}, None, "user.id"),
        ({"type": "transfer", "amount": 1}, "ana", None, "user"),
        ({"type": "transfer", "amount": 1}, {"id": "u", "role": 7}, None, "user.role"),
        (
            {"type": "transfer", "amount": 1},
            {"id": "u", "transaction_limit": "1000"},
            None,
            "user.transaction_limit",
        ),
        ({"type": "transfer", "amount": 1}, ANALYST, ["not", "a", "dict"], "context"),
        ({"type": "transfer", "amount": 1}, ANALYST, {"service": "assistant"}, "context.service"),
    ],
)
def test_bad_input_is_refused_and_audited(
    make_gate: Callable[..., Gate],
    audit: AuditLog,
    output: Any,
    user: Any,
    context: Any,
    field: str,
) -> None:
    decision = make_gate("finance").evaluate(output, user, context)
    assert not decision.allowed
    assert decision.policy_id == INPUT_POLICY_ID
    assert f"Invalid input: {field}:" in decision.reason
    assert audit.count() == 1
    assert audit.tail(1)[0].audit_id == decision.audit_id


def test_numeric_user_id_is_accepted_as_text() -> None:
    assert normalize_user({"id": 7})["id"] == "7"
    with pytest.raises(InputError) as info:
        normalize_user({"id": True})
    assert info.value.field == "user.id"


def test_wrong_amount_type_reaches_policy_and_is_refused(
    make_gate: Callable[..., Gate],
) -> None:
    decision = make_gate("finance").evaluate({"type": "transfer", "amount": "5000"}, ANALYST)
    assert not decision.allowed
    assert decision.policy_id == "FIN-003"


def test_secrets_are_masked_in_the_audit_log(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    output = {"type": "tool_call", "action": "analyze", "args": {"api_key": "sk-live-123"}}
    make_gate("assistant").evaluate(output, ANALYST)
    stored = audit.tail(1)[0].output
    assert stored["args"]["api_key"] == "***"
    assert "sk-live-123" not in audit.path.read_bytes().decode(errors="replace")
