"""The LangChain adapter, through a real ``create_agent`` graph with langchain-core's fake model.

``GenericFakeChatModel`` (langchain-core's own test double) answers with the scripted
``AIMessage``s; the subclass below only lets ``create_agent`` bind tools to it and records
what the agent sent it, so the real agent graph runs (model node, ``ToolNode``, the
middleware chain, LangGraph's interrupt and checkpointer) with no network. The gate is real.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatResult
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from pydantic import Field

from pygate import AsyncGate, AuditLog, Gate, LocalOpa
from pygate.integrations.langchain import PygateMiddleware

ANA = {"id": "ana", "role": "analyst", "account_status": "active", "transaction_limit": 1000}


class ScriptedChatModel(GenericFakeChatModel):
    """``GenericFakeChatModel`` that takes tools and records every conversation it saw."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


def _model(*calls: dict[str, Any]) -> ScriptedChatModel:
    replies = [AIMessage(content="", tool_calls=[c]) for c in calls]
    return ScriptedChatModel(messages=iter([*replies, AIMessage(content="done")]))


def _call(name: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def _tool_messages(model: ScriptedChatModel) -> dict[str, ToolMessage]:
    """The tool results the agent showed the model on its last turn, by call id."""
    return {m.tool_call_id: m for m in model.seen[-1] if isinstance(m, ToolMessage)}


class Ledger:
    """The tools' own record of what ran."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def tools(self) -> list[BaseTool]:
        @tool
        def transfer(amount: float, to: str) -> str:
            """Send money to an account."""
            self.calls.append(("transfer", {"amount": amount, "to": to}))
            return f"sent {amount} to {to}"

        @tool
        def delete_records(table: str) -> str:
            """Delete the records of a table."""
            self.calls.append(("delete_records", {"table": table}))
            return f"deleted {table}"

        return [transfer, delete_records]


def test_allowed_call_runs_with_the_decided_arguments(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    ledger = Ledger()
    model = _model(_call("transfer", {"amount": 50, "to": "acct-2"}, "c1"))
    agent = create_agent(
        model, tools=ledger.tools(), middleware=[PygateMiddleware(make_gate("finance"), ANA)]
    )
    agent.invoke({"messages": [("user", "pay acct-2 50")]})
    [record] = audit.tail(5)
    assert record.allowed
    assert record.output == {
        "type": "tool_call",
        "action": "transfer",
        "arguments": {"amount": 50, "to": "acct-2"},
        "id": "c1",
    }
    [action] = record.actions or []
    assert ledger.calls == [("transfer", action["arguments"])]
    message = _tool_messages(model)["c1"]
    assert (message.status, message.content) == ("success", "sent 50.0 to acct-2")


def test_refused_call_never_runs_and_the_agent_gets_an_error_tool_message(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    ledger = Ledger()
    model = _model(
        _call("transfer", {"amount": 5000, "to": "acct-2"}, "c1"),
        _call("delete_records", {"table": "users"}, "c2"),
    )
    agent = create_agent(
        model, tools=ledger.tools(), middleware=[PygateMiddleware(make_gate("finance"), ANA)]
    )
    agent.invoke({"messages": [("user", "pay")]})
    assert ledger.calls == []
    assert [r.policy_id for r in audit.tail(5)] == ["FIN-002", "GATE-010"]
    refused = _tool_messages(model)
    assert refused["c1"].status == "error"
    assert refused["c1"].content == (
        "That is more than you can move at once: your limit is 1000.\n"
        "Hint: Propose at most 1000 in amount, or split the amount and ask the user first."
    )
    assert refused["c2"].status == "error"
    assert refused["c1"].artifact["pygate"]["policy_ids"] == ["FIN-002"]


def test_review_interrupts_and_the_pygate_approval_lets_it_run_once(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    gate = make_gate("assistant")
    ledger = Ledger()
    model = _model(_call("delete_records", {"table": "logs"}, "c1"))
    agent = create_agent(
        model,
        tools=ledger.tools(),
        middleware=[PygateMiddleware(gate, ANA)],
        checkpointer=InMemorySaver(),
    )
    thread = {"configurable": {"thread_id": "t1"}}
    paused = agent.invoke({"messages": [("user", "clean up")]}, thread)
    [pause] = paused["__interrupt__"]
    assert ledger.calls == []
    assert gate.approvals is not None
    [pending] = gate.approvals.find("pending")
    assert pause.value["approval_id"] == pending.approval_id
    assert pause.value["message"].startswith("I can help with this, but I need approval first")

    gate.approvals.approve(pending.approval_id, by="rita")
    agent.invoke(Command(resume=True), thread)
    assert ledger.calls == [("delete_records", {"table": "logs"})]
    last = audit.tail(1)[0]
    assert (last.allowed, last.approved_by) == (True, "rita")
    assert _tool_messages(model)["c1"].status == "success"


def test_resuming_without_a_pygate_approval_refuses(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    ledger = Ledger()
    model = _model(_call("delete_records", {"table": "logs"}, "c1"))
    agent = create_agent(
        model,
        tools=ledger.tools(),
        middleware=[PygateMiddleware(make_gate("assistant"), ANA)],
        checkpointer=InMemorySaver(),
    )
    thread = {"configurable": {"thread_id": "t1"}}
    agent.invoke({"messages": [("user", "clean up")]}, thread)
    agent.invoke(Command(resume={"approved": True}), thread)  # the resume value decides nothing
    assert ledger.calls == []
    assert [r.allowed for r in audit.tail(5)] == [False, False]
    message = _tool_messages(model)["c1"]
    assert (message.status, message.content) == (
        "error",
        "I can help with this, but I need approval first\n"
        "Hint: Wait for a person to approve this call, "
        "or use a tool from the allowlist instead of delete_records.",
    )


def test_review_can_be_returned_as_a_refusal(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    gate = make_gate("assistant")
    ledger = Ledger()
    model = _model(_call("delete_records", {"table": "logs"}, "c1"))
    middleware = PygateMiddleware(gate, ANA, review="refuse")
    agent = create_agent(model, tools=ledger.tools(), middleware=[middleware])
    result = agent.invoke({"messages": [("user", "clean up")]})
    assert "__interrupt__" not in result
    assert ledger.calls == []
    assert _tool_messages(model)["c1"].status == "error"
    assert gate.approvals is not None
    assert len(gate.approvals.find("pending")) == 1  # a reviewer can still let it through


def test_review_mode_is_checked(make_gate: Callable[..., Gate]) -> None:
    with pytest.raises(ValueError, match="review"):
        PygateMiddleware(make_gate("assistant"), ANA, review="allow")


def test_engine_down_refuses(dead_url: str, audit: AuditLog) -> None:
    ledger = Ledger()
    model = _model(_call("transfer", {"amount": 5, "to": "acct-2"}, "c1"))
    with Gate("finance", opa_url=dead_url, audit=audit) as gate:
        agent = create_agent(model, tools=ledger.tools(), middleware=[PygateMiddleware(gate, ANA)])
        agent.invoke({"messages": [("user", "pay")]})
    assert ledger.calls == []
    [record] = audit.tail(1)
    assert (record.fallback, record.policy_id) == (True, "pygate.engine")
    assert _tool_messages(model)["c1"].status == "error"


@pytest.mark.parametrize("kind", ["async_gate", "gate"])
def test_async_agent(kind: str, opa: LocalOpa, audit: AuditLog) -> None:
    ledger = Ledger()
    model = _model(
        _call("transfer", {"amount": 50, "to": "acct-2"}, "c1"),
        _call("transfer", {"amount": 5000, "to": "acct-3"}, "c2"),
    )

    async def run() -> None:
        if kind == "async_gate":
            async with AsyncGate("finance", opa_url=opa.url, audit=audit) as gate:
                agent = create_agent(
                    model, tools=ledger.tools(), middleware=[PygateMiddleware(gate, ANA)]
                )
                await agent.ainvoke({"messages": [("user", "pay both")]})
        else:
            with Gate("finance", opa_url=opa.url, audit=audit) as sync_gate:
                agent = create_agent(
                    model, tools=ledger.tools(), middleware=[PygateMiddleware(sync_gate, ANA)]
                )
                await agent.ainvoke({"messages": [("user", "pay both")]})

    asyncio.run(run())
    assert ledger.calls == [("transfer", {"amount": 50.0, "to": "acct-2"})]
    messages = _tool_messages(model)
    assert (messages["c1"].status, messages["c2"].status) == ("success", "error")


def test_sync_agent_needs_a_sync_gate(opa: LocalOpa, audit: AuditLog) -> None:
    ledger = Ledger()
    model = _model(_call("transfer", {"amount": 50, "to": "acct-2"}, "c1"))

    async def build() -> AsyncGate:
        return AsyncGate("finance", opa_url=opa.url, audit=audit)

    gate = asyncio.run(build())
    try:
        agent = create_agent(model, tools=ledger.tools(), middleware=[PygateMiddleware(gate, ANA)])
        with pytest.raises(TypeError, match="needs a Gate"):
            agent.invoke({"messages": [("user", "pay")]})
    finally:
        asyncio.run(gate.aclose())
    assert ledger.calls == []


def test_parallel_calls_each_wait_for_their_own_approval(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    gate = make_gate("assistant")
    ledger = Ledger()
    model = ScriptedChatModel(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[
                        _call("delete_records", {"table": "a"}, "c1"),
                        _call("delete_records", {"table": "b"}, "c2"),
                    ],
                ),
                AIMessage(content="done"),
            ]
        )
    )
    agent = create_agent(
        model,
        tools=ledger.tools(),
        middleware=[PygateMiddleware(gate, ANA)],
        checkpointer=InMemorySaver(),
    )
    thread = {"configurable": {"thread_id": "t1"}}
    paused = agent.invoke({"messages": [("user", "clean up a and b")]}, thread)
    pauses = paused["__interrupt__"]
    assert len(pauses) == 2
    assert gate.approvals is not None
    approved = next(p for p in pauses if p.value["audit_id"] == audit.tail(2)[0].audit_id)
    gate.approvals.approve(approved.value["approval_id"], by="rita")
    agent.invoke(Command(resume={p.id: True for p in pauses}), thread)
    assert len(ledger.calls) == 1  # only the approved one ran
    messages = _tool_messages(model)
    assert sorted(m.status for m in messages.values()) == ["error", "success"]


def _decided(name: str, arguments: dict[str, Any]) -> bytes:
    """An OPA answer allowing one tool call (a fake: a real OPA decides on what it read)."""
    action = {"kind": "tool_call", "name": name, "arguments": arguments, "source": "fake"}
    result = {"allowed": True, "service": "finance", "refusals": [], "actions": [action]}
    return json.dumps({"result": result}).encode()


def test_the_tool_runs_what_was_decided_not_what_the_model_sent(
    fake_opa: Callable[..., str], audit: AuditLog
) -> None:
    ledger = Ledger()
    model = _model(_call("transfer", {"amount": 50, "to": "acct-2"}, "c1"))
    url = fake_opa(body=_decided("transfer", {"amount": 1, "to": "acct-9"}))
    with Gate("finance", opa_url=url, audit=audit) as gate:
        agent = create_agent(model, tools=ledger.tools(), middleware=[PygateMiddleware(gate, ANA)])
        agent.invoke({"messages": [("user", "pay")]})
    assert ledger.calls == [("transfer", {"amount": 1.0, "to": "acct-9"})]


def test_a_decision_for_another_call_runs_nothing(
    fake_opa: Callable[..., str], audit: AuditLog
) -> None:
    ledger = Ledger()
    model = _model(_call("transfer", {"amount": 50, "to": "acct-2"}, "c1"))
    url = fake_opa(body=_decided("delete_records", {"table": "users"}))
    with Gate("finance", opa_url=url, audit=audit) as gate:
        agent = create_agent(model, tools=ledger.tools(), middleware=[PygateMiddleware(gate, ANA)])
        agent.invoke({"messages": [("user", "pay")]})
    assert ledger.calls == []
    message = _tool_messages(model)["c1"]
    assert message.status == "error"
    assert "could not run it as decided" in str(message.content)
