"""Rules-as-data policies: the schema pygate checks before a policy reaches OPA.

The same rules are enforced again in Rego (``rego/pygate/declarative``): a malformed
policy that slips past this check makes the gate refuse with "invalid policy", never allow.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

from pygate._errors import InputError, PolicyDataError
from pygate._input import loads
from pygate.policy._contracts import validate_contracts

Number = StrictInt | StrictFloat
Scalar = StrictStr | StrictInt | StrictFloat | bool | None


class _Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountStatus(_Condition):
    """The user's ``account_status`` is one of ``in``."""

    type: Literal["account_status"]
    in_: list[StrictStr] = Field(alias="in", min_length=1)


class AmountExceedsLimit(_Condition):
    """The output's numeric ``field`` exceeds the user's ``transaction_limit``."""

    type: Literal["amount_exceeds_limit"]
    field: StrictStr = "amount"


class AssetRestricted(_Condition):
    """The asset named by the output's ``field`` has status ``restricted`` in policy data."""

    type: Literal["asset_restricted"]
    field: StrictStr = "asset"


class RoleNotIn(_Condition):
    """The user's ``role`` is not one of ``roles``."""

    type: Literal["role_not_in"]
    roles: list[StrictStr] = Field(min_length=1)


class FieldCompare(_Condition):
    """Numeric comparison of an output field with ``value``."""

    type: Literal["field_compare"]
    field: StrictStr = Field(min_length=1)
    op: Literal["gt", "gte", "lt", "lte", "eq", "neq"]
    value: Number


class FieldIn(_Condition):
    """The output field's value is in ``values``."""

    type: Literal["field_in"]
    field: StrictStr = Field(min_length=1)
    values: list[Scalar] = Field(min_length=1)


class FieldNotIn(_Condition):
    """The output field is missing or its value is not in ``values``."""

    type: Literal["field_not_in"]
    field: StrictStr = Field(min_length=1)
    values: list[Scalar] = Field(min_length=1)


class UserAttributeIn(_Condition):
    """The user's ``attribute`` is in ``values``."""

    type: Literal["user_attribute_in"]
    attribute: StrictStr = Field(min_length=1)
    values: list[Scalar] = Field(min_length=1)


class TextMatches(_Condition):
    """The output field is text matching the RE2 ``pattern``."""

    type: Literal["text_matches"]
    field: StrictStr = Field(min_length=1)
    pattern: StrictStr = Field(min_length=1)


Condition = Annotated[
    AccountStatus
    | AmountExceedsLimit
    | AssetRestricted
    | RoleNotIn
    | FieldCompare
    | FieldIn
    | FieldNotIn
    | UserAttributeIn
    | TextMatches,
    Field(discriminator="type"),
]

CONDITION_TYPES = sorted(
    ("account_status", "amount_exceeds_limit", "asset_restricted", "role_not_in",
     "field_compare", "field_in", "field_not_in", "user_attribute_in", "text_matches")
)  # fmt: skip


class DeclarativePolicy(BaseModel):
    """A policy written as data: it refuses when ALL its conditions hold."""

    model_config = ConfigDict(extra="forbid")

    id: StrictStr = Field(min_length=1)
    set: StrictStr = Field(min_length=1)
    reason: StrictStr = Field(min_length=1)
    action: StrictStr = Field(min_length=1)
    conditions: list[Condition] = Field(min_length=1)
    priority: StrictInt = 100
    title: StrictStr | None = None
    description: StrictStr | None = None
    suggestion: StrictStr | None = None
    message: StrictStr | None = None
    hint: StrictStr | None = None
    # Shadow: evaluated and recorded as "would have refused", never refusing; promoting
    # the policy is removing this mark.
    shadow: StrictBool = False


_UNION_TAGS = frozenset({"int", "float", "str", "bool", "none"})


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in CONDITION_TYPES or part in _UNION_TAGS:
            continue  # pydantic names the union member; the reader wants the field
        else:
            path += f".{part}" if path else str(part)
    return path or "(policy)"


def validate_policy(raw: Any, index: int = 0) -> DeclarativePolicy:
    """Check one policy; raise PolicyDataError naming the policy and the field.

    Raises:
        PolicyDataError: unknown condition type, missing field, wrong type, bad regex.
    """
    pid = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
    name = pid or f"#{index}"
    if not isinstance(raw, dict):
        raise PolicyDataError(name, "(policy)", "must be an object")
    for i, cond in enumerate(raw.get("conditions") or []):
        ctype = cond.get("type") if isinstance(cond, dict) else None
        if isinstance(ctype, str) and ctype not in CONDITION_TYPES:
            raise PolicyDataError(
                name,
                f"conditions[{i}].type",
                f"unknown condition type {ctype!r}; known: {', '.join(CONDITION_TYPES)}",
            )
    try:
        policy = DeclarativePolicy.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PolicyDataError(name, _field_path(first["loc"]), first["msg"]) from exc
    for i, cond in enumerate(policy.conditions):
        if isinstance(cond, TextMatches):
            try:
                re.compile(cond.pattern)
            except re.error as exc:
                raise PolicyDataError(
                    name, f"conditions[{i}].pattern", f"invalid regex: {exc}"
                ) from exc
    return policy


def validate_policies(raw: Any) -> list[DeclarativePolicy]:
    """Check a list of policies, and that their ids are unique."""
    if not isinstance(raw, list):
        raise PolicyDataError("(all)", "declarative_policies", "must be a list")
    policies = [validate_policy(item, i) for i, item in enumerate(raw)]
    seen: set[str] = set()
    for policy in policies:
        if policy.id in seen:
            raise PolicyDataError(policy.id, "id", "duplicate policy id")
        seen.add(policy.id)
    return policies


def load_policy_data(path: str | Path) -> dict[str, Any]:
    """Read a policy data file (JSON) and validate it (``validate_policy_data``).

    Raises:
        PolicyDataError: unreadable file or invalid policies.
    """
    try:
        data = loads(Path(path).read_text(), str(path))
    except (OSError, InputError) as exc:
        raise PolicyDataError("(file)", str(path), f"cannot read policy data: {exc}") from exc
    if not isinstance(data, dict):
        raise PolicyDataError("(file)", str(path), "must be a JSON object")
    validate_policy_data(data)
    return data


def validate_policy_data(data: dict[str, Any]) -> None:
    """Check a whole policy data document: declarative policies and action contracts.

    Raises:
        PolicyDataError: a malformed policy, service contract, host fact or identifier form.
    """
    validate_policies(data.get("declarative_policies", []))
    validate_contracts(data)
