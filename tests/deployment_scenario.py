"""The deployment scenario, independent of how the deployment runs (compose or processes).

Two example services, each with its own OPA sidecar polling one signed bundle: a policy change
published once reaches both without a restart; a tampered bundle is refused and the last good
one keeps deciding; decisions go on while the bundle server is down (also across a sidecar
restart, thanks to ``persist``); a crashed sidecar makes its service refuse until it is back.

A ``Deployment`` says how to do each step; the functions here drive the services over HTTP
and return what they observed, so a test can assert and a script can print timings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

#: Finance: a transfer of 500 by a user without a personal limit (the data's default applies).
TRANSFER = {"type": "transfer", "amount": 500, "to": "acct-2"}
#: Assistant: a tool action on the allowlist, asked by an analyst.
REVIEW = {"type": "tool_call", "action": "recommend_review"}

#: The policy change: lower the default transfer limit below 500, and add a rules-as-data
#: policy for the assistant. Top-level keys of the policy data (data.pygate.config).
LOWER_LIMIT = 300
NEW_POLICY_ID = "AST-DATA-900"


def policy_change(data: dict[str, Any]) -> dict[str, Any]:
    """The data keys to replace, given the current policy data."""
    policies = list(data.get("declarative_policies", []))
    policies.append(
        {
            "id": NEW_POLICY_ID,
            "set": "assistant",
            "priority": 30,
            "title": "Reviews paused",
            "description": "Review recommendations are paused during the audit week.",
            "reason": "Review recommendations are paused this week",
            "action": "log_refusal",
            "conditions": [{"type": "field_in", "field": "action", "values": ["recommend_review"]}],
        }
    )
    return {"default_transaction_limit": LOWER_LIMIT, "declarative_policies": policies}


class Deployment(Protocol):
    """What the scenario needs from a running deployment."""

    #: service name ("finance", "assistant") -> base URL of that example service
    services: dict[str, str]

    def publish(self, data_overrides: dict[str, Any] | None = None) -> str:
        """Build, sign and publish the bundle (with these data keys replaced); its revision."""
        ...

    def publish_bytes(self, content: bytes) -> None:
        """Serve ``content`` as the bundle, as-is (to publish a tampered one)."""
        ...

    def published_bytes(self) -> bytes:
        """The bundle currently served."""
        ...

    def stop_bundle_server(self) -> None: ...

    def start_bundle_server(self) -> None: ...

    def restart_sidecar(self, service: str) -> None:
        """Stop and start the service's sidecar (an operator restart); return when healthy."""
        ...

    def crash_sidecar(self, service: str) -> None:
        """Kill the sidecar's process the hard way; its supervisor must bring it back."""
        ...

    def sidecar_rejected_bundle(self, service: str) -> bool:
        """Whether the sidecar has reported refusing a downloaded bundle."""
        ...


def ask(base_url: str, service: str, user_id: str = "scenario") -> dict[str, Any]:
    """One decision from the example service: the Decision as JSON."""
    output = TRANSFER if service == "finance" else REVIEW
    user = {"id": user_id, "role": "analyst"}
    response = httpx.post(f"{base_url}/act", json={"output": output, "user": user}, timeout=5)
    response.raise_for_status()
    decision: dict[str, Any] = response.json()["decision"]
    return decision


def wait_for(
    check: Callable[[], Any], what: str, timeout: float = 60.0, interval: float = 0.1
) -> Any:
    """Poll ``check`` until it returns something truthy; raise naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except httpx.HTTPError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")


@dataclass
class Rollout:
    """A published policy change as the services saw it."""

    revision: str
    decisions: dict[str, dict[str, Any]]
    #: seconds from the bundle being in place to each service deciding with it
    latency: dict[str, float] = field(default_factory=dict)


def roll_out(dep: Deployment, data_overrides: dict[str, Any]) -> Rollout:
    """Publish a change; wait until every service decides with the new revision."""
    revision = dep.publish(data_overrides)
    published = time.monotonic()
    decisions: dict[str, dict[str, Any]] = {}
    latency: dict[str, float] = {}
    pending = set(dep.services)
    deadline = published + 60
    while pending and time.monotonic() < deadline:
        for service in sorted(pending):
            decision = ask(dep.services[service], service)
            if decision["bundle_revision"] == revision:
                decisions[service] = decision
                latency[service] = time.monotonic() - published
                pending.discard(service)
        time.sleep(0.05)
    if pending:
        raise AssertionError(f"{sorted(pending)} still not on revision {revision} after 60 s")
    return Rollout(revision, decisions, latency)


def decisions_now(dep: Deployment) -> dict[str, dict[str, Any]]:
    """One decision from every service."""
    return {service: ask(url, service) for service, url in dep.services.items()}


def outage(dep: Deployment, service: str, limit: int = 2000) -> list[dict[str, Any]]:
    """Crash ``service``'s sidecar, then ask until a normal decision comes back.

    Returns every decision seen, in order; the last one is the first normal decision.
    """
    seen: list[dict[str, Any]] = []
    dep.crash_sidecar(service)
    for _ in range(limit):
        decision = ask(dep.services[service], service)
        seen.append(decision)
        if not decision["fallback"]:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"{service} still refusing after {limit} requests: {json.dumps(seen[-1])}")
