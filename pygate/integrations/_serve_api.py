"""The documents of ``pygate serve`` and its OpenAPI document, generated from them.

The request models describe what the API accepts (the handlers read requests strictly with
``pygate._input.loads`` and the library's own checks, which these models must not contradict:
``tests/test_serve.py`` fuzzes the document against the live service). The response models
are what it sends.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from pygate._models import Decision


# -- the documents of the API (the OpenAPI schemas are generated from these) ------------------
class UserIn(BaseModel):
    """The end user the calling service acts for (any other fields go to the policies)."""

    model_config = ConfigDict(extra="allow")

    id: str | int = Field(description="required; a string without surrounding whitespace")
    role: str | None = None
    account_status: str | None = None
    transaction_limit: float | None = None


class DecisionRequest(BaseModel):
    """``POST /v1/decisions``: one model output to gate (as ``Gate.evaluate`` takes it)."""

    model_config = ConfigDict(extra="forbid")

    output: dict[str, Any] | str = Field(
        description="the model output in any shape pygate reads (tool calls, typed "
        "objects, MCP params, ...) or plain text"
    )
    user: UserIn
    context: dict[str, Any] | None = Field(
        default=None,
        description="extra facts for the policies; context.service, if given, must be the "
        "token's service; usage_today and approvals are set by the gate",
    )


class BatchRequest(BaseModel):
    """``POST /v1/decisions/batch``: several outputs, decided as if one after another."""

    model_config = ConfigDict(extra="forbid")

    items: list[DecisionRequest] = Field(min_length=1)


class BatchResponse(BaseModel):
    """One Decision per item, in order; ``allowed`` is true only if every item is allowed."""

    allowed: bool
    decisions: list[Decision]


class ErrorDetail(BaseModel):
    """What went wrong; ``field`` names the offending field of the request, when one does."""

    code: Literal[
        "invalid_input",
        "unauthorized",
        "too_large",
        "not_found",
        "method_not_allowed",
        "engine_unavailable",
        "audit_unavailable",
        "timeout",
        "internal",
    ]
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    """Every non-200 answer: ``allowed`` is always false, so it can never read as an allow."""

    allowed: Literal[False] = False
    error: ErrorDetail
    decision: Decision | None = Field(
        default=None, description="the audited refusal, when the request reached the gate"
    )


class Health(BaseModel):
    """``GET /health``: the process answers."""

    status: Literal["ok"] = "ok"


class Check(BaseModel):
    """One dependency of readiness."""

    ok: bool
    error: str | None = None


class EngineCheck(Check):
    """The engine answered a real decision; with the bundle revision it decides with."""

    bundle_revision: str | None = None


class Ready(BaseModel):
    """``GET /ready``: the engine decides (and with which bundle), the audit log answers."""

    ready: bool
    engine: EngineCheck
    audit: Check
    services: list[str]


# -- OpenAPI ----------------------------------------------------------------------------------
def _version() -> str:
    try:
        return version("pygate")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"


def _content(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _responses(ok: str, description: str, *errors: int) -> dict[str, Any]:
    texts = {
        400: "the request cannot be read (names the field); audited as a pygate.input refusal",
        401: "no or unknown bearer token",
        413: "the body is larger than the cap",
        503: "the engine or the audit log could not decide (fail closed), or timeout",
        500: "internal error (a bug): refused",
    }
    responses = {"200": {"description": description, "content": _content(ok)}}
    for status in errors:
        responses[str(status)] = {
            "description": texts[status],
            "content": _content("ErrorResponse"),
        }
    return responses


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API; its schemas are generated from the models here."""
    _, defs = models_json_schema(
        [
            (DecisionRequest, "validation"),
            (BatchRequest, "validation"),
            (Decision, "serialization"),
            (BatchResponse, "serialization"),
            (ErrorResponse, "serialization"),
            (Health, "serialization"),
            (Ready, "serialization"),
        ],
        ref_template="#/components/schemas/{model}",
    )
    schemas = defs["$defs"]
    public: dict[str, Any] = {"security": []}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pygate decisions",
            "version": _version(),
            "description": "The gate's decisions over HTTP (`pygate serve`). The calling service "
            "is the one its bearer token names. Every answer has a top-level `allowed`; it is "
            "true only in a 200 whose decision allowed the action.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/decisions": {
                "post": {
                    "operationId": "decide",
                    "summary": "Decide whether one model output may be acted on (audited)",
                    "requestBody": {"required": True, "content": _content("DecisionRequest")},
                    "responses": _responses(
                        "Decision",
                        "decided: the Decision (allowed or refused)",
                        400,
                        401,
                        413,
                        500,
                        503,
                    ),
                }
            },
            "/v1/decisions/batch": {
                "post": {
                    "operationId": "decideBatch",
                    "summary": "Decide several outputs with one engine request (each audited)",
                    "requestBody": {"required": True, "content": _content("BatchRequest")},
                    "responses": _responses(
                        "BatchResponse",
                        "one Decision per item (a bad item is refused alone)",
                        400,
                        401,
                        413,
                        500,
                        503,
                    ),
                }
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness: the process answers",
                    **public,
                    "responses": _responses("Health", "alive"),
                }
            },
            "/ready": {
                "get": {
                    "operationId": "ready",
                    "summary": "Readiness: the engine decides (bundle revision), the audit answers",
                    **public,
                    "responses": {
                        "200": {"description": "ready", "content": _content("Ready")},
                        "503": {"description": "not ready", "content": _content("Ready")},
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    **public,
                    "responses": {
                        "200": {
                            "description": "the OpenAPI document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
