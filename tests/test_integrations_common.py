"""The refusal text every integration shows: the user message, never an empty string."""

from pygate import Decision
from pygate.integrations._common import DEFAULT_REFUSAL, model_hint, refusal_text, tool_error_text


def test_refusal_text_prefers_the_user_message_to_the_reason() -> None:
    decision = Decision(allowed=False, reason="FIN-001 limit", message="Too large for you.")
    assert refusal_text(decision) == "Too large for you."


def test_refusal_text_falls_back_to_reason_then_default() -> None:
    assert refusal_text(Decision(allowed=False, reason="limit")) == "limit"
    assert refusal_text(Decision(allowed=False)) == DEFAULT_REFUSAL


def test_tool_error_text_appends_the_hint_for_the_model() -> None:
    decision = Decision(allowed=False, message="No.", suggestion="Ask for approval.")
    assert model_hint(decision) == "Ask for approval."
    assert tool_error_text(decision) == "No.\nHint: Ask for approval."
    assert tool_error_text(Decision(allowed=False, message="No.")) == "No."
