"""The seed scenarios the demo gates, with the answer each must get."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Scenario:
    """One model output to gate, and what the seed says the gate must answer."""

    name: str
    service: str
    output: Any
    user: dict[str, Any]
    expect_allowed: bool
    expect_policy: str | None = None
    context: dict[str, Any] = field(default_factory=dict)


ANALYST = {"id": "ana", "role": "analyst", "account_status": "active", "transaction_limit": 1000}
REVIEWED = {
    "id": "rex",
    "role": "analyst",
    "account_status": "under_review",
    "transaction_limit": 1000,
}
DEVELOPER = {"id": "dev", "role": "developer", "account_status": "active"}


def scenarios(run_id: str) -> list[Scenario]:
    """The seed's scenarios; user ids carry ``run_id`` so quotas start at zero each run."""

    def u(user: dict[str, Any]) -> dict[str, Any]:
        return {**user, "id": f"{user['id']}-{run_id}"}

    return [
        Scenario("transfer within limit", "finance",
                 {"type": "transfer", "amount": 500, "to": "acct-2"}, u(ANALYST), True),
        Scenario("transfer over the user's limit", "finance",
                 {"type": "transfer", "amount": 5000, "to": "acct-2"}, u(ANALYST),
                 False, "FIN-002"),
        Scenario("account under regulatory review", "finance",
                 {"type": "transfer", "amount": 10, "to": "acct-2"}, u(REVIEWED), False, "FIN-001"),
        Scenario("recommend a restricted asset", "finance",
                 {"type": "recommendation", "asset": "ACME"}, u(ANALYST), False, "FIN-004"),
        Scenario("recommend an active asset", "finance",
                 {"type": "recommendation", "asset": "GLOBEX"}, u(ANALYST), True),
        Scenario("code for an analyst", "assistant",
                 {"type": "text", "text": "```python\nimport os\nos.remove('x')\n```"},
                 u(ANALYST), False, "AST-001"),
        Scenario("code for a developer", "assistant",
                 {"type": "code", "text": "def add(a, b):\n    return a + b"}, u(DEVELOPER), True),
        Scenario("tool call outside the allowlist", "assistant",
                 {"type": "tool_call", "action": "delete_records"}, u(ANALYST), False, "AST-002"),
        Scenario("tool call on the allowlist", "assistant",
                 {"type": "tool_call", "action": "analyze"}, u(ANALYST), True),
        Scenario("transfer recommendation is not the assistant's business", "finance",
                 {"type": "tool_call", "action": "recommend_transfer", "amount": 20},
                 u(ANALYST), True),
    ]  # fmt: skip
