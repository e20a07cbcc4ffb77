"""What every integration tells the user and the model when the gate refuses."""

from __future__ import annotations

from pygate._models import Decision

#: Said when a refusal carries no user-facing message of its own.
DEFAULT_REFUSAL = "This action was refused by policy."


def refusal_text(decision: Decision) -> str:
    """The user-facing message of a refused ``decision`` (never the internal reason alone)."""
    return decision.message or decision.reason or DEFAULT_REFUSAL


def model_hint(decision: Decision) -> str | None:
    """What the model could try instead, when the policy says so (fed back to the agent)."""
    return decision.suggestion


def tool_error_text(decision: Decision) -> str:
    """One text for a framework's tool-error result: the message, then the hint if any."""
    hint = model_hint(decision)
    text = refusal_text(decision)
    return f"{text}\nHint: {hint}" if hint else text
