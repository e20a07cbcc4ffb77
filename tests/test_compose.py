"""The compose deployment, for real: docker-compose.yml + docker-compose.local.yml on an engine.

Brought up from the repo's files (scripts/compose-local.sh) with the local images that
scripts/docker-images.sh builds; every container on host networking, on 127.0.0.1 ports
picked free for this run. The signed bundle, its keys and the bundle folder the nginx
container serves live in a temporary directory, so the repo's bundles/ and keys/ are not
touched. The steps run in file order against one deployment (module-scoped fixture).

Skipped, with the reason, where no engine answers; PYGATE_REQUIRE_DOCKER=1 (set by .ci/run)
turns that skip into a failure, so CI cannot pass without running it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pygate import build_bundle, generate_keys, open_audit
from pygate._opa_process import PROJECT_ROOT, free_port
from tests import deployment_scenario as sc

pytestmark = pytest.mark.docker

COMPOSE = PROJECT_ROOT / "scripts" / "compose-local.sh"
LOCAL_IMAGES = (
    "pygate-local/opa:latest",
    "pygate-local/nginx:latest",
    "pygate-local/postgres:latest",
    "pygate-local/service:latest",
)
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
    missing = [i for i in LOCAL_IMAGES if _docker("image", "inspect", i, check=False).returncode]
    if missing:
        return f"local images missing: {', '.join(missing)} (run scripts/docker-images.sh)"
    return None


class ComposeDeployment:
    """The compose project, driven through scripts/compose-local.sh and the docker CLI."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.project = f"pygatetest{uuid.uuid4().hex[:8]}"
        self.bundles = work / "bundles"
        self.bundles.mkdir()
        self.bundle = self.bundles / "pygate.tar.gz"
        self.keys = generate_keys(work / "keys")
        self.ports = {
            name: free_port()
            for name in ("BUNDLE_PORT", "OPA_FINANCE_PORT", "OPA_ASSISTANT_PORT",
                         "POSTGRES_PORT", "FINANCE_PORT", "ASSISTANT_PORT")
        }  # fmt: skip
        self.services = {
            "finance": f"http://127.0.0.1:{self.ports['FINANCE_PORT']}",
            "assistant": f"http://127.0.0.1:{self.ports['ASSISTANT_PORT']}",
        }
        self.env = {
            **os.environ,
            **{k: str(v) for k, v in self.ports.items()},
            "COMPOSE_PROJECT_NAME": self.project,
            "PYGATE_BUNDLE_DIR": str(self.bundles),
            "PYGATE_KEYS_DIR": str(self.keys.public.parent),
        }
        self.revisions: list[str] = []

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

    def health(self, service: str) -> str:
        return _docker(
            "inspect", "-f", "{{.State.Health.Status}}", self.container(service)
        ).stdout.strip()

    # -- the Deployment protocol -----------------------------------------------------------
    def publish(self, data_overrides: dict[str, Any] | None = None) -> str:
        data_files = []
        if data_overrides:
            path = self.work / f"change-{len(self.revisions)}.json"
            path.write_text(json.dumps(data_overrides))
            data_files.append(path)
        built = build_bundle(self.bundle, signing_key=self.keys.private, data_files=data_files)
        self.revisions.append(built.revision)
        return built.revision

    def publish_bytes(self, content: bytes) -> None:
        partial = self.bundles / ".pygate.tar.gz.tmp"
        partial.write_bytes(content)
        partial.chmod(0o644)
        partial.replace(self.bundle)

    def published_bytes(self) -> bytes:
        return self.bundle.read_bytes()

    def stop_bundle_server(self) -> None:
        self.compose("stop", "bundle-server")

    def start_bundle_server(self) -> None:
        self.compose("start", "bundle-server")
        sc.wait_for(lambda: self.health("bundle-server") == "healthy", "bundle server healthy")

    def restart_sidecar(self, service: str) -> None:
        self.compose("restart", SIDECARS[service])
        sc.wait_for(lambda: self.health(SIDECARS[service]) == "healthy", f"{service} sidecar")

    def crash_sidecar(self, service: str) -> None:
        # SIGKILL to the container's process from outside, as a crash would end it: `docker
        # kill` or `stop` count as an operator's decision and the restart policy stays idle.
        pid = int(_docker("inspect", "-f", "{{.State.Pid}}", self.container(SIDECARS[service]))
                  .stdout)  # fmt: skip
        os.kill(pid, signal.SIGKILL)

    def sidecar_rejected_bundle(self, service: str) -> bool:
        logs = _docker("logs", self.container(SIDECARS[service]), check=False)
        return "Bundle load failed" in logs.stdout + logs.stderr


def _tampered(bundle: bytes) -> bytes:
    """The same signed bundle with the default transfer limit raised after signing."""
    out = io.BytesIO()
    changed = False
    with (
        tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as src,
        tarfile.open(fileobj=out, mode="w:gz") as dst,
    ):
        for member in src.getmembers():
            extracted = src.extractfile(member) if member.isfile() else None
            data = extracted.read() if extracted is not None else None
            if data is not None and member.name.lstrip("/") == "data.json":
                doc = json.loads(data)
                doc["pygate"]["config"]["default_transaction_limit"] = 1_000_000
                data = json.dumps(doc).encode()
                member.size = len(data)
                changed = True
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    assert changed, "no data.json in the bundle to tamper with"
    return out.getvalue()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeDeployment]:
    reason = _why_no_docker()
    if reason is not None:
        if os.environ.get("PYGATE_REQUIRE_DOCKER") == "1":
            pytest.fail(f"PYGATE_REQUIRE_DOCKER=1 but {reason}")
        pytest.skip(reason)
    dep = ComposeDeployment(tmp_path_factory.mktemp("compose"))
    dep.publish()
    try:
        dep.compose("up", "-d")
        for service, url in dep.services.items():
            sc.wait_for(lambda u=url: httpx.get(f"{u}/health", timeout=2).status_code == 200,
                        f"the {service} service to answer")  # fmt: skip
        yield dep
    finally:
        logs = dep.compose("logs", "--no-color", "--tail", "30") if os.environ.get("CI") else ""
        dep.compose("down", "-v", "--remove-orphans")
        if logs:
            print(logs)


def test_no_bridge_network_is_created(deployment: ComposeDeployment) -> None:
    names = set(_docker("network", "ls", "--format", "{{.Name}}").stdout.split())
    assert names <= {"host", "none", "bridge"}


def test_both_services_decide_with_the_published_bundle(deployment: ComposeDeployment) -> None:
    first = deployment.revisions[0]
    now = sc.decisions_now(deployment)
    assert now["finance"]["allowed"] is True, now["finance"]
    assert now["assistant"]["allowed"] is True, now["assistant"]
    assert {d["bundle_revision"] for d in now.values()} == {first}
    assert not any(d["fallback"] for d in now.values())


def test_a_policy_change_reaches_both_services_without_a_restart(
    deployment: ComposeDeployment,
) -> None:
    started = {s: deployment.container(SIDECARS[s]) for s in SIDECARS}
    data = json.loads((PROJECT_ROOT / "rego/pygate/config/data.json").read_text())
    rollout = sc.roll_out(deployment, sc.policy_change(data))
    finance, assistant = rollout.decisions["finance"], rollout.decisions["assistant"]
    assert finance["allowed"] is False
    assert finance["policy_id"] == "FIN-002"
    assert str(sc.LOWER_LIMIT) in finance["reason"]
    assert assistant["allowed"] is False
    assert assistant["policy_id"] == sc.NEW_POLICY_ID
    assert rollout.revision != deployment.revisions[0]
    # Same containers, never restarted: the sidecars picked the bundle up by polling.
    for service, container in started.items():
        assert deployment.container(SIDECARS[service]) == container
        restarts = _docker("inspect", "-f", "{{.RestartCount}}", container).stdout.strip()
        assert restarts == "0"
    print(f"\npublish -> deciding with {rollout.revision}: "
          + ", ".join(f"{s} {t:.2f} s" for s, t in rollout.latency.items()))  # fmt: skip


def test_a_tampered_bundle_is_refused_and_the_last_good_one_decides(
    deployment: ComposeDeployment,
) -> None:
    good = deployment.revisions[-1]
    deployment.publish_bytes(_tampered(deployment.published_bytes()))
    for service in SIDECARS:
        sc.wait_for(lambda s=service: deployment.sidecar_rejected_bundle(s),
                    f"the {service} sidecar to refuse the tampered bundle")  # fmt: skip
    now = sc.decisions_now(deployment)
    for decision in now.values():
        assert decision["bundle_revision"] == good
        assert decision["allowed"] is False  # the raised limit in the tampered data is ignored
        assert not decision["fallback"]
    deployment.publish()  # a good bundle again (original policy data) for the next steps
    sc.wait_for(lambda: all(d["bundle_revision"] == deployment.revisions[-1]
                            for d in sc.decisions_now(deployment).values()),
                "both services back on a good bundle")  # fmt: skip


def test_decisions_continue_while_the_bundle_server_is_down(
    deployment: ComposeDeployment,
) -> None:
    current = deployment.revisions[-1]
    deployment.stop_bundle_server()
    try:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{deployment.ports['BUNDLE_PORT']}/health", timeout=2)
        now = sc.decisions_now(deployment)
        assert all(d["allowed"] and d["bundle_revision"] == current for d in now.values()), now
        # persist: a sidecar restarted now loads the last good bundle from its volume.
        deployment.restart_sidecar("finance")
        after = sc.ask(deployment.services["finance"], "finance")
        assert after["allowed"] is True
        assert after["bundle_revision"] == current
        assert not after["fallback"]
    finally:
        deployment.start_bundle_server()


def test_a_killed_sidecar_fails_closed_then_recovers_alone(
    deployment: ComposeDeployment,
) -> None:
    seen = sc.outage(deployment, "finance")
    down, back = seen[:-1], seen[-1]
    assert down, "the finance service never refused while its sidecar was down"
    for decision in down:
        assert decision["allowed"] is False
        assert decision["fallback"] is True
        assert decision["policy_id"] == "pygate.engine"
    assert back["allowed"] is True
    assert back["bundle_revision"] == deployment.revisions[-1]
    # The other service never noticed.
    assistant = sc.ask(deployment.services["assistant"], "assistant")
    assert assistant["allowed"] is True
    assert not assistant["fallback"]
    restarts = _docker("inspect", "-f", "{{.RestartCount}}",
                       deployment.container("opa-finance")).stdout.strip()  # fmt: skip
    assert restarts == "1"


def test_one_audit_log_records_both_services_with_revisions(
    deployment: ComposeDeployment,
) -> None:
    url = (f"postgresql://pygate:pygate-demo@127.0.0.1:{deployment.ports['POSTGRES_PORT']}"
           "/pygate")  # fmt: skip
    log = open_audit(url)
    try:
        records = log.tail(10_000)
        verify = log.verify()
    finally:
        log.close()
    assert verify.ok, verify
    assert {r.service for r in records} == {"finance", "assistant"}
    decided = {r.bundle_revision for r in records if not r.fallback}
    assert set(deployment.revisions) <= decided
