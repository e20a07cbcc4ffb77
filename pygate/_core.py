"""The I/O-free heart of the gate: build OPA's input, read OPA's answer, make Decisions.

``Gate`` and ``AsyncGate`` differ only in how they wait for OPA and the audit log; everything
they decide is decided here, once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from pygate._errors import (
    BadEngineResponse,
    EngineError,
    InputError,
    UndefinedDecision,
)
from pygate._input import (
    MAX_DEPTH,
    MAX_OUTPUT_BYTES,
    check_document,
    check_user_id,
    compact_size,
    loads,
)
from pygate._models import Decision, JSONObject, OpaResult, Refusal

DECISION_PATH = "pygate/gate/decision"
BATCH_PATH = "pygate/gate/batch"

ENGINE_POLICY_ID = "pygate.engine"
INPUT_POLICY_ID = "pygate.input"

#: What the user and the model are told about a refusal pygate makes itself, by default.
OWN_MESSAGE = "I can't do that right now because of a problem on our side."
OWN_HINT = "Do not retry at once or work around the check; tell the user it did not run."

_USER_STR_FIELDS = ("role", "account_status")


def _plain(value: Any, field: str) -> Any:
    """Turn a dict, pydantic model or attribute object into plain JSON-ready data."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return dict(value)
    if value is None or isinstance(value, (str, int, float, bool, list)):
        return value
    attrs = getattr(value, "__dict__", None)
    if attrs is None:
        raise InputError(field, f"expected an object, got {type(value).__name__}")
    return {k: v for k, v in attrs.items() if not k.startswith("_")}


def normalize_output(
    output: Any, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_OUTPUT_BYTES
) -> JSONObject:
    """Return the model output as a JSON object; plain text becomes ``{"type": "text"}``.

    Raises:
        InputError: not an object or text, not plain JSON (see ``pygate._input``), nested
            deeper than ``max_depth`` or larger than ``max_bytes`` (field ``output``).
    """
    if isinstance(output, str):
        doc: JSONObject = {"type": "text", "text": output}
    else:
        plain = _plain(output, "output")
        if not isinstance(plain, dict):
            raise InputError("output", f"expected an object or text, got {type(output).__name__}")
        doc = plain
    check_document(doc, "output", max_depth)
    size = compact_size(doc)
    if size > max_bytes:
        raise OversizeOutput(size, max_bytes)
    return doc


class OversizeOutput(InputError):
    """The output is larger than the configured cap; the audit keeps its size and digest."""

    def __init__(self, size: int, cap: int) -> None:
        super().__init__(
            "output", f"{size} bytes of JSON exceed the cap of {cap} (max_output_bytes)"
        )


def normalize_user(user: Any, *, max_depth: int = MAX_DEPTH) -> JSONObject:
    """Return the user as a JSON object with a string ``id``; wrong types name the field."""
    doc = _plain(user, "user")
    if not isinstance(doc, dict):
        raise InputError("user", f"expected an object, got {type(user).__name__}")
    uid = doc.get("id")
    if isinstance(uid, int) and not isinstance(uid, bool):
        doc["id"] = uid = str(uid)
    if not isinstance(uid, str) or not uid.strip():
        raise InputError("user.id", "required, a non-empty string")
    check_user_id(uid)
    for name in _USER_STR_FIELDS:
        if doc.get(name) is not None and not isinstance(doc[name], str):
            raise InputError(f"user.{name}", f"expected a string, got {type(doc[name]).__name__}")
    limit = doc.get("transaction_limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float))):
        raise InputError("user.transaction_limit", f"expected a number, got {type(limit).__name__}")
    check_document(doc, "user", max_depth)
    return doc


def normalize_context(context: Any, *, max_depth: int = MAX_DEPTH) -> JSONObject:
    """Return the context as a JSON object (``None`` is an empty context)."""
    if context is None:
        return {}
    doc = _plain(context, "context")
    if not isinstance(doc, dict):
        raise InputError("context", f"expected an object, got {type(context).__name__}")
    check_document(doc, "context", max_depth)
    return doc


def build_input(output: JSONObject, user: JSONObject, context: JSONObject) -> JSONObject:
    """The OPA input document; kept as a function so the batch path shares it."""
    return {"output": output, "user": user, "context": context}


def request_body(document: JSONObject) -> bytes:
    """The Data API request body for one input document (compact JSON, no NaN)."""
    return json.dumps({"input": document}, separators=(",", ":"), allow_nan=False).encode()


def split_item(item: Any, index: int) -> tuple[Any, Any, Any]:
    """One ``evaluate_many`` item as ``(output, user, context)``.

    Raises:
        InputError: naming ``items[index]`` when the item has neither accepted shape.
    """
    where = f"items[{index}]"
    if isinstance(item, Mapping):
        unknown = sorted(str(k) for k in item if k not in ("output", "user", "context"))
        if unknown:
            raise InputError(where, f"unknown key(s) {', '.join(unknown)}")
        for key in ("output", "user"):
            if key not in item:
                raise InputError(f"{where}.{key}", "required")
        return item["output"], item["user"], item.get("context")
    if isinstance(item, (tuple, list)) and len(item) in (2, 3):
        return item[0], item[1], item[2] if len(item) == 3 else None
    raise InputError(
        where, "expected (output, user[, context]) or a dict with output, user[, context]"
    )


def loose_parts(item: Any) -> tuple[Any, Any, Any]:
    """Best-effort ``(output, user, context)`` of an item ``split_item`` refused, so that the
    refusal's audit record still names the user (and a trusted caller's service)."""
    if isinstance(item, Mapping):
        return item.get("output"), item.get("user"), item.get("context")
    if isinstance(item, (tuple, list)):
        padded = (*item, None, None, None)
        return padded[0], padded[1], padded[2]
    return None, None, None


def batch_body(documents: list[JSONObject]) -> bytes:
    """The Data API request body for the batch entry point."""
    return json.dumps(
        {"input": {"items": documents}}, separators=(",", ":"), allow_nan=False
    ).encode()


def read_batch(result: Any, expected: int) -> list[Any]:
    """The per-item answers of ``data.pygate.gate.batch``, one per item sent.

    Raises:
        BadEngineResponse: not ``{"decisions": [...]}`` with exactly ``expected`` entries.
    """
    answers = result.get("decisions") if isinstance(result, dict) else None
    if not isinstance(answers, list) or len(answers) != expected:
        what = answers if isinstance(result, dict) else result  # name what was wrong
        got = len(answers) if isinstance(answers, list) else type(what).__name__
        raise BadEngineResponse(
            f"OPA batch result must hold {expected} decisions, got {got}", policy_path=BATCH_PATH
        )
    return answers


def parse_response(status: int, body: bytes, path: str = DECISION_PATH) -> tuple[Any, JSONObject]:
    """Check OPA's HTTP answer and return ``(result, envelope)``.

    Raises:
        BadEngineResponse: HTTP error or a body that is not a JSON object.
        UndefinedDecision: 200 without a ``result`` key.
    """
    if status != 200:
        snippet = body[:200].decode(errors="replace")
        raise BadEngineResponse(f"OPA answered HTTP {status}: {snippet}", policy_path=path)
    try:
        envelope = loads(body, "OPA's answer")
    except InputError as exc:
        raise BadEngineResponse(
            f"OPA answered with invalid JSON ({exc.problem})", policy_path=path
        ) from exc
    if not isinstance(envelope, dict):
        raise BadEngineResponse("OPA answered with a non-object", policy_path=path)
    if "result" not in envelope:
        raise UndefinedDecision(f"data.{path.replace('/', '.')} is undefined", policy_path=path)
    return envelope["result"], envelope


def read_result(result: Any, path: str = DECISION_PATH) -> OpaResult:
    """Validate one decision document against the contract; never trusts a loose allow."""
    try:
        parsed = OpaResult.model_validate(result)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "result"
        raise BadEngineResponse(
            f"OPA result breaks the contract at {where}: {first['msg']}", policy_path=path
        ) from exc
    if parsed.allowed == bool(parsed.refusals):
        raise BadEngineResponse(
            "OPA result is inconsistent: allowed must be true exactly when there are no refusals",
            policy_path=path,
        )
    return parsed


def _revision(envelope: JSONObject) -> str | None:
    bundles = (envelope.get("provenance") or {}).get("bundles") or {}
    revisions = sorted(
        {
            str(b["revision"])
            for b in bundles.values()
            if isinstance(b, dict) and isinstance(b.get("revision"), str) and b["revision"]
        }
    )
    return ",".join(revisions) or None


def decision_from_result(
    result: OpaResult,
    envelope: JSONObject,
    *,
    service: str | None,
    user_id: str | None,
    latency_ms: float,
) -> Decision:
    """Map a validated OPA result to a Decision."""
    # A refusal in refusals refuses, whatever it says; one in shadow_refusals never does.
    refusals = [r.model_copy(update={"shadow": False}) if r.shadow else r for r in result.refusals]
    shadow = [
        r if r.shadow else r.model_copy(update={"shadow": True}) for r in result.shadow_refusals
    ]
    primary = result.primary or (refusals[0] if refusals else None)
    if primary is not None and primary.shadow:
        primary = primary.model_copy(update={"shadow": False})
    if primary is not None and refusals and refusals[0] != primary:
        refusals = [primary] + [r for r in refusals if r != primary]
    decision_id = envelope.get("decision_id")
    applied = result.approvals_applied
    return Decision(
        allowed=result.allowed,
        reason=primary.reason if primary else "allowed",
        policy_id=primary.policy_id if primary else None,
        action=primary.action if primary else None,
        refusals=refusals,
        message=primary.message if primary else None,
        hint=primary.hint if primary else None,
        suggestion=primary.suggestion if primary else None,
        service=service,
        user_id=user_id,
        decision_id=decision_id if isinstance(decision_id, str) else None,
        bundle_revision=_revision(envelope),
        latency_ms=latency_ms,
        decided_at=datetime.now(UTC),
        output_hash=result.review.output_hash if result.review else None,
        approval_id=",".join(a.approval_id for a in applied) or None,
        approved_by=",".join(sorted({a.approved_by for a in applied})) or None,
        actions=list(result.actions),
        shadow_refusals=shadow,
    )


def own_refusal(
    policy_id: str,
    reason: str,
    *,
    service: str | None,
    user_id: str | None,
    message: str | None = None,
    hint: str | None = None,
    fallback: bool = False,
    latency_ms: float = 0.0,
) -> Decision:
    """A refusal pygate makes itself, when OPA's answer cannot be had or used.

    ``reason`` is internal (it names the failure); ``message`` (for the user) and ``hint``
    (for the model) default to text that says nothing about it.
    """
    message = message or OWN_MESSAGE
    hint = hint or OWN_HINT
    refusal = Refusal(
        policy_id=policy_id,
        reason=reason,
        action="log_refusal",
        priority=0,
        message=message,
        hint=hint,
        source="pygate",
    )
    return Decision(
        allowed=False,
        reason=reason,
        policy_id=policy_id,
        action="log_refusal",
        refusals=[refusal],
        message=message,
        hint=hint,
        service=service,
        user_id=user_id,
        fallback=fallback,
        latency_ms=latency_ms,
        decided_at=datetime.now(UTC),
    )


def fallback_decision(
    exc: EngineError, *, service: str | None, user_id: str | None, latency_ms: float
) -> Decision:
    """THE place where an engine failure becomes a refusal (fail closed)."""
    return own_refusal(
        ENGINE_POLICY_ID,
        f"The policy engine could not decide ({type(exc).__name__}: {exc}); refused to be safe",
        message="I can't do that right now: the safety check is unavailable. Try again shortly.",
        hint="The safety check is unavailable; do not retry at once or work around it.",
        fallback=True,
        service=service,
        user_id=user_id,
        latency_ms=latency_ms,
    )


def input_refusal(exc: InputError, *, service: str | None, user_id: str | None) -> Decision:
    """A refusal for input that cannot be gated; it names the field and is audited."""
    return own_refusal(
        INPUT_POLICY_ID,
        f"Invalid input: {exc}",
        message="I couldn't process that request.",
        hint="Send plain JSON: an object or text, not too large or deeply nested.",
        service=service,
        user_id=user_id,
    )


def safe_user_id(user: Any) -> str | None:
    """Best-effort user id for auditing input that failed validation."""
    uid = user.get("id") if isinstance(user, Mapping) else getattr(user, "id", None)
    return str(uid) if isinstance(uid, (str, int)) and not isinstance(uid, bool) else None
