"""The audit log: one subpackage, one module per backend.

``open_audit`` picks the backend from a URL: ``sqlite:///path`` or a plain path is SQLite
(the embedded default); ``postgresql://…`` (or ``postgres://…``) is PostgreSQL, for several
services sharing one audit log and one daily quota.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pygate._audit._base import (
    DEFAULT_AUDIT_TIMEOUT,
    DEFAULT_REDACT_KEYS,
    DEFAULT_REDACT_PATTERNS,
    GENESIS,
    AuditLog,
    Summary,
    VerifyResult,
    redact,
)
from pygate._audit._sqlite import SqliteAuditLog
from pygate._errors import ConfigError

__all__ = [
    "DEFAULT_REDACT_KEYS",
    "GENESIS",
    "AuditLog",
    "SqliteAuditLog",
    "Summary",
    "VerifyResult",
    "open_audit",
    "redact",
]


def open_audit(
    target: str | Path,
    redact_keys: Iterable[str] = DEFAULT_REDACT_KEYS,
    redact_patterns: Iterable[str] = DEFAULT_REDACT_PATTERNS,
    timeout: float = DEFAULT_AUDIT_TIMEOUT,
) -> AuditLog:
    """Open the audit log named by a path or URL.

    Args:
        target: ``sqlite:///path`` or a plain path.
        redact_keys: keys whose values are masked before a record is written.
        redact_patterns: regexes masked inside any string of the output.
        timeout: seconds an audit write may wait for a lock or the server (``audit_timeout``).

    Raises:
        ConfigError: an unsupported URL scheme.
        AuditError: the database cannot be opened.
    """
    text = str(target)
    if text.startswith("sqlite:///"):
        return SqliteAuditLog(
            text[len("sqlite:///") :], redact_keys, redact_patterns, timeout=timeout
        )
    if text.startswith(("postgresql://", "postgres://")):
        # Imported here: SQLite users never load the PostgreSQL driver.
        from pygate._audit._postgres import PostgresAuditLog

        return PostgresAuditLog(text, redact_keys, redact_patterns, timeout=timeout)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise ConfigError(
            f"audit_db: unsupported scheme {scheme!r} "
            "(use sqlite:///path, a path, or postgresql://user:password@host:port/db)"
        )
    return SqliteAuditLog(text, redact_keys, redact_patterns, timeout=timeout)
