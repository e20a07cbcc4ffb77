"""The embedded default: a local OPA process that pygate starts, supervises and stops.

Binary resolution, first match wins: ``PYGATE_OPA_BIN`` (or an explicit path), ``opa`` on
PATH, then the project's ``.tools/bin/opa`` installed by ``scripts/install-opa.sh``.
Health is awaited through opa-python-client, whose job in pygate is management calls.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from opa_client import OpaClient
from opa_client.errors import ConnectionsError

from pygate._errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
OPA_VERSION = "1.22.2"


def find_opa_binary(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Locate the ``opa`` binary.

    Raises:
        ConfigError: no usable binary; the message says how to install one.
    """
    for name, chosen in (
        ("opa_bin", explicit),
        ("PYGATE_OPA_BIN", os.environ.get("PYGATE_OPA_BIN")),
    ):
        if chosen:
            if Path(chosen).is_file() and os.access(chosen, os.X_OK):
                return Path(chosen)
            raise ConfigError(
                f"the OPA binary {chosen} (from {name} / PYGATE_OPA_BIN) is not an executable file"
            )
    for candidate in (shutil.which("opa"), PROJECT_ROOT / ".tools" / "bin" / "opa"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise ConfigError(
        "no OPA binary found: run scripts/install-opa.sh (installs OPA "
        f"{OPA_VERSION} into .tools/bin), put `opa` on PATH, or set PYGATE_OPA_BIN"
    )


def default_policy_dir() -> Path:
    """``./rego`` when the working directory has one, else the repository's ``rego/``."""
    here = Path.cwd() / "rego"
    return here if here.is_dir() else PROJECT_ROOT / "rego"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalOpa:
    """A supervised ``opa run --server`` child process on 127.0.0.1.

    The policy folder is loaded as a bundle (``--bundle``), so OPA reports its revision.
    When the process dies while supervised, it is restarted (with a short back-off); the
    decisions made while it is down are fail-closed refusals, and the next ones are normal.

    Args:
        policy_dir: folder or bundle file to load (default: ``default_policy_dir()``).
        opa_bin: path to ``opa`` (default: ``find_opa_binary()``).
        port: TCP port (default: a free one).
        log_path: where OPA's own output goes (default: discarded).
        supervise: restart OPA if it exits unexpectedly.
        extra_args: more ``opa run`` arguments (e.g. ``--set`` options).
        as_bundle: load the folder as a bundle (default). ``False`` loads plain files, so
            policy data can be pushed live through the Data API (a bundle owns its roots),
            at the price of no revision in decisions.
    """

    def __init__(
        self,
        policy_dir: str | os.PathLike[str] | None = None,
        *,
        opa_bin: str | os.PathLike[str] | None = None,
        port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        supervise: bool = True,
        extra_args: list[str] | None = None,
        as_bundle: bool = True,
    ) -> None:
        self.policy_dir = Path(policy_dir) if policy_dir else default_policy_dir()
        if not self.policy_dir.exists():
            raise ConfigError(f"policy folder {self.policy_dir} does not exist")
        self.opa_bin = find_opa_binary(opa_bin)
        self.port = port or free_port()
        self.log_path = Path(log_path) if log_path else None
        self.supervise = supervise
        self.extra_args = list(extra_args or [])
        self.as_bundle = as_bundle
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL of the running OPA."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the current OPA process, if any."""
        return self._proc.pid if self._proc else None

    def command(self) -> list[str]:
        """The exact ``opa run`` command line."""
        return [
            str(self.opa_bin), "run", "--server", "--addr", f"127.0.0.1:{self.port}",
            "--log-level", "error", *(["--bundle"] if self.as_bundle else []),
            str(self.policy_dir), *self.extra_args,
        ]  # fmt: skip

    def _spawn(self) -> None:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                self.command(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        finally:
            if self.log_path:
                out.close()  # type: ignore[union-attr]

    def wait_healthy(self, timeout: float = 15.0) -> None:
        """Block until OPA's ``/health`` answers 200 (a supervised OPA may be restarting).

        Raises:
            ConfigError: OPA exited or stayed unhealthy (e.g. the policies do not compile).
        """
        self._wait(timeout, check_exit=not self.supervise)

    def _wait(self, timeout: float, *, check_exit: bool) -> None:
        client = OpaClient(host="127.0.0.1", port=self.port, timeout=1.0, retries=0)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if check_exit and self._proc is not None and self._proc.poll() is not None:
                    raise ConfigError(
                        f"OPA exited with code {self._proc.returncode} while starting; "
                        f"run `{' '.join(self.command())}` to see why"
                    )
                try:
                    client.wait_for_ready(timeout=min(0.5, timeout), interval=0.05)
                    return
                except ConnectionsError:
                    if time.monotonic() > deadline:
                        raise ConfigError(
                            f"OPA at {self.url} not healthy after {timeout:.0f}s"
                        ) from None
        finally:
            client.close_connection()

    def start(self, timeout: float = 15.0) -> LocalOpa:
        """Start OPA and wait until it is healthy; returns self."""
        self._stopping.clear()
        self._spawn()
        self._wait(timeout, check_exit=True)
        if self.supervise and self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="pygate-opa", daemon=True)
            self._watcher.start()
        return self

    def _watch(self) -> None:
        backoff = 0.1
        while not self._stopping.wait(0.1):
            proc = self._proc
            if proc is None or proc.poll() is None:
                backoff = 0.1
                continue
            if self._stopping.wait(backoff):
                return
            self.restarts += 1
            self._spawn()
            backoff = min(backoff * 2, 2.0)

    def kill(self) -> None:
        """Kill the OPA process without stopping supervision (for fault drills)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()

    def stop(self) -> None:
        """Stop supervising and terminate OPA."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> LocalOpa:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
