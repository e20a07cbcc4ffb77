"""The pydantic-ai adapter, through a real ``Agent`` run driven by pydantic-ai's ``FunctionModel``.

``FunctionModel`` (pydantic-ai's own test double) calls the function below for each model
turn: it answers with the scripted tool calls and records the messages the agent sent, so
the real agent graph runs (tool validation, the toolset chain, deferred approvals) with no
network. The gate is real: the session OPA and a real audit log.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic_ai import Agent, DeferredToolRequests, DeferredToolResults
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.toolsets import FunctionToolset

from pygate import AsyncGate, AuditLog, Gate, LocalOpa
from pygate.integrations.pydantic_ai import PygateToolset

ANA = {"id": "ana", "role": "analyst", "account_status": "active", "transaction_limit": 1000}


@pytest.fixture(autouse=True)
def _own_loop() -> Iterator[None]:
    # Agent.run_sync runs on the thread's default event loop and leaves it open; give each
    # test its own and close it after.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()


class Script:
    """A ``FunctionModel`` that answers with scripted tool calls, then ``done``."""

    def __init__(self, *calls: ToolCallPart) -> None:
        self.replies = [ModelResponse(parts=[c]) for c in calls]
        self.seen: list[list[ModelMessage]] = []
        self.model = FunctionModel(self._reply)

    def _reply(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.seen.append(list(messages))
        return self.replies.pop(0) if self.replies else ModelResponse(parts=[TextPart("done")])

    def returns(self) -> dict[str, ToolReturnPart]:
        """The tool results the agent showed the model on its last turn, by call id."""
        return {
            p.tool_call_id: p
            for m in self.seen[-1]
            if isinstance(m, ModelRequest)
            for p in m.parts
            if isinstance(p, ToolReturnPart)
        }


class Ledger:
    """The tools' own record of what ran."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def toolset(self) -> FunctionToolset[Any]:
        def transfer(amount: float, to: str) -> str:
            """Send money to an account."""
            self.calls.append(("transfer", {"amount": amount, "to": to}))
            return f"sent {amount} to {to}"

        def delete_records(table: str) -> str:
            """Delete the records of a table."""
            self.calls.append(("delete_records", {"table": table}))
            return f"deleted {table}"

        return FunctionToolset([transfer, delete_records])


def _agent(script: Script, gate: Gate | AsyncGate, ledger: Ledger) -> Agent[None, Any]:
    return Agent(
        script.model,
        toolsets=[PygateToolset(ledger.toolset(), gate, ANA)],
        output_type=[str, DeferredToolRequests],
    )


def test_allowed_call_runs_with_the_decided_arguments(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    ledger = Ledger()
    script = Script(ToolCallPart("transfer", {"amount": 50, "to": "acct-2"}, tool_call_id="c1"))
    assert _agent(script, make_gate("finance"), ledger).run_sync("pay").output == "done"
    [record] = audit.tail(5)
    assert record.allowed
    assert record.output["type"] == "tool_call"
    assert record.output["id"] == "c1"
    [action] = record.actions or []
    assert action["arguments"] == {"amount": 50.0, "to": "acct-2"}
    assert ledger.calls == [("transfer", action["arguments"])]
    assert script.returns()["c1"].content == "sent 50.0 to acct-2"


def test_refused_call_never_runs_and_the_model_sees_a_failed_result(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    ledger = Ledger()
    script = Script(
        ToolCallPart("transfer", {"amount": 5000, "to": "acct-2"}, tool_call_id="c1"),
        ToolCallPart("delete_records", {"table": "users"}, tool_call_id="c2"),
    )
    assert _agent(script, make_gate("finance"), ledger).run_sync("pay").output == "done"
    assert ledger.calls == []
    assert [r.policy_id for r in audit.tail(5)] == ["FIN-002", "GATE-010"]
    returns = script.returns()
    assert returns["c1"].outcome == "failed"
    assert returns["c1"].content == (
        "That is more than you can move at once: your limit is 1000.\n"
        "Hint: Propose at most 1000 in amount, or split the amount and ask the user first."
    )
    assert returns["c2"].outcome == "failed"


def test_review_defers_and_the_pygate_approval_lets_it_run_once(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    gate = make_gate("assistant")
    ledger = Ledger()
    script = Script(ToolCallPart("delete_records", {"table": "logs"}, tool_call_id="c1"))
    agent = _agent(script, gate, ledger)
    paused = agent.run_sync("clean up")
    assert isinstance(paused.output, DeferredToolRequests)
    assert [c.tool_call_id for c in paused.output.approvals] == ["c1"]
    assert ledger.calls == []
    assert gate.approvals is not None
    [pending] = gate.approvals.find("pending")
    assert paused.output.metadata["c1"]["pygate_approval_id"] == pending.approval_id

    gate.approvals.approve(pending.approval_id, by="rita")
    resumed = agent.run_sync(
        message_history=paused.all_messages(),
        deferred_tool_results=DeferredToolResults(approvals={"c1": True}),
    )
    assert resumed.output == "done"
    assert ledger.calls == [("delete_records", {"table": "logs"})]
    last = audit.tail(1)[0]
    assert (last.allowed, last.approved_by) == (True, "rita")


def test_approving_only_in_pydantic_ai_lets_nothing_through(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    ledger = Ledger()
    script = Script(ToolCallPart("delete_records", {"table": "logs"}, tool_call_id="c1"))
    agent = _agent(script, make_gate("assistant"), ledger)
    paused = agent.run_sync("clean up")
    agent.run_sync(
        message_history=paused.all_messages(),
        deferred_tool_results=DeferredToolResults(approvals={"c1": True}),
    )
    assert ledger.calls == []
    assert [r.allowed for r in audit.tail(5)] == [False, False]
    returned = script.returns()["c1"]
    assert (returned.outcome, returned.content) == (
        "failed",
        "I can help with this, but I need approval first\n"
        "Hint: Wait for a person to approve this call, "
        "or use a tool from the allowlist instead of delete_records.",
    )


def test_engine_down_refuses(dead_url: str, audit: AuditLog) -> None:
    ledger = Ledger()
    script = Script(ToolCallPart("transfer", {"amount": 5, "to": "acct-2"}, tool_call_id="c1"))
    with Gate("finance", opa_url=dead_url, audit=audit) as gate:
        _agent(script, gate, ledger).run_sync("pay")
    assert ledger.calls == []
    [record] = audit.tail(1)
    assert (record.fallback, record.policy_id) == (True, "pygate.engine")
    assert script.returns()["c1"].outcome == "failed"


@pytest.mark.parametrize("kind", ["async_gate", "gate"])
def test_async_run(kind: str, opa: LocalOpa, audit: AuditLog) -> None:
    ledger = Ledger()
    script = Script(
        ToolCallPart("transfer", {"amount": 50, "to": "acct-2"}, tool_call_id="c1"),
        ToolCallPart("transfer", {"amount": 5000, "to": "acct-3"}, tool_call_id="c2"),
    )

    async def run() -> None:
        if kind == "async_gate":
            async with AsyncGate("finance", opa_url=opa.url, audit=audit) as gate:
                await _agent(script, gate, ledger).run("pay both")
        else:
            with Gate("finance", opa_url=opa.url, audit=audit) as sync_gate:
                await _agent(script, sync_gate, ledger).run("pay both")

    asyncio.run(run())
    assert ledger.calls == [("transfer", {"amount": 50.0, "to": "acct-2"})]
    returns = script.returns()
    assert (returns["c1"].outcome, returns["c2"].outcome) == ("success", "failed")


def test_decided_arguments_are_validated_by_the_tool_schema(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    # OPA hands 50.0 back as JSON 50; the tool still gets the float its signature declares.
    ledger = Ledger()
    script = Script(ToolCallPart("transfer", {"amount": 50.0, "to": "acct-2"}, tool_call_id="c1"))
    _agent(script, make_gate("finance"), ledger).run_sync("pay")
    [(_, arguments)] = ledger.calls
    assert type(arguments["amount"]) is float


def _decided(name: str, arguments: dict[str, Any]) -> bytes:
    """An OPA answer allowing one tool call (a fake: a real OPA decides on what it read)."""
    action = {"kind": "tool_call", "name": name, "arguments": arguments, "source": "fake"}
    result = {"allowed": True, "service": "finance", "refusals": [], "actions": [action]}
    return json.dumps({"result": result}).encode()


def test_the_tool_runs_what_was_decided_not_what_the_model_sent(
    fake_opa: Callable[..., str], audit: AuditLog
) -> None:
    ledger = Ledger()
    script = Script(ToolCallPart("transfer", {"amount": 50, "to": "acct-2"}, tool_call_id="c1"))
    url = fake_opa(body=_decided("transfer", {"amount": 1, "to": "acct-9"}))
    with Gate("finance", opa_url=url, audit=audit) as gate:
        _agent(script, gate, ledger).run_sync("pay")
    assert ledger.calls == [("transfer", {"amount": 1.0, "to": "acct-9"})]


def test_a_decision_for_another_call_runs_nothing(
    fake_opa: Callable[..., str], audit: AuditLog
) -> None:
    ledger = Ledger()
    script = Script(ToolCallPart("transfer", {"amount": 50, "to": "acct-2"}, tool_call_id="c1"))
    url = fake_opa(body=_decided("delete_records", {"table": "users"}))
    with Gate("finance", opa_url=url, audit=audit) as gate:
        _agent(script, gate, ledger).run_sync("pay")
    assert ledger.calls == []
    returned = script.returns()["c1"]
    assert returned.outcome == "failed"
    assert "could not run it as decided" in str(returned.content)
