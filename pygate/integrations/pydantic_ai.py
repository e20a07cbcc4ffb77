"""pygate for pydantic-ai agents (``pip install 'pygate[pydantic-ai]'``).

``PygateToolset(toolset, gate, user)`` wraps any pydantic-ai toolset (a ``FunctionToolset``,
an MCP server, ...) so that every call of its tools is gated before the tool runs:

- the call goes to the gate as pygate's own tool-call shape (``{"type": "tool_call",
  "action": name, "arguments": args, "id": tool_call_id}``) with the arguments pydantic-ai
  validated for the tool (what would run), as JSON;
- allowed: the tool runs with the arguments the gate decided, validated again by the tool's
  own schema (so a decision cannot hand the tool a type it does not take);
- refused: the tool never runs; pydantic-ai's ``ToolFailed`` carries
  :func:`~pygate.integrations._common.tool_error_text` to the model (a failed tool result
  that does not use up the tool's retries);
- ``require_review``: ``ApprovalRequired`` defers the call (the run ends with
  ``DeferredToolRequests``; the agent's ``output_type`` must include it). The metadata names
  the pending pygate approval (``pygate_approval_id``). A reviewer approves it in pygate,
  then the run is continued with ``DeferredToolResults(approvals={call_id: True})``: the
  call is decided again and Rego lifts the refusal only if pygate's approval is there
  (approving only in pydantic-ai lets nothing through);
- engine down: refused like any refusal (fail closed).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

try:
    from pydantic_ai import RunContext
    from pydantic_ai.exceptions import ApprovalRequired, ToolFailed
    from pydantic_ai.toolsets import AbstractToolset, WrapperToolset
    from pydantic_ai.toolsets.abstract import ToolsetTool
    from pydantic_core import to_jsonable_python
except ImportError as exc:  # the extra is not installed: say which one
    raise ImportError(
        f"pygate.integrations.pydantic_ai needs an extra: pip install 'pygate[pydantic-ai]' ({exc})"
    ) from exc

from pygate._errors import DispatchError
from pygate.integrations._tools import (
    AnyGate,
    adecide,
    approval_id,
    awaits_review,
    decided_arguments,
    dispatch_refusal,
    tool_call,
    tool_error_text,
)


@dataclass
class PygateToolset(WrapperToolset[Any]):
    """A toolset whose tool calls run only when the gate allows them, as decided.

    Args:
        wrapped: the toolset to gate (e.g. ``FunctionToolset([transfer])``).
        gate: a ``Gate`` (run in a worker thread) or an ``AsyncGate``.
        user: the user the agent acts for (``id`` required), as for ``Gate.evaluate``.
        context: extra facts for every decision.

    Example:
        >>> tools = PygateToolset(FunctionToolset([transfer]), gate, user)
        >>> agent = Agent(model, toolsets=[tools])
    """

    gate: AnyGate = field(kw_only=True)
    user: Any = field(kw_only=True)
    context: Any = field(default=None, kw_only=True)

    def __init__(
        self, wrapped: AbstractToolset[Any], gate: AnyGate, user: Any, context: Any = None
    ) -> None:
        self.wrapped = wrapped
        self.gate = gate
        self.user = user
        self.context = context

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        """Gate the call; run it with the decided arguments, defer it, or refuse it."""
        output = tool_call(name, to_jsonable_python(tool_args), ctx.tool_call_id)
        decision = await adecide(self.gate, output, self.user, self.context)
        if awaits_review(decision) and not ctx.tool_call_approved:
            pending = await asyncio.to_thread(approval_id, self.gate, decision, output)
            raise ApprovalRequired(
                metadata={
                    "pygate_approval_id": pending,
                    "audit_id": decision.audit_id,
                    "message": tool_error_text(decision),
                    "policy_ids": decision.policy_ids,
                }
            )
        if not decision.allowed:
            raise ToolFailed(tool_error_text(decision))
        try:
            arguments = decided_arguments(decision, name)
        except DispatchError as exc:
            raise ToolFailed(dispatch_refusal(exc)) from exc
        validated = tool.args_validator.validate_python(arguments)
        return await super().call_tool(name, validated, ctx, tool)
