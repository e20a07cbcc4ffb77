"""No orphans: the embedded OPA never outlives its host (checked by PID in /proc)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pygate import Gate
from pygate._errors import AuditError, PygateError
from pygate.engine._opa_process import find_opa_binary
from pygate.policy._scaffold import scaffold

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")


def opa_pids(marker: str) -> set[int]:
    """Live (not zombie) OPA processes whose command line mentions ``marker``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if (
            state != "Z"
            and argv
            and argv[0].endswith(b"opa")
            and marker.encode() in b" ".join(argv)
        ):
            found.add(int(entry.name))
    return found


def gone(pids: set[int], within: float = 30.0) -> bool:
    """True once none of ``pids`` is a live process (polls; a generous bound, not a timing)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        alive = set()
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                alive.add(pid)
        if not alive:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def project(tmp_path: Path) -> Path:
    scaffold(tmp_path / "proj")
    return tmp_path / "proj" / "policies"


def _host(project: Path, body: str) -> subprocess.Popen[str]:
    code = textwrap.dedent(f"""\
        import os, sys, time
        from pygate import Gate
        gate = Gate("payments", policy_dir={str(project)!r}, audit=None)
        print(gate.local_opa.pid, flush=True)
    """) + textwrap.dedent(body)
    env = {**os.environ, "PYGATE_OPA_BIN": str(find_opa_binary())}
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip


def test_sigkilled_host_leaves_no_opa(project: Path) -> None:
    with _host(project, "time.sleep(600)\n") as host:
        assert host.stdout is not None
        pid = int(host.stdout.readline())
        assert pid in opa_pids(str(project))
        host.send_signal(signal.SIGKILL)
        host.wait()
    assert gone({pid}), "OPA outlived a SIGKILLed host"


def test_host_exiting_without_close_leaves_no_opa(project: Path) -> None:
    with _host(project, "sys.exit(0)\n") as host:
        assert host.stdout is not None
        pid = int(host.stdout.readline())
        assert host.wait(timeout=60) == 0
    assert gone({pid}), "OPA outlived a host that never closed its Gate"


def test_gate_created_in_a_short_lived_thread_keeps_its_opa(project: Path) -> None:
    """PR_SET_PDEATHSIG follows the thread that forked: it must not be the caller's."""
    with _host(
        project,
        """\
        import threading
        box = []
        t = threading.Thread(target=lambda: box.append(Gate("payments",
            policy_dir=gate.local_opa.policy_dir, audit=None)))
        t.start(); t.join()
        time.sleep(0.5)
        d = box[0].evaluate({"type": "transfer", "amount": 5, "to": "a"}, {"id": "u"})
        print(d.allowed, d.fallback, box[0].local_opa.restarts, flush=True)
    """,
    ) as host:
        assert host.stdout is not None
        host.stdout.readline()
        assert host.stdout.readline().split() == ["True", "False", "0"]
        assert host.wait(timeout=60) == 0


def test_failed_audit_open_stops_the_opa_it_started(project: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    # (SqliteAuditLog lets the OSError through today; either way nothing may stay behind.)
    with pytest.raises((AuditError, OSError)):
        Gate("payments", policy_dir=project, audit=blocker / "sub" / "audit.db")
    assert opa_pids(str(project)) == set()


def test_failed_start_leaves_no_opa_and_shows_opas_error(tmp_path: Path) -> None:
    (tmp_path / "broken.rego").write_text("package acme.broken\n\ndeny contains x if {\n")
    with pytest.raises(PygateError, match="rego_parse_error"):
        Gate("x", policy_dir=tmp_path, audit=None)
    assert opa_pids(str(tmp_path)) == set()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sidecar_up_stops_opa_on_signal(project: Path, sig: signal.Signals) -> None:
    env = {**os.environ, "PYGATE_OPA_BIN": str(find_opa_binary())}
    with subprocess.Popen(
        [sys.executable, "-m", "pygate", "--policy-dir", str(project), "sidecar", "up",
         "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    ) as side:  # fmt: skip
        assert side.stdout is not None
        assert side.stdout.readline().startswith("http://127.0.0.1:")
        pids = opa_pids(str(project))
        assert len(pids) == 1
        side.send_signal(sig)
        assert side.wait(timeout=60) == 0
    assert opa_pids(str(project)) == set()
