"""One settings model, read once: CLI flags over ``PYGATE_*`` env vars over a config file.

The config file is TOML, ``./pygate.toml`` or the path in ``PYGATE_CONFIG``, with a
``[pygate]`` table whose keys are the field names below.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pygate._errors import ConfigError, InputError
from pygate._input import MAX_DEPTH, MAX_OUTPUT_BYTES, loads
from pygate.audit._base import DEFAULT_AUDIT_TIMEOUT
from pygate.audit._redact import DEFAULT_REDACT_KEYS, DEFAULT_REDACT_PATTERNS


class Settings(BaseModel):
    """Everything pygate can be configured with.

    Attributes:
        opa_url: an OPA to use (``http://host:port`` or ``unix:///path``); unset means
            the embedded default, a local OPA process pygate starts itself.
        opa_bin: the ``opa`` binary for the embedded default.
        policy_dir: the policies and data the embedded OPA loads.
        audit_db: the audit database: a SQLite path or ``sqlite:///`` URL, or a
            ``postgresql://`` URL for several services sharing one log and one quota.
        timeout: seconds to wait for one decision before refusing (fail closed).
        service: the service name sent as ``context.service``.
        redact_keys: keys (any depth; compared lower-cased with everything but a-z0-9
            removed; names of 5+ characters also match as a key's ending, e.g. db_password)
            whose values are masked before an audit record is written;
            ``rego/pygate/log/mask.rego`` masks the same in OPA's decision logs
            (``pygate audit mask-policy`` regenerates it). A comma-separated string (or a
            JSON array) in ``PYGATE_REDACT_KEYS``.
        redact_patterns: regexes masked inside every string of the output (default: SSNs,
            private key blocks, common token formats, JWTs, bearer tokens, password=…;
            Luhn-valid card numbers are masked whatever this says). Setting it replaces
            the defaults. Same rule in the OPA mask policy. A JSON array in
            ``PYGATE_REDACT_PATTERNS``.
        approval_ttl: seconds a review request may wait, and an approval stays usable.
        max_depth: objects/arrays nested deeper than this in an output, user or context
            are refused before anything is reserved or sent (``pygate.input``).
        max_output_bytes: an output whose compact UTF-8 JSON is larger is refused the same
            way; its audit record keeps only the size and SHA-256, not the output.
        audit_key_file: the audit keyring (``<key_id> <hex>`` per line, the last is current);
            unset: ``PATH.state/audit.key`` beside a SQLite log (created 0600), or a folder
            under ``$PYGATE_STATE_DIR`` for PostgreSQL. Production keeps it off the database
            host's writable paths; services sharing one PostgreSQL log share one keyring.
        audit_checkpoint_dir: where signed checkpoints of the chain head are written (outside
            the database); unset: the same state folder.
        audit_checkpoint_every: a checkpoint after this many new records (0: by time only).
        audit_checkpoint_seconds: ... or this many seconds after the last (0: by count only);
            always on close. Records after the latest checkpoint can be deleted unseen.
        approval_ttl_max: the longest life an approval may be given (``--ttl`` included);
            default 7 days.
        audit_timeout: seconds an audit write (or read before a decision) may wait for a
            lock or the database server; past it the decision is a refusal. Default 2.
        engine: ``sidecar`` (default): decisions come from an OPA process over HTTP (the
            embedded local OPA, or ``opa_url``). ``inprocess``: OPA's Go engine, built as a
            shared library at the same version, evaluates the same policies inside this
            process (``pygate/engine/_inprocess.py``); it cannot go with ``opa_url``.
        opa_lib: the in-process engine's library (default: the one ``./dev setup`` or
            ``pygate opa install --inprocess`` built).
    """

    model_config = ConfigDict(extra="forbid")

    opa_url: str | None = None
    opa_bin: str | None = None
    policy_dir: str | None = None
    audit_db: str = ".pygate/audit.db"
    timeout: float = Field(default=0.5, gt=0, le=60)
    service: str | None = None
    redact_keys: list[str] = Field(default_factory=lambda: sorted(DEFAULT_REDACT_KEYS))
    redact_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_REDACT_PATTERNS))
    approval_ttl: float = Field(default=86400.0, gt=0, allow_inf_nan=False)
    approval_ttl_max: float = Field(default=7 * 86400.0, gt=0, le=3650 * 86400, allow_inf_nan=False)
    audit_timeout: float = Field(default=DEFAULT_AUDIT_TIMEOUT, gt=0, le=60, allow_inf_nan=False)
    max_depth: int = Field(default=MAX_DEPTH, ge=2, le=512)
    max_output_bytes: int = Field(default=MAX_OUTPUT_BYTES, ge=64)
    engine: Literal["sidecar", "inprocess"] = "sidecar"
    opa_lib: str | None = None

    @field_validator("opa_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        """An OPA address the transports can use, or nothing (the embedded default)."""
        if value is None:
            return value
        parts = urlsplit(value)
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if parts.scheme in ("http", "https") and parts.hostname and port_ok:
            return value
        if parts.scheme == "unix" and value.startswith("unix:///"):
            return value
        raise ValueError("expected http://host:port, https://host:port or unix:///path")

    audit_key_file: str | None = None
    audit_checkpoint_dir: str | None = None
    audit_checkpoint_every: int = Field(default=100, ge=0)
    audit_checkpoint_seconds: float = Field(default=10.0, ge=0)

    def audit_options(self) -> dict[str, Any]:
        """The keyword arguments ``open_audit`` takes from these settings."""
        return {
            "key_file": self.audit_key_file,
            "checkpoint_dir": self.audit_checkpoint_dir,
            "checkpoint_every": self.audit_checkpoint_every,
            "checkpoint_seconds": self.audit_checkpoint_seconds,
            "timeout": self.audit_timeout,
        }

    @field_validator("redact_keys", "redact_patterns", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        """Env vars carry lists as a JSON array, or comma-separated text."""
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                try:
                    return loads(value, "setting")
                except InputError:
                    return value  # pydantic then names the field
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _ttl_within_max(self) -> Settings:
        if self.approval_ttl > self.approval_ttl_max:
            raise ValueError(
                f"approval_ttl ({self.approval_ttl:g} s) exceeds approval_ttl_max "
                f"({self.approval_ttl_max:g} s)"
            )
        return self

    @classmethod
    def load(cls, overrides: dict[str, Any] | None = None) -> Settings:
        """Read the config file, then env vars, then ``overrides`` (``None`` values ignored).

        Raises:
            ConfigError: unreadable config file or an invalid value (names the field).
        """
        values: dict[str, Any] = {}
        path = Path(os.environ.get("PYGATE_CONFIG", "pygate.toml"))
        if path.is_file():
            try:
                table = tomllib.loads(path.read_text()).get("pygate", {})
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read config file {path}: {exc}") from exc
            if not isinstance(table, dict):
                raise ConfigError(f"config file {path}: [pygate] must be a table")
            # Paths in the file are relative to the file, so a project works from any folder.
            for key in ("policy_dir", "opa_bin"):
                value = table.get(key)
                if isinstance(value, str) and value and not Path(value).is_absolute():
                    table[key] = str(path.resolve().parent / value)
            values.update(table)
        for name in cls.model_fields:
            env = os.environ.get(f"PYGATE_{name.upper()}")
            if env:
                values[name] = env
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            where = f"setting {field!r}" if field else "settings"
            raise ConfigError(f"{where}: {first['msg']}") from exc
