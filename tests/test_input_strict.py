"""Input that cannot confuse the gate (issue 12, section 4).

Each attack is refused as policy ``pygate.input`` naming the field, audited, before a quota
unit is reserved or OPA is asked: a gate pointed at a dead OPA still answers ``pygate.input``
(not the engine fallback), and the user's reservation counter is untouched afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pygate import AuditLog, Gate, InputError, LocalOpa, PolicyDataError, Settings
from pygate._core import ENGINE_POLICY_ID, INPUT_POLICY_ID
from pygate._input import MAX_DEPTH, check_document, check_user_id, loads
from pygate.audit._base import today
from pygate.policy._policy_data import load_policy_data
from tests.conftest import ANALYST


def _nested(depth: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        doc = {"n": doc}
    return {"type": "tool_call", "action": "analyze", "args": doc}


def _refused_before_opa(gate: Gate, audit: AuditLog, user_id: str, field: str, *args: Any) -> None:
    decision = gate.evaluate(*args)
    assert not decision.allowed
    assert decision.policy_id == INPUT_POLICY_ID, decision.reason
    assert decision.reason.startswith(f"Invalid input: {field}")
    assert audit.tail(1)[0].audit_id == decision.audit_id
    # nothing was reserved for this user: the next reservation starts from zero
    assert audit.reserve(user_id, today()) == 0


def test_500_deep_output_is_refused_before_anything_is_reserved(
    opa: LocalOpa, audit: AuditLog
) -> None:
    # Before: OPA decided, then the audit write raised RecursionError and the reserved
    # quota unit was never given back.
    with Gate("assistant", opa_url=opa.url, audit=audit) as gate:
        deep = _nested(500)
        _refused_before_opa(gate, audit, ANALYST["id"], "output.args", deep, ANALYST)
        reason = gate.evaluate(deep, ANALYST).reason
        assert reason.endswith(f"...: nested deeper than {MAX_DEPTH} levels")


def test_depth_limit_is_exact_and_configurable(opa: LocalOpa, audit: AuditLog) -> None:
    with Gate("assistant", opa_url=opa.url, audit=audit) as gate:
        # output(1) > args(2) > ... : MAX_DEPTH levels in all are accepted
        assert gate.evaluate(_nested(MAX_DEPTH - 1), ANALYST).policy_id != INPUT_POLICY_ID
        assert gate.evaluate(_nested(MAX_DEPTH), ANALYST).policy_id == INPUT_POLICY_ID
    shallow = Settings(service="assistant", opa_url=opa.url, max_depth=4)
    with Gate(settings=shallow, audit=audit) as gate:
        assert gate.evaluate(_nested(4), ANALYST).policy_id == INPUT_POLICY_ID
        deep_ctx = {"a": {"b": {"c": {"d": {}}}}}
        assert "context.a.b.c.d" in gate.evaluate(_nested(1), ANALYST, deep_ctx).reason


ATTACKS: list[tuple[str, Any, Any, Any, str]] = [
    (
        "duplicate key in OpenAI arguments",
        {"type": "tool_call", "action": "analyze", "arguments": '{"amount": 1, "amount": 5000}'},
        ANALYST,
        None,
        "output.arguments",
    ),
    (
        "duplicate key in nested tool_calls arguments",
        {
            "tool_calls": [
                {
                    "type": "function",
                    "function": {
                        "name": "transfer",
                        "arguments": '{"to": "a", "x": {"amount": 1, "amount": 9}}',
                    },
                }
            ]
        },
        ANALYST,
        None,
        "output.tool_calls[0].function.arguments",
    ),
    (
        "lone surrogate in a value",
        {"type": "text", "text": "ok \ud800"},
        ANALYST,
        None,
        "output.text",
    ),
    ("lone surrogate in a key", {"type": "x", "\udc00amount": 1}, ANALYST, None, "output"),
    ("lone surrogate as text output", "hi \udfff", ANALYST, None, "output.text"),
    ("lone surrogate in user", {"type": "x"}, {**ANALYST, "role": "a\ud83d"}, None, "user.role"),
    ("lone surrogate in context", {"type": "x"}, ANALYST, {"note": "\ud800"}, "context.note"),
    ("context is a list", {"type": "x"}, ANALYST, ["service", "finance"], "context"),
    ("context is a string", {"type": "x"}, ANALYST, "finance", "context"),
    ("context is a number", {"type": "x"}, ANALYST, 0, "context"),
    ("context is false", {"type": "x"}, ANALYST, False, "context"),
    (
        "NaN deep in the output",
        {"type": "x", "a": [{"b": float("inf")}]},
        ANALYST,
        None,
        "output.a[0].b",
    ),
]


@pytest.mark.parametrize(("name", "output", "user", "context", "field"), ATTACKS)
def test_ambiguous_input_is_refused_before_anything_is_reserved_or_sent(
    dead_url: str,
    audit: AuditLog,
    name: str,
    output: Any,
    user: Any,
    context: Any,
    field: str,
) -> None:
    # A dead OPA: had the gate asked it, the answer would be the engine fallback.
    with Gate("assistant", opa_url=dead_url, audit=audit) as gate:
        _refused_before_opa(gate, audit, ANALYST["id"], field, output, user, context)


def test_valid_embedded_arguments_and_plain_strings_pass_the_checks() -> None:
    check_document({"arguments": '{"a": 1, "b": {"c": 2}}'}, "output")
    check_document({"arguments": "{not json at all"}, "output")
    check_document({"text": '{"a": 1, "a": 2}'}, "output")  # only `arguments` is parsed


def test_oversize_output_is_refused_and_only_its_digest_is_audited(
    dead_url: str, audit: AuditLog
) -> None:
    capped = Settings(service="assistant", opa_url=dead_url, max_output_bytes=1000)
    secret = "x" * 600 + "SECRET-TAIL" + "y" * 600
    with Gate(settings=capped, audit=audit) as gate:
        _refused_before_opa(gate, audit, ANALYST["id"], "output", secret, ANALYST)
        record = audit.tail(1)[0]
        assert record.output["not_stored"] is True
        assert record.output["bytes"] > 1000
        assert len(record.output["sha256"]) == 64
        assert "SECRET-TAIL" not in json.dumps(record.output)
        # just under the cap is not refused as input (the dead OPA then refuses it)
        assert gate.evaluate("short text", ANALYST).policy_id == ENGINE_POLICY_ID


def test_default_cap_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYGATE_MAX_OUTPUT_BYTES", "2048")
    monkeypatch.setenv("PYGATE_MAX_DEPTH", "10")
    loaded = Settings.load()
    assert (loaded.max_output_bytes, loaded.max_depth) == (2048, 10)


# --- the service is the gate's, not the document's ---------------------------------------


def test_gate_without_a_service_refuses_instead_of_letting_the_document_choose(
    dead_url: str, audit: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYGATE_SERVICE", raising=False)
    with Gate(opa_url=dead_url, audit=audit) as gate:
        out = {"type": "transfer", "amount": 5000}
        _refused_before_opa(gate, audit, "u", "context.service", out, {"id": "u"},
                            {"service": "assistant"})  # fmt: skip
        assert "allow_caller_service" in audit.tail(1)[0].reason


def test_caller_chosen_service_is_an_explicit_opt_in(opa: LocalOpa, audit: AuditLog) -> None:
    with Gate(None, opa_url=opa.url, audit=audit, allow_caller_service=True) as gate:
        decision = gate.evaluate(
            {"type": "transfer", "amount": 10}, ANALYST, {"service": "finance"}
        )
    assert decision.allowed
    assert decision.service == "finance"


def test_configured_service_wins_and_a_conflicting_document_is_refused(
    dead_url: str, audit: AuditLog
) -> None:
    with Gate("finance", opa_url=dead_url, audit=audit) as gate:
        out = {"type": "transfer", "amount": 10}
        _refused_before_opa(gate, audit, ANALYST["id"], "context.service", out, ANALYST,
                            {"service": "assistant"})  # fmt: skip


# --- one person, one quota -----------------------------------------------------------------

BAD_USER_IDS = [
    " ana",
    "ana ",
    "ana\t",
    "\nana",
    "an\u200ba",  # zero-width space
    "an\u200da",  # zero-width joiner
    "\ufeffana",  # byte-order mark
    "ana\u2060",  # word joiner
    "an\u00ada",  # soft hyphen
    "ana\u202e",  # right-to-left override
    "an\x00a",
    "an\x1ba",
    "an\u2028a",  # line separator
    "\uff41\uff4e\uff41",  # fullwidth: NFKC is "ana"
    "\ufb01le",  # the "fi" ligature: NFKC is "file"
    "ana\u00a0b",  # no-break space: NFKC is a space
    "an\u0061\u0301",  # decomposed: NFKC composes it
    "\u2126",  # ohm sign: NFKC is omega
    "ana\u180e",  # Mongolian vowel separator
    "\u3000ana",  # ideographic space
]


@pytest.mark.parametrize("uid", BAD_USER_IDS)
def test_user_ids_that_look_like_another_id_are_refused(
    dead_url: str, audit: AuditLog, uid: str
) -> None:
    with Gate("assistant", opa_url=dead_url, audit=audit) as gate:
        decision = gate.evaluate({"type": "tool_call", "action": "analyze"}, {"id": uid})
    assert decision.policy_id == INPUT_POLICY_ID
    assert "Invalid input: user.id:" in decision.reason


@pytest.mark.parametrize("uid", ["ana", "José", "user@example.com", "a b", "用户42", "42"])
def test_ordinary_user_ids_pass(uid: str) -> None:
    check_user_id(uid)


@settings(max_examples=200, deadline=None)
@given(
    base=st.text(st.characters(categories=["Ll", "Lu", "Nd"]), min_size=1, max_size=12),
    junk=st.sampled_from(["\u200b", "\u200c", "\u200d", "\ufeff", "\u2060", "\x00", "\u202e"]),
    where=st.integers(min_value=0, max_value=12),
)
def test_no_invisible_character_makes_a_second_id(base: str, junk: str, where: int) -> None:
    mutated = base[:where] + junk + base[where:]
    with pytest.raises(InputError) as info:
        check_user_id(mutated)
    assert info.value.field == "user.id"


# --- strict JSON wherever pygate reads JSON ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ('{"x": {"amount": 1, "amount": 2}}', "duplicate key 'amount'"),
        # the key named is the one repeated, not merely the first one read
        ('{"to": "a", "amount": 1, "memo": "m", "amount": 2}', "duplicate key 'amount'"),
        ('{"a": NaN}', "NaN is not a JSON number"),
        ('{"a": -Infinity}', "-Infinity is not a JSON number"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper"),
    ],
)
def test_strict_loads(text: str, problem: str) -> None:
    with pytest.raises(InputError) as info:
        loads(text, "input")
    assert info.value.field == "input"
    assert problem in info.value.problem


def test_opa_answer_with_duplicate_keys_fails_closed(
    fake_opa: Callable[..., str], audit: AuditLog
) -> None:
    body = b'{"result": {"allowed": false, "allowed": true, "refusals": []}}'
    with Gate("finance", opa_url=fake_opa(body=body), audit=audit) as gate:
        decision = gate.evaluate({"type": "transfer", "amount": 1}, ANALYST)
    assert not decision.allowed
    assert decision.fallback
    assert "duplicate key 'allowed'" in decision.reason


def test_policy_data_with_duplicate_keys_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text('{"daily_quota": 100, "daily_quota": 100000}')
    with pytest.raises(PolicyDataError, match="duplicate key 'daily_quota'"):
        load_policy_data(path)


@pytest.mark.parametrize(
    ("uid", "problem"),
    [
        (" ana", "has surrounding whitespace"),
        ("an\u200ba", "holds an invisible or control character U+200B"),
        ("\uff41\uff4e\uff41", "is not in Unicode NFKC form"),
    ],
)
def test_a_refused_user_id_says_what_is_wrong(uid: str, problem: str) -> None:
    with pytest.raises(InputError) as info:
        check_user_id(uid)
    assert (info.value.field, info.value.problem) == ("user.id", problem)
