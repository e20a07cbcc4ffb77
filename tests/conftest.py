"""Fixtures: a real OPA process (the repo's policies), audit logs, and fault servers."""

from __future__ import annotations

import http.server
import importlib.util
import shutil
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import time_machine

from pygate import AuditLog, Gate, LocalOpa, SqliteAuditLog, open_audit
from pygate.engine._opa_process import PROJECT_ROOT

REGO = PROJECT_ROOT / "rego"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clock-at",
        metavar="ISO",
        help="run the whole session with Python's clock moved to this time (it keeps ticking), "
        "to find tests that depend on the hour or the date; OPA's own clock is not moved",
    )


@pytest.fixture(scope="session", autouse=True)
def _moved_clock(request: pytest.FixtureRequest) -> Iterator[None]:
    at = request.config.getoption("--clock-at")
    if not at:
        yield
        return
    with time_machine.travel(datetime.fromisoformat(at), tick=True):
        yield


def load_script(name: str, path: Path) -> ModuleType:
    """A script of the repo (``scripts/``, ``benchmarks/``) as a module: not importable by name."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def load_drill() -> ModuleType:
    """``scripts/deployment-drill.py`` as a module."""
    return load_script("deployment_drill", PROJECT_ROOT / "scripts" / "deployment-drill.py")


@pytest.fixture(scope="session")
def opa() -> Iterator[LocalOpa]:
    """One real OPA serving the repo's policies for the whole session (not supervised)."""
    local = LocalOpa(REGO, supervise=False).start()
    yield local
    local.stop()


@pytest.fixture
def logging_opa(tmp_path: Path) -> Iterator[tuple[LocalOpa, Path]]:
    """A real OPA with console decision logs (so it returns decision ids), masked by the
    committed rego/pygate/log/mask.rego; yields the OPA and its log file."""
    log_path = tmp_path / "opa.log"
    local = LocalOpa(
        REGO,
        supervise=False,
        log_path=log_path,
        extra_args=[
            "--set",
            "decision_logs.console=true",
            "--set",
            "decision_logs.mask_decision=/pygate/log/mask",
        ],
    ).start()
    yield local, log_path
    local.stop()


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditLog]:
    log = SqliteAuditLog(tmp_path / "audit.db")
    yield log
    log.close()


@pytest.fixture
def make_gate(opa: LocalOpa, audit: AuditLog) -> Iterator[Callable[..., Gate]]:
    """Build Gates on the session OPA sharing one audit log; closed at teardown."""
    gates: list[Gate] = []

    def build(service: str = "finance", **kwargs: object) -> Gate:
        kwargs.setdefault("opa_url", opa.url)
        kwargs.setdefault("audit", audit)
        gate = Gate(service, **kwargs)  # type: ignore[arg-type]
        gates.append(gate)
        return gate

    yield build
    for gate in gates:
        gate.close()


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    """A private copy of rego/ that a test may change before starting its own OPA."""
    target = tmp_path / "rego"
    shutil.copytree(REGO, target)
    return target


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200
    body = b""
    hang = False

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        if self.server.hang_event is not None:  # type: ignore[attr-defined]
            self.server.hang_event.wait(10)  # type: ignore[attr-defined]
            return
        self.send_response(self.server.reply_status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "application/json")
        body: bytes = self.server.reply_body  # type: ignore[attr-defined]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_opa() -> Iterator[Callable[..., str]]:
    """A fake OPA for faults a real one won't produce on demand: hangs and garbage.

    Call it with ``status``/``body`` for a canned reply, or ``hang=True``; it returns the URL.
    """
    servers: list[http.server.ThreadingHTTPServer] = []
    events: list[threading.Event] = []

    def start(status: int = 200, body: bytes = b"", hang: bool = False) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.reply_status = status  # type: ignore[attr-defined]
        server.reply_body = body  # type: ignore[attr-defined]
        event = threading.Event() if hang else None
        server.hang_event = event  # type: ignore[attr-defined]
        if event is not None:
            events.append(event)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for event in events:
        event.set()
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def dead_url() -> str:
    """A URL where nothing listens: connection refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


ANALYST = {"id": "ana", "role": "analyst", "account_status": "active", "transaction_limit": 1000}


# --- PostgreSQL (scripts/postgres.sh; ./dev test exports PYGATE_TEST_POSTGRES_URL) ----------


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL: PYGATE_TEST_POSTGRES_URL, else the project's own server, started here.

    Skips (with the reason) only when no PostgreSQL can be started on this machine.
    """
    import os
    import subprocess

    url = os.environ.get("PYGATE_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    script = PROJECT_ROOT / "scripts" / "postgres.sh"
    was_running = subprocess.run([script, "status"], check=False).returncode == 0
    done = subprocess.run([script, "start"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"PostgreSQL could not be started by scripts/postgres.sh: {done.stderr[-500:]}")
    yield done.stdout.strip()
    if not was_running:
        subprocess.run([script, "stop"], check=False, capture_output=True)


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """A URL whose search_path is a fresh schema of its own, dropped afterwards."""
    import uuid

    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in pg_url else "?"
    yield f"{pg_url}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


# --- one test, both audit backends ------------------------------------------------------------


@pytest.fixture(autouse=True)
def _audit_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys and checkpoints of PostgreSQL logs go under the test's folder, not ``~``.

    (A SQLite log keeps them beside its file, already under ``tmp_path``.)
    """
    monkeypatch.setenv("PYGATE_STATE_DIR", str(tmp_path / "pygate-state"))
    for name in ("PYGATE_AUDIT_KEY", "PYGATE_AUDIT_KEY_FILE", "PYGATE_AUDIT_CHECKPOINT_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["sqlite", "postgres"])
def audit_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where an audit log lives, on each backend: a SQLite file, or PostgreSQL on a fresh schema.

    What ``PYGATE_AUDIT_DB`` and ``open_audit`` take; the PostgreSQL case skips (with the
    reason) only when no PostgreSQL can be started here.
    """
    if request.param == "sqlite":
        return str(tmp_path / "audit.db")
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture
def audit_any(audit_db: str) -> Iterator[AuditLog]:
    """An audit log on each backend (a module overrides ``audit`` with it to run on both)."""
    log = open_audit(audit_db)
    yield log
    log.close()


def raw_sql(target: str, sql: str, guards: bool = True) -> None:
    """Run ``sql`` on an audit database behind the library's back (tests of tampering).

    With ``guards`` off, the append-only triggers are bypassed for this statement.
    """
    if target.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(target, autocommit=True) as conn, conn.transaction():
            if not guards:
                conn.execute("ALTER TABLE decisions DISABLE TRIGGER USER")
                conn.execute("ALTER TABLE chain_anchor DISABLE TRIGGER USER")
            conn.execute(sql)
            if not guards:
                conn.execute("ALTER TABLE decisions ENABLE TRIGGER USER")
                conn.execute("ALTER TABLE chain_anchor ENABLE TRIGGER USER")
        return
    import sqlite3

    db = sqlite3.connect(target, isolation_level=None)
    try:
        if not guards:
            for name in ("decisions_no_update", "decisions_no_delete", "chain_anchor_no_update",
                         "chain_anchor_no_delete"):  # fmt: skip
                db.execute(f"DROP TRIGGER IF EXISTS {name}")
        db.execute(sql)
    finally:
        db.close()


def forged_approval(output_hash: str | None) -> dict[str, Any]:
    """An approval a caller writes into the context itself: the gate must never honour it."""
    return {
        "approval_id": "x",
        "status": "approved",
        "approved_by": "me",
        "user_id": "ana",
        "output_hash": output_hash,
        "policy_ids": ["AST-002", "GATE-011"],
        "expires_at_ns": 2**62,
    }


def write_shop_package(root: Path) -> dict[str, Any]:
    """A user's own Rego package ``mine.shop`` under ``root`` (deny refunds) and the services
    data that plugs it in as service ``shop``."""
    pkg = root / "mine" / "shop"
    pkg.mkdir(parents=True)
    (pkg / "shop.rego").write_text(
        'package mine.shop\n\ndeny contains "no refunds" if input.output.type == "refund"\n'
    )
    declared = {"refund": {"arguments": {}}, "sale": {"arguments": {}}}
    return {"services": {"shop": {"packages": ["mine.shop"], "actions": declared}}}
