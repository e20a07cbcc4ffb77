"""The embedded default: a local OPA process that pygate starts, supervises and stops.

Binary resolution, first match wins: an explicit path or ``PYGATE_OPA_BIN``; ``opa`` on
PATH; the user cache (``$XDG_CACHE_HOME/pygate/opa/<version>/opa``, where
``pygate opa install`` puts the pinned version); a checkout's ``.tools/bin/opa``.

The process never outlives its host: on Linux the kernel kills it when the thread that
started it dies (``PR_SET_PDEATHSIG``; pygate starts it from a thread that lives as long
as the ``LocalOpa``), and an ``atexit`` hook stops every OPA a host did not stop itself.
Health is awaited through opa-python-client, whose job in pygate is management calls.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opa_client import OpaClient
from opa_client.errors import ConnectionsError

from pygate._errors import ConfigError
from pygate._resources import PROJECT_ROOT, is_pygate_tree, library_dirs, rego_root
from pygate.policy._packages import write_adapter

__all__ = ["OPA_VERSION", "PROJECT_ROOT", "LocalOpa", "find_opa_binary", "install_opa"]

OPA_VERSION = "1.22.2"
OPA_MODULE = "github.com/open-policy-agent/opa"


# How pygate runs an OPA server (the local OPA, the Docker sidecar, the compose file).
# --optimize-store-for-read-speed keeps policy data as Rego values, so a query does not
# convert the data it reads on every decision (OPA's documented trade: more memory, slower
# data writes, which happen once per bundle or push). GOGC=400: Rego evaluation allocates a
# lot, and at Go's default the collector takes a large share of a decision's CPU; a GOGC the
# user sets wins. Measured on this repository's bundle, interleaved, through HTTP:
# benchmarks/opa_server_tuning.py (README "Performance").
SERVER_TUNING = ("--optimize-store-for-read-speed",)
GOGC_DEFAULT = "400"


def opa_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment an OPA server runs with: ``base`` (default: ours) plus GOGC unless set."""
    env = dict(os.environ if base is None else base)
    env.setdefault("GOGC", GOGC_DEFAULT)
    return env


def opa_cache_dir() -> Path:
    """Where ``pygate opa install`` puts the pinned OPA (a per-user cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pygate" / "opa" / OPA_VERSION


def _no_opa_message() -> str:
    return (
        "no OPA binary found (looked at PYGATE_OPA_BIN, `opa` on PATH, "
        f"{opa_cache_dir() / 'opa'}). Choose one: `pygate opa install` (builds OPA "
        f"{OPA_VERSION} with Go into the user cache), put an `opa` binary on PATH or name it "
        "in PYGATE_OPA_BIN, use a running OPA with --opa-url / PYGATE_OPA_URL, or run OPA "
        "as a container with `pygate sidecar up --docker`"
    )


def find_opa_binary(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Locate the ``opa`` binary (search order in the module docstring).

    Raises:
        ConfigError: no usable binary; the message names every way to get one.
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
    for candidate in (
        shutil.which("opa"),
        opa_cache_dir() / "opa",
        PROJECT_ROOT / ".tools" / "bin" / "opa",
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise ConfigError(_no_opa_message())


def install_opa(target_dir: Path | None = None, *, go: str | None = None) -> Path:
    """Build the pinned OPA with ``go install`` into the user cache (reused when there).

    Raises:
        ConfigError: Go is missing or the build failed (the message says what to do).
    """
    target = target_dir or opa_cache_dir()
    binary = target / "opa"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    go_bin = go or shutil.which("go") or ("/usr/local/go/bin/go" if Path(
        "/usr/local/go/bin/go").is_file() else None)  # fmt: skip
    if go_bin is None or not os.access(go_bin, os.X_OK):
        raise ConfigError(
            "installing OPA needs Go (https://go.dev/dl); without Go, download an opa binary "
            "(https://www.openpolicyagent.org/docs/latest/#running-opa) and set PYGATE_OPA_BIN, "
            "or use --opa-url / `pygate sidecar up --docker`"
        )
    target.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOBIN": str(target), "GOFLAGS": "-mod=mod"}
    done = subprocess.run(
        [go_bin, "install", f"{OPA_MODULE}@v{OPA_VERSION}"],
        env=env, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    if done.returncode != 0 or not binary.is_file():
        raise ConfigError(
            f"`go install {OPA_MODULE}@v{OPA_VERSION}` failed, exit {done.returncode}"
        )
    return binary


def default_policy_dir() -> Path:
    """pygate's own policies: the checkout's ``rego/``, or the copy in the installed wheel."""
    return rego_root()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Every OPA started and not yet stopped; the atexit hook stops what a host forgot.
_LIVE: set[subprocess.Popen[bytes]] = set()
_LIVE_LOCK = threading.Lock()
_EXITING = threading.Event()


def _track(proc: subprocess.Popen[bytes] | None, live: bool) -> None:
    if proc is None:
        return
    with _LIVE_LOCK:
        (_LIVE.add if live else _LIVE.discard)(proc)


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@atexit.register
def _stop_all() -> None:
    """Stop every OPA this interpreter started and nobody stopped (a Gate never closed)."""
    _EXITING.set()
    with _LIVE_LOCK:
        procs = list(_LIVE)
        _LIVE.clear()
    for proc in procs:
        _terminate(proc)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGKILL this child when the thread that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG


class _Keeper:
    """A thread that lives as long as its LocalOpa and starts every OPA process.

    ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits, so the child
    must not be started from a caller's short-lived thread.
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], Any], queue.Queue[Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="pygate-opa-keeper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, answer = job
            try:
                answer.put((True, fn()))
            except BaseException as exc:  # handed back to the caller
                answer.put((False, exc))

    def call(self, fn: Callable[[], Any]) -> Any:
        if threading.current_thread() is self._thread:
            return fn()
        answer: queue.Queue[Any] = queue.Queue()
        self._jobs.put((fn, answer))
        ok, value = answer.get()
        if not ok:
            raise value
        return value

    def close(self) -> None:
        self._jobs.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)


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
        data: policy data merged into ``data.pygate.config`` (services, limits, lists).
        library: load pygate's Rego library beside ``policy_dir`` (default: when the folder
            is not a whole pygate tree; ``False`` loads exactly the folder).
        binary: look up the ``opa`` binary (``False``: only ``load_paths`` is used, by the
            in-process engine, which loads the same files without a process).

    A ``policy_dir`` that is not a whole pygate tree (no ``pygate/gate/gate.rego``) is a
    user's own policy project: it is loaded alongside pygate's Rego library (entry point,
    lib, rules-as-data, approvals, log mask) as plain files, its ``*_test.rego`` skipped.
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
        data: dict[str, Any] | None = None,
        library: bool | None = None,
        binary: bool = True,
    ) -> None:
        self.policy_dir = Path(policy_dir) if policy_dir else default_policy_dir()
        if not self.policy_dir.exists():
            raise ConfigError(f"policy folder {self.policy_dir} does not exist")
        self.user_project = self.policy_dir.is_dir() and not is_pygate_tree(self.policy_dir)
        if library is not None:
            self.user_project = library
        if data is not None and not isinstance(data, dict):
            raise ConfigError("data: expected an object (merged into data.pygate.config)")
        self.data = data
        # The in-process tier reads only what to load (``binary=False``): no ``opa`` needed.
        self.opa_bin = find_opa_binary(opa_bin) if binary else Path(opa_bin or "opa")
        self.port = port or free_port()
        self.log_path = Path(log_path) if log_path else None
        self.supervise = supervise
        self.extra_args = list(extra_args or [])
        self.as_bundle = as_bundle
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self._keeper: _Keeper | None = None
        self._data_dir: Path | None = None
        self._errors: Any = None

    @property
    def url(self) -> str:
        """Base URL of the running OPA."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the current OPA process, if any."""
        return self._proc.pid if self._proc else None

    def load_paths(self) -> list[str]:
        """What ``opa run`` loads: the policy folder, or pygate's library plus a project."""
        paths = [str(self.policy_dir)]
        if self.user_project or self.data is not None:
            if self._data_dir is None:
                self._data_dir = Path(tempfile.mkdtemp(prefix="pygate-opa-"))
            if self.data is not None:
                body = {"pygate": {"config": self.data}}
                (self._data_dir / "data.json").write_text(json.dumps(body))
                paths.append(str(self._data_dir / "data.json"))
        if self.user_project:
            assert self._data_dir is not None
            adapter = write_adapter(self.policy_dir, self._data_dir)
            paths = [*(str(d) for d in library_dirs()), *paths, str(adapter)]
        return paths

    def command(self) -> list[str]:
        """The exact ``opa run`` command line."""
        bundle = self.as_bundle and not self.user_project and self.data is None
        return [
            str(self.opa_bin), "run", "--server", "--addr", f"127.0.0.1:{self.port}",
            "--log-level", "error", *SERVER_TUNING, *(["--bundle"] if bundle else []),
            *(["--ignore", "*_test.rego"] if self.user_project else []),
            *self.load_paths(), *self.extra_args,
        ]  # fmt: skip

    def _spawn(self) -> None:
        if self._keeper is None:
            self._keeper = _Keeper()
        self._keeper.call(self._spawn_here)

    def _spawn_here(self) -> None:
        if _EXITING.is_set():
            return  # the interpreter is exiting: start nothing it would leave behind
        if self.log_path:
            out: Any = open(self.log_path, "ab")  # noqa: SIM115
        else:
            # OPA's own words (a compile error) are shown when it fails to start.
            if self._errors is None:
                self._errors = tempfile.TemporaryFile()  # noqa: SIM115
            out = self._errors
        try:
            self._proc = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=opa_environment(),
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
            _track(self._proc, live=True)
        finally:
            if self.log_path:
                out.close()

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
                    said = self._opa_output().strip()
                    raise ConfigError(
                        f"OPA exited with code {self._proc.returncode} while starting"
                        + (f":\n{said}" if said else f"; run `{' '.join(self.command())}`")
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

    def _opa_output(self) -> str:
        """What OPA printed (the tail), when its output is not sent to ``log_path``."""
        if self._errors is None:
            return ""
        self._errors.seek(0)
        return str(self._errors.read()[-4000:].decode("utf-8", "replace"))

    def start(self, timeout: float = 15.0) -> LocalOpa:
        """Start OPA and wait until it is healthy; returns self."""
        self._stopping.clear()
        try:
            self._spawn()
            self._wait(timeout, check_exit=True)
        except BaseException:
            self.stop()  # a failed start leaves no process behind
            raise
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
            _track(proc, live=False)
            self.restarts += 1
            self._spawn()
            backoff = min(backoff * 2, 2.0)

    def kill(self) -> None:
        """Kill the OPA process without stopping supervision (for fault drills)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            _track(self._proc, live=False)

    def stop(self) -> None:
        """Stop supervising and terminate OPA."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None
        proc, self._proc = self._proc, None
        if proc is not None:
            _terminate(proc)
            _track(proc, live=False)
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None
        if self._errors is not None:
            self._errors.close()
            self._errors = None
        if self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    def __enter__(self) -> LocalOpa:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
