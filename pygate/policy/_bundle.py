"""Signed policy bundles: demo keys, a validated ``opa build``, and how a sidecar loads one.

One bundle (``rego/`` without its tests, plus policy data) is built once, signed with a
private key, and served to every OPA sidecar; each sidecar verifies the signature with the
public key and keeps the last good bundle when a download or a signature check fails.

The revision written into ``.manifest`` is ``r<UTC build time>-<short git commit or "nogit">-
<12 hex of the SHA-256 of the bundle's content>``, e.g. ``r20260102T030405.000006Z-ab12cd3-…``:
OPA reports it with every decision (``?provenance=true``) and pygate stores it in each audit
record, so a decision names the policy version that made it. The time prefix has a fixed width,
so revisions sort in build order as plain strings: the gate refuses a decision made by a bundle
older than the newest one its deployment has already decided with (``revision_stamp``; no
rollback). A deliberate rollback is a NEW build of the old content: check out the old policy,
``pygate bundle build`` (new time, so a newer revision) and publish it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pygate._errors import ConfigError, PublishError
from pygate._resources import is_pygate_tree, library_dirs
from pygate.engine._opa_process import PROJECT_ROOT, default_policy_dir, find_opa_binary
from pygate.policy._checked import with_checked
from pygate.policy._packages import user_packages, write_adapter
from pygate.policy._policy_data import load_policy_data, validate_policy_data
from pygate.policy._policy_index import check_index, with_index

#: The bundle's only root: a sidecar loading it owns ``data.pygate`` and nothing else.
ROOTS = ("pygate",)
DEFAULT_KEY_ID = "pygate"
DEFAULT_KEY_DIR = Path("keys")
PRIVATE_KEY_NAME = "bundle-signing.pem"
PUBLIC_KEY_NAME = "bundle-verify.pem"
DEFAULT_BUNDLE = Path("bundles") / "pygate.tar.gz"
#: Where policy data lives inside the policy folder (``data.pygate.config``).
DATA_PATH = Path("pygate") / "config" / "data.json"
#: The OPA configuration a sidecar runs with (``${VAR}`` values come from its environment).
OPA_CONFIG = PROJECT_ROOT / "deploy" / "opa-config.yaml"

_DATA_NAMES = frozenset({"data.json", "data.yaml", "data.yml"})


@dataclass(frozen=True)
class KeyPair:
    """The demo signing key pair and whether this call created it."""

    private: Path
    public: Path
    created: bool


@dataclass(frozen=True)
class Bundle:
    """A built, signed bundle."""

    path: Path
    revision: str
    commit: str
    content_hash: str
    key_id: str
    files: tuple[str, ...]


def generate_keys(directory: str | os.PathLike[str] = DEFAULT_KEY_DIR, *, force: bool = False
                  ) -> KeyPair:  # fmt: skip
    """Create an RSA-2048 key pair for signing bundles, unless one exists.

    Uses ``openssl`` (a Debian base package, so no Python crypto dependency). The private
    key is written with mode 0600. Keys are for the demo and tests; keep production keys
    in your secret store and pass their paths instead.

    Args:
        directory: where ``bundle-signing.pem`` and ``bundle-verify.pem`` go.
        force: replace existing keys.

    Returns:
        The key paths, and ``created=False`` when both already existed.

    Raises:
        ConfigError: no ``openssl``, or the folder is not writable.
    """
    folder = Path(directory)
    private, public = folder / PRIVATE_KEY_NAME, folder / PUBLIC_KEY_NAME
    if private.is_file() and public.is_file() and not force:
        return KeyPair(private, public, created=False)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not shutil.which("openssl"):
            raise ConfigError(
                "cannot generate keys: `openssl` is not on PATH (apt-get install openssl)"
            )
        _openssl_keys(private, public)
        private.chmod(0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write keys to {folder}: {exc}") from exc
    return KeyPair(private, public, created=True)


def _openssl_keys(private: Path, public: Path) -> None:
    for argv in (
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
         "-out", str(private)],
        ["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)],
    ):  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ConfigError(f"`{' '.join(argv[:2])}` failed: {done.stderr.strip()[-300:]}")


def merge_policy_data(policy_dir: Path, data_files: Sequence[str | os.PathLike[str]]
                      ) -> dict[str, Any]:  # fmt: skip
    """The policy data a bundle carries: the folder's data, then each file's top-level keys.

    A later file replaces whole top-level keys (``default_transaction_limit``,
    ``declarative_policies``, ...) of the data before it. The result is validated and
    carries a fresh ``declarative_index`` (pygate/policy/_policy_index.py) and ``checked``
    copy (pygate/policy/_checked.py).

    Raises:
        PolicyDataError: a file is unreadable or not an object, a policy is malformed, or
            the folder's own index does not match its policies.
    """
    base = policy_dir / DATA_PATH
    merged: dict[str, Any] = load_policy_data(base) if base.is_file() else {}
    check_index(merged, str(base))
    for name in data_files:
        merged.update(load_policy_data(Path(name)))
    validate_policy_data(merged)
    return with_checked(with_index(merged))


def git_commit(path: Path) -> str:
    """The short commit of the git checkout holding ``path``, or ``"nogit"``."""
    try:
        done = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=False, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return "nogit"
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else "nogit"


def content_hash(stage: Path) -> str:
    """SHA-256 over every file's relative path and bytes (sorted), first 12 hex digits."""
    digest = hashlib.sha256()
    for file in sorted(p for p in stage.rglob("*") if p.is_file()):
        rel = file.relative_to(stage).as_posix()
        if rel == ".manifest":
            continue
        digest.update(rel.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _stage(policy_dir: Path, stage: Path, data: dict[str, Any]) -> None:
    """Copy the policies (no tests, no hidden files) and the merged data into ``stage``."""
    for src in sorted(policy_dir.rglob("*")):
        rel = src.relative_to(policy_dir)
        if not src.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        if src.suffix == ".rego" and not src.name.endswith("_test.rego"):
            pass
        elif src.name not in _DATA_NAMES or rel == DATA_PATH:
            continue
        (stage / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, stage / rel)
    (stage / DATA_PATH).parent.mkdir(parents=True, exist_ok=True)
    (stage / DATA_PATH).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _stage_project(folder: Path, stage: Path) -> list[str]:
    """Add pygate's Rego library and the package adapter to a user project's stage.

    Returns the bundle roots: ``pygate`` plus the first name of every user package and
    of every data path outside ``pygate`` (the bundle owns exactly what it carries).
    """
    for lib in library_dirs():
        for src in sorted(lib.rglob("*.rego")):
            if src.name.endswith("_test.rego"):
                continue
            dest = stage / "pygate" / lib.name / src.relative_to(lib)
            if dest.exists():
                raise ConfigError(f"{folder}: must not define pygate's own {dest.parent.name}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
    write_adapter(folder, stage / "pygate" / "packages")
    roots = {ROOTS[0]} | {pkg.split(".")[0] for pkg in user_packages(folder)}
    for data_file in stage.rglob("*"):
        if data_file.name not in _DATA_NAMES:
            continue
        rel = data_file.relative_to(stage)
        if len(rel.parts) > 1:
            roots.add(rel.parts[0])
        else:
            loaded = json.loads(data_file.read_text()) if data_file.suffix == ".json" else {}
            roots.update(loaded if isinstance(loaded, dict) else {})
    return sorted(roots)


def _run(step: str, argv: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, cwd=cwd, check=False, timeout=300
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PublishError(step, str(exc)) from exc
    if done.returncode != 0:
        detail = (done.stdout + done.stderr).strip()
        raise PublishError(step, f"exit {done.returncode}:\n{detail[-3000:]}")
    return done.stdout


def build_bundle(
    out: str | os.PathLike[str] = DEFAULT_BUNDLE,
    *,
    signing_key: str | os.PathLike[str] = DEFAULT_KEY_DIR / PRIVATE_KEY_NAME,
    key_id: str = DEFAULT_KEY_ID,
    policy_dir: str | os.PathLike[str] | None = None,
    data_files: Sequence[str | os.PathLike[str]] = (),
    opa_bin: str | os.PathLike[str] | None = None,
    built_at: datetime | None = None,
) -> Bundle:
    """Validate, test, build and sign the policy bundle.

    Steps, each of which stops the build: rules-as-data policies are checked against
    their schema; ``opa test`` must pass over the policy folder; ``opa build`` writes the
    bundle (tests excluded, ``.manifest`` with roots and revision) signed with RS256. The
    file is replaced atomically, so a bundle server never serves half a bundle.

    Args:
        out: the bundle file to write.
        signing_key: PEM private key (``pygate bundle keys`` makes a demo pair).
        key_id: the key id written into the signature; sidecars look their
            verification key up by it.
        policy_dir: the policy folder (default: pygate's own ``rego/``). A folder that is
            not a whole pygate tree is a user project: pygate's Rego library and the
            package adapter (``pygate/policy/_packages.py``) are added, and the roots are
            ``pygate`` plus the user's top-level names.
        data_files: JSON files whose top-level keys replace those of the folder's data.
        opa_bin: the ``opa`` binary (default: ``find_opa_binary()``).
        built_at: the build time the revision starts with (default: now, UTC); revisions
            order bundles, so a later build must not carry an earlier time.

    Returns:
        The bundle, with its revision.

    Raises:
        PolicyDataError: a rules-as-data policy is malformed (names policy and field).
        PublishError: ``opa test`` failed or ``opa build`` could not build or sign.
        ConfigError: the policy folder, the key or the OPA binary is missing.
    """
    folder = Path(policy_dir) if policy_dir else default_policy_dir()
    if not folder.is_dir():
        raise ConfigError(f"policy folder {folder} does not exist")
    key = Path(signing_key)
    if not key.is_file():
        raise ConfigError(
            f"signing key {key} not found: run `pygate bundle keys` or pass --signing-key"
        )
    opa = str(find_opa_binary(opa_bin))
    data = merge_policy_data(folder, data_files)
    project = not is_pygate_tree(folder)
    if not project:
        _run("opa test", [opa, "test", str(folder)])
    target = Path(out).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pygate-bundle-") as tmp:
        stage = Path(tmp) / "bundle"
        stage.mkdir()
        _stage(folder, stage, data)
        roots = list(ROOTS)
        if project:
            roots = _stage_project(folder, stage)
            tests = [str(p) for p in sorted(folder.rglob("*_test.rego"))]
            _run("opa test", [opa, "test", str(stage), *tests])
        commit = git_commit(folder)
        digest = content_hash(stage)
        revision = f"r{revision_time(built_at)}-{commit}-{digest}"
        manifest = {"revision": revision, "roots": roots}
        (stage / ".manifest").write_text(json.dumps(manifest))
        files = tuple(sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*")
                             if p.is_file()))  # fmt: skip
        partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            # --verification-key-id names the key in the signature's `kid` header.
            _run("opa build", [
                opa, "build", "--bundle", ".", "--output", str(partial),
                "--revision", revision, "--signing-key", str(key.resolve()),
                "--signing-alg", "RS256", "--verification-key-id", key_id,
            ], cwd=stage)  # fmt: skip
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
    return Bundle(target, revision, commit, digest, key_id, files)


#: ``r<YYYYMMDDTHHMMSS.ffffffZ>-…``: the ordered prefix of a revision ``build_bundle`` writes.
_STAMP = re.compile(r"^r(\d{8}T\d{6}\.\d{6}Z)-")


def revision_time(at: datetime | None = None) -> str:
    """The fixed-width UTC time a revision starts with (sorts as a string)."""
    return (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def revision_stamp(revision: str | None) -> str | None:
    """The build time of a revision ``build_bundle`` wrote; ``None`` for any other revision.

    Several bundles (comma-joined by the gate) give their newest stamp.
    """
    stamps = [m.group(1) for part in (revision or "").split(",") if (m := _STAMP.match(part))]
    return max(stamps) if stamps else None


def sidecar_command(
    port: int,
    *,
    verification_key: str | os.PathLike[str] = DEFAULT_KEY_DIR / PUBLIC_KEY_NAME,
    config: str | os.PathLike[str] = OPA_CONFIG,
    opa_bin: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
) -> list[str]:
    """The ``opa run`` command line of a sidecar that polls and verifies the signed bundle.

    The environment must give ``BUNDLE_SERVER_URL`` and ``OPA_PERSISTENCE_DIR`` (the config
    file reads them). The public key is handed over with ``--set-file``: OPA's own
    ``--verification-key`` flag only applies to bundles loaded from disk (``--bundle``).
    """
    return [
        str(find_opa_binary(opa_bin)), "run", "--server", "--addr", f"{host}:{port}",
        "--config-file", str(config),
        "--set-file", f"keys.{DEFAULT_KEY_ID}.key={verification_key}",
    ]  # fmt: skip


def sidecar_env(bundle_server_url: str, persistence_dir: str | os.PathLike[str]
                ) -> dict[str, str]:  # fmt: skip
    """The environment ``deploy/opa-config.yaml`` reads (OPA leaves unset ``${VAR}`` as is)."""
    return {
        "BUNDLE_SERVER_URL": bundle_server_url,
        "OPA_PERSISTENCE_DIR": str(Path(persistence_dir).resolve()),
    }
