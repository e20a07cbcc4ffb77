"""Typed documents that cross pygate's boundaries: OPA's answer, the Decision, audit records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

JSONObject = dict[str, Any]


class Refusal(BaseModel):
    """One policy that refused the action, as the Rego entry point reports it."""

    model_config = ConfigDict(extra="allow", frozen=True)

    policy_id: StrictStr = Field(min_length=1)
    reason: StrictStr
    action: StrictStr
    priority: StrictInt = 100
    title: StrictStr | None = None
    description: StrictStr | None = None
    policy_set: StrictStr | None = None
    source: StrictStr | None = None
    suggestion: StrictStr | None = None
    message: StrictStr | None = None
    invalid: StrictBool = False


class Review(BaseModel):
    """What a person must approve: the output (by its canonical hash) and the policies."""

    model_config = ConfigDict(frozen=True)

    output_hash: StrictStr = Field(min_length=64, max_length=64)
    policy_ids: list[StrictStr] = Field(min_length=1)


class AppliedApproval(BaseModel):
    """An approval that lifted a require_review refusal (policy ``pygate.approvals``)."""

    model_config = ConfigDict(frozen=True)

    approval_id: StrictStr
    approved_by: StrictStr


class CanonicalAction(BaseModel):
    """One action the gate decided on, in the bundle's canonical form (``pygate.canonical``).

    Whatever shape the model emitted (pygate's ``guard``, OpenAI Chat Completions
    ``tool_calls`` or Responses ``function_call``, Anthropic ``tool_use``, MCP ``tools/call``,
    the seed's typed objects, plain text, or a list of these), OPA reads it as actions of
    this form; the executor runs *these*, never a second parse of the raw output.

    Attributes:
        kind: ``tool_call`` (a named call), ``action`` (a typed object such as
            ``{"type": "transfer", ...}``) or ``answer`` (text for the user).
        name: the action name, canonical (lower case, ASCII).
        arguments: the arguments as decided (a JSON-string argument already parsed).
        source: the shape it was read from, e.g. ``openai.chat.tool_call``.
        path: where in the output it was found (keys and indexes).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: StrictStr = Field(min_length=1)
    name: StrictStr = Field(min_length=1)
    arguments: dict[str, Any]
    source: StrictStr = Field(min_length=1)
    path: list[StrictStr | StrictInt] = Field(default_factory=list)


class OpaResult(BaseModel):
    """The contract of ``data.pygate.gate.decision``; anything else is a bad response."""

    model_config = ConfigDict(extra="ignore")

    allowed: StrictBool
    service: Any = None
    refusals: list[Refusal]
    primary: Refusal | None = None
    review: Review | None = None
    approvals_applied: list[AppliedApproval] = Field(default_factory=list)
    actions: list[CanonicalAction] = Field(default_factory=list)


class Decision(BaseModel):
    """What the gate decided for one model output.

    ``allowed`` is the only field a caller must check; everything else explains it.
    ``fallback`` is true when the engine could not decide and pygate refused on its own.
    ``output_hash`` is set on a refusal that waits for human review (what to approve);
    ``approval_id``/``approved_by`` on a decision that an approval let through.
    ``actions`` are the canonical actions OPA read from the output and decided on (empty
    when OPA reported none, e.g. on a fallback or input refusal); ``execute``, ``guard`` and
    ``dispatch`` run these, and the audit record keeps them.
    """

    model_config = ConfigDict(frozen=True)

    allowed: bool
    reason: str = ""
    policy_id: str | None = None
    action: str | None = None
    refusals: list[Refusal] = Field(default_factory=list)
    message: str | None = None
    suggestion: str | None = None
    service: str | None = None
    user_id: str | None = None
    audit_id: str | None = None
    decision_id: str | None = None
    bundle_revision: str | None = None
    fallback: bool = False
    latency_ms: float = 0.0
    decided_at: datetime | None = None
    output_hash: str | None = None
    approval_id: str | None = None
    approved_by: str | None = None
    actions: list[CanonicalAction] = Field(default_factory=list)

    @property
    def refused(self) -> bool:
        """True when the action must not run."""
        return not self.allowed

    @property
    def policy_ids(self) -> list[str]:
        """Ids of every refusing policy, primary first."""
        return [r.policy_id for r in self.refusals]

    def user_message(self) -> str:
        """A sentence to show the end user: the policy's message, else its reason."""
        if self.allowed:
            return ""
        text = self.message or self.reason
        if self.suggestion:
            text = f"{text} ({self.suggestion})"
        return text


class AuditRecord(BaseModel):
    """One row of the audit log: one decision, approvals and refusals alike."""

    model_config = ConfigDict(frozen=True)

    seq: int
    audit_id: str
    ts: datetime
    service: str | None
    user_id: str | None
    output: Any
    allowed: bool
    reason: str
    policy_id: str | None
    policy_ids: list[str]
    action: str | None
    decision_id: str | None
    bundle_revision: str | None
    fallback: bool
    latency_ms: float
    prev_hash: str
    hash: str
    approval_id: str | None = None
    approved_by: str | None = None
    actions: list[Any] | None = None
    #: Every refusal object as OPA gave it (``None``: a record written before they were kept).
    refusals: list[dict[str, Any]] | None = None
    #: What replay needs: ``user``, ``context`` (usage_today and approvals as they were) and
    #: ``redacted`` paths; ``None`` for records written before it was kept, and for outputs
    #: refused before OPA was asked (invalid input).
    opa_input: dict[str, Any] | None = None
