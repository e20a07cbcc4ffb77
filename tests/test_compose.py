"""The compose deployment, for real: docker-compose.yml + docker-compose.local.yml on an engine.

Brought up from the repo's files (scripts/compose-local.sh) with the local images that
scripts/docker-images.sh builds; every container on host networking, on 127.0.0.1 ports
picked free for this run. The scenario is the one in scripts/deployment-drill.py (the same
steps the plain-process deployment runs): this module only says how to do each step with
compose. The signed bundle, its keys and the bundle folder the nginx container serves live
in a temporary directory, so the repo's bundles/ and keys/ are not touched.

Skipped, with the reason, where no engine answers; PYGATE_REQUIRE_DOCKER=1 (set by .ci/run)
turns that skip into a failure, so CI cannot pass without running it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pygate import build_bundle, generate_keys, open_audit
from pygate.engine._opa_process import PROJECT_ROOT, free_port
from pygate.integrations.serve import hash_token, new_token
from tests.conftest import load_drill

pytestmark = pytest.mark.docker

COMPOSE = PROJECT_ROOT / "scripts" / "compose-local.sh"
SIDECARS = {"finance": "opa-finance", "assistant": "opa-assistant"}


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def _why_no_docker() -> str | None:
    if shutil.which("docker") is None:
        return "no docker command (scripts/docker-images.sh installs and starts an engine)"
    if _docker("info", check=False).returncode != 0:
        return "no Docker engine answers (scripts/docker-images.sh starts one)"
    if shutil.which("docker-compose") is None and (
        _docker("compose", "version", check=False).returncode != 0
    ):
        return "neither `docker compose` nor `docker-compose` is installed"
    # The engine answers: make sure the local images match this checkout (a few seconds when
    # they do; the service image is rebuilt when pygate's code or dependencies changed).
    built = subprocess.run([str(PROJECT_ROOT / "scripts" / "docker-images.sh"), "build"],
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert built.returncode == 0, f"scripts/docker-images.sh failed:\n{built.stderr[-3000:]}"
    return None


def _wait(what: str, probe: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class ComposeDeployment:
    """The compose project as a drill ``Deployment`` (scripts/deployment-drill.py).

    Driven through scripts/compose-local.sh and the docker CLI. A crashed sidecar comes back
    by Docker's restart policy (``unless-stopped``), not by the drill: ``start_sidecar`` only
    waits for it, and starts it only if Docker did not.
    """

    def __init__(self, work: Path) -> None:
        self.work = work
        self.project = f"pygatetest{uuid.uuid4().hex[:8]}"
        self.bundles = work / "bundles"
        self.bundles.mkdir()
        self.bundle = self.bundles / "pygate.tar.gz"
        keys = generate_keys(work / "keys")
        self.signing_key = keys.private
        self.verify_key = keys.public
        self.untrusted_key = generate_keys(work / "untrusted-keys").private
        self.policy_dir = PROJECT_ROOT / "rego"
        self.ports = {
            name: free_port()
            for name in ("BUNDLE_PORT", "OPA_FINANCE_PORT", "OPA_ASSISTANT_PORT",
                         "OPA_DECISIONS_PORT", "POSTGRES_PORT", "FINANCE_PORT", "ASSISTANT_PORT",
                         "DECISIONS_PORT")
        }  # fmt: skip
        self.services = {
            "finance": f"http://127.0.0.1:{self.ports['FINANCE_PORT']}",
            "assistant": f"http://127.0.0.1:{self.ports['ASSISTANT_PORT']}",
        }
        # The compose file's demo password; the database only listens on 127.0.0.1.
        self.audit_db = (
            f"postgresql://pygate:pygate-demo@127.0.0.1:{self.ports['POSTGRES_PORT']}/pygate"
        )
        # `pygate serve` (the decisions service): its URL, and a fresh finance token per run.
        self.decisions = f"http://127.0.0.1:{self.ports['DECISIONS_PORT']}"
        self.serve_token = new_token()
        # The services' audit keyring (the compose file's default is a public demo key): a
        # fresh one per run, which the drill's verify must use too.
        self.audit_key = f"kdrill01 {secrets.token_hex(32)}"
        self.env = {
            **os.environ,
            **{k: str(v) for k, v in self.ports.items()},
            "PYGATE_AUDIT_KEY": self.audit_key,
            "PYGATE_SERVE_TOKENS": f"finance {hash_token(self.serve_token)}",
            "COMPOSE_PROJECT_NAME": self.project,
            "PYGATE_BUNDLE_DIR": str(self.bundles),
            "PYGATE_KEYS_DIR": str(self.verify_key.parent),
        }

    # -- compose ---------------------------------------------------------------------------
    def compose(self, *args: str) -> str:
        done = subprocess.run(
            [str(COMPOSE), *args], env=self.env, capture_output=True, text=True, timeout=300
        )
        if done.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def container(self, service: str) -> str:
        ids = _docker(
            "ps", "-aq",
            "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}",
        ).stdout.split()  # fmt: skip
        assert len(ids) == 1, f"expected one {service} container, found {ids}"
        return ids[0]

    def inspect(self, service: str, template: str) -> str:
        return _docker("inspect", "-f", template, self.container(service)).stdout.strip()

    def up(self) -> None:
        self.publish(build_bundle(self.work / "b0.tar.gz", signing_key=self.signing_key).path)
        self.compose("up", "-d")
        for name, url in self.services.items():
            _wait(f"the {name} service to answer",
                  lambda u=url: httpx.get(f"{u}/health", timeout=2).status_code == 200)  # fmt: skip
        ready = f"{self.decisions}/ready"
        _wait("the decisions service to be ready",
              lambda: httpx.get(ready, timeout=2).status_code == 200)  # fmt: skip

    # -- the drill's Deployment protocol ---------------------------------------------------
    def publish(self, bundle: Path) -> None:
        partial = self.bundles / ".pygate.tar.gz.tmp"
        shutil.copyfile(bundle, partial)
        partial.chmod(0o644)  # nginx runs as nobody
        partial.replace(self.bundle)

    def wait_for_polls(self, since: float, polls: int = 2) -> None:
        # nginx keeps no access log here, so wait the worst case: polls x the longest delay.
        time.sleep(max(0.0, since + polls * DRILL.MAX_POLL_DELAY + 0.5 - time.monotonic()))

    def stop_bundle_server(self) -> None:
        self.compose("stop", "bundle-server")

    def start_bundle_server(self) -> None:
        self.compose("start", "bundle-server")
        health = "{{.State.Health.Status}}"
        _wait("the bundle server", lambda: self.inspect("bundle-server", health) == "healthy")

    def kill_sidecar(self, service: str) -> None:
        # SIGKILL to the container's process from outside, as a crash would end it: `docker
        # kill` or `stop` count as an operator's decision and the restart policy stays idle.
        os.kill(int(self.inspect(SIDECARS[service], "{{.State.Pid}}")), signal.SIGKILL)

    def start_sidecar(self, service: str) -> None:
        name = SIDECARS[service]
        _wait(f"Docker to restart the {service} sidecar",
              lambda: self.inspect(name, "{{.RestartCount}}") != "0"
              or self.inspect(name, "{{.State.Status}}") == "exited", 30)  # fmt: skip
        if self.inspect(name, "{{.State.Status}}") == "exited":
            self.compose("start", name)

    def sidecar_log(self, service: str) -> str | None:
        logs = _docker("logs", self.container(SIDECARS[service]), check=False)
        return logs.stdout + logs.stderr


DRILL = load_drill()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeDeployment]:
    reason = _why_no_docker()
    if reason is not None:
        if os.environ.get("PYGATE_REQUIRE_DOCKER") == "1":
            pytest.fail(f"PYGATE_REQUIRE_DOCKER=1 but {reason}")
        pytest.skip(reason)
    dep = ComposeDeployment(tmp_path_factory.mktemp("compose"))
    try:
        dep.up()
        yield dep
    finally:
        logs = dep.compose("logs", "--no-color", "--tail", "30") if os.environ.get("CI") else ""
        dep.compose("down", "-v", "--remove-orphans")
        if logs:
            print(logs)


def test_no_bridge_network_is_created(deployment: ComposeDeployment) -> None:
    names = set(_docker("network", "ls", "--format", "{{.Name}}").stdout.split())
    assert names <= {"host", "none", "bridge"}
    modes = {s: deployment.inspect(s, "{{.HostConfig.NetworkMode}}")
             for s in ("bundle-server", "opa-finance", "opa-assistant", "opa-decisions",
                       "postgres", "finance", "assistant", "decisions")}  # fmt: skip
    assert set(modes.values()) == {"host"}, modes


def test_the_deployment_drill_passes_on_compose(
    deployment: ComposeDeployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The drill verifies the shared log's keyed chain: with the key the services write with,
    # against the checkpoints they write to their volume (root here can read its mountpoint).
    monkeypatch.setenv("PYGATE_AUDIT_KEY", deployment.audit_key)
    volume = f"{deployment.project}_pygate-checkpoints"
    mount = _docker("volume", "inspect", "-f", "{{.Mountpoint}}", volume).stdout.strip()
    monkeypatch.setenv("PYGATE_AUDIT_CHECKPOINT_DIR", mount)
    result = DRILL.run_drill(deployment, tmp_path, rounds=2, say=print)
    assert len(result.revisions) == 4
    assert len(set(result.revisions)) == 4
    assert [step[:2] for step in result.steps if step[0].isdigit()] == [
        "1.", "2.", "3.", "3.", "3.", "4.", "5.", "6.",
    ]  # fmt: skip
    print(f"publish -> both services deciding: {result.both} s")
    # Policy changes never restarted a sidecar; the one crash was healed by Docker alone.
    assert deployment.inspect("opa-assistant", "{{.RestartCount}}") == "0"
    assert deployment.inspect("opa-finance", "{{.RestartCount}}") == "1"


def _curl(*args: str) -> tuple[int, dict[str, Any]]:
    """``curl`` (a client that is not Python): the status and the JSON body."""
    done = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args],
                          capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body)


def test_curl_gets_decisions_from_pygate_serve_in_compose(
    deployment: ComposeDeployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decisions service (`pygate serve` in the service image) behind its own sidecar, with
    the signed bundle and the shared PostgreSQL audit log, driven by curl."""
    assert shutil.which("curl") is not None, "curl is needed to drive the deployment"
    url = f"{deployment.decisions}/v1/decisions"
    auth = ["-H", f"Authorization: Bearer {deployment.serve_token}",
            "-H", "Content-Type: application/json"]  # fmt: skip
    big = {"output": {"type": "transfer", "amount": 5000},
           "user": {"id": f"curl-{deployment.project}", "transaction_limit": 1000}}  # fmt: skip
    small = {**big, "output": {"type": "transfer", "amount": 10}}
    status, refused = _curl(*auth, "-d", json.dumps(big), url)
    assert (status, refused["allowed"], refused["policy_id"]) == (200, False, "FIN-002")
    assert refused["service"] == "finance"
    assert (refused["bundle_revision"] or "").startswith("r")  # decided with the signed bundle
    status, allowed = _curl(*auth, "-d", json.dumps(small), url)
    assert (status, allowed["allowed"]) == (200, True)
    assert [a["name"] for a in allowed["actions"]] == ["transfer"]
    status, other = _curl(*auth, "-d", json.dumps({**small, "context": {"service": "assistant"}}),
                          url)  # fmt: skip
    assert (status, other["allowed"], other["error"]["field"]) == (400, False, "context.service")
    status, anonymous = _curl("-d", json.dumps(small), url)
    assert (status, anonymous["allowed"]) == (401, False)
    status, ready = _curl(f"{deployment.decisions}/ready")
    assert (status, ready["ready"]) == (200, True)
    assert ready["engine"]["bundle_revision"] == allowed["bundle_revision"]
    # Audited in the shared log (read with the services' keyring), by the token's service.
    monkeypatch.setenv("PYGATE_AUDIT_KEY", deployment.audit_key)
    log = open_audit(deployment.audit_db)
    try:
        mine = {r.audit_id: r for r in log.records() if r.user_id == big["user"]["id"]}
    finally:
        log.close()
    assert mine[refused["audit_id"]].service == "finance"
    assert mine[allowed["audit_id"]].allowed
    assert mine[other["decision"]["audit_id"]].policy_id == "pygate.input"


def test_sidecars_run_opa_with_pygates_server_tuning(deployment: ComposeDeployment) -> None:
    """The compose sidecars run OPA as LocalOpa does: data kept as Rego values, GOGC=400."""
    from pygate.engine._opa_process import GOGC_DEFAULT, SERVER_TUNING

    for service in ("opa-finance", "opa-assistant", "opa-decisions"):
        args = json.loads(deployment.inspect(service, "{{json .Args}}"))
        env = json.loads(deployment.inspect(service, "{{json .Config.Env}}"))
        assert set(SERVER_TUNING) <= set(args), (service, args)
        assert f"GOGC={GOGC_DEFAULT}" in env, (service, env)
