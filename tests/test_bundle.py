"""Signed bundles: keys, validated builds, and a real OPA sidecar that verifies them."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import re
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from pygate import Gate, PolicyDataError, PublishError, SqliteAuditLog
from pygate.engine._opa_process import free_port
from pygate.policy._bundle import (
    KeyPair,
    build_bundle,
    generate_keys,
    sidecar_command,
    sidecar_env,
)
from tests.conftest import ANALYST, REGO
from tests.test_cli import pygate

REVISION = re.compile(r"^r\d{8}T\d{6}\.\d{6}Z-([0-9a-f]{7,40}|nogit)-[0-9a-f]{12}$")


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate_keys(tmp_path_factory.mktemp("other-keys"))


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {
            m.name.lstrip("/"): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def _jwt_part(token: str, index: int) -> dict[str, object]:
    part = token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def test_keys_are_created_once_and_kept(tmp_path: Path) -> None:
    first = generate_keys(tmp_path / "k")
    assert first.created
    assert first.private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert first.public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert first.private.stat().st_mode & 0o077 == 0
    before = first.private.read_bytes()
    again = generate_keys(tmp_path / "k")
    assert not again.created
    assert again.private.read_bytes() == before
    forced = generate_keys(tmp_path / "k", force=True)
    assert forced.created
    assert forced.private.read_bytes() != before


def test_bundle_keys_cli_is_idempotent(tmp_path: Path) -> None:
    made = pygate("bundle", "keys", "--dir", str(tmp_path / "k"), "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["created"] is True
    kept = pygate("bundle", "keys", "--dir", str(tmp_path / "k"))
    assert kept.returncode == 0, kept.stderr
    assert "kept existing" in kept.stdout


def test_build_writes_a_signed_bundle_without_tests(tmp_path: Path, keys: KeyPair) -> None:
    built = build_bundle(tmp_path / "b.tar.gz", signing_key=keys.private, policy_dir=REGO)
    assert REVISION.match(built.revision), built.revision
    files = _members(built.path)
    assert not [name for name in files if name.endswith("_test.rego")]
    assert "pygate/gate/gate.rego" in files
    manifest = json.loads(files[".manifest"])
    assert manifest["roots"] == ["pygate"]
    assert manifest["revision"] == built.revision
    token = json.loads(files[".signatures.json"])["signatures"][0]
    assert _jwt_part(token, 0) == {"alg": "RS256", "kid": "pygate", "typ": "JWT"}
    signed = {f["name"] for f in _jwt_part(token, 1)["files"]}  # type: ignore[attr-defined]
    assert {".manifest", "data.json", "pygate/gate/gate.rego"} <= signed


def test_revision_follows_the_content(tmp_path: Path, keys: KeyPair) -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    a = build_bundle(tmp_path / "a.tar.gz", signing_key=keys.private, policy_dir=REGO, built_at=at)
    b = build_bundle(tmp_path / "b.tar.gz", signing_key=keys.private, policy_dir=REGO, built_at=at)
    assert a.revision == b.revision
    assert a.revision.startswith("r20260102T030405.000006Z-")
    lower = tmp_path / "lower.json"
    lower.write_text(json.dumps({"default_transaction_limit": 10}))
    c = build_bundle(
        tmp_path / "c.tar.gz", signing_key=keys.private, policy_dir=REGO, data_files=[lower]
    )
    assert c.commit == a.commit
    assert c.content_hash != a.content_hash
    data = json.loads(_members(c.path)["data.json"])
    assert data["pygate"]["config"]["default_transaction_limit"] == 10
    assert data["pygate"]["config"]["daily_quota"] == 100  # other keys kept


def test_outside_git_the_revision_says_nogit(
    tmp_path: Path, keys: KeyPair, policy_copy: Path
) -> None:
    built = build_bundle(tmp_path / "b.tar.gz", signing_key=keys.private, policy_dir=policy_copy)
    if built.commit != "nogit":  # tmp_path inside a git checkout: nothing to learn here
        pytest.skip("the temporary folder is inside a git checkout")
    assert "-nogit-" in built.revision


def test_a_malformed_policy_stops_the_build_naming_policy_and_field(
    tmp_path: Path, keys: KeyPair
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"declarative_policies": [
        {"id": "X-1", "set": "finance", "reason": "r", "action": "log_refusal",
         "conditions": [{"type": "field_compare", "field": "amount", "op": "bigger", "value": 1}]},
    ]}))  # fmt: skip
    out = tmp_path / "b.tar.gz"
    with pytest.raises(PolicyDataError) as info:
        build_bundle(out, signing_key=keys.private, policy_dir=REGO, data_files=[bad])
    assert (info.value.policy_id, info.value.field) == ("X-1", "conditions[0].op")
    assert not out.exists()
    cli = pygate("bundle", "build", "--out", str(out), "--signing-key", str(keys.private),
                 "--data", str(bad), "--json")  # fmt: skip
    assert cli.returncode == 2, cli.stderr
    assert json.loads(cli.stdout) == {
        "ok": False, "step": "validate", "policy_id": "X-1", "field": "conditions[0].op",
        "problem": json.loads(cli.stdout)["problem"],
        "error": json.loads(cli.stdout)["error"],  # every JSON error has "error"
    }  # fmt: skip
    human = pygate("bundle", "build", "--out", str(out), "--signing-key", str(keys.private),
                   "--data", str(bad))  # fmt: skip
    assert human.returncode == 2
    assert "policy X-1: conditions[0].op" in human.stderr
    assert "Traceback" not in human.stderr
    assert not out.exists()


def test_a_failing_opa_test_stops_the_build(
    tmp_path: Path, keys: KeyPair, policy_copy: Path
) -> None:
    (policy_copy / "pygate" / "gate" / "broken_test.rego").write_text(
        "package pygate.gate_test\n\ntest_always_fails if {\n\tfalse\n}\n"
    )
    out = tmp_path / "b.tar.gz"
    with pytest.raises(PublishError) as info:
        build_bundle(out, signing_key=keys.private, policy_dir=policy_copy)
    assert info.value.step == "opa test"
    assert "test_always_fails" in info.value.problem
    assert not out.exists()


def test_build_without_a_key_says_how_to_make_one(tmp_path: Path) -> None:
    cli = pygate("bundle", "build", "--out", str(tmp_path / "b.tar.gz"),
                 "--signing-key", str(tmp_path / "none.pem"))  # fmt: skip
    assert cli.returncode == 2
    assert "pygate bundle keys" in cli.stderr


def test_bundle_build_cli_prints_the_revision(tmp_path: Path, keys: KeyPair) -> None:
    out = tmp_path / "b.tar.gz"
    cli = pygate("bundle", "build", "--out", str(out), "--signing-key", str(keys.private))
    assert cli.returncode == 0, cli.stderr
    assert REVISION.match(cli.stdout.strip())
    as_json = pygate("bundle", "build", "--out", str(out), "--signing-key", str(keys.private),
                     "--json")  # fmt: skip
    again = json.loads(as_json.stdout)["revision"]
    # Same content and commit; the build time (the revision's first part) moved on.
    assert again.split("-", 1)[1] == cli.stdout.strip().split("-", 1)[1]
    assert again > cli.stdout.strip()


# --- a real sidecar polling a bundle server ------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def bundle_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static file server for one folder; returns (URL, folder)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()


@pytest.fixture
def start_sidecar(tmp_path: Path) -> Iterator[Callable[..., tuple[str, Path]]]:
    """Start OPA sidecars with deploy/opa-config.yaml; returns (URL, log file)."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(bundle_url: str, verify_key: Path, name: str = "a") -> tuple[str, Path]:
        port = free_port()
        log = tmp_path / f"opa-{name}.log"
        env = {**os.environ, **sidecar_env(bundle_url, tmp_path / f"persist-{name}")}
        with open(log, "ab") as out:
            procs.append(subprocess.Popen(
                sidecar_command(port, verification_key=verify_key),
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            ))  # fmt: skip
        return f"http://127.0.0.1:{port}", log

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _bundle_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health?bundles", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _revision(url: str) -> str | None:
    try:
        body = httpx.post(
            f"{url}/v1/data/pygate/gate/decision?provenance=true", json={"input": {}}, timeout=1
        ).json()
    except httpx.HTTPError:
        return None
    bundles = body.get("provenance", {}).get("bundles", {})
    return bundles.get("pygate", {}).get("revision")  # type: ignore[no-any-return]


def test_decisions_and_audit_records_carry_the_bundle_revision(
    tmp_path: Path, keys: KeyPair, bundle_server: tuple[str, Path],
    start_sidecar: Callable[..., tuple[str, Path]],
) -> None:  # fmt: skip
    url, served = bundle_server
    built = build_bundle(served / "pygate.tar.gz", signing_key=keys.private, policy_dir=REGO)
    opa_url, _ = start_sidecar(url, keys.public)
    _wait_for(lambda: _bundle_ready(opa_url), "the sidecar to activate the bundle")
    audit = SqliteAuditLog(tmp_path / "audit.db")
    with Gate("finance", opa_url=opa_url, audit=audit) as gate:
        ok = gate.evaluate({"type": "transfer", "amount": 10}, ANALYST)
        no = gate.evaluate({"type": "transfer", "amount": 5000}, ANALYST)
    assert ok.allowed
    assert not no.allowed
    assert no.policy_id == "FIN-002"
    assert ok.bundle_revision == no.bundle_revision == built.revision
    assert [r.bundle_revision for r in audit.records()] == [built.revision] * 2
    audit.close()


def test_sidecar_refuses_a_tampered_bundle_and_keeps_the_last_good_one(
    tmp_path: Path, keys: KeyPair, other_keys: KeyPair, bundle_server: tuple[str, Path],
    start_sidecar: Callable[..., tuple[str, Path]],
) -> None:  # fmt: skip
    url, served = bundle_server
    target = served / "pygate.tar.gz"
    good = build_bundle(target, signing_key=keys.private, policy_dir=REGO)
    opa_url, log = start_sidecar(url, keys.public)
    _wait_for(lambda: _bundle_ready(opa_url), "the sidecar to activate the bundle")

    # 1. signed by another key
    lower = tmp_path / "lower.json"
    lower.write_text(json.dumps({"default_transaction_limit": 10}))
    build_bundle(target, signing_key=other_keys.private, policy_dir=REGO, data_files=[lower])
    _wait_for(lambda: "Bundle load failed" in log.read_text(), "the bad signature to be seen")
    assert _revision(opa_url) == good.revision

    # 2. the right signature, but data.json changed after signing
    build_bundle(tmp_path / "ok.tar.gz", signing_key=keys.private, policy_dir=REGO)
    files = _members(tmp_path / "ok.tar.gz")
    data = json.loads(files["data.json"])
    data["pygate"]["config"]["default_transaction_limit"] = 10
    files["data.json"] = json.dumps(data).encode()
    _write_tar(target, files)
    _wait_for(lambda: "digest mismatch" in log.read_text(), "the edited bundle to be refused")
    assert _revision(opa_url) == good.revision
    with Gate("finance", opa_url=opa_url, audit=None) as gate:
        decision = gate.evaluate({"type": "transfer", "amount": 500}, {"id": "nolimit"})
    assert decision.allowed  # still the default limit of 1000, not the tampered 10
    assert decision.bundle_revision == good.revision


def test_an_older_signed_bundle_replayed_to_a_sidecar_is_refused(
    tmp_path: Path, keys: KeyPair, bundle_server: tuple[str, Path],
    start_sidecar: Callable[..., tuple[str, Path]],
) -> None:  # fmt: skip
    """OPA activates any validly signed bundle, older ones too; the gate refuses to decide
    with one older than the newest it has decided with, so a replay cannot undo a tightening."""
    url, served = bundle_server
    target = served / "pygate.tar.gz"
    old = build_bundle(tmp_path / "old.tar.gz", signing_key=keys.private, policy_dir=REGO,
                       built_at=datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
    tight = tmp_path / "tight.json"
    tight.write_text(json.dumps({"default_transaction_limit": 100}))
    new = build_bundle(target, signing_key=keys.private, policy_dir=REGO, data_files=[tight],
                       built_at=datetime(2026, 2, 1, tzinfo=UTC))  # fmt: skip
    opa_url, _ = start_sidecar(url, keys.public)
    _wait_for(lambda: _revision(opa_url) == new.revision, "the sidecar to activate the bundle")
    transfer, user = {"type": "transfer", "amount": 500}, {"id": "nolimit"}
    audit = SqliteAuditLog(tmp_path / "audit.db")
    with Gate("finance", opa_url=opa_url, audit=audit) as gate:
        tightened = gate.evaluate(transfer, user)
        target.write_bytes(old.path.read_bytes())  # the replay: old, validly signed
        _wait_for(lambda: _revision(opa_url) == old.revision, "the sidecar to take the old one")
        replayed = gate.evaluate(transfer, user)
    assert not tightened.allowed
    assert tightened.bundle_revision == new.revision
    assert not replayed.allowed  # the old limit of 1000 would have allowed it
    assert replayed.policy_id == "pygate.bundle"
    assert old.revision in replayed.reason
    assert new.revision in replayed.reason
    assert audit.tail(1)[0].policy_id == "pygate.bundle"
    assert audit.verify().ok
    audit.close()


def test_a_sidecar_never_activates_an_unsigned_bundle(
    tmp_path: Path, keys: KeyPair, bundle_server: tuple[str, Path],
    start_sidecar: Callable[..., tuple[str, Path]],
) -> None:  # fmt: skip
    url, served = bundle_server
    built = build_bundle(tmp_path / "ok.tar.gz", signing_key=keys.private, policy_dir=REGO)
    files = _members(built.path)
    del files[".signatures.json"]
    _write_tar(served / "pygate.tar.gz", files)
    opa_url, log = start_sidecar(url, keys.public)
    _wait_for(lambda: "Bundle load failed" in log.read_text(), "the unsigned bundle to be refused")
    assert not _bundle_ready(opa_url)
    with Gate("finance", opa_url=opa_url, audit=None) as gate:
        decision = gate.evaluate({"type": "transfer", "amount": 1}, ANALYST)
    assert not decision.allowed
    assert decision.fallback  # no policy loaded: fail closed, never an allow


def _write_tar(path: Path, files: dict[str, bytes]) -> None:
    import io

    partial = path.with_suffix(".part")
    with tarfile.open(partial, "w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo("/" + name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    partial.replace(path)
