"""The index of rules-as-data policies that lets OPA skip the policies that cannot apply.

OPA keeps nothing between queries, so an index computed in Rego would be a full scan on
every decision. pygate computes it instead, next to ``declarative_policies`` in the policy
data, whenever it publishes that data (bundle build, policy push) or on demand
(``pygate policy index``). ``rego/pygate/declarative/index.rego`` reads only the buckets a
request needs and refuses when what it reads does not match; this module checks the whole
index before anything is published.

Shape (positions are indexes into ``declarative_policies``)::

    {"count": N,
     "sets": {"<set>": {"all": [i, ...], "by_type": {"<output type>": [i, ...]}}},
     "unscoped": [i, ...]}

A valid policy with a ``field_in`` condition on the output field ``type`` whose values are
all strings is filed under ``by_type`` for each value (it cannot refuse any other type);
every other policy of a set is filed under ``all``, as is every invalid one (an invalid
policy refuses for its whole set). Entries without a usable ``set`` are ``unscoped`` (they
refuse for every service).
"""

from __future__ import annotations

from typing import Any

from pygate._errors import PolicyDataError
from pygate.policy._policy_data import validate_policy

#: The policy data key the index lives under (``data.pygate.config.declarative_index``).
INDEX_KEY = "declarative_index"
POLICIES_KEY = "declarative_policies"


def _type_values(policy: dict[str, Any]) -> list[str] | None:
    """The output types a policy is limited to, or None when it may apply to any."""
    for condition in policy.get("conditions") or []:
        if (
            isinstance(condition, dict)
            and condition.get("type") == "field_in"
            and condition.get("field") == "type"
        ):
            values = condition.get("values")
            if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
                return sorted(set(values))
    return None


def _valid(raw: Any, position: int) -> bool:
    try:
        validate_policy(raw, position)
    except PolicyDataError:
        return False
    return True


def build_index(policies: Any) -> dict[str, Any]:
    """The ``declarative_index`` for a list of policies (valid or not).

    Raises:
        PolicyDataError: ``policies`` is not a list.
    """
    if not isinstance(policies, list):
        raise PolicyDataError("(all)", POLICIES_KEY, "must be a list")
    sets: dict[str, dict[str, Any]] = {}
    unscoped: list[int] = []
    for i, policy in enumerate(policies):
        set_name = policy.get("set") if isinstance(policy, dict) else None
        if not isinstance(set_name, str) or not set_name:
            unscoped.append(i)
            continue
        bucket = sets.setdefault(set_name, {"all": [], "by_type": {}})
        types = _type_values(policy) if _valid(policy, i) else None
        if types is None:
            bucket["all"].append(i)
        else:
            for type_name in types:
                bucket["by_type"].setdefault(type_name, []).append(i)
    return {"count": len(policies), "sets": sets, "unscoped": unscoped}


def with_index(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of policy data with a fresh index when it has ``declarative_policies``.

    Data without policies is returned without an index (Rego then has nothing to scan).
    """
    out = {k: v for k, v in data.items() if k != INDEX_KEY}
    if POLICIES_KEY in data:
        out[INDEX_KEY] = build_index(data[POLICIES_KEY])
    return out


def check_index(data: dict[str, Any], where: str = "policy data") -> None:
    """Raise unless the index in ``data`` (if any) is exactly the one its policies give.

    Raises:
        PolicyDataError: the index is stale or malformed, naming the command that rebuilds it.
    """
    if INDEX_KEY not in data or data[INDEX_KEY] is None:
        return
    expected = build_index(data.get(POLICIES_KEY, []))
    if data[INDEX_KEY] != expected:
        raise PolicyDataError(
            "(all)",
            INDEX_KEY,
            f"does not match declarative_policies in {where}; rebuild it with "
            "`pygate policy index FILE`",
        )
