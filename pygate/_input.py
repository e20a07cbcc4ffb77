"""Input that cannot confuse the gate: strict JSON and the limits every gated document obeys.

Two readers of one document must never see two different documents. JSON allows several
ambiguities that real parsers resolve differently (a duplicate key is last-wins in Python and
Go, first-wins in others; a lone UTF-16 surrogate is kept, replaced or rejected), and a
document nested deeply enough crashes recursive code after a decision was made. So every
document the gate reads is checked here, *before* a quota unit is reserved or OPA is asked:

- no duplicate object key, in any JSON pygate parses (the CLI's input, policy data, OPA's
  answer) and in any JSON text embedded in an output under a key named ``arguments`` (OpenAI
  tool calls carry their arguments as a JSON string, which the executor will parse again);
- no ``NaN``/``Infinity`` and nothing JSON cannot carry (sets, bytes, non-string keys);
- no lone surrogate (U+D800..U+DFFF) in any key or string;
- nesting no deeper than ``max_depth`` levels (default :data:`MAX_DEPTH`);
- an output no larger than ``max_output_bytes`` of compact UTF-8 JSON (default
  :data:`MAX_OUTPUT_BYTES`); the audit keeps only the size and SHA-256 of a bigger one.

Each problem is an :class:`~pygate._errors.InputError` naming the field. The walk is
iterative, so no input can raise ``RecursionError`` here.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from pygate._errors import InputError

MAX_DEPTH = 64
"""Objects and arrays nested deeper than this are refused (the top-level output is depth 1)."""

MAX_OUTPUT_BYTES = 1_000_000
"""Outputs whose compact UTF-8 JSON is larger than this are refused (``max_output_bytes``)."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_EMBEDDED_JSON_KEYS = frozenset({"arguments"})
# Characters a user id must not hold: they make two ids that look the same differ.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


class _Duplicate(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key = key


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)  # built in C; a duplicate key shows as a shorter dict
    if len(doc) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key)
            seen.add(key)
    return doc


class _Constant(ValueError):
    """NaN or an infinity in JSON text: Python reads it, stricter parsers refuse it."""


def _no_constant(name: str) -> Any:
    raise _Constant(f"{name} is not a JSON number")


def loads(text: str | bytes, field: str) -> Any:
    """Parse JSON strictly: duplicate keys, NaN/Infinity and runaway nesting are errors.

    Args:
        text: the JSON text.
        field: what to name in the error (e.g. ``input`` or ``output.arguments``).

    Raises:
        InputError: naming ``field`` and the problem (a duplicate key names the key).
    """
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant)
    except _Duplicate as exc:
        raise InputError(field, f"duplicate key {exc.key!r} (ambiguous JSON is refused)") from exc
    except RecursionError as exc:
        raise InputError(field, f"nested deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:  # JSONDecodeError and the constants above
        raise InputError(field, f"not valid JSON: {exc}") from exc


def check_document(value: Any, field: str, max_depth: int = MAX_DEPTH) -> None:
    """Check that ``value`` is plain, unambiguous JSON no deeper than ``max_depth``.

    Strings under a key named ``arguments`` that hold a JSON object or array are parsed
    strictly too (duplicate keys refused) and count towards the depth.

    Raises:
        InputError: naming the first offending field, e.g. ``output.args[2].name``.
    """
    stack: list[tuple[Any, str, int]] = [(value, field, 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise InputError(path, "holds a lone surrogate (not valid Unicode)")
            continue
        if item is None or isinstance(item, (bool, int)):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                raise InputError(path, f"{item} is not a JSON number")
            continue
        if isinstance(item, Mapping):
            if depth > max_depth:
                raise InputError(_short(path), f"nested deeper than {max_depth} levels")
            for key, child in item.items():
                if not isinstance(key, str):
                    raise InputError(path, f"object key {key!r} is not a string")
                if _SURROGATE.search(key):
                    raise InputError(path, f"key {key!r} holds a lone surrogate")
                where = f"{path}.{key}"
                if key in _EMBEDDED_JSON_KEYS and isinstance(child, str):
                    embedded = _embedded(child, where)
                    if embedded is not None:
                        stack.append((embedded, where, depth + 1))
                stack.append((child, where, depth + 1))
            continue
        if isinstance(item, (list, tuple)):
            if depth > max_depth:
                raise InputError(_short(path), f"nested deeper than {max_depth} levels")
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
            continue
        raise InputError(path, f"{type(item).__name__} is not JSON-serialisable")


def _short(path: str, limit: int = 80) -> str:
    """A field path cut to ``limit`` characters (a deep path names its start)."""
    return path if len(path) <= limit else path[: limit - 3] + "..."


def _embedded(text: str, field: str) -> Any:
    """The JSON object or array a string holds, strictly parsed; ``None`` for other text."""
    if not text.lstrip().startswith(("{", "[")):
        return None
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant)
    except _Duplicate as exc:
        raise InputError(field, f"embedded JSON has duplicate key {exc.key!r}") from exc
    except RecursionError as exc:
        raise InputError(field, "embedded JSON is nested too deeply") from exc
    except _Constant as exc:
        # Not "just text": an executor's json.loads would read it as a number.
        raise InputError(field, f"embedded JSON: {exc}") from exc
    except ValueError:
        return None  # not JSON: a string like any other


def compact_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON (what is sent to OPA, near enough)."""
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    return len(_compact(value))


def _compact(value: Any) -> bytes:
    # (mutants ensure_ascii=None and "UTF-8" are equivalent: None is falsy, codec names
    # ignore case)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8", "surrogatepass"
    )


def digest_summary(value: Any) -> dict[str, Any]:
    """What the audit keeps of an output it must not store: its size and SHA-256."""
    try:
        raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else _compact(value)
    except (TypeError, ValueError, RecursionError):
        # (repr escapes lone surrogates, so the error handler never runs: its mutants, a
        # larger limit and "UTF-8" are equivalent)
        raw = safe_repr(value, 10**9).encode("utf-8", "surrogatepass")
    return {"not_stored": True, "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}


def safe_repr(value: Any, limit: int = 2000) -> str:
    """``repr`` that never raises (deep structures), cut to ``limit`` characters."""
    try:
        return repr(value)[:limit]
    except RecursionError:
        return f"<{type(value).__name__} nested too deeply to show>"


def check_user_id(uid: str) -> None:
    """Refuse ids that look like another id: one person, one daily quota.

    Raises:
        InputError: naming ``user.id`` for surrounding whitespace, control, format or
            invisible characters (zero-width space, BOM, bidi marks), lone surrogates,
            or text not in Unicode NFKC form.
    """
    if uid != uid.strip():
        raise InputError("user.id", "has surrounding whitespace")
    for char in uid:
        if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
            raise InputError(
                "user.id", f"holds an invisible or control character U+{ord(char):04X}"
            )
    if unicodedata.normalize("NFKC", uid) != uid:
        raise InputError("user.id", "is not in Unicode NFKC form")
