"""pygate for the OpenAI Agents SDK (``pip install 'pygate[openai-agents]'``).

``AgentsGate(gate, user).tool(some_function_tool)`` returns a copy of the ``FunctionTool``
whose every call is gated before it runs:

- the call goes to the gate as the Responses ``function_call`` item the model emitted
  (``{"type": "function_call", "call_id", "name", "arguments": "<JSON text>"}``), which
  OPA's ``pygate.canonical`` reads; the arguments are the model's raw text, so duplicate
  keys are refused by pygate before OPA;
- allowed: the tool runs with the arguments the gate decided (the canonical action's),
  re-serialised, never the raw text;
- refused: the tool never runs; the model gets
  :func:`~pygate.integrations._common.tool_error_text` as the tool's result (the SDK's
  "error as result" outcome, as for a tool that fails);
- ``require_review``: the tool's ``needs_approval`` asks the gate, so the run stops with
  the SDK's own approval interruption (``result.interruptions``). ``approve`` records the
  reviewer's approval in pygate's approval store and approves the item in the ``RunState``;
  the resumed run asks the gate again, and Rego lifts the refusal (single use, audited with
  the approver). Approving only in the ``RunState`` lets nothing through: the gate still
  refuses.
- engine down: refused like any refusal (fail closed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterable
from typing import Any

try:
    from agents import FunctionTool, RunContextWrapper, RunState, ToolApprovalItem
    from agents.tool_context import ToolContext
except ImportError as exc:  # the extra is not installed: say which one
    raise ImportError(
        "pygate.integrations.openai_agents needs an extra: "
        f"pip install 'pygate[openai-agents]' ({exc})"
    ) from exc

from pygate._errors import DispatchError, InputError
from pygate._input import loads
from pygate._models import Decision, JSONObject
from pygate.integrations._tools import (
    AnyGate,
    adecide,
    approval_id,
    awaits_review,
    decided_arguments,
    dispatch_refusal,
    tool_error_text,
)


def function_call(name: str, arguments: str, call_id: str | None) -> JSONObject:
    """The Responses API ``function_call`` item, as the model sent it."""
    item: JSONObject = {"type": "function_call", "name": name, "arguments": arguments}
    if call_id:
        item["call_id"] = call_id
    return item


class AgentsGate:
    """Gate the function tools of an OpenAI Agents SDK agent for one user.

    Args:
        gate: a ``Gate`` (run in a worker thread) or an ``AsyncGate``.
        user: the user the agent acts for (``id`` required), as for ``Gate.evaluate``.
        context: extra facts for every decision.

    Example:
        >>> guard = AgentsGate(gate, {"id": "u1", "transaction_limit": 1000})
        >>> agent = Agent(name="bank", tools=guard.tools([transfer]))
    """

    def __init__(self, gate: AnyGate, user: Any, context: Any = None) -> None:
        self.gate = gate
        self.user = user
        self.context = context
        # call_id -> (parsed arguments, decision) decided in needs_approval, used once at
        # invocation so a call is decided (and audited) once, not twice.
        self._decided: dict[str, tuple[Any, Decision]] = {}
        # call_id -> pending pygate approval id, for ``approve``/``reject``.
        self._reviews: dict[str, str] = {}

    def tools(self, tools: Iterable[FunctionTool]) -> list[FunctionTool]:
        """``tool`` for each of ``tools``."""
        return [self.tool(t) for t in tools]

    def tool(self, tool: FunctionTool) -> FunctionTool:
        """A copy of ``tool`` that runs only what the gate allows, as decided."""
        inner = tool.on_invoke_tool
        name = tool.name
        own = tool.needs_approval  # the tool's own approval setting still applies

        async def needs_approval(
            ctx: RunContextWrapper[Any], params: dict[str, Any], call_id: str
        ) -> bool:
            output = function_call(name, _text(params), call_id)
            decision = await adecide(self.gate, output, self.user, self.context)
            if awaits_review(decision):
                pending = await asyncio.to_thread(approval_id, self.gate, decision, output)
                if pending is not None:
                    self._reviews[call_id] = pending
                return True
            wait = await own(ctx, params, call_id) if callable(own) else own
            if not wait:
                # Runs next: this decision is used for it. A call that waits for a person is
                # decided again when it runs (the policy, the quota may have moved meanwhile).
                self._decided[call_id] = (params, decision)
            return wait

        async def on_invoke_tool(ctx: ToolContext[Any], raw: str) -> Any:
            try:
                # The text decided on is the parsed arguments re-serialised one way, so the
                # review request and the resumed call hash alike; ambiguous text (a duplicate
                # key) goes to the gate as it came, and is refused there.
                parsed = loads(raw, "arguments")
            except InputError:
                parsed, text = None, raw
            else:
                text = _text(parsed)
            decision = self._cached(ctx.tool_call_id, parsed)
            if decision is None:
                output = function_call(name, text, ctx.tool_call_id)
                decision = await adecide(self.gate, output, self.user, self.context)
            if not decision.allowed:
                return tool_error_text(decision)
            try:
                arguments = decided_arguments(decision, name)
            except DispatchError as exc:
                return dispatch_refusal(exc)
            return await inner(ctx, json.dumps(arguments))

        return dataclasses.replace(
            tool, on_invoke_tool=on_invoke_tool, needs_approval=needs_approval
        )

    def _cached(self, call_id: str, parsed: Any) -> Decision | None:
        """The decision ``needs_approval`` made for exactly this call, if any (used once)."""
        cached = self._decided.pop(call_id, None)
        if cached is None or parsed is None or parsed != cached[0]:
            return None
        return cached[1]

    def approval_id(self, item: ToolApprovalItem) -> str | None:
        """The pygate approval a reviewer acts on for an interruption (``pygate approvals``)."""
        return self._reviews.get(_call_id(item))

    def approve(
        self, state: RunState[Any], item: ToolApprovalItem, by: str, note: str | None = None
    ) -> None:
        """Approve the call in pygate (as ``by``) and in the run state; then resume the run.

        Raises:
            ApprovalError: pygate refused the approval (e.g. ``by`` is the requesting user).
            KeyError: the item is not an interruption this gate raised.
        """
        self._store().approve(self._reviews[_call_id(item)], by=by, note=note)
        state.approve(item)

    def reject(
        self, state: RunState[Any], item: ToolApprovalItem, by: str, note: str | None = None
    ) -> None:
        """Reject the call in pygate and in the run state (the model is told it was refused)."""
        approval = self._store().reject(self._reviews[_call_id(item)], by=by, note=note)
        state.reject(item, rejection_message=f"Refused by {approval.decided_by}.")

    def _store(self) -> Any:
        if self.gate.approvals is None:
            raise DispatchError("approvals need the gate's audit log (audit=None has none)")
        return self.gate.approvals


def _text(arguments: Any) -> str:
    """One JSON text for parsed arguments (compact, key order kept, as the model sent them)."""
    return json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))


def _call_id(item: ToolApprovalItem) -> str:
    raw = item.raw_item
    value = raw.get("call_id") if isinstance(raw, dict) else getattr(raw, "call_id", None)
    return str(value)
