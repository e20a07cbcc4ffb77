"""What each agent-framework adapter adds per tool call, next to a direct ``Gate.evaluate``.

    .venv/bin/python benchmarks/framework_overhead.py [--rounds N] [--quick] [--json out.json]

One process, one OPA (the repository's ``rego/``), one durable SQLite audit log. Each round
runs every contender once, in a shuffled order (CONVENTIONS: interleaved, so drift and other
jobs on the machine hit every contender alike):

- ``direct.gate`` / ``direct.async_gate``: ``Gate.evaluate`` / ``AsyncGate.evaluate`` of the
  same tool call, then the tool function with the decided arguments;
- ``<framework>.plain``: one agent run of the real framework (its own test double for the
  model: two model turns, one tool call, then an answer), no gate;
- ``<framework>.gated``: the same run with pygate's adapter.

``--no-audit`` runs the gates with ``audit=None`` (benchmarks only), so the fsync of the
durable audit, which dominates a decision here, does not hide the adapters' own cost.

The adapter's cost per call is ``gated - plain`` of the same round (the gate's decision and
audit included); its overhead over a direct evaluate is ``gated - plain - direct`` and its
ratio ``(gated - plain) / direct``, each the median over rounds (and p99). The OpenAI Agents
SDK and pydantic-ai rows use an ``AsyncGate`` (their tools are async), LangChain a ``Gate``
(``agent.invoke``). ``--quick`` runs a few rounds (the test proves the script runs; it never
asserts a speed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents import Agent, Runner, function_tool, set_tracing_disabled  # noqa: E402
from agents.testing import ScriptedModel, assistant_message, function_call  # noqa: E402
from langchain.agents import create_agent  # noqa: E402
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from pydantic_ai import Agent as PydanticAgent  # noqa: E402
from pydantic_ai.messages import (  # noqa: E402
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel  # noqa: E402
from pydantic_ai.toolsets import FunctionToolset  # noqa: E402

from pygate import AsyncGate, Gate, LocalOpa, SqliteAuditLog  # noqa: E402
from pygate.integrations.langchain import PygateMiddleware  # noqa: E402
from pygate.integrations.openai_agents import AgentsGate  # noqa: E402
from pygate.integrations.pydantic_ai import PygateToolset  # noqa: E402

USER = {"id": "ana", "role": "analyst", "account_status": "active", "transaction_limit": 1000}
ARGS = {"amount": 10, "to": "acct-2"}
FRAMEWORKS = {
    "openai_agents": "direct.async_gate",
    "langchain": "direct.gate",
    "pydantic_ai": "direct.async_gate",
}


def transfer(amount: float, to: str) -> str:
    """Send money to an account."""
    return f"sent {amount} to {to}"


class _LoopingChatModel(GenericFakeChatModel):
    """langchain-core's fake chat model, answering from the conversation: a tool call first,
    then (once a tool result is in) a text answer, so one compiled agent serves every run."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        if isinstance(messages[-1], ToolMessage):
            reply = AIMessage(content="done")
        else:
            reply = AIMessage(
                content="", tool_calls=[{"name": "transfer", "args": ARGS, "id": "c1"}]
            )
        return ChatResult(generations=[ChatGeneration(message=reply)])


def _pydantic_reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    last = messages[-1]
    if isinstance(last, ModelRequest) and any(isinstance(p, ToolReturnPart) for p in last.parts):
        return ModelResponse(parts=[TextPart("done")])
    return ModelResponse(parts=[ToolCallPart("transfer", dict(ARGS), tool_call_id="c1")])


class Contenders:
    """Every contender as a zero-argument callable that does one tool call."""

    def __init__(self, gate: Gate, agate: AsyncGate, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.gate, self.agate = gate, agate
        self.n = 0
        oa_tool = function_tool(transfer)
        self.oa_plain = [oa_tool]
        self.oa_gated = AgentsGate(agate, USER).tools([oa_tool])
        lc_tool = tool(transfer)
        self.lc_plain = create_agent(_LoopingChatModel(messages=iter([])), tools=[lc_tool])
        self.lc_gated = create_agent(
            _LoopingChatModel(messages=iter([])),
            tools=[lc_tool],
            middleware=[PygateMiddleware(gate, USER)],
        )
        model = FunctionModel(_pydantic_reply)
        self.pa_plain = PydanticAgent(model, toolsets=[FunctionToolset([transfer])])
        self.pa_gated = PydanticAgent(
            model, toolsets=[PygateToolset(FunctionToolset([transfer]), agate, USER)]
        )

    def all(self) -> dict[str, Callable[[], object]]:
        return {
            "direct.gate": self.direct,
            "direct.async_gate": lambda: self.loop.run_until_complete(self.adirect()),
            "openai_agents.plain": lambda: self._oa(self.oa_plain),
            "openai_agents.gated": lambda: self._oa(self.oa_gated),
            "langchain.plain": lambda: self.lc_plain.invoke({"messages": [("user", "pay")]}),
            "langchain.gated": lambda: self.lc_gated.invoke({"messages": [("user", "pay")]}),
            "pydantic_ai.plain": lambda: self.loop.run_until_complete(self.pa_plain.run("pay")),
            "pydantic_ai.gated": lambda: self.loop.run_until_complete(self.pa_gated.run("pay")),
        }

    def _call(self) -> dict[str, Any]:
        self.n += 1
        return {"type": "tool_call", "action": "transfer", "arguments": ARGS, "id": f"c{self.n}"}

    def direct(self) -> object:
        decision = self.gate.evaluate(self._call(), USER)
        assert decision.allowed, decision.reason
        return transfer(**decision.actions[0].arguments)

    async def adirect(self) -> object:
        decision = await self.agate.evaluate(self._call(), USER)
        assert decision.allowed, decision.reason
        return transfer(**decision.actions[0].arguments)

    def _oa(self, tools: list[Any]) -> object:
        self.n += 1
        model = ScriptedModel(
            [[function_call("transfer", ARGS, call_id=f"c{self.n}")], [assistant_message("done")]]
        )
        agent = Agent(name="bank", model=model, tools=tools)
        result = self.loop.run_until_complete(Runner.run(agent, "pay"))
        return result.final_output


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(rounds: int, warmup: int = 5, seed: int = 7, durable: bool = True) -> dict[str, Any]:
    set_tracing_disabled(True)
    rng = random.Random(seed)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory() as tmp:
        opa = LocalOpa(ROOT / "rego", supervise=False).start()
        audit = SqliteAuditLog(Path(tmp) / "audit.db") if durable else None
        gate = Gate("finance", opa_url=opa.url, audit=audit)
        agate = AsyncGate("finance", opa_url=opa.url, audit=audit)
        try:
            calls = Contenders(gate, agate, loop).all()
            for _ in range(warmup):
                for fn in calls.values():
                    fn()
            lat: dict[str, list[float]] = {k: [] for k in calls}
            for _ in range(rounds):
                order = list(calls)
                rng.shuffle(order)
                for key in order:
                    started = time.perf_counter()
                    calls[key]()
                    lat[key].append(time.perf_counter() - started)
            records = audit.count() if audit is not None else None
        finally:
            loop.run_until_complete(agate.aclose())
            gate.close()
            if audit is not None:
                audit.close()
            opa.stop()
            asyncio.set_event_loop(None)
            loop.close()
    return report(lat, rounds, records)


def report(lat: dict[str, list[float]], rounds: int, records: int | None) -> dict[str, Any]:
    rows = {
        k: {"median_ms": statistics.median(v) * 1e3, "p99_ms": _pct(v, 0.99) * 1e3}
        for k, v in lat.items()
    }
    overhead = {}
    for fw, direct_key in FRAMEWORKS.items():
        direct = lat[direct_key]
        cost = [g - p for g, p in zip(lat[f"{fw}.gated"], lat[f"{fw}.plain"], strict=True)]
        over = [c - d for c, d in zip(cost, direct, strict=True)]
        ratio = [c / d for c, d in zip(cost, direct, strict=True)]
        overhead[fw] = {
            "versus": direct_key,
            "adapter_cost_median_ms": statistics.median(cost) * 1e3,
            "adapter_cost_p99_ms": _pct(cost, 0.99) * 1e3,
            "over_direct_median_ms": statistics.median(over) * 1e3,
            "over_direct_p99_ms": _pct(over, 0.99) * 1e3,
            "ratio_median": statistics.median(ratio),
        }
    return {
        "rounds": rounds,
        "audit_records": records,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "rows": rows,
        "overhead": overhead,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="a few rounds: proves it runs")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument(
        "--no-audit",
        action="store_true",
        help="gates without an audit log (audit=None): the adapters' cost without the fsync",
    )
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    result = measure(rounds, warmup=1 if args.quick else 5, durable=not args.no_audit)
    where = "no audit log" if args.no_audit else "durable SQLite audit"
    print(f"{result['rounds']} interleaved rounds, one OPA, {where}")
    print(f"{'contender':<22} {'median ms':>10} {'p99 ms':>9}")
    for key, row in result["rows"].items():
        print(f"{key:<22} {row['median_ms']:>10.3f} {row['p99_ms']:>9.3f}")
    print()
    print(
        f"{'adapter':<14} {'vs':<18} {'gated-plain ms':>14} {'p99':>8} "
        f"{'over direct ms':>14} {'p99':>8} {'ratio':>6}"
    )
    for fw, o in result["overhead"].items():
        print(
            f"{fw:<14} {o['versus']:<18} {o['adapter_cost_median_ms']:>14.3f} "
            f"{o['adapter_cost_p99_ms']:>8.3f} {o['over_direct_median_ms']:>14.3f} "
            f"{o['over_direct_p99_ms']:>8.3f} {o['ratio_median']:>6.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
