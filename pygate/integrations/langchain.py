"""pygate for LangChain v1 agents (``pip install 'pygate[langchain]'``).

``PygateMiddleware(gate, user)`` is an ``AgentMiddleware`` for
``langchain.agents.create_agent(..., middleware=[...])``: its ``wrap_tool_call`` (and
``awrap_tool_call``) gates every tool call before the tool runs:

- the call goes to the gate as pygate's own tool-call shape (``{"type": "tool_call",
  "action": name, "arguments": args, "id": tool_call_id}``; LangChain's ``{"name", "args"}``
  is not a shape OPA reads);
- allowed: the tool runs with the arguments the gate decided (``request.override``);
- refused: the tool never runs; the agent gets a ``ToolMessage`` with ``status="error"``
  whose content is :func:`~pygate.integrations._common.tool_error_text`;
- ``require_review``: the graph stops with LangGraph's ``interrupt`` (as LangChain's
  ``HumanInTheLoopMiddleware`` does; it needs a checkpointer) carrying the pending pygate
  approval id. A reviewer approves it in pygate (``pygate approvals approve ID --by NAME``
  or ``gate.approvals.approve``), then the graph is resumed with ``Command(resume=...)``:
  the call is decided again and Rego lifts the refusal only if the approval is there;
  otherwise the agent gets the refusal;
- engine down: refused like any refusal (fail closed).

The tool's own failures are left to LangChain (its error handling, other middleware).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

try:
    from langchain.agents.middleware import AgentMiddleware, ToolCallRequest
    from langchain_core.messages import ToolMessage
    from langgraph.types import Command, interrupt
except ImportError as exc:  # the extra is not installed: say which one
    raise ImportError(
        f"pygate.integrations.langchain needs an extra: pip install 'pygate[langchain]' ({exc})"
    ) from exc

from pygate._errors import DispatchError
from pygate._models import Decision
from pygate.integrations._tools import (
    AnyGate,
    adecide,
    approval_id,
    awaits_review,
    decide,
    decided_arguments,
    dispatch_refusal,
    tool_call,
    tool_error_text,
)

Handler = Callable[[ToolCallRequest], ToolMessage | Command[Any]]
AsyncHandler = Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]]


class PygateMiddleware(AgentMiddleware):
    """Gate every tool call of a LangChain agent for one user.

    Args:
        gate: a ``Gate`` (sync and async runs; async runs call it in a worker thread) or an
            ``AsyncGate`` (async runs: ``ainvoke``/``astream``).
        user: the user the agent acts for (``id`` required), as for ``Gate.evaluate``.
        context: extra facts for every decision.
        review: ``"interrupt"`` (default) stops the graph for a ``require_review`` refusal
            (needs a checkpointer); ``"refuse"`` returns it to the agent as a refusal (the
            approval request is open in pygate all the same).

    Example:
        >>> agent = create_agent(model, tools=[transfer],
        ...                      middleware=[PygateMiddleware(gate, user)])
    """

    def __init__(
        self, gate: AnyGate, user: Any, context: Any = None, review: str = "interrupt"
    ) -> None:
        super().__init__()
        if review not in ("interrupt", "refuse"):
            raise ValueError(f"review: expected 'interrupt' or 'refuse', got {review!r}")
        self.gate = gate
        self.user = user
        self.context = context
        self.review = review

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Handler
    ) -> ToolMessage | Command[Any]:
        """Gate the call, then run it as decided (or return the refusal)."""
        output = _output(request)
        decision = decide(self.gate, output, self.user, self.context)
        if awaits_review(decision) and self.review == "interrupt":
            self._interrupt(decision, approval_id(self.gate, decision, output))
        return self._after(request, decision) or handler(self._decided(request, decision))

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: AsyncHandler
    ) -> ToolMessage | Command[Any]:
        """Async ``wrap_tool_call``."""
        output = _output(request)
        decision = await adecide(self.gate, output, self.user, self.context)
        if awaits_review(decision) and self.review == "interrupt":
            pending = await asyncio.to_thread(approval_id, self.gate, decision, output)
            self._interrupt(decision, pending)
        return self._after(request, decision) or await handler(self._decided(request, decision))

    def _interrupt(self, decision: Decision, pending: str | None) -> None:
        """Stop the graph for a person (LangGraph's ``interrupt``); on resume, go on.

        Whatever the resume value, the call is then decided again by the gate: only an
        approval in pygate's store lifts the refusal.
        """
        interrupt(
            {
                "type": "pygate_review",
                "approval_id": pending,
                "audit_id": decision.audit_id,
                "message": tool_error_text(decision),
                "policy_ids": decision.policy_ids,
            }
        )

    def _after(self, request: ToolCallRequest, decision: Decision) -> ToolMessage | None:
        """The refusal ``ToolMessage``, or ``None`` when the call may run as decided."""
        if decision.allowed:
            try:
                decided_arguments(decision, request.tool_call["name"])
            except DispatchError as exc:
                return _refusal(request, dispatch_refusal(exc), decision)
            return None
        return _refusal(request, tool_error_text(decision), decision)

    @staticmethod
    def _decided(request: ToolCallRequest, decision: Decision) -> ToolCallRequest:
        arguments = decided_arguments(decision, request.tool_call["name"])
        return request.override(tool_call={**request.tool_call, "args": arguments})


def _output(request: ToolCallRequest) -> Any:
    call = request.tool_call
    return tool_call(call["name"], call["args"], call.get("id"))


def _refusal(request: ToolCallRequest, text: str, decision: Decision) -> ToolMessage:
    return ToolMessage(
        content=text,
        tool_call_id=request.tool_call.get("id") or "",
        name=request.tool_call["name"],
        status="error",
        artifact={"pygate": {"audit_id": decision.audit_id, "policy_ids": decision.policy_ids}},
    )
