"""What makes the audit chain trustworthy without trusting the database: a key and checkpoints.

- **Keyring.** Every record's ``hash`` is HMAC-SHA256 under a key that is *not* in the
  database, and the record names the key (``key_id``). Write access to the database alone
  cannot recompute a valid chain. The keyring file holds one ``<key_id> <hex secret>`` per
  line; the LAST line is the current key (new records), every line verifies (rotation:
  append a line, ``pygate audit rotate-key``). ``PYGATE_AUDIT_KEY`` may carry the same text
  (lines or ``,``-separated) instead of a file.
- **Checkpoints.** ``checkpoint.json`` (outside the database) holds the head of the chain
  (sequence number and hash), how many records and retention anchors there were, when, and an
  HMAC over all of it. It is rewritten every ``checkpoint_every`` records or
  ``checkpoint_seconds`` seconds after a commit, after a prune and on close, and only ever
  *forward*: a checkpoint whose head the current chain does not extend is kept, so evidence
  of tampering is never overwritten. ``verify`` compares the log with it: deleted last rows,
  an emptied or dropped table, and a rewritten chain all disagree with it.

Where they live by default (zero configuration): for a SQLite file ``DIR/NAME``, the folder
``DIR/NAME.state/`` (created 0700; key file 0600); for PostgreSQL, a folder per database under
``$PYGATE_STATE_DIR`` (default ``~/.local/state/pygate``). That default protects against
someone who can write the database but not the host's files; production keeps the key (and
ideally the checkpoints) elsewhere: ``PYGATE_AUDIT_KEY_FILE`` / ``PYGATE_AUDIT_CHECKPOINT_DIR``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pygate._errors import AuditError, ConfigError

KEY_FILE = "audit.key"
CHECKPOINT_FILE = "checkpoint.json"


class Keyring:
    """The audit keys: every one verifies, the current one signs.

    Args:
        keys: key id -> secret, in the order they were added (the last is current).
        source: where they came from, for messages.
    """

    def __init__(self, keys: dict[str, bytes], source: str = "") -> None:
        if not keys:
            raise ConfigError(f"audit keyring {source or ''} holds no key")
        self.keys = dict(keys)
        self.current = list(keys)[-1]
        self.source = source

    @classmethod
    def parse(cls, text: str, source: str = "") -> Keyring:
        """``<key_id> <hex secret>`` per line (or ``,``-separated); ``#`` starts a comment.

        Raises:
            ConfigError: a malformed line, a short secret or a repeated id.
        """
        keys: dict[str, bytes] = {}
        for n, raw in enumerate(text.replace(",", "\n").splitlines(), 1):
            line = raw.partition("#")[0].strip()
            if not line:
                continue
            parts = line.replace(":", " ").split()
            if len(parts) != 2 or not parts[0].isalnum():
                raise ConfigError(f"audit keyring {source} line {n}: expected '<key_id> <hex>'")
            try:
                secret = bytes.fromhex(parts[1])
            except ValueError as exc:
                raise ConfigError(f"audit keyring {source} line {n}: secret is not hex") from exc
            if len(secret) < 16:
                raise ConfigError(f"audit keyring {source} line {n}: secret under 128 bits")
            if parts[0] in keys:
                raise ConfigError(f"audit keyring {source} line {n}: key id {parts[0]} repeated")
            keys[parts[0]] = secret
        return cls(keys, source)

    def mac(self, key_id: str, message: str) -> str | None:
        """HMAC-SHA256 of ``message`` under ``key_id`` (``None``: no such key)."""
        secret = self.keys.get(key_id)
        if secret is None:
            return None
        # (OpenSSL reads digest names in any case: "SHA256" is the same digest, mutmut's
        # case-swapped mutants of this name and of sign()'s are equivalent.)
        return hmac.digest(secret, message.encode(), "sha256").hex()

    def sign(self, message: str) -> str:
        """HMAC-SHA256 of ``message`` under the current key."""
        # hmac.digest is OpenSSL's one-shot HMAC: measurably cheaper than hmac.new per call.
        return hmac.digest(self.keys[self.current], message.encode(), "sha256").hex()

    def check(self, key_id: str | None, message: str, mac: str | None) -> bool:
        """Whether ``mac`` is ``message``'s HMAC under ``key_id`` (constant-time compare)."""
        if not key_id or not mac:
            return False
        expected = self.mac(key_id, message)
        return expected is not None and hmac.compare_digest(expected, mac)


def new_key_line() -> str:
    """A fresh ``<key_id> <hex secret>`` line (256-bit secret, random 8-hex id)."""
    # token_hex(32) is also token_hex()'s default: a mutant dropping the 32 is equivalent.
    return f"k{secrets.token_hex(4)} {secrets.token_hex(32)}\n"


def _write_new(path: Path, text: str) -> bool:
    """Create ``path`` (0600) holding ``text`` atomically; False when it already exists."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # The random suffix only keeps concurrent writers apart: its length is not a contract.
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(partial, path)  # atomic, and fails if another process won the race
        except FileExistsError:
            return False
        return True
    finally:
        partial.unlink()  # it exists: os.open created it, and a hard link leaves it in place


def load_keyring(path: Path, create: bool) -> Keyring:
    """The keyring in ``path`` (``PYGATE_AUDIT_KEY`` wins when set).

    Args:
        path: the key file.
        create: make a new key file (0600) when it is missing.

    Raises:
        AuditError: the file is missing (and not to be created) or unreadable.
        ConfigError: its content is malformed.
    """
    inline = os.environ.get("PYGATE_AUDIT_KEY")
    if inline:
        return Keyring.parse(inline, "PYGATE_AUDIT_KEY")
    if not path.exists():
        if not create:
            raise AuditError(
                f"audit key file {path} is missing: the chain cannot be verified without its key"
            )
        try:
            _write_new(path, new_key_line())
        except OSError as exc:
            raise AuditError(f"cannot create audit key file {path}: {exc}") from exc
    try:
        return Keyring.parse(path.read_text(), str(path))
    except OSError as exc:
        raise AuditError(f"cannot read audit key file {path}: {exc}") from exc


def rotate_key(path: Path) -> str:
    """Append a new current key to the key file; return its id (old keys still verify)."""
    line = new_key_line()
    if not path.exists():
        _write_new(path, line)
    else:
        with path.open("a") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())
    return line.split()[0]


def default_state_dir(target: str) -> Path:
    """Where key and checkpoints live when not configured (see module docstring)."""
    if target.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(target)
        # Host, port, database and query (search_path) name the chain; never the password.
        name = f"{parts.hostname}:{parts.port}{parts.path}?{parts.query}"
        base = os.environ.get("PYGATE_STATE_DIR") or str(Path.home() / ".local/state/pygate")
        return Path(base) / f"postgres-{hashlib.sha256(name.encode()).hexdigest()[:16]}"
    path = Path(target[len("sqlite:///") :] if target.startswith("sqlite:///") else target)
    return path.parent / f"{path.name}.state"


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement of where the chain stood: verify holds the log to it."""

    seq: int
    head_hash: str
    count: int
    anchor_no: int
    anchor_hash: str
    at: str
    key_id: str
    mac: str = ""

    def body(self) -> str:
        """The signed part, canonical."""
        fields = [self.seq, self.head_hash, self.count, self.anchor_no, self.anchor_hash,
                  self.at, self.key_id]  # fmt: skip
        # (The fields are scalars: the key separator ":" never appears; its mutant is equivalent.)
        return "checkpoint|" + json.dumps(fields, separators=(",", ":"))


class Integrity:
    """The keyring and checkpoint store of one audit log.

    Args:
        target: the audit log's path or URL (names the default state folder).
        key_file: the keyring file; else ``PYGATE_AUDIT_KEY_FILE``, else the state folder's.
        checkpoint_dir: where ``checkpoint.json`` goes; else ``PYGATE_AUDIT_CHECKPOINT_DIR``,
            else the state folder.
        checkpoint_every: write a checkpoint after this many new records (0: never by count).
        checkpoint_seconds: ... or when this many seconds passed since the last (0: never).
        create: create a missing key file (writers); readers refuse a missing key.
    """

    def __init__(
        self,
        target: str,
        key_file: str | Path | None = None,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int = 100,
        checkpoint_seconds: float = 10.0,
        *,
        create: bool = True,
    ) -> None:
        state = default_state_dir(target)
        key = key_file or os.environ.get("PYGATE_AUDIT_KEY_FILE") or state / KEY_FILE
        folder = checkpoint_dir or os.environ.get("PYGATE_AUDIT_CHECKPOINT_DIR") or state
        self.key_file = Path(key)
        self.checkpoint_path = Path(folder) / CHECKPOINT_FILE
        self.keyring = load_keyring(self.key_file, create)
        self.every = checkpoint_every
        self.seconds = checkpoint_seconds
        self._lock = threading.Lock()
        self._pending = 0
        self._last = time.monotonic()
        self._first = True  # this handle's first commit checkpoints at once

    # --- the chain ------------------------------------------------------------------------
    def link(self, prev_hash: str, body: str) -> tuple[str, str]:
        """``(key_id, hash)`` of a record from the previous hash and its canonical body."""
        key_id = self.keyring.current
        return key_id, self.keyring.sign(f"{prev_hash}|{key_id}|{body}")

    def check_link(self, prev_hash: str, key_id: str | None, body: str, digest: str) -> bool:
        """Whether ``digest`` is the keyed hash of this record."""
        return self.keyring.check(key_id, f"{prev_hash}|{key_id}|{body}", digest)

    def seal(self, kind: str, fields: list[Any]) -> tuple[str, str]:
        """``(key_id, mac)`` over a row of an extension table (approvals, follow-ups...)."""
        key_id = self.keyring.current
        message = f"{kind}|{key_id}|{json.dumps(fields, separators=(',', ':'), default=str)}"
        return key_id, self.keyring.sign(message)

    def check_seal(self, kind: str, fields: list[Any], key_id: str | None, mac: str | None) -> bool:
        """Whether ``mac`` seals ``fields`` under ``key_id``."""
        message = f"{kind}|{key_id}|{json.dumps(fields, separators=(',', ':'), default=str)}"
        return self.keyring.check(key_id, message, mac)

    # --- checkpoints ----------------------------------------------------------------------
    def due(self, added: int) -> bool:
        """Count ``added`` new records; True when a checkpoint is due."""
        with self._lock:
            self._pending += added
            if not self._pending:
                return False
            by_count = self.every > 0 and self._pending >= self.every
            by_time = self.seconds > 0 and time.monotonic() - self._last >= self.seconds
            return self._first or by_count or by_time

    def has_pending(self) -> bool:
        """Whether records were added since this handle's last checkpoint."""
        with self._lock:
            return self._pending > 0

    def read_checkpoint(self) -> Checkpoint | None:
        """The stored checkpoint (``None`` when there is none).

        Raises:
            AuditError: it cannot be read or parsed.
        """
        try:
            text = self.checkpoint_path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AuditError(f"cannot read checkpoint {self.checkpoint_path}: {exc}") from exc
        try:
            doc = json.loads(text)
            return Checkpoint(**{k: doc[k] for k in Checkpoint.__dataclass_fields__})
        except (ValueError, KeyError, TypeError) as exc:
            raise AuditError(f"checkpoint {self.checkpoint_path} is malformed: {exc}") from exc

    def checkpoint_ok(self, cp: Checkpoint) -> bool:
        """Whether the checkpoint's MAC is valid under a key of the keyring."""
        return self.keyring.check(cp.key_id, cp.body(), cp.mac)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = self.checkpoint_path.with_name(f".{CHECKPOINT_FILE}.lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def write_checkpoint(self, head: dict[str, Any], extends: Any) -> Checkpoint | None:
        """Store a checkpoint of ``head`` unless the stored one is newer or not extended.

        Args:
            head: ``seq``, ``head_hash``, ``count``, ``anchor_no``, ``anchor_hash``.
            extends: ``extends(old_checkpoint) -> bool``: whether the current chain still
                holds the stored checkpoint's head (else the old one is kept as evidence).

        Returns:
            The checkpoint written, or ``None`` when the stored one was kept.
        """
        with self._lock:
            self._pending = 0
            self._first = False  # (only truth-tested: a None mutant is equivalent)
            self._last = time.monotonic()
        with self._file_lock():
            old = None
            with contextlib.suppress(AuditError):
                old = self.read_checkpoint()
            if old is not None and self.checkpoint_ok(old):
                if old.seq > head["seq"] or (old.seq, old.head_hash) == (
                    head["seq"],
                    head["head_hash"],
                ):
                    return None
                if not extends(old):
                    return None
            cp = Checkpoint(
                seq=int(head["seq"]),
                head_hash=str(head["head_hash"]),
                count=int(head["count"]),
                anchor_no=int(head["anchor_no"]),
                anchor_hash=str(head["anchor_hash"]),
                at=datetime.now(UTC).isoformat(),
                key_id=self.keyring.current,
            )
            cp = Checkpoint(**{**cp.__dict__, "mac": self.keyring.sign(cp.body())})
            partial = self.checkpoint_path.with_name(f".{CHECKPOINT_FILE}.{os.getpid()}")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                # Any indent reads back the same: the layout is for a person, not a contract.
                out.write(json.dumps(cp.__dict__, indent=1) + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, self.checkpoint_path)
            return cp
