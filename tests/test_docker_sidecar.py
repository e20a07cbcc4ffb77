"""`pygate sidecar up --docker` / `down --docker`: OPA as a container, driven by the docker SDK.

Uses the local OPA image (scripts/docker-images.sh builds pygate-local/opa:latest, a stand-in
for openpolicyagent/opa:<version>-static); skipped with the reason where no engine answers,
a failure instead when PYGATE_REQUIRE_DOCKER=1 (CI).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pygate import Gate, build_bundle, generate_keys
from pygate.cli._main import main
from pygate.engine._opa_process import PROJECT_ROOT, free_port

REGO = PROJECT_ROOT / "rego"
IMAGE = os.environ.get("PYGATE_TEST_OPA_IMAGE", "pygate-local/opa:latest")
TRANSFER = {"type": "transfer", "amount": 500, "to": "acct-2"}


def _why_no_docker() -> str | None:
    if shutil.which("docker") is None:
        return "no docker command (scripts/docker-images.sh installs and starts an engine)"
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode:
        return "no Docker engine answers (scripts/docker-images.sh starts one)"
    inspect = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True,
                             check=False)  # fmt: skip
    if inspect.returncode:
        return f"OPA image {IMAGE} missing (scripts/docker-images.sh builds it)"
    return None


@pytest.fixture
def engine() -> None:
    reason = _why_no_docker()
    if reason is not None:
        if os.environ.get("PYGATE_REQUIRE_DOCKER") == "1":
            pytest.fail(f"PYGATE_REQUIRE_DOCKER=1 but {reason}")
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from an empty folder: no bundles/ or keys/ of the repo's own are picked up."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def port(engine: None) -> Iterator[int]:
    chosen = free_port()
    yield chosen
    CliRunner().invoke(main, ["sidecar", "down", "--docker", "--port", str(chosen)])


def _up(*args: str) -> tuple[int, str, str]:
    argv = ["--policy-dir", str(REGO), "sidecar", "up", "--docker", "--image", IMAGE, *args]
    result = CliRunner().invoke(main, argv)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.docker
def test_up_serves_the_policy_folder_and_down_removes_it(port: int, tmp_path: Path) -> None:
    code, out, err = _up("--port", str(port))
    assert code == 0, err
    url = out.strip()
    assert url == f"http://127.0.0.1:{port}"
    with Gate("finance", opa_url=url, audit=tmp_path / "audit.db") as gate:
        decision = gate.evaluate(TRANSFER, {"id": "u1", "transaction_limit": 1000})
    assert decision.allowed
    assert not decision.fallback
    again = _up("--port", str(port))  # idempotent: finds the running one
    assert again[0] == 0
    assert again[1].strip() == url
    down = CliRunner().invoke(main, ["sidecar", "down", "--docker", "--port", str(port), "--json"])
    assert down.exit_code == 0
    assert json.loads(down.stdout) == {"removed": [f"pygate-sidecar-{port}"]}
    with Gate("finance", opa_url=url, audit=tmp_path / "audit.db") as gate:
        gone = gate.evaluate(TRANSFER, {"id": "u1", "transaction_limit": 1000})
    assert not gone.allowed
    assert gone.fallback


@pytest.mark.docker
def test_up_verifies_a_signed_bundle(port: int, tmp_path: Path) -> None:
    keys = generate_keys(tmp_path / "keys")
    built = build_bundle(tmp_path / "pygate.tar.gz", signing_key=keys.private)
    code, out, err = _up("--port", str(port), "--bundle", str(built.path),
                         "--verification-key", str(keys.public))  # fmt: skip
    assert code == 0, err
    with Gate("finance", opa_url=out.strip(), audit=tmp_path / "audit.db") as gate:
        decision = gate.evaluate(TRANSFER, {"id": "u1", "transaction_limit": 1000})
    assert decision.allowed
    assert decision.bundle_revision == built.revision


@pytest.mark.docker
def test_up_refuses_a_bundle_signed_by_another_key(port: int, tmp_path: Path) -> None:
    ours = generate_keys(tmp_path / "ours")
    theirs = generate_keys(tmp_path / "theirs")
    built = build_bundle(tmp_path / "pygate.tar.gz", signing_key=theirs.private)
    code, out, err = _up("--port", str(port), "--bundle", str(built.path),
                         "--verification-key", str(ours.public))  # fmt: skip
    assert code == 2
    assert out == ""
    assert "not healthy" in err
    assert "verif" in err.lower()  # OPA's own reason, from the container's log
    listed = subprocess.run(["docker", "ps", "-aq", "--filter", f"name=pygate-sidecar-{port}"],
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert listed.stdout.strip() == ""  # nothing left behind


def test_without_an_engine_the_cli_says_so(tmp_path: Path) -> None:
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock"}
    up = CliRunner(env=env).invoke(main, ["--policy-dir", str(REGO), "sidecar", "up", "--docker"])
    assert up.exit_code == 2
    assert "no Docker engine answers" in up.stderr
    down = CliRunner(env=env).invoke(main, ["sidecar", "down", "--docker"])
    assert down.exit_code == 2
    assert "no Docker engine answers" in down.stderr


def test_policy_folder_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = CliRunner().invoke(main, ["--policy-dir", str(missing), "sidecar", "up", "--docker"])
    assert result.exit_code == 2
    assert f"policy folder {missing} does not exist" in result.stderr
