"""An OPA sidecar as a Docker container, for users who have Docker and no ``opa`` binary.

``start`` runs the OPA image (``openpolicyagent/opa:<version>-static`` unless told otherwise)
with host networking on ``127.0.0.1:<port>``, loading either a signed bundle file (verified
with the public key; OPA refuses to start on a bad signature) or a policy folder, both mounted
read-only. The container carries the label ``org.pygate.sidecar`` and is named
``pygate-sidecar-<port>``, so ``stop`` finds it again. Talks to the engine through the
``docker`` package (``DOCKER_HOST`` etc. are honoured).
"""

from __future__ import annotations

import os
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pygate._errors import ConfigError
from pygate.engine._opa_process import GOGC_DEFAULT, OPA_VERSION, SERVER_TUNING

DEFAULT_IMAGE = f"openpolicyagent/opa:{OPA_VERSION}-static"
LABEL = "org.pygate.sidecar"
#: Where the bundle / policy folder / key appear inside the container.
_BUNDLE_IN = "/pygate/bundle.tar.gz"
_POLICY_IN = "/pygate/policy"
_KEY_IN = "/pygate/bundle-verify.pem"


@dataclass(frozen=True)
class DockerSidecar:
    """A running sidecar container."""

    name: str
    container_id: str
    image: str
    url: str
    source: str


def _check_socket() -> None:
    """Fail fast when the engine's Unix socket does not answer.

    docker-py leaks its socket when the connect fails, so look first with our own.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        probe.connect(host[len("unix://") :])


def _client() -> Any:
    """A connected docker client (the caller closes it)."""
    import docker

    client = None
    try:
        _check_socket()
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # the docker package raises several unrelated types here
        if client is not None:
            client.close()
        raise ConfigError(
            f"no Docker engine answers ({type(exc).__name__}: {exc}); start Docker, or "
            "run OPA without it: pygate sidecar up"
        ) from exc
    return client


def container_name(port: int) -> str:
    """The name of the sidecar container listening on ``port``."""
    return f"pygate-sidecar-{port}"


def _mounts(
    bundle: Path | None, verification_key: Path | None, policy_dir: Path | None
) -> tuple[dict[str, dict[str, str]], list[str], str]:
    """Volumes, extra ``opa run`` arguments and a description of what is served."""
    if bundle is not None:
        if not bundle.is_file():
            raise ConfigError(f"bundle {bundle} not found: run `pygate bundle build` first")
        volumes = {str(bundle.resolve()): {"bind": _BUNDLE_IN, "mode": "ro"}}
        args = ["--bundle", _BUNDLE_IN]
        if verification_key is not None:
            if not verification_key.is_file():
                raise ConfigError(
                    f"verification key {verification_key} not found: "
                    "run `pygate bundle keys`, or pass --verification-key"
                )
            volumes[str(verification_key.resolve())] = {"bind": _KEY_IN, "mode": "ro"}
            args += ["--verification-key", _KEY_IN, "--verification-key-id", "pygate"]
        return volumes, args, f"bundle {bundle}" + (" (signature verified)" if verification_key
                                                    else " (unsigned)")  # fmt: skip
    if policy_dir is None or not policy_dir.is_dir():
        raise ConfigError(f"policy folder {policy_dir} does not exist")
    volumes = {str(policy_dir.resolve()): {"bind": _POLICY_IN, "mode": "ro"}}
    return volumes, ["--bundle", _POLICY_IN], f"policy folder {policy_dir}"


def start(
    port: int,
    *,
    image: str = DEFAULT_IMAGE,
    bundle: str | os.PathLike[str] | None = None,
    verification_key: str | os.PathLike[str] | None = None,
    policy_dir: str | os.PathLike[str] | None = None,
    timeout: float = 30.0,
) -> DockerSidecar:
    """Start (or find running) the OPA sidecar container on ``127.0.0.1:port``.

    Args:
        port: the TCP port on 127.0.0.1 (host networking: no port mapping).
        image: the OPA image; pulled by the engine if it is not there.
        bundle: a bundle file to serve (takes precedence over ``policy_dir``).
        verification_key: the public key; with it, OPA refuses a bundle whose signature
            does not verify (and so the container does not become healthy).
        policy_dir: a policy folder to serve when no bundle is given.
        timeout: seconds to wait for ``/health?bundles``.

    Returns:
        The running sidecar, with its URL.

    Raises:
        ConfigError: no engine, a missing file, or OPA not healthy in time (the message
            carries OPA's last log lines).
    """
    volumes, args, source = _mounts(
        Path(bundle) if bundle else None,
        Path(verification_key) if verification_key else None,
        Path(policy_dir) if policy_dir else None,
    )
    client = _client()
    try:
        return _run(client, port, image, volumes, args, source, timeout)
    finally:
        client.close()


def _run(
    client: Any,
    port: int,
    image: str,
    volumes: dict[str, dict[str, str]],
    args: list[str],
    source: str,
    timeout: float,
) -> DockerSidecar:
    import docker.errors

    name = container_name(port)
    url = f"http://127.0.0.1:{port}"
    try:
        existing = client.containers.get(name)
    except docker.errors.NotFound:
        existing = None
    if existing is not None:
        same = existing.labels.get(LABEL) == source and image in existing.image.tags
        if existing.status == "running" and same:  # idempotent: already what was asked for
            _wait_healthy(existing, url, timeout)
            return DockerSidecar(name, existing.id, image, url, source)
        existing.remove(force=True)  # stopped, or serving something else: replace it
    command = [
        "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level", "error",
        *SERVER_TUNING, *args,
    ]  # fmt: skip
    try:
        container = client.containers.run(
            image,
            command,
            name=name,
            detach=True,
            network_mode="host",
            volumes=volumes,
            labels={LABEL: source, f"{LABEL}.port": str(port)},
            restart_policy={"Name": "unless-stopped"},
            environment={"GOGC": os.environ.get("GOGC", GOGC_DEFAULT)},
        )
    except docker.errors.ImageNotFound as exc:
        raise ConfigError(f"OPA image {image} not found and could not be pulled: {exc}") from exc
    except docker.errors.APIError as exc:
        raise ConfigError(f"could not start the OPA container from {image}: {exc}") from exc
    try:
        _wait_healthy(container, url, timeout)
    except ConfigError:
        container.remove(force=True)
        raise
    return DockerSidecar(name, container.id, image, url, source)


def _wait_healthy(container: Any, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health?bundles", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):  # refused, not ready (HTTP 500), timeout
            pass
        container.reload()
        # OPA exits on a bad signature; the restart policy would loop, so stop at the first.
        if container.status in ("exited", "dead", "restarting") or container.attrs["RestartCount"]:
            break
        time.sleep(0.1)
    logs = container.logs(tail=5).decode(errors="replace").strip()
    raise ConfigError(
        f"OPA container {container.name} not healthy at {url} (status {container.status}); "
        f"its last log lines: {logs or '(none)'}"
    )


def stop(port: int | None = None) -> list[str]:
    """Stop and remove pygate's sidecar containers (only the one on ``port`` if given).

    Returns:
        The names of the containers removed.

    Raises:
        ConfigError: no Docker engine answers.
    """
    client = _client()
    wanted = f"{LABEL}.port={port}" if port is not None else LABEL
    removed = []
    try:
        for container in client.containers.list(all=True, filters={"label": wanted}):
            container.remove(force=True)
            removed.append(container.name)
    finally:
        client.close()
    return sorted(removed)
