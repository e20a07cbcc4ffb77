"""Typed documents that cross pygate's boundaries: OPA's answer, the Decision, audit records."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

JSONObject = dict[str, Any]

#: Told to the end user when a refusal carries no message of its own (never the reason).
DEFAULT_REFUSAL = "This action was refused by policy."


class Condition(BaseModel):
    """One comparison behind a refusal, computed by Rego: ``field op bound``.

    In ``Refusal.why`` it is a condition that held (so the policy refused), with the
    ``value`` the input had: ``arguments.amount`` ``>`` ``1000`` with value ``5000``. In
    ``Refusal.would_pass`` it is a change that would lift the refusal (no value):
    ``arguments.amount`` ``<=`` ``1000``; ``user.role`` ``in`` ``["developer", "admin"]``;
    ``approval`` ``granted`` (a person approves it).

    Attributes:
        field: a dotted path into the input: ``arguments.<name>`` (an action's argument),
            ``output.<path>`` (rules-as-data), ``user.<attribute>``, ``context.<key>``,
            ``action.name`` or ``approval``.
        op: ``>``, ``>=``, ``<``, ``<=``, ``==``, ``!=``, ``in``, ``not in``, ``matches``,
            ``not matches``, ``is``, ``is not`` (a JSON type), ``present``, ``absent``,
            ``granted``.
        value: what the input had (``None`` when absent, and for matched text, which may be a
            secret).
        bound: what it was compared with (a number, a list, a pattern, a type name).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    field: StrictStr
    op: StrictStr
    value: Any = None
    bound: Any = None

    def text(self) -> str:
        """``field op bound`` as one line, e.g. ``arguments.amount <= 1000``."""
        bound = "" if self.bound is None else f" {_compact(self.bound)}"
        return f"{self.field} {self.op}{bound}"


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[" + ", ".join(value) + "]"
    return json.dumps(value, ensure_ascii=False)


class Refusal(BaseModel):
    """One policy that refused the action, as the Rego entry point reports it.

    Three messages for three readers: ``reason`` is internal (audit, operators; it may quote
    the output or policy data), ``message`` is for the end user, ``hint`` for the model (what
    to try instead; the integrations feed it back to the agent). ``suggestion`` is the older
    name of the hint: a refusal that has only a suggestion gets it as its hint too.
    ``why`` and ``would_pass`` are computed by the policy (see :class:`Condition`);
    ``shadow`` marks a refusal of a shadow policy, which never refuses
    (``Decision.shadow_refusals``).
    """

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
    hint: StrictStr | None = None
    why: list[Condition] = Field(default_factory=list)
    would_pass: list[Condition] = Field(default_factory=list)
    invalid: StrictBool = False
    shadow: StrictBool = False

    @model_validator(mode="before")
    @classmethod
    def _explanations_never_break_a_refusal(cls, data: Any) -> Any:
        """Drop a malformed ``hint``, ``why``, ``would_pass`` or ``shadow``; fill the hint.

        These keys are newer than many policy packages, which may use them for something
        else: a refusal must not turn into a contract failure (an engine fallback) because of
        an explanation. The refusal itself stands either way.
        """
        if not isinstance(data, dict):
            return data
        fixed = dict(data)
        for key, ok in _LENIENT.items():
            if key in fixed and fixed[key] is not None and not ok(fixed[key]):
                del fixed[key]
        if fixed.get("hint") is None and isinstance(fixed.get("suggestion"), str):
            fixed["hint"] = fixed["suggestion"] or None
        return fixed


def _conditions_ok(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(c, Condition)
        or (
            isinstance(c, dict) and isinstance(c.get("field"), str) and isinstance(c.get("op"), str)
        )
        for c in value
    )


_LENIENT: dict[str, Callable[[Any], bool]] = {
    "hint": lambda v: isinstance(v, str),
    "shadow": lambda v: isinstance(v, bool),
    "why": _conditions_ok,
    "would_pass": _conditions_ok,
}


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
    shadow_refusals: list[Refusal] = Field(default_factory=list)


class Decision(BaseModel):
    """What the gate decided for one model output.

    ``allowed`` is the only field a caller must check; everything else explains it.
    ``fallback`` is true when the engine could not decide and pygate refused on its own.
    ``output_hash`` is set on a refusal that waits for human review (what to approve);
    ``approval_id``/``approved_by`` on a decision that an approval let through.
    ``actions`` are the canonical actions OPA read from the output and decided on (empty
    when OPA reported none, e.g. on a fallback or input refusal); ``execute``, ``guard`` and
    ``dispatch`` run these, and the audit record keeps them.
    ``message`` is for the end user, ``hint`` for the model, ``reason`` internal (see
    :class:`Refusal`). ``shadow_refusals`` are what shadow policies would have refused; they
    never refuse and are never in ``refusals``.
    """

    model_config = ConfigDict(frozen=True)

    allowed: bool
    reason: str = ""
    policy_id: str | None = None
    action: str | None = None
    refusals: list[Refusal] = Field(default_factory=list)
    message: str | None = None
    hint: str | None = None
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
    shadow_refusals: list[Refusal] = Field(default_factory=list)

    @property
    def refused(self) -> bool:
        """True when the action must not run."""
        return not self.allowed

    @property
    def policy_ids(self) -> list[str]:
        """Ids of every refusing policy, primary first."""
        return [r.policy_id for r in self.refusals]

    @property
    def shadow_policy_ids(self) -> list[str]:
        """Ids of every shadow policy that would have refused (they did not)."""
        return [r.policy_id for r in self.shadow_refusals]

    @property
    def why(self) -> list[Condition]:
        """The primary refusal's failing conditions (empty when allowed or not explained)."""
        return list(self.refusals[0].why) if self.refusals and not self.allowed else []

    @property
    def would_pass(self) -> list[Condition]:
        """The primary refusal's passing changes, any one of which lifts it."""
        return list(self.refusals[0].would_pass) if self.refusals and not self.allowed else []

    def user_message(self) -> str:
        """A sentence to show the end user: the policy's message, never its internal reason."""
        if self.allowed:
            return ""
        return self.message or DEFAULT_REFUSAL


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
    #: What shadow policies would have refused (``None``: none did, or an older record).
    shadow_refusals: list[Any] | None = None
