"""What never reaches a stored record: secret-looking keys and secret-looking text.

One rule, applied by ``redact`` before any audit record or approval copy is written, and by
OPA's decision-log mask (``_mask.render_mask_policy`` generates ``rego/pygate/log/mask.rego``
from the same settings):

- **Keys.** A key is compared after normalising: lower-cased, everything but ``a-z0-9``
  removed (so ``X-API-Key``, ``api key``, ``API_KEY`` and ``apikey`` are one name). It is
  masked when it equals a configured name, or, for names of 5 or more characters, ends with
  one (``db_password``, ``github_token``, ``set-cookie``); short names (``pwd``, ``pan``,
  ``ssn``, ``card``, ``iban``) match only whole, so ``japan`` or ``company`` stay readable.
  The value is replaced whole, whatever it is.
- **Text.** Every match of the configured patterns inside any other string becomes ``***``
  (defaults: SSNs, private key blocks, AWS/GitHub/Slack/OpenAI/Anthropic/Stripe/Google key
  formats, JWTs, bearer tokens, ``password=…``-style assignments), then every run of 13 to 19
  digits (spaces or dashes between them allowed) that passes the Luhn check: card numbers.

Patterns are written in the regex subset that Python's ``re`` and OPA's RE2 read alike.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

#: What a masked value becomes, here and in the generated OPA decision-log mask policy.
MASK = "***"

#: Keys whose values are masked before anything is written (see the module docstring).
DEFAULT_REDACT_KEYS = frozenset(
    {
        "access_token", "api_key", "apikey", "authorization", "card", "card_number",
        "client_secret", "cookie", "cvv", "iban", "pan", "passwd", "password", "private_key",
        "pwd", "refresh_token", "secret", "ssn", "token", "x-api-key",
    }
)  # fmt: skip

#: Names at least this long (normalised) also match as the end of a key.
SUFFIX_MIN = 5

#: Text masked inside every string (RE2- and Python-compatible).
DEFAULT_REDACT_PATTERNS = (
    # US social security numbers
    r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
    # PEM private key blocks, also when cut off before their END line
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)",
    # AWS access key ids
    r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
    # GitHub tokens
    r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}\b",
    r"\bgithub_pat_[A-Za-z0-9_]{22,255}",
    # Slack tokens
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    # OpenAI / Anthropic style secret keys (sk-…, sk-proj-…, sk-ant-…)
    r"\bsk-[A-Za-z0-9_-]{20,}",
    # Stripe keys
    r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}",
    # Google API keys
    r"\bAIza[0-9A-Za-z_-]{35}",
    # JSON web tokens
    r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
    # Bearer / Basic credentials in text
    r"\b(?i:bearer|basic)\s+[A-Za-z0-9._~+/=-]{16,}",
    # password=…, api_key: …, client-secret "…" written into text
    r"(?i:password|passwd|pwd|secret|token|api[ _-]?key|private[ _-]?key|access[ _-]?key)"
    r"[\"']?\s*[:=]\s*[\"']?[^\s\"',;}]{4,}",
)

#: Digit runs that may be card numbers; a match is masked only if it passes the Luhn check.
CARD_CANDIDATE = r"\b[0-9](?:[ -]?[0-9]){12,18}\b"
_CARD = re.compile(CARD_CANDIDATE)
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


def normalise_key(key: str) -> str:
    """A key as compared: lower-cased, only ``a-z0-9`` kept."""
    return _NOT_ALNUM.sub("", key.lower())


# The same few keys (``type``, ``amount``, ``id``...) come in every record: their normal form
# is remembered (a bounded cache of key names, never of values).
_normalised = functools.lru_cache(maxsize=4096)(normalise_key)


@functools.lru_cache(maxsize=64)
def _suffixes(names: frozenset[str]) -> tuple[str, ...]:
    """The names that also match as the end of a key (``SUFFIX_MIN`` characters or more)."""
    return tuple(sorted(name for name in names if len(name) >= SUFFIX_MIN))


def key_names(keys: Iterable[str]) -> frozenset[str]:
    """The configured names, normalised (empty names dropped)."""
    return frozenset(n for n in (normalise_key(k) for k in keys) if n)


def masks_key(key: str, names: frozenset[str]) -> bool:
    """Whether the value under ``key`` is masked (see the module docstring)."""
    n = _normalised(key)
    return n in names or n.endswith(_suffixes(names))


def luhn(digits: str) -> bool:
    """The Luhn checksum of a card number (digits only)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[^0-9]", "", match.group(0))
    return MASK if 13 <= len(digits) <= 19 and luhn(digits) else match.group(0)


def redact_pattern(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One regex matching any of ``patterns`` (``None`` for none), as OPA's mask uses it."""
    items = [p for p in patterns if p]
    if not items:
        return None
    return re.compile("|".join(f"(?:{p})" for p in items))


def redact_text(text: str, pattern: re.Pattern[str] | None) -> str:
    """``text`` with pattern matches, then Luhn-valid card numbers, masked."""
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return _CARD.sub(_card, text)


def redact(
    value: Any,
    keys: frozenset[str] = DEFAULT_REDACT_KEYS,
    pattern: re.Pattern[str] | None = None,
) -> Any:
    """Return a copy of ``value`` with secret-looking values masked (module docstring).

    ``keys`` may be given as configured or normalised; strings are also masked inside
    (``pattern``, and always Luhn-valid card numbers).
    """
    names = _key_names(keys) if isinstance(keys, frozenset) else key_names(keys)
    return _redact(value, names, pattern)


_key_names = functools.lru_cache(maxsize=64)(key_names)


def redact_names(value: Any, names: frozenset[str], pattern: re.Pattern[str] | None) -> Any:
    """``redact`` with ``names`` already normalised (``key_names``): what the audit calls."""
    return _redact(value, names, pattern)


def redact_with_paths(
    value: Any, names: frozenset[str], pattern: re.Pattern[str] | None
) -> tuple[Any, list[str]]:
    """``redact_names`` of ``value`` and where it changed ``value``, in one walk (each string
    is scanned once): the redacted copy, and its dotted paths (``output.card``,
    ``user.tags.0``). A record whose replay input has such a path cannot be replayed by a
    policy that reads it (``pygate._replay``)."""
    found: list[str] = []
    return _redact_at(value, names, pattern, "", found), found


def _redact_at(
    value: Any, names: frozenset[str], pattern: re.Pattern[str] | None, at: str, found: list[str]
) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            where = f"{at}.{k}" if at else str(k)
            if isinstance(k, str) and masks_key(k, names):
                out[k] = MASK
                found.append(where)
            else:
                out[k] = _redact_at(v, names, pattern, where, found)
        return out
    if isinstance(value, (list, tuple)):
        return [
            _redact_at(v, names, pattern, f"{at}.{i}" if at else str(i), found)
            for i, v in enumerate(value)
        ]
    if isinstance(value, str):
        masked = redact_text(value, pattern)
        if masked != value:
            found.append(at)
        return masked
    return value


def _redact(value: Any, names: frozenset[str], pattern: re.Pattern[str] | None) -> Any:
    if isinstance(value, dict):
        return {
            k: MASK if isinstance(k, str) and masks_key(k, names) else _redact(v, names, pattern)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_redact(v, names, pattern) for v in value]
    if isinstance(value, str):
        return redact_text(value, pattern)
    return value
