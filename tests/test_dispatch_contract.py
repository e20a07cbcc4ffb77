"""Dispatch and the action contracts, held to their exact answers (issue 18).

Pure functions, no OPA: a Decision is built by hand, as the gate would return it. Each test
pins what a mutant of ``pygate/_dispatch.py`` or ``pygate/policy/_contracts.py`` would change:
which call runs with which arguments, and which field an error names.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pygate import Decision, DispatchError, PolicyDataError, Refused, adispatch, dispatch
from pygate._dispatch import call_args, decided_call, wants_actions
from pygate._models import CanonicalAction
from pygate.policy._contracts import (
    validate_contracts,
    validate_identifiers,
    validate_services,
    validate_user_facts,
)


def _action(name: str, kind: str = "tool_call", **arguments: Any) -> CanonicalAction:
    return CanonicalAction(kind=kind, name=name, arguments=arguments, source="test", path=[])


def _allowed(*actions: CanonicalAction) -> Decision:
    return Decision(allowed=True, actions=list(actions))


# --- call_args: the decided arguments placed on the parameters -------------------------------


def test_call_args_places_every_kind_of_parameter() -> None:
    def plain(a: int, b: int = 0, *, c: int = 0) -> None: ...
    def pos_only(a: int, /, b: int) -> None: ...
    def star(a: int, *rest: int, **extra: int) -> None: ...

    assert call_args(plain, {"a": 1, "b": 2, "c": 3}) == ([], {"a": 1, "b": 2, "c": 3})
    assert call_args(pos_only, {"a": 1, "b": 2}) == ([1], {"b": 2})
    # with *rest decided, the parameters before it go by position
    assert call_args(star, {"a": 1, "rest": [2, 3], "extra": {"k": 4}}) == ([1, 2, 3], {"k": 4})
    assert call_args(star, {"a": 1}) == ([], {"a": 1})
    with pytest.raises(DispatchError, match=r"^argument 'rest' of star must be a list$"):
        call_args(star, {"a": 1, "rest": 2})
    with pytest.raises(DispatchError, match=r"^argument 'extra' of star must be an object$"):
        call_args(star, {"a": 1, "extra": [1]})
    with pytest.raises(
        DispatchError, match=r"^decided argument\(s\) x, y are not parameters of plain$"
    ):
        call_args(plain, {"a": 1, "y": 2, "x": 3})


# --- dispatch: only what was decided, checked before anything runs ----------------------------


def test_dispatch_runs_the_decided_calls_in_order_and_skips_answers() -> None:
    ran: list[tuple[str, Any]] = []

    def pay(to: str, amount: int) -> str:
        ran.append(("pay", (to, amount)))
        return f"paid {amount}"

    def Notify(msg: str) -> str:  # noqa: N802 - a tool named in mixed case
        ran.append(("notify", msg))
        return "ok"

    decision = _allowed(
        _action("pay", to="a", amount=5),
        _action("answer", kind="answer", text="hi"),
        _action("notify", msg="m"),
    )
    assert dispatch(decision, {"pay": pay, "Notify": Notify}) == ["paid 5", "ok"]
    assert ran == [("pay", ("a", 5)), ("notify", "m")]


def test_dispatch_refuses_before_running_anything() -> None:
    ran: list[str] = []

    def pay(amount: int) -> None:
        ran.append("pay")

    refused = Decision(allowed=False, reason="no")
    with pytest.raises(Refused):
        dispatch(refused, {"pay": pay})
    with pytest.raises(DispatchError, match="holds no action to run"):
        dispatch(_allowed(_action("answer", kind="answer")), {"pay": pay})
    with pytest.raises(DispatchError, match=r"^no tool registered for decided action\(s\) a, z$"):
        dispatch(_allowed(_action("pay", amount=1), _action("z"), _action("a")), {"pay": pay})
    with pytest.raises(DispatchError, match=r"^two tools share the canonical name 'pay'$"):
        dispatch(_allowed(_action("pay", amount=1)), {"pay": pay, "PAY": pay})
    with pytest.raises(DispatchError, match="not parameters of pay"):
        dispatch(_allowed(_action("pay", amount=1), _action("pay", amunt=2)), {"pay": pay})
    assert ran == []


def test_dispatch_passes_positional_only_arguments_by_position() -> None:
    def first(a: int, /, b: int = 0) -> tuple[int, int]:
        return a, b

    async def afirst(a: int, /) -> int:
        return a

    decision = _allowed(_action("first", a=1, b=2))
    assert dispatch(decision, {"first": first}) == [(1, 2)]
    assert asyncio.run(adispatch(_allowed(_action("afirst", a=7)), {"afirst": afirst})) == [7]


def test_adispatch_awaits_only_awaitables() -> None:
    async def slow(n: int) -> int:
        return n * 2

    def fast(n: int) -> int:
        return n + 1

    decision = _allowed(_action("slow", n=2), _action("fast", n=2))
    assert asyncio.run(adispatch(decision, {"slow": slow, "fast": fast})) == [4, 3]
    with pytest.raises(Refused):
        asyncio.run(adispatch(Decision(allowed=False), {"slow": slow}))


def test_decided_call_needs_exactly_one_call_of_that_name() -> None:
    def pay(amount: int) -> None: ...

    assert decided_call(_allowed(_action("pay", amount=3)), pay) == ([], {"amount": 3})
    for decision in (
        _allowed(),
        _allowed(_action("pay", amount=1), _action("pay", amount=2)),
        _allowed(_action("pay", amount=1), _action("other")),
        _allowed(_action("pay", kind="action", amount=1)),
        _allowed(_action("refund", amount=1)),
    ):
        with pytest.raises(DispatchError) as err:
            decided_call(decision, pay)
        assert str(err.value) == (
            f"the decision holds {len(decision.actions)} action(s), not one call of 'pay'"
        )


def test_wants_actions_is_one_required_positional_parameter() -> None:
    def none() -> None: ...
    def one(actions: list[Any]) -> None: ...
    def one_pos_only(actions: list[Any], /) -> None: ...
    def one_with_default(actions: list[Any] | None = None) -> None: ...
    def two(a: Any, b: Any) -> None: ...
    def kw_only(*, actions: Any) -> None: ...

    runs = (none, one, one_pos_only, one_with_default, two, kw_only)
    assert [wants_actions(f) for f in runs] == [False, True, True, False, False, False]
    assert wants_actions(print) is False  # a builtin without one required parameter
    assert wants_actions(dict) is False  # no signature at all: the legacy call run()


# --- contracts: the field a malformed declaration names ---------------------------------------


def _service(**extra: Any) -> dict[str, Any]:
    return {"policy_sets": ["finance"], **extra}


@pytest.mark.parametrize(
    ("services", "where", "field", "problem"),
    [
        ([], "services", "services", "must be an object of service entries"),
        ({"pay": _service(actions={"Pay": {"arguments": {}}})}, "service pay", "actions.Pay",
         "action names are lower-case ASCII: ^[a-z][a-z0-9_.-]{0,63}$"),
        ({"pay": _service(actions={"9x": {"arguments": {}}})}, "service pay", "actions.9x", None),
        ({"pay": {"actions": {}}}, "service pay", "(entry)",
         "Value error, a service names at least one of policy_sets or packages"),
        ({"pay": _service(actions={"send": {"arguments": {"a": {"type": "text"}}}})},
         "service pay", "actions.send.arguments.a.type", None),
        ({"pay": _service(actions={"send": {"arguments": {}, "one_of_required": ["x"]}})},
         "service pay", "actions.send",
         "Value error, one_of_required names 'x', which is not an argument"),
        ({"pay": _service(actions={"send": {"arguments": {"a": {"type": "string",
                                                                  "pattern": "("}}}})},
         "service pay", "actions.send.arguments.a", None),
        ({"pay": _service(surprise=1)}, "service pay", "surprise", None),
    ],
)  # fmt: skip
def test_a_malformed_service_is_named(
    services: Any, where: str, field: str, problem: str | None
) -> None:
    with pytest.raises(PolicyDataError) as err:
        validate_services(services)
    assert (err.value.policy_id, err.value.field) == (where, field)
    if problem is not None:
        assert err.value.problem == problem


def test_well_formed_services_and_facts_pass() -> None:
    services = validate_services(
        {
            "pay": _service(
                actions={
                    "send.money": {
                        "arguments": {"a": {"type": "number", "required": True}},
                        "one_of_required": ["a"],
                    }
                },
                undeclared_action="require_review",
            ),
            "mine": {"packages": ["acme.x"]},
        }
    )
    assert services["pay"].undeclared_action == "require_review"
    assert services["pay"].actions["send.money"].arguments["a"].required is True
    assert services["mine"].packages == ["acme.x"]
    facts = validate_user_facts({"tier": {"type": "string", "enum": ["a", "b"]}})
    assert facts["tier"].enum == ["a", "b"]


def test_a_malformed_user_fact_or_identifier_is_named() -> None:
    with pytest.raises(PolicyDataError) as facts:
        validate_user_facts([])
    assert (facts.value.policy_id, facts.value.field) == ("user_facts", "user_facts")
    assert facts.value.problem == "must be an object of field specs"
    with pytest.raises(PolicyDataError) as fact:
        validate_user_facts({"tier": {"type": "string", "min_length": -1}})
    assert (fact.value.policy_id, fact.value.field) == ("user_facts", "tier.min_length")
    assert fact.value.problem == "Input should be greater than or equal to 0"
    cases: list[tuple[Any, str, str]] = [
        ([], "identifiers", "must be an object"),
        ({"asset": "x"}, "asset.pattern", "must be a string"),
        ({"asset": {"pattern": 5}}, "asset.pattern", "must be a string"),
        ({"asset": {"pattern": "("}}, "asset.pattern", "invalid regex: "),
        ({"asset": {"pattern": "a", "canonical": "title"}}, "asset.canonical",
         "must be upper, lower or exact"),
        ({"asset": {"pattern": "a", "extra": 1}}, "asset", "unknown keys ['extra']"),
        ({"asset": {"pattern": "a", "canonical": "upper", "x": 1}}, "asset", "unknown keys ['x']"),
    ]  # fmt: skip
    for raw, field, problem in cases:
        with pytest.raises(PolicyDataError) as err:
            validate_identifiers(raw)
        assert (err.value.policy_id, err.value.field) == ("identifiers", field)
        assert err.value.problem.startswith(problem)
    for canonical in ("upper", "lower", "exact"):
        validate_identifiers({"asset": {"pattern": "a", "canonical": canonical}})
    validate_identifiers({"asset": {"pattern": "a"}})


def test_validate_contracts_checks_each_part_present() -> None:
    validate_contracts({})
    for part, bad in [("services", []), ("user_facts", []), ("identifiers", [])]:
        with pytest.raises(PolicyDataError) as err:
            validate_contracts({part: bad})
        assert err.value.policy_id == part
