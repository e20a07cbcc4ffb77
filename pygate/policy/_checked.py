"""What pygate checked in the policy data before publishing it, so OPA need not check it again.

OPA keeps nothing between queries: the Rego that validates an action contract, a host-fact
spec or a rules-as-data policy runs again on every decision that reads it (about a third of
a seed decision's evaluation). So whenever pygate publishes policy data (bundle build,
policy push, ``pygate policy index``) it also writes ``checked``: a copy of each part that
passed the same checks as the Rego, which the Rego compares with what it reads (one
equality, native in OPA) and trusts when they are equal. A part that is absent, stale or
different is checked in Rego as before, so every decision is the same with or without
``checked``; it only makes the common case cheap.

Shape (``data.pygate.config.checked``)::

    {"services": {"<service>": {"policy_sets": [...], "packages": [...],
                                "actions": {"<action>": <the contract, as published>},
                                "field_meanings": {"<action>": {"<field>": "<meaning>"}},
                                "meanings": {"<action>": {"<meaning>": ["<field>", ...]}}}},
     "user_facts": <the user_facts, as published>,
     "declarative_policies": [<the policy at this position, as published> or null, ...]}

``field_meanings`` and ``meanings`` are computed from the copied contract, so the Rego reads
which fields mean money or an asset instead of collecting them on every decision.

A copy is written only for a part that the Rego would accept too: the checks below are
those of ``rego/pygate/contracts`` (``field_spec_ok``, ``_contract_ok``, ``_facts_problems``),
``rego/pygate/declarative`` (``_valid``) and ``rego/pygate/gate`` (``_entry_ok``), never
looser, and a ``pattern`` must use only what both Python's ``re`` and OPA's RE2 accept (a
conservative subset; anything else is simply not copied). A test runs both over the same
specs, entries and policies (tests/test_checked.py).
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any

#: The policy data key of the copy (``data.pygate.config.checked``).
CHECKED_KEY = "checked"

# The same sets as rego/pygate/contracts/contracts.rego.
_MEANINGS = frozenset(
    {"money_amount", "currency", "asset", "recipient", "code", "text", "quantity", "identifier"}
)
_FIELD_TYPES = frozenset({"string", "number", "integer", "boolean"})
_SPEC_KEYS = frozenset(
    {"type", "required", "enum", "pattern", "min_length", "max_length", "minimum", "maximum",
     "exclusive_minimum", "meaning", "description"}
)  # fmt: skip
_NUMBER_KEYS = ("min_length", "max_length", "minimum", "maximum", "exclusive_minimum")

# Inline groups RE2 and Python share: (?:, (?P<name>, and flags i, m, s.
_GROUP = re.compile(r"\(\?(?::|P<|[ims]*(?:-[ims]+)?[:)])")
# Escapes with the same meaning in both (a backslash before any other character is refused).
_ESCAPES = frozenset("dDsSwWbBAtnrfv.\\^$|?*+()[]{}-/ #&~,:;<>=!'\"@%`_")
_COUNT = re.compile(r"\{(\d+)(?:,(\d*))?\}")


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def re2_safe(pattern: Any) -> bool:
    """True when ``pattern`` compiles in Python and uses only syntax RE2 reads the same way.

    Conservative on purpose: a pattern that is refused here is still checked by OPA at
    decision time, so refusing a valid pattern only costs speed.
    """
    if not isinstance(pattern, str) or "[[" in pattern:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. "possible nested set": read differently later
            re.compile(pattern)
    except (re.error, RecursionError, Warning):
        return False
    i = 0
    in_class = False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if i + 1 >= len(pattern) or pattern[i + 1] not in _ESCAPES:
                return False
            if in_class and pattern[i + 1] in "bBA":
                return False  # a backspace in Python, an error in RE2
            i += 2
            continue
        if in_class:
            if pattern.startswith("[:", i):
                return False  # a POSIX class in RE2, literal text in Python
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            i += 2 if pattern.startswith("[^", i) else 1
            if i < len(pattern) and pattern[i] == "]":
                i += 1  # a leading "]" is a literal
            continue
        elif c == "(" and pattern.startswith("(?", i) and not _GROUP.match(pattern, i):
            return False
        elif c in "*+?}" and i + 1 < len(pattern) and pattern[i + 1] == "+":
            return False  # possessive quantifiers: Python 3.11 only
        i += 1
    counts = [int(g) for m in _COUNT.finditer(pattern) for g in m.groups() if g]
    return all(n <= 1000 for n in counts)


def field_spec_ok(spec: Any) -> bool:
    """``field_spec_ok`` of rego/pygate/contracts, never looser."""
    if not isinstance(spec, dict) or spec.get("type") not in _FIELD_TYPES:
        return False
    if set(spec) - _SPEC_KEYS:
        return False
    if spec.get("meaning", "text") not in _MEANINGS:
        return False
    if not isinstance(spec.get("required", False), bool):
        return False
    if not isinstance(spec.get("enum", []), list):
        return False
    if not re2_safe(spec.get("pattern", "")):
        return False
    if "description" in spec and not isinstance(spec["description"], str):
        return False
    return all(_is_number(spec.get(key, 0)) for key in _NUMBER_KEYS)


def contract_ok(contract: Any) -> bool:
    """``_contract_ok`` of rego/pygate/contracts, never looser."""
    if not isinstance(contract, dict):
        return False
    arguments = contract.get("arguments")
    if not isinstance(arguments, dict) or not all(field_spec_ok(s) for s in arguments.values()):
        return False
    one_of = contract.get("one_of_required", [])
    return isinstance(one_of, list) and all(isinstance(f, str) and f in arguments for f in one_of)


def entry_ok(entry: Any) -> bool:
    """``_entry_ok`` of rego/pygate/gate (a service's policy_sets and packages), never looser."""
    if not isinstance(entry, dict):
        return False
    sets, packages = entry.get("policy_sets", []), entry.get("packages", [])
    if not isinstance(sets, list) or not isinstance(packages, list) or not sets + packages:
        return False
    return all(_non_empty(name) for name in sets + packages)


_OPS = frozenset({"eq", "gt", "gte", "lt", "lte", "neq"})


def _non_empty(x: Any) -> bool:
    return isinstance(x, str) and x != ""


def _condition_ok(c: Any) -> bool:
    """``_condition_valid`` of rego/pygate/declarative, never looser."""
    if not isinstance(c, dict):
        return False
    kind = c.get("type")
    if kind == "account_status":
        return isinstance(c.get("in"), list)
    if kind in ("amount_exceeds_limit", "asset_restricted"):
        return _non_empty(c.get("field", "field"))
    if kind == "role_not_in":
        return isinstance(c.get("roles"), list)
    if kind == "field_compare":
        return _non_empty(c.get("field")) and c.get("op") in _OPS and _is_number(c.get("value"))
    if kind in ("field_in", "field_not_in"):
        return _non_empty(c.get("field")) and isinstance(c.get("values"), list)
    if kind == "user_attribute_in":
        return _non_empty(c.get("attribute")) and isinstance(c.get("values"), list)
    if kind == "text_matches":
        return _non_empty(c.get("field")) and re2_safe(c.get("pattern"))
    return False


def policy_ok(policy: Any) -> bool:
    """``_valid`` of rego/pygate/declarative (a rules-as-data policy), never looser."""
    if not isinstance(policy, dict):
        return False
    if not all(_non_empty(policy.get(key)) for key in ("id", "set", "reason", "action")):
        return False
    conditions = policy.get("conditions")
    if not isinstance(conditions, list) or not conditions:
        return False
    optional = ("title", "description", "suggestion", "message")
    if not all(_non_empty(policy[key]) for key in optional if key in policy):
        return False
    return _is_number(policy.get("priority", 0)) and all(_condition_ok(c) for c in conditions)


def _field_meanings(contract: dict[str, Any]) -> dict[str, str]:
    """{field: meaning} for the fields that declare one (``contracts._field_meanings``)."""
    return {f: s["meaning"] for f, s in contract["arguments"].items() if "meaning" in s}


def _meanings(contract: dict[str, Any]) -> dict[str, list[str]]:
    """{meaning: [field, ...]} (``contracts.action_meanings`` of one action)."""
    out: dict[str, list[str]] = {}
    for field, meaning in sorted(_field_meanings(contract).items()):
        out.setdefault(meaning, []).append(field)
    return out


def build_checked(data: dict[str, Any]) -> dict[str, Any]:
    """The ``checked`` copy for a policy data document (only the parts that pass)."""
    services: dict[str, Any] = {}
    raw_services = data.get("services")
    if isinstance(raw_services, dict):
        for name, entry in raw_services.items():
            if not isinstance(entry, dict):
                continue
            record: dict[str, Any] = {}
            if entry_ok(entry):
                record["policy_sets"] = entry.get("policy_sets", [])
                record["packages"] = entry.get("packages", [])
            actions = entry.get("actions")
            good = (
                {a: c for a, c in actions.items() if contract_ok(c)}
                if isinstance(actions, dict)
                else {}
            )
            if good:
                record["actions"] = good
                record["field_meanings"] = {a: _field_meanings(c) for a, c in good.items()}
                record["meanings"] = {a: _meanings(c) for a, c in good.items()}
            if record:
                services[name] = record
    checked: dict[str, Any] = {"services": services}
    policies = data.get("declarative_policies")
    if isinstance(policies, list):
        checked["declarative_policies"] = [p if policy_ok(p) else None for p in policies]
    facts = data.get("user_facts")
    if isinstance(facts, dict) and all(field_spec_ok(s) for s in facts.values()):
        checked["user_facts"] = facts
    return checked


def with_checked(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of policy data with a fresh ``checked`` copy when it has something to copy.

    Data without services, user_facts or declarative policies is returned without one (a
    stale copy is dropped).
    """
    out = {k: v for k, v in data.items() if k != CHECKED_KEY}
    if any(key in out for key in ("services", "user_facts", "declarative_policies")):
        out[CHECKED_KEY] = build_checked(out)
    return out
