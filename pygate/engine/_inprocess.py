"""The in-process tier: OPA's own Go engine inside the Python process, no sidecar, no HTTP.

``pygate/engine/golib/main.go`` is built with ``go build -buildmode=c-shared`` against the
same OPA module version the sidecar runs (``OPA_VERSION``), and loaded here with ctypes. It
loads the same files ``opa run`` loads (``LocalOpa.load_paths``), prepares each query once
and evaluates one input per call, so a decision is the sidecar's decision without the round
trip (``tests/test_inprocess.py`` compares both on every input of the corpus).

The library is built once per machine by ``scripts/build-inprocess.sh`` (``./dev setup``) or
``pygate opa install --inprocess`` and looked up in this order: ``PYGATE_OPA_LIB``; the
checkout's ``.tools/lib``; the user cache beside the pinned OPA.

Fail closed: an engine that cannot load raises ``ConfigError`` when the gate is built; an
evaluation error, a cancelled (timed-out) evaluation or an answer that cannot be read is an
``EngineError``, which the gate turns into a refusal like any sidecar failure.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from pygate._errors import BadEngineResponse, ConfigError, EngineTimeout, EngineUnavailable
from pygate._resources import PROJECT_ROOT
from pygate.engine._opa_process import OPA_VERSION, LocalOpa, opa_cache_dir

__all__ = [
    "GO_SOURCE",
    "InProcessEngine",
    "InProcessTransport",
    "build_inprocess_library",
    "find_inprocess_library",
    "library_name",
]

#: The Go source of the library (shipped with the package so a wheel can build it too).
GO_SOURCE = Path(__file__).resolve().parent / "golib"
#: The queries every engine prepares: the decision and the batch entry point.
QUERIES = ("pygate/gate/decision", "pygate/gate/batch")


def _source_digest() -> str:
    """A short digest of the Go source: a changed source gets a library of its own name."""
    h = hashlib.sha256()
    for name in ("main.go", "go.mod", "go.sum"):
        h.update((GO_SOURCE / name).read_bytes())
    return h.hexdigest()[:12]


def library_name() -> str:
    """The file name of the library for this OPA version and this Go source."""
    return f"libpygate_opa-{OPA_VERSION}-{_source_digest()}.so"


def _candidates() -> list[Path]:
    name = library_name()
    return [PROJECT_ROOT / ".tools" / "lib" / name, opa_cache_dir() / name]


def find_inprocess_library(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Locate the built library (search order in the module docstring).

    Raises:
        ConfigError: none is built; the message says how to build it.
    """
    chosen = explicit or os.environ.get("PYGATE_OPA_LIB")
    if chosen:
        if Path(chosen).is_file():
            return Path(chosen)
        raise ConfigError(f"the in-process OPA library {chosen} (PYGATE_OPA_LIB) is not a file")
    for candidate in _candidates():
        if candidate.is_file():
            return candidate
    raise ConfigError(
        "the in-process engine is not built (looked for "
        f"{', '.join(str(c) for c in _candidates())}); build it with `./dev setup` in a "
        "checkout or `pygate opa install --inprocess` (needs Go and a C compiler), or use the "
        "sidecar (engine='sidecar', the default)"
    )


def build_inprocess_library(target_dir: Path | None = None, *, go: str | None = None) -> Path:
    """Build the library with ``go build -buildmode=c-shared`` (reused when already built).

    Raises:
        ConfigError: Go is missing or the build failed.
    """
    target = ((target_dir or opa_cache_dir()) / library_name()).resolve()
    if target.is_file():
        return target
    go_bin = go or shutil.which("go") or "/usr/local/go/bin/go"
    if not os.access(go_bin, os.X_OK):
        raise ConfigError("building the in-process engine needs Go (https://go.dev/dl) and gcc")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial-{os.getpid()}")
    env = {**os.environ, "CGO_ENABLED": "1", "GOFLAGS": "-mod=mod"}
    done = subprocess.run(
        [go_bin, "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w",
         "-o", str(partial), "."],
        cwd=GO_SOURCE, env=env, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    if done.returncode != 0 or not partial.is_file():
        raise ConfigError(
            f"building the in-process engine failed (go build exit {done.returncode})"
        )
    partial.replace(target)
    partial.with_suffix(".h").unlink(missing_ok=True)
    return target


_LIBS: dict[Path, ctypes.CDLL] = {}
_LIBS_LOCK = threading.Lock()


def _load(path: Path) -> ctypes.CDLL:
    """Load the library once per process (a Go runtime cannot be loaded twice)."""
    with _LIBS_LOCK:
        lib = _LIBS.get(path)
        if lib is None and _LIBS:
            raise ConfigError(
                f"an in-process engine ({next(iter(_LIBS))}) is already loaded; a process can "
                f"hold one Go runtime, so {path} cannot be loaded too"
            )
        if lib is None:
            try:
                lib = ctypes.CDLL(str(path))
            except OSError as exc:
                raise ConfigError(f"cannot load the in-process engine {path}: {exc}") from exc
            lib.pygate_open.argtypes = [ctypes.c_char_p]
            lib.pygate_open.restype = ctypes.c_void_p
            lib.pygate_eval.argtypes = [
                ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_double,
            ]  # fmt: skip
            lib.pygate_eval.restype = ctypes.c_void_p
            lib.pygate_free.argtypes = [ctypes.c_void_p]
            lib.pygate_free.restype = None
            lib.pygate_close.argtypes = [ctypes.c_int]
            lib.pygate_close.restype = None
            lib.pygate_opa_version.argtypes = []
            lib.pygate_opa_version.restype = ctypes.c_void_p
            _LIBS[path] = lib
        return lib


def _take(lib: ctypes.CDLL, pointer: int | None) -> bytes:
    """The C string the library returned, copied and freed."""
    if not pointer:
        raise BadEngineResponse("the in-process engine returned nothing")
    try:
        return ctypes.string_at(pointer)
    finally:
        lib.pygate_free(pointer)


class InProcessEngine:
    """One loaded policy set, evaluated by OPA's Go engine in this process.

    Args:
        opa: the ``LocalOpa`` whose files to load (it is never started: only its
            ``load_paths`` and bundle mode are used, so both tiers load the same).
        library: the built library (default: ``find_inprocess_library()``).

    Raises:
        ConfigError: the library is missing, or the policies do not load or compile.
    """

    def __init__(self, opa: LocalOpa, *, library: str | os.PathLike[str] | None = None) -> None:
        self.library = find_inprocess_library(library)
        self._lib = _load(self.library)
        self.opa_version = _take(self._lib, self._lib.pygate_opa_version()).decode()
        if self.opa_version != OPA_VERSION:
            raise ConfigError(
                f"the in-process engine {self.library} embeds OPA {self.opa_version}, "
                f"not the pinned {OPA_VERSION}; rebuild it"
            )
        bundle = opa.as_bundle and not opa.user_project and opa.data is None
        spec = {
            "paths": opa.load_paths(),
            "bundle": bundle,
            "ignore": ["*_test.rego"] if opa.user_project else [],
            "queries": list(QUERIES),
            "read_ast": True,  # data as Rego values: 5-8 % less per decision, measured
            "partial": False,  # WithPartialEval: 3-7 % less, measured; not worth a second form
        }
        answer = json.loads(_take(self._lib, self._lib.pygate_open(json.dumps(spec).encode())))
        if "error" in answer:
            raise ConfigError(f"the in-process engine cannot load the policies: {answer['error']}")
        self._handle: int | None = int(answer["handle"])
        # A Go runtime does not survive fork(): its threads stay in the parent. A child that
        # inherited this engine refuses (fail closed) instead of calling into a dead runtime.
        self._pid = os.getpid()
        self.revision: str | None = answer.get("revision") or None

    def post(self, path: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        """Evaluate ``body`` (a Data API request body) at ``path``: ``(200, answer)``.

        Raises:
            EngineUnavailable: the engine is closed, or was loaded before this process forked.
            EngineTimeout: the evaluation was cancelled at ``timeout`` seconds.
            BadEngineResponse: the evaluation failed (e.g. a runtime error in the policy).
        """
        handle = self._handle
        if handle is None:
            raise EngineUnavailable("the in-process engine is closed", policy_path=path)
        if os.getpid() != self._pid:
            raise EngineUnavailable(
                "the in-process engine was loaded before this process forked; build the gate "
                "in the child process",
                policy_path=path,
            )
        raw = _take(
            self._lib,
            self._lib.pygate_eval(handle, path.encode(), body, len(body), timeout * 1000.0),
        )
        if raw.startswith(b'{"error"'):
            problem = json.loads(raw)
            if problem.get("timeout"):
                raise EngineTimeout(
                    f"the in-process engine did not decide in time: {problem['error']}",
                    policy_path=path,
                )
            raise BadEngineResponse(
                f"the in-process engine failed: {problem['error']}", policy_path=path
            )
        return 200, raw

    def close(self) -> None:
        """Forget the prepared queries (the library itself stays loaded)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            self._lib.pygate_close(handle)


class InProcessTransport:
    """``SyncTransport`` over an ``InProcessEngine`` (the gate's code path is unchanged)."""

    def __init__(self, engine: InProcessEngine, timeout: float) -> None:
        self._engine = engine
        self._timeout = timeout

    def post(
        self, path: str, body: bytes, meanwhile: Callable[[], None] | None = None
    ) -> tuple[int, bytes]:
        if meanwhile is not None:  # the evaluation holds this thread: nothing to overlap
            meanwhile()
        return self._engine.post(path, body, self._timeout)

    def close(self) -> None:
        self._engine.close()


class AsyncInProcessTransport:
    """``AsyncTransport`` over an ``InProcessEngine``.

    The evaluation runs in a worker thread: ctypes releases the GIL for the call, so OPA's
    evaluation of one decision overlaps the event loop's work on the others.
    """

    def __init__(self, engine: InProcessEngine, timeout: float) -> None:
        self._engine = engine
        self._timeout = timeout

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        return await asyncio.to_thread(self._engine.post, path, body, self._timeout)

    async def aclose(self) -> None:
        self._engine.close()
