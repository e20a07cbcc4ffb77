"""Action contracts: what each service may do, checked before policy data reaches OPA.

A service in policy data declares its actions (``services.<name>.actions``), each with an
argument schema and the *meaning* of its fields, and host facts about users are declared in
``user_facts``. The gate (``rego/pygate/contracts``) refuses any action that is not declared
or whose arguments break the schema, and refuses again, at decision time, when a declaration
is malformed; this module catches the malformed declaration before it is published
(``pygate policy validate``, ``bundle build``, ``policy push``), naming service, action and
field.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from pygate._errors import PolicyDataError

Number = StrictInt | StrictFloat
Scalar = StrictStr | StrictInt | StrictFloat | StrictBool | None

# The same lists as rego/pygate/contracts/contracts.rego (a test keeps them in step).
MEANINGS = (
    "asset",
    "code",
    "currency",
    "identifier",
    "money_amount",
    "quantity",
    "recipient",
    "text",
)
FIELD_TYPES = ("boolean", "integer", "number", "string")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


class FieldSpec(BaseModel):
    """One argument (or host fact): its type, its form, and what it means to the policies."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["string", "number", "integer", "boolean"]
    required: StrictBool = False
    enum: list[Scalar] | None = None
    pattern: StrictStr | None = None
    min_length: StrictInt | None = Field(default=None, ge=0)
    max_length: StrictInt | None = Field(default=None, ge=0)
    minimum: Number | None = None
    maximum: Number | None = None
    exclusive_minimum: Number | None = None
    meaning: Literal[MEANINGS] | None = None  # type: ignore[valid-type]  # a tuple of literals
    description: StrictStr | None = None

    @model_validator(mode="after")
    def _pattern_compiles(self) -> FieldSpec:
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from exc
        return self


class ActionContract(BaseModel):
    """A declared action: its arguments; unknown arguments are refused at decision time."""

    model_config = ConfigDict(extra="forbid")

    arguments: dict[StrictStr, FieldSpec]
    one_of_required: list[StrictStr] | None = None
    description: StrictStr | None = None

    @model_validator(mode="after")
    def _one_of_declared(self) -> ActionContract:
        for name in self.one_of_required or []:
            if name not in self.arguments:
                raise ValueError(f"one_of_required names {name!r}, which is not an argument")
        return self


class Service(BaseModel):
    """A service: its policy sets and/or your own Rego packages, its declared actions, and
    what happens to others."""

    model_config = ConfigDict(extra="forbid")

    policy_sets: list[StrictStr] = Field(default_factory=list)
    packages: list[StrictStr] = Field(default_factory=list)
    actions: dict[StrictStr, ActionContract] = Field(default_factory=dict)
    undeclared_action: Literal["refuse", "require_review"] = "refuse"
    description: StrictStr | None = None

    @model_validator(mode="after")
    def _something_decides(self) -> Service:
        if not self.policy_sets and not self.packages:
            raise ValueError("a service names at least one of policy_sets or packages")
        return self


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(entry)"


def validate_services(raw: Any) -> dict[str, Service]:
    """Check ``services``; raise PolicyDataError naming the service, action and field.

    Raises:
        PolicyDataError: a malformed entry, an action name outside the canonical form
            (``^[a-z][a-z0-9_.-]{0,63}$``), an unknown meaning or type, a bad pattern.
    """
    if not isinstance(raw, dict):
        raise PolicyDataError("services", "services", "must be an object of service entries")
    services: dict[str, Service] = {}
    for name, entry in raw.items():
        if isinstance(entry, dict):
            for action in entry.get("actions") or {}:
                if not isinstance(action, str) or not NAME_PATTERN.match(action):
                    raise PolicyDataError(
                        f"service {name}",
                        f"actions.{action}",
                        "action names are lower-case ASCII: ^[a-z][a-z0-9_.-]{0,63}$",
                    )
        try:
            services[name] = Service.model_validate(entry)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise PolicyDataError(f"service {name}", _where(first["loc"]), first["msg"]) from exc
    return services


def validate_user_facts(raw: Any) -> dict[str, FieldSpec]:
    """Check ``user_facts`` (host facts about the user and their declared form).

    Raises:
        PolicyDataError: not an object, or a malformed fact spec.
    """
    if not isinstance(raw, dict):
        raise PolicyDataError("user_facts", "user_facts", "must be an object of field specs")
    facts: dict[str, FieldSpec] = {}
    for name, spec in raw.items():
        try:
            facts[name] = FieldSpec.model_validate(spec)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise PolicyDataError(
                "user_facts", f"{name}.{_where(first['loc'])}", first["msg"]
            ) from exc
    return facts


def validate_identifiers(raw: Any) -> None:
    """Check ``identifiers`` (``{kind: {"pattern", "canonical"}}``).

    Raises:
        PolicyDataError: a kind without a compiling pattern, or an unknown canonical form.
    """
    if not isinstance(raw, dict):
        raise PolicyDataError("identifiers", "identifiers", "must be an object")
    for kind, spec in raw.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("pattern"), str):
            raise PolicyDataError("identifiers", f"{kind}.pattern", "must be a string")
        try:
            re.compile(spec["pattern"])
        except re.error as exc:
            raise PolicyDataError(
                "identifiers", f"{kind}.pattern", f"invalid regex: {exc}"
            ) from exc
        if spec.get("canonical", "exact") not in ("upper", "lower", "exact"):
            raise PolicyDataError(
                "identifiers", f"{kind}.canonical", "must be upper, lower or exact"
            )
        if set(spec) - {"pattern", "canonical"}:
            raise PolicyDataError(
                "identifiers", kind, f"unknown keys {sorted(set(spec) - {'pattern', 'canonical'})}"
            )


def validate_contracts(data: dict[str, Any]) -> None:
    """Check every contract part of a policy data document that is present.

    Raises:
        PolicyDataError: see validate_services, validate_user_facts, validate_identifiers.
    """
    if "services" in data:
        validate_services(data["services"])
    if "user_facts" in data:
        validate_user_facts(data["user_facts"])
    if "identifiers" in data:
        validate_identifiers(data["identifiers"])
