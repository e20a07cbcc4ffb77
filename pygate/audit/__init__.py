"""The audit log: one subpackage, one module per backend.

``open_audit`` picks the backend from a URL: ``sqlite:///path`` or a plain path is SQLite
(the embedded default); ``postgresql://…`` (or ``postgres://…``) is PostgreSQL, for several
services sharing one audit log and one daily quota.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pygate._errors import AuditError, ConfigError
from pygate.audit._base import (
    DEFAULT_AUDIT_TIMEOUT,
    DEFAULT_REDACT_KEYS,
    DEFAULT_REDACT_PATTERNS,
    GENESIS,
    AuditLog,
    Summary,
    VerifyResult,
    redact,
)
from pygate.audit._integrity import Checkpoint, Integrity, Keyring
from pygate.audit._sqlite import SqliteAuditLog

__all__ = [
    "DEFAULT_REDACT_KEYS",
    "GENESIS",
    "AuditLog",
    "Checkpoint",
    "Integrity",
    "Keyring",
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
    *,
    key_file: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 100,
    checkpoint_seconds: float = 10.0,
    create: bool = True,
    timeout: float = DEFAULT_AUDIT_TIMEOUT,
) -> AuditLog:
    """Open the audit log named by a path or URL.

    Args:
        target: ``sqlite:///path`` or a plain path.
        redact_keys: keys whose values are masked before a record is written.
        redact_patterns: regexes masked inside any string of the output.
        key_file: the audit keyring; else ``PYGATE_AUDIT_KEY_FILE``, else a key created
            (0600) in the default state folder (``PATH.state/`` beside a SQLite file).
        checkpoint_dir: where signed checkpoints go; else ``PYGATE_AUDIT_CHECKPOINT_DIR``,
            else the default state folder.
        checkpoint_every: a checkpoint after this many new records (and on close).
        checkpoint_seconds: ... or after this many seconds with new records.
        create: ``False`` for readers (verify, reports): a missing SQLite file, its folder or
            a missing audit key is an ``AuditError`` instead of being created.
        timeout: seconds an audit write may wait for a lock or the server (``audit_timeout``).

    Raises:
        ConfigError: an unsupported URL scheme, or a malformed keyring.
        AuditError: the database or the key cannot be opened.
    """
    text = str(target)
    if "://" in text and not text.startswith(("sqlite:///", "postgresql://", "postgres://")):
        scheme = text.split("://", 1)[0]
        raise ConfigError(
            f"audit_db: unsupported scheme {scheme!r} "
            "(use sqlite:///path, a path, or postgresql://user:password@host:port/db)"
        )
    if not create and not text.startswith(("postgresql://", "postgres://")):
        path = Path(text[len("sqlite:///") :] if text.startswith("sqlite:///") else text)
        if not path.is_file():
            raise AuditError(f"audit log {path} does not exist")
    integrity = Integrity(
        text, key_file, checkpoint_dir, checkpoint_every, checkpoint_seconds, create=create
    )
    if text.startswith("sqlite:///"):
        return SqliteAuditLog(
            text[len("sqlite:///") :], redact_keys, redact_patterns, integrity, timeout=timeout
        )
    if text.startswith(("postgresql://", "postgres://")):
        # Imported here: SQLite users never load the PostgreSQL driver.
        from pygate.audit._postgres import PostgresAuditLog

        return PostgresAuditLog(text, redact_keys, redact_patterns, integrity, timeout=timeout)
    return SqliteAuditLog(text, redact_keys, redact_patterns, integrity, timeout=timeout)
