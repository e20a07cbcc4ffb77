"""Issue 13: secrets never land, on any path, in the audit database or in OPA's decision log.

A corpus of secrets (each family the defaults claim to cover, under the keys and inside the
text where they really appear) goes through a real gate and a real OPA that logs decisions to
its console with the committed mask policy; each secret is then looked for in the BYTES of the
SQLite file and its WAL (everything stored on PostgreSQL, as text), and in OPA's log.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pygate import Gate, LocalOpa
from pygate.audit._base import redact_pattern
from pygate.audit._redact import (
    DEFAULT_REDACT_KEYS,
    DEFAULT_REDACT_PATTERNS,
    SUFFIX_MIN,
    key_names,
    luhn,
    masks_key,
    redact,
    redact_text,
    redact_with_paths,
)
from tests.test_trust import _opa_events

# (family, where it sits in the output, the secret that must not be stored)
KEYED = [
    ("key access_token", {"access_token": "kv-access-3141"}, "kv-access-3141"),
    ("key refresh-token", {"Refresh-Token": "kv-refresh-2718"}, "kv-refresh-2718"),
    ("key client_secret", {"client_secret": "kv-client-1618"}, "kv-client-1618"),
    ("key X-API-Key", {"headers": {"X-API-Key": "kv-xapi-1414"}}, "kv-xapi-1414"),
    ("key 'api key'", {"api key": "kv-apikey-1732"}, "kv-apikey-1732"),
    ("key private_key", {"private_key": "kv-private-2236"}, "kv-private-2236"),
    ("key PASSWORD", {"PASSWORD": "kv-password-2449"}, "kv-password-2449"),
    ("key passwd", {"passwd": "kv-passwd-2645"}, "kv-passwd-2645"),
    ("key pwd", {"pwd": "kv-pwd-2828"}, "kv-pwd-2828"),
    ("key db_password", {"db_password": "kv-dbpass-3000"}, "kv-dbpass-3000"),
    ("key authorization", {"Authorization": "kv-authz-3162"}, "kv-authz-3162"),
    ("key cookie", {"Cookie": "session=kv-cookie-3316"}, "kv-cookie-3316"),
    ("key set-cookie", {"set-cookie": "kv-setcookie-3464"}, "kv-setcookie-3464"),
    ("key card", {"card": {"number": "kv-card-3605", "exp": "12/30"}}, "kv-card-3605"),
    ("key card_number", {"card_number": "kv-cardno-3741"}, "kv-cardno-3741"),
    ("key pan", {"pan": "kv-pan-3872"}, "kv-pan-3872"),
    ("key iban", {"IBAN": "DE89370400440532013000"}, "DE89370400440532013000"),
    ("key ssn", {"ssn": "kv-ssn-4000"}, "kv-ssn-4000"),
    ("key token in a list", {"items": [{"token": "kv-listtok-4123"}]}, "kv-listtok-4123"),
]
TEXT = [
    ("card visa spaced", "card 4111 1111 1111 1111 on file", "4111 1111 1111 1111"),
    ("card mastercard dashed", "pay with 5500-0000-0000-0004 now", "5500-0000-0000-0004"),
    ("card amex", "amex 378282246310005 please", "378282246310005"),
    ("us ssn", "my SSN is 078-05-1120 thanks", "078-05-1120"),
    (
        "private key block",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAkeyBody4713\n"
        "-----END RSA PRIVATE KEY-----",
        "MIIEowIBAAKCAQEAkeyBody4713",
    ),
    ("private key cut off", "-----BEGIN PRIVATE KEY-----\nMIIEvQcutOff8152", "MIIEvQcutOff8152"),
    ("aws access key id", "use AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE"),
    (
        "github classic token",
        "token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 ok",
        "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    ),
    (
        "github fine-grained",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCD",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCD",
    ),
    (
        "slack bot token",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp",
    ),
    (
        "openai key",
        "OPENAI_API_KEY is sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz012345",
        "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    ),
    (
        "anthropic key",
        "key sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz-0123456789",
        "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz-0123456789",
    ),
    (
        "jwt",
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFU",
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFU",
    ),
    ("bearer token", "send Authorization: Bearer abcDEF0123456789ghiJKL", "abcDEF0123456789ghiJKL"),
    ("password= in text", "login with password=hunter2-7331 today", "hunter2-7331"),
    ("stripe key", "sk_live_AbCdEfGhIjKlMnOp0123", "sk_live_AbCdEfGhIjKlMnOp0123"),
]
#: Text that must stay readable (no false positives on things outputs really carry).
BENIGN = [
    "order 1234567890123 shipped",  # 13 digits, Luhn-invalid
    "call 555-123-4567",
    "max_tokens is 4096",
    "the token bucket refills",
    "Japan and company",
    "see https://example.com/docs?page=2",
    "sha 3f786850e387550fdab836ed7e6dc881de23001b",
]


def _corpus_outputs() -> list[dict[str, object]]:
    outputs: list[dict[str, object]] = []
    for _, where, _secret in KEYED:
        outputs.append({"type": "tool_call", "action": "explain", "arguments": where})
    for _, text, _secret in TEXT:
        outputs.append({"type": "tool_call", "action": "explain", "arguments": {"text": text}})
    return outputs


SECRETS = [s for _, _, s in KEYED] + [s for _, _, s in TEXT]
FAMILIES = [f for f, _, _ in KEYED] + [f for f, _, _ in TEXT]


# --- the rule itself -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("family", "output", "secret"), [*KEYED, *[(f, {"t": t}, s) for f, t, s in TEXT]]
)
def test_each_family_is_masked_by_default(family: str, output: object, secret: str) -> None:
    masked = redact(output, DEFAULT_REDACT_KEYS, redact_pattern(DEFAULT_REDACT_PATTERNS))
    assert secret not in json.dumps(masked), family


@pytest.mark.parametrize("text", BENIGN)
def test_benign_text_stays_readable(text: str) -> None:
    pattern = redact_pattern(DEFAULT_REDACT_PATTERNS)
    assert redact({"text": text}, DEFAULT_REDACT_KEYS, pattern) == {"text": text}


def test_key_names_are_normalised_and_short_names_match_whole() -> None:
    names = key_names(DEFAULT_REDACT_KEYS)
    for key in ("X-Api-Key", "API KEY", "api_key", "ApiKey", "user.password", "GITHUB_TOKEN"):
        assert masks_key(key, names), key
    for key in ("japan", "company", "max_tokens", "tokens", "cards", "passage"):
        assert not masks_key(key, names), key


def test_luhn() -> None:
    assert luhn("4111111111111111")
    assert not luhn("4111111111111112")


# --- the attack: a refusal for bad input stored repr(output) in clear ------------------------
def test_a_bad_input_refusal_stores_the_output_masked(opa: LocalOpa, tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    with Gate("assistant", opa_url=opa.url, audit=db) as gate:
        bad_user = gate.evaluate({"type": "text", "password": "hunter2-in-clear"}, {"id": ""})
        bad_batch = gate.evaluate_many(
            [({"type": "text", "client_secret": "batch-secret-991"}, {"id": ""})]
        )
        assert gate.audit is not None
        stored = [r.output for r in gate.audit.records()]
    assert not bad_user.allowed
    assert not bad_batch[0].allowed
    assert "***" in json.dumps(stored)
    raw = _file_bytes(db)
    assert b"hunter2-in-clear" not in raw
    assert b"batch-secret-991" not in raw


def _file_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*") if p.is_file())


def _stored_text(audit_db: str) -> bytes:
    """Every byte the audit store holds: SQLite file + WAL, or every PostgreSQL table as text."""
    if not audit_db.startswith("postgresql://"):
        return _file_bytes(Path(audit_db))
    import psycopg

    with psycopg.connect(audit_db, autocommit=True) as conn:
        chunks = [
            str(conn.execute(f"SELECT coalesce(json_agg(t)::text, '') FROM {table} t").fetchone())
            for table in ("decisions", "approvals", "followups", "quota_usage", "chain_anchor")
        ]
    return "".join(chunks).encode()


def test_corpus_never_lands_in_the_audit_store_or_opa_decision_log(
    logging_opa: tuple[LocalOpa, Path], audit_db: str
) -> None:
    opa, opa_log = logging_opa
    outputs = _corpus_outputs()
    user = {"id": "corpus", "role": "analyst"}
    with Gate("assistant", opa_url=opa.url, audit=audit_db) as gate:
        singles = [gate.evaluate(o, user) for o in outputs]
        batch = gate.evaluate_many([(o, user) for o in outputs])
        assert gate.audit is not None
        assert gate.audit.count() == 2 * len(outputs)
    ids = {d.decision_id for d in [*singles, *batch] if d.decision_id}
    assert ids  # OPA logged these decisions
    for _ in range(50):  # console decision logs are written asynchronously
        if len(_opa_events(opa_log)) >= len(singles) + 1:
            break
    stored = _stored_text(audit_db)
    logged = opa_log.read_bytes()
    leaks = [
        (family, where)
        for family, secret in zip(FAMILIES, SECRETS, strict=True)
        for where, data in (("audit", stored), ("opa", logged))
        if secret.encode() in data or json.dumps(secret)[1:-1].encode() in data
    ]
    assert leaks == []
    assert b"***" in stored
    assert b"***" in logged


# --- the one-walk redaction the audit uses is the two-walk rule, exactly ---------------------
def _reference_masks_key(key: str, names: frozenset[str]) -> bool:
    """The rule as the module docstring states it, written plainly (no caches)."""
    n = re.sub(r"[^a-z0-9]", "", key.lower())
    return n in names or any(len(name) >= SUFFIX_MIN and n.endswith(name) for name in names)


_KEYS = st.sampled_from(
    ["type", "amount", "token", "GitHub-Token", "max_tokens", "japan", "pwd", "X-API-Key",
     "db_password", "card", "cards", "ssn", "text", "arguments"]
) | st.text(max_size=12)  # fmt: skip
_TEXT = st.sampled_from(
    ["acct-2", "4111 1111 1111 1111", "123-45-6789", "password=hunter22", "ok", ""]
) | st.text(max_size=20)  # fmt: skip
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)


@given(key=_KEYS)
def test_masks_key_matches_the_stated_rule(key: str) -> None:
    names = key_names(DEFAULT_REDACT_KEYS)
    assert masks_key(key, names) == _reference_masks_key(key, names)


def redacted_paths(
    value: object, names: frozenset[str], pattern: re.Pattern[str] | None, at: str = ""
) -> list[str]:
    """The reference: where ``redact`` changes ``value``, walked on its own (the separate
    walk the audit used before ``redact_with_paths``)."""
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            where = f"{at}.{k}" if at else str(k)
            if isinstance(k, str) and masks_key(k, names):
                found.append(where)
            else:
                found += redacted_paths(v, names, pattern, where)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found += redacted_paths(v, names, pattern, f"{at}.{i}" if at else str(i))
    elif isinstance(value, str) and redact_text(value, pattern) != value:
        found.append(at)
    return found


@given(document=st.dictionaries(_KEYS, _JSON, max_size=4))
def test_redact_with_paths_is_redact_plus_redacted_paths(document: dict[str, object]) -> None:
    names = key_names(DEFAULT_REDACT_KEYS)
    pattern = redact_pattern(DEFAULT_REDACT_PATTERNS)
    masked, paths = redact_with_paths(document, names, pattern)
    assert masked == redact(document, DEFAULT_REDACT_KEYS, pattern)
    assert paths == redacted_paths(document, names, pattern)


def test_the_stored_opa_input_and_output_come_from_one_walk(tmp_path: Path) -> None:
    """The record's output and opa_input columns are what the separate redactions give."""
    from pygate.audit import SqliteAuditLog
    from pygate.audit._base import _stored_json

    log = SqliteAuditLog(tmp_path / "a.db")
    try:
        output = {"type": "note", "text": "card 4111 1111 1111 1111", "api_key": "sk-x"}
        document = {"output": output, "user": {"id": "u", "token": "t0k3n"}, "context": {}}
        opa_input, masked = log.stored_document(document)
        assert _stored_json(masked) == log.redacted_json(output)
        stored = json.loads(opa_input)
        assert stored["user"] == {"id": "u", "token": "***"}
        assert "output" not in stored
        assert stored["redacted"] == ["output.text", "output.api_key", "user.token"]
    finally:
        log.close()
