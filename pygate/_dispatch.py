"""Run exactly what was decided: the canonical actions of an allowed Decision.

OPA reads the model's output (any shape: OpenAI ``tool_calls`` with JSON-string arguments,
Responses ``function_call``, Anthropic ``tool_use``, MCP ``tools/call``, pygate's ``guard``)
into canonical actions and decides on *those*. The helpers here hand those actions to Python
callables, so nothing parses the raw output a second time after the gate: a duplicate key,
an envelope or a spelling the gate read one way cannot be read another way by the executor.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pygate._errors import DispatchError, Refused
from pygate._models import CanonicalAction, Decision

#: Actions of this kind are text for the user, never something to run.
ANSWER_KIND = "answer"


def call_args(
    fn: Callable[..., Any], arguments: Mapping[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """``(args, kwargs)`` that call ``fn`` with the decided ``arguments`` (by parameter name).

    Positional-only parameters, ``*args`` (a list under its own name) and ``**kwargs`` (an
    object under its own name) are placed as ``guard`` recorded them.

    Raises:
        DispatchError: an argument names no parameter of ``fn``, or a ``*args``/``**kwargs``
            value has the wrong JSON type.
    """
    params = inspect.signature(fn).parameters.values()
    remaining = dict(arguments)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    varargs = any(p.kind is p.VAR_POSITIONAL and p.name in remaining for p in params)
    for p in params:
        if p.name not in remaining:
            continue
        value = remaining.pop(p.name)
        if p.kind is p.VAR_POSITIONAL:
            if not isinstance(value, list):
                raise DispatchError(f"argument {p.name!r} of {fn.__name__} must be a list")
            args.extend(value)
        elif p.kind is p.VAR_KEYWORD:
            if not isinstance(value, dict):
                raise DispatchError(f"argument {p.name!r} of {fn.__name__} must be an object")
            kwargs.update(value)
        elif p.kind is p.POSITIONAL_ONLY or (p.kind is p.POSITIONAL_OR_KEYWORD and varargs):
            args.append(value)
        else:
            kwargs[p.name] = value
    if remaining:
        unknown = ", ".join(sorted(remaining))
        raise DispatchError(f"decided argument(s) {unknown} are not parameters of {fn.__name__}")
    return args, kwargs


def _runnable(decision: Decision) -> list[CanonicalAction]:
    if not decision.allowed:
        raise Refused(decision)
    actions = [a for a in decision.actions if a.kind != ANSWER_KIND]
    if not actions:
        raise DispatchError(
            "the decision holds no action to run (is the bundle older than pygate.canonical?)"
        )
    return actions


def _registry(tools: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """The callables by canonical name (lower case, as the bundle names actions)."""
    registry: dict[str, Callable[..., Any]] = {}
    for name, fn in tools.items():
        key = name.lower()
        if key in registry:
            raise DispatchError(f"two tools share the canonical name {key!r}")
        registry[key] = fn
    return registry


def _plan(
    decision: Decision, tools: Mapping[str, Callable[..., Any]]
) -> list[tuple[Callable[..., Any], list[Any], dict[str, Any]]]:
    """Every call to make, checked before the first one runs."""
    registry = _registry(tools)
    actions = _runnable(decision)
    missing = sorted({a.name for a in actions if a.name not in registry})
    if missing:
        raise DispatchError(f"no tool registered for decided action(s) {', '.join(missing)}")
    plan = []
    for action in actions:
        fn = registry[action.name]
        args, kwargs = call_args(fn, action.arguments)
        plan.append((fn, args, kwargs))
    return plan


def dispatch(decision: Decision, tools: Mapping[str, Callable[..., Any]]) -> list[Any]:
    """Run the allowed tool calls of ``decision`` with the callables in ``tools``.

    Each non-answer canonical action (an OpenAI, Anthropic or MCP tool call, a ``guard``
    call, or a typed action such as ``transfer``) is looked up by name (tool names compare
    in lower case, as the bundle canonicalises them) and called with its decided arguments.
    Every call is checked before the first one runs.

    Example:
        >>> decision = gate.evaluate(openai_message, user)
        >>> results = dispatch(decision, {"get_weather": get_weather})

    Returns:
        The callables' results, in the order of ``decision.actions``.

    Raises:
        Refused: the decision is a refusal (nothing runs).
        DispatchError: no runnable action, an action without a registered callable, or
            arguments that do not fit it (nothing runs).
    """
    return [fn(*args, **kwargs) for fn, args, kwargs in _plan(decision, tools)]


async def adispatch(
    decision: Decision, tools: Mapping[str, Callable[..., Any | Awaitable[Any]]]
) -> list[Any]:
    """``dispatch`` for async callables: each awaitable result is awaited, in order."""
    results = []
    for fn, args, kwargs in _plan(decision, tools):
        result = fn(*args, **kwargs)
        results.append(await result if inspect.isawaitable(result) else result)
    return results


def decided_call(decision: Decision, fn: Callable[..., Any]) -> tuple[list[Any], dict[str, Any]]:
    """The arguments ``guard`` calls ``fn`` with: those of the one action decided for it.

    Raises:
        DispatchError: the decision does not hold exactly one tool call named like ``fn``.
    """
    name = fn.__name__.lower()
    calls = [a for a in decision.actions if a.kind == "tool_call" and a.name == name]
    if len(calls) != 1 or len(decision.actions) != 1:
        raise DispatchError(
            f"the decision holds {len(decision.actions)} action(s), not one call of {name!r}"
        )
    return call_args(fn, calls[0].arguments)


def wants_actions(run: Callable[..., Any]) -> bool:
    """True when ``run`` takes one required positional parameter (the decided actions)."""
    try:
        params = inspect.signature(run).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature: the legacy call
        return False
    required = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(required) == 1
