"""The refusal text every integration shows: the user message, never an empty string."""

from pygate import Decision
from pygate.integrations._common import DEFAULT_REFUSAL, model_hint, refusal_text, tool_error_text


def test_refusal_text_prefers_the_user_message_to_the_reason() -> None:
    decision = Decision(allowed=False, reason="FIN-001 limit", message="Too large for you.")
    assert refusal_text(decision) == "Too large for you."


def test_refusal_text_never_shows_the_internal_reason() -> None:
    # The reason is internal (it may quote policy data or the output): without a user
    # message the user gets the default sentence, not the reason.
    assert refusal_text(Decision(allowed=False, reason="limit 1000 from acct-9")) == DEFAULT_REFUSAL
    assert refusal_text(Decision(allowed=False)) == DEFAULT_REFUSAL


def test_model_hint_prefers_the_hint_to_the_older_suggestion() -> None:
    decision = Decision(allowed=False, hint="Propose at most 1000.", suggestion="Smaller.")
    assert model_hint(decision) == "Propose at most 1000."
    assert model_hint(Decision(allowed=False, suggestion="Smaller.")) == "Smaller."
    assert model_hint(Decision(allowed=False, reason="internal")) is None


def test_tool_error_text_appends_the_hint_for_the_model() -> None:
    decision = Decision(allowed=False, message="No.", suggestion="Ask for approval.")
    assert model_hint(decision) == "Ask for approval."
    assert tool_error_text(decision) == "No.\nHint: Ask for approval."
    assert tool_error_text(Decision(allowed=False, message="No.")) == "No."
