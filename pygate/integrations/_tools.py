"""What the agent-framework adapters share: one tool call, decided once, run as decided.

Each adapter (``openai_agents``, ``langchain``, ``pydantic_ai``) hands the framework's tool
call to the gate in a shape ``pygate.canonical`` reads, then runs the tool with the
arguments of the one canonical action the gate decided for it (never the raw ones). The
helpers here do no framework work: deciding with a ``Gate`` or an ``AsyncGate``, finding the
decided arguments, telling a refusal a person may lift (``require_review``) from one that
stands, and the pending approval a reviewer acts on.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pygate._errors import DispatchError
from pygate._gate import AsyncGate, Gate
from pygate._models import Decision, JSONObject
from pygate.integrations._common import tool_error_text

#: The refusal action a person may lift (``pygate approvals approve``).
REVIEW_ACTION = "require_review"

AnyGate = Gate | AsyncGate


def tool_call(name: str, arguments: Any, call_id: str | None = None) -> JSONObject:
    """pygate's own tool-call shape (``Gate.guard``'s), for frameworks whose shape OPA does
    not read as is (LangChain's ``{"name", "args", "id"}``, pydantic-ai's ``ToolCallPart``)."""
    call: JSONObject = {"type": "tool_call", "action": name, "arguments": arguments}
    if call_id is not None:
        call["id"] = call_id
    return call


def decide(gate: AnyGate, output: Any, user: Any, context: Any = None) -> Decision:
    """``gate.evaluate`` from synchronous framework code (a ``Gate`` only)."""
    if not isinstance(gate, Gate):
        raise TypeError("a synchronous tool call needs a Gate (an AsyncGate needs await)")
    return gate.evaluate(output, user, context)


async def adecide(gate: AnyGate, output: Any, user: Any, context: Any = None) -> Decision:
    """``gate.evaluate`` from asynchronous framework code (a ``Gate`` runs in a thread)."""
    if isinstance(gate, AsyncGate):
        return await gate.evaluate(output, user, context)
    return await asyncio.to_thread(gate.evaluate, output, user, context)


def decided_arguments(decision: Decision, name: str) -> dict[str, Any]:
    """The arguments the gate decided for the one call of tool ``name``.

    Raises:
        DispatchError: the decision is not exactly one tool call named like the tool
            (nothing may run then: what would run is not what was decided).
    """
    key = name.lower()
    calls = [a for a in decision.actions if a.kind == "tool_call" and a.name == key]
    if len(calls) != 1 or len(decision.actions) != 1:
        raise DispatchError(
            f"the decision holds {len(decision.actions)} action(s), not one call of {key!r}"
        )
    return dict(calls[0].arguments)


def awaits_review(decision: Decision) -> bool:
    """True when a person's approval would lift this refusal: every refusal is
    ``require_review`` (another refusal would still stand) and the engine did decide."""
    return (
        not decision.allowed
        and not decision.fallback
        and decision.output_hash is not None
        and bool(decision.refusals)
        and all(r.action == REVIEW_ACTION for r in decision.refusals)
    )


def approval_id(gate: AnyGate, decision: Decision, output: Any) -> str | None:
    """The pending approval the gate opened for a ``require_review`` refusal (its id).

    The gate opens it when it audits the refusal; asking again returns that same request
    (one per user and output). ``None`` without an audit log (no approval store).
    """
    if gate.approvals is None or not awaits_review(decision):
        return None
    approval = gate.approvals.request(decision, output)
    return approval.approval_id if approval is not None else None


def dispatch_refusal(exc: DispatchError) -> str:
    """The tool-error text when an allowed decision does not match the call it was for."""
    return f"This action was refused: pygate could not run it as decided ({exc})."


__all__ = [
    "REVIEW_ACTION",
    "AnyGate",
    "adecide",
    "approval_id",
    "awaits_review",
    "decide",
    "decided_arguments",
    "dispatch_refusal",
    "tool_call",
    "tool_error_text",
]
