"""The OpenAI Agents SDK adapter, through the SDK's real Runner with its own test double.

``agents.testing.ScriptedModel`` is the SDK's deterministic model: it answers each turn with
the items scripted here (``function_call``/``assistant_message``) and records what the SDK
sent it, so the real Runner code path runs (tool lookup, approvals, tool outputs fed back)
with no network. The gate is real: the session OPA and a real audit log.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from agents import Agent, FunctionTool, Runner, function_tool, set_tracing_disabled
from agents.testing import ScriptedModel, assistant_message, function_call

from pygate import AsyncGate, AuditLog, Gate, LocalOpa
from pygate.integrations.openai_agents import AgentsGate

ANA = {"id": "ana", "role": "analyst", "account_status": "active", "transaction_limit": 1000}


@pytest.fixture(autouse=True)
def _sdk_setup() -> Iterator[None]:
    set_tracing_disabled(True)  # the SDK would try to export traces to OpenAI
    # Runner.run_sync runs on the thread's default loop and leaves it open (by design, see
    # AgentRunner.run_sync); give each test its own and close it after.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()
    set_tracing_disabled(False)


class Ledger:
    """The tools' own record of what ran (the proof that a refused call never ran)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def tools(self) -> list[FunctionTool]:
        @function_tool
        def transfer(amount: float, to: str) -> str:
            """Send money to an account."""
            self.calls.append(("transfer", {"amount": amount, "to": to}))
            return f"sent {amount} to {to}"

        @function_tool
        def delete_records(table: str) -> str:
            """Delete the records of a table."""
            self.calls.append(("delete_records", {"table": table}))
            return f"deleted {table}"

        return [transfer, delete_records]


def _outputs(model: ScriptedModel) -> dict[str, str]:
    """The tool results the SDK fed back to the model on its last turn, by call id."""
    last = model.last_call
    assert last is not None
    items = last.input if isinstance(last.input, list) else []
    return {
        str(i["call_id"]): str(i["output"])
        for i in items
        if isinstance(i, dict) and i.get("type") == "function_call_output"
    }


def _agent(
    gate: Gate | AsyncGate, ledger: Ledger, *steps: Any
) -> tuple[Agent, ScriptedModel, AgentsGate]:
    model = ScriptedModel([*steps, [assistant_message("done")]])
    guard = AgentsGate(gate, ANA)
    return Agent(name="bank", model=model, tools=guard.tools(ledger.tools())), model, guard


def test_allowed_call_runs_with_the_decided_arguments_and_is_audited(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    ledger = Ledger()
    agent, model, _ = _agent(
        make_gate("finance"),
        ledger,
        [function_call("transfer", {"amount": 50, "to": "acct-2"}, call_id="c1")],
    )
    result = Runner.run_sync(agent, "pay acct-2 50")
    assert result.final_output == "done"
    [record] = audit.tail(5)
    assert record.allowed
    assert record.output["type"] == "function_call"  # the SDK's own shape went to OPA
    [action] = record.actions or []
    assert action["source"] == "openai.responses.function_call"
    assert ledger.calls == [("transfer", action["arguments"])]  # as decided, audited once
    assert _outputs(model) == {"c1": "sent 50.0 to acct-2"}


def test_refused_call_never_runs_and_the_model_sees_the_message(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    ledger = Ledger()
    agent, model, _ = _agent(
        make_gate("finance"),
        ledger,
        [function_call("transfer", {"amount": 5000, "to": "acct-2"}, call_id="c1")],
    )
    assert Runner.run_sync(agent, "pay").final_output == "done"
    assert ledger.calls == []
    [record] = audit.tail(5)
    assert (record.allowed, record.policy_id) == (False, "FIN-002")
    assert _outputs(model) == {
        "c1": "That is more than you can move at once: your limit is 1000.\n"
        "Hint: Propose at most 1000 in amount, or split the amount and ask the user first."
    }


def test_undeclared_tool_is_refused_by_the_contract(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    ledger = Ledger()
    agent, model, _ = _agent(
        make_gate("finance"),
        ledger,
        [function_call("delete_records", {"table": "users"}, call_id="c1")],
    )
    Runner.run_sync(agent, "clean up")
    assert ledger.calls == []
    assert audit.tail(1)[0].policy_id == "GATE-010"
    assert "c1" in _outputs(model)


def test_duplicate_key_arguments_are_refused_before_opa(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    # The SDK parses arguments keeping the last value (50); pygate refuses the ambiguity.
    ledger = Ledger()
    raw = '{"amount": 5000, "amount": 50, "to": "acct-2"}'
    agent, model, _ = _agent(
        make_gate("finance"), ledger, [function_call("transfer", raw, call_id="c1")]
    )
    Runner.run_sync(agent, "pay")
    assert ledger.calls == []
    assert [r.policy_id for r in audit.tail(5)][-1] == "pygate.input"
    assert "duplicate key" in audit.tail(1)[0].reason  # the internal reason, audited
    assert _outputs(model)["c1"].startswith("I couldn't process that request.")  # never shown


def test_review_interrupts_and_the_pygate_approval_lets_it_run_once(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    gate = make_gate("assistant")
    ledger = Ledger()
    agent, _model, guard = _agent(
        gate, ledger, [function_call("delete_records", {"table": "logs"}, call_id="c1")]
    )
    paused = Runner.run_sync(agent, "clean up")
    [item] = paused.interruptions  # the SDK's own approval interruption
    assert ledger.calls == []
    pending = guard.approval_id(item)
    assert gate.approvals is not None
    assert [a.approval_id for a in gate.approvals.find("pending")] == [pending]

    state = paused.to_state()
    guard.approve(state, item, by="rita")
    resumed = Runner.run_sync(agent, state)
    assert resumed.final_output == "done"
    assert ledger.calls == [("delete_records", {"table": "logs"})]
    last = audit.tail(1)[0]
    assert (last.allowed, last.approval_id, last.approved_by) == (True, pending, "rita")
    assert gate.approvals.get(pending).status == "used"


def test_approving_only_in_the_sdk_lets_nothing_through(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    ledger = Ledger()
    agent, model, _ = _agent(
        make_gate("assistant"),
        ledger,
        [function_call("delete_records", {"table": "logs"}, call_id="c1")],
    )
    paused = Runner.run_sync(agent, "clean up")
    state = paused.to_state()
    state.approve(paused.interruptions[0])  # no pygate approval behind it
    Runner.run_sync(agent, state)
    assert ledger.calls == []
    assert [r.allowed for r in audit.tail(5)] == [False, False]
    assert _outputs(model) == {
        "c1": "I can help with this, but I need approval first\nHint: Wait for a person to approve "
        "this call, or use a tool from the allowlist instead of delete_records."
    }


def test_rejecting_tells_the_model_and_closes_the_request(make_gate: Callable[..., Gate]) -> None:
    gate = make_gate("assistant")
    ledger = Ledger()
    agent, model, guard = _agent(
        gate, ledger, [function_call("delete_records", {"table": "logs"}, call_id="c1")]
    )
    paused = Runner.run_sync(agent, "clean up")
    [item] = paused.interruptions
    pending = guard.approval_id(item)
    state = paused.to_state()
    guard.reject(state, item, by="rita")
    Runner.run_sync(agent, state)
    assert ledger.calls == []
    assert gate.approvals is not None
    assert pending is not None
    assert gate.approvals.get(pending).status == "rejected"
    assert _outputs(model) == {"c1": "Refused by rita."}


def test_engine_down_refuses(dead_url: str, audit: AuditLog) -> None:
    ledger = Ledger()
    with Gate("finance", opa_url=dead_url, audit=audit) as gate:
        agent, model, _ = _agent(
            gate, ledger, [function_call("transfer", {"amount": 5, "to": "acct-2"}, call_id="c1")]
        )
        Runner.run_sync(agent, "pay")
    assert ledger.calls == []
    [record] = audit.tail(1)
    assert (record.allowed, record.fallback, record.policy_id) == (False, True, "pygate.engine")
    assert "c1" in _outputs(model)


def test_async_gate_with_the_async_runner(opa: LocalOpa, audit: AuditLog) -> None:
    ledger = Ledger()

    async def run() -> dict[str, str]:
        async with AsyncGate("finance", opa_url=opa.url, audit=audit) as gate:
            agent, model, _ = _agent(
                gate,
                ledger,
                [
                    function_call("transfer", {"amount": 50, "to": "acct-2"}, call_id="c1"),
                    function_call("transfer", {"amount": 5000, "to": "acct-3"}, call_id="c2"),
                ],
            )
            await Runner.run(agent, "pay both")
            return _outputs(model)

    outputs = asyncio.run(run())
    assert ledger.calls == [("transfer", {"amount": 50.0, "to": "acct-2"})]
    assert outputs["c1"] == "sent 50.0 to acct-2"
    assert outputs["c2"].startswith("That is more than you can move at once")
    assert sorted(r.allowed for r in audit.tail(5)) == [False, True]


def test_tool_copy_keeps_the_original_untouched(make_gate: Callable[..., Gate]) -> None:
    [transfer, _] = Ledger().tools()
    gated = AgentsGate(make_gate("finance"), ANA).tool(transfer)
    assert transfer.needs_approval is False
    assert gated.needs_approval is not False
    assert gated.name == transfer.name
    assert json.dumps(gated.params_json_schema) == json.dumps(transfer.params_json_schema)


def test_the_tools_own_approval_setting_still_applies(
    make_gate: Callable[..., Gate], audit: AuditLog
) -> None:
    ledger = Ledger()

    @function_tool(needs_approval=True)
    def transfer(amount: float, to: str) -> str:
        """Send money to an account."""
        ledger.calls.append(("transfer", {"amount": amount, "to": to}))
        return "sent"

    model = ScriptedModel(
        [
            [function_call("transfer", {"amount": 50, "to": "acct-2"}, call_id="c1")],
            [assistant_message("done")],
        ]
    )
    guard = AgentsGate(make_gate("finance"), ANA)
    agent = Agent(name="bank", model=model, tools=[guard.tool(transfer)])
    paused = Runner.run_sync(agent, "pay")
    [item] = paused.interruptions
    assert guard.approval_id(item) is None  # the SDK's approval, not pygate's
    assert ledger.calls == []
    state = paused.to_state()
    state.approve(item)
    Runner.run_sync(agent, state)
    assert ledger.calls == [("transfer", {"amount": 50.0, "to": "acct-2"})]
    assert [r.allowed for r in audit.tail(5)] == [True, True]  # decided again when it ran


def _decided(name: str, arguments: dict[str, Any]) -> bytes:
    """An OPA answer allowing one tool call (a fake: a real OPA decides on what it read)."""
    action = {"kind": "tool_call", "name": name, "arguments": arguments, "source": "fake"}
    result = {"allowed": True, "service": "finance", "refusals": [], "actions": [action]}
    return json.dumps({"result": result}).encode()


def test_the_tool_runs_what_was_decided_not_what_the_model_sent(
    fake_opa: Callable[..., str], audit: AuditLog
) -> None:
    ledger = Ledger()
    url = fake_opa(body=_decided("transfer", {"amount": 1, "to": "acct-9"}))
    with Gate("finance", opa_url=url, audit=audit) as gate:
        agent, _, _ = _agent(
            gate, ledger, [function_call("transfer", {"amount": 50, "to": "acct-2"}, call_id="c1")]
        )
        Runner.run_sync(agent, "pay")
    assert ledger.calls == [("transfer", {"amount": 1.0, "to": "acct-9"})]


def test_a_decision_for_another_call_runs_nothing(
    fake_opa: Callable[..., str], audit: AuditLog
) -> None:
    ledger = Ledger()
    url = fake_opa(body=_decided("delete_records", {"table": "users"}))
    with Gate("finance", opa_url=url, audit=audit) as gate:
        agent, model, _ = _agent(
            gate, ledger, [function_call("transfer", {"amount": 50, "to": "acct-2"}, call_id="c1")]
        )
        Runner.run_sync(agent, "pay")
    assert ledger.calls == []
    assert "could not run it as decided" in _outputs(model)["c1"]
