"""What every integration tells the user and the model when the gate refuses."""

from __future__ import annotations

from pygate._models import DEFAULT_REFUSAL, Decision

__all__ = ["DEFAULT_REFUSAL", "model_hint", "refusal_text", "tool_error_text"]


def refusal_text(decision: Decision) -> str:
    """The user-facing message of a refused ``decision``; never the internal reason."""
    return decision.message or DEFAULT_REFUSAL


def model_hint(decision: Decision) -> str | None:
    """What the model could try instead (the policy's hint, else its older suggestion)."""
    return decision.hint or decision.suggestion


def tool_error_text(decision: Decision) -> str:
    """One text for a framework's tool-error result: the message, then the hint if any."""
    hint = model_hint(decision)
    text = refusal_text(decision)
    return f"{text}\nHint: {hint}" if hint else text
