#!/usr/bin/env python3
"""The deployment drill: two AI services, two OPA sidecars, one signed bundle, one audit log.

Runs the multi-service scenario against a deployment and fails loudly (exit 1, naming the
step) when anything is not as it should be:

1. both services answer, deciding with the first bundle's revision;
2. a policy change (a lower default transfer limit, and a new rules-as-data policy for the
   assistant) is built, signed and published; both services decide with it within the
   polling interval, without restarting anything, and each decision names the new revision
   (the time from publishing to both services deciding with it is measured);
3. a bundle signed with another key, and a bundle edited after signing, are refused by
   both sidecars: decisions continue on the last good revision;
4. with the bundle server stopped, decisions continue;
5. a killed sidecar makes its service refuse (fail closed) while the other service carries
   on; restarted while the bundle server is still down, it comes back with the persisted
   last good bundle and its service recovers alone;
6. the shared audit log holds every decision, with its revision, and its chain verifies.

Without Docker (``ProcessDeployment``) everything runs as plain processes on 127.0.0.1:
a small bundle server (Python ``http.server``), ``opa run`` sidecars with
``deploy/opa-config.yaml``, and ``examples/service/app.py`` twice. Another deployment (the
compose one) plugs in by implementing ``Deployment``; ``run_drill`` is the same.

Usage:
    .venv/bin/python scripts/deployment-drill.py [--rounds N] [--audit-db URL] [--json]

``--rounds`` publishes N more policy changes after the first to measure propagation.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from pygate import build_bundle, generate_keys, open_audit
from pygate.engine._opa_process import PROJECT_ROOT, free_port
from pygate.policy._bundle import sidecar_command, sidecar_env

SERVICES = ("finance", "assistant")
#: deploy/opa-config.yaml polls every 1-2 s.
MAX_POLL_DELAY = 2.0
SERVICE_APP = PROJECT_ROOT / "examples" / "service" / "app.py"

NEW_POLICY = {
    "id": "AST-DATA-900",
    "set": "assistant",
    "priority": 30,
    "action": "require_review",
    "title": "Payroll questions go to HR",
    "reason": "Questions about payroll are answered by HR, not the assistant",
    "suggestion": "Ask HR",
    "conditions": [{"type": "field_in", "field": "arguments.topic", "values": ["payroll"]}],
}


class DrillFailure(AssertionError):
    """A step of the drill did not behave as it must."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise DrillFailure(message)


class Deployment(Protocol):
    """What the drill needs from a deployment (processes here, compose elsewhere)."""

    services: dict[str, str]  # service name -> base URL (POST /act)
    signing_key: Path  # the key sidecars trust
    untrusted_key: Path  # a key they do not
    policy_dir: Path
    audit_db: str

    def publish(self, bundle: Path) -> None:
        """Make ``bundle`` the one served (atomically: a poll never sees half of it)."""

    def wait_for_polls(self, since: float, polls: int = 2) -> None:
        """Return once every sidecar has fetched the bundle ``polls`` times after ``since``
        (time.monotonic()); a deployment that cannot tell may wait polls x the poll delay."""

    def stop_bundle_server(self) -> None: ...

    def start_bundle_server(self) -> None: ...

    def kill_sidecar(self, service: str) -> None:
        """Kill the sidecar of ``service`` abruptly (SIGKILL)."""

    def start_sidecar(self, service: str) -> None:
        """Start it again with the same config and persistence folder."""

    def sidecar_log(self, service: str) -> str | None:
        """The sidecar's log so far, if the deployment can read it."""


# --- the drill ---------------------------------------------------------------------------


@dataclass
class DrillResult:
    """What the drill saw and measured."""

    revisions: list[str] = field(default_factory=list)
    #: per publish: seconds from the bundle being served to each service deciding with it
    propagation: list[dict[str, float]] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    audit_records: int = 0
    seconds: float = 0.0

    @property
    def both(self) -> list[float]:
        """Per publish: seconds until BOTH services decided with the new revision."""
        return [max(p.values()) for p in self.propagation]


class Client:
    """Talks to the services the way a user of them would: POST /act."""

    def __init__(self, services: dict[str, str]) -> None:
        self.services = services
        self.http = httpx.Client(timeout=10)
        self.run = uuid.uuid4().hex[:8]
        self.n = 0

    def _user(self, **extra: Any) -> dict[str, Any]:
        # A fresh user per request: the drill must not run into the daily quota.
        self.n += 1
        return {
            "id": f"drill-{self.run}-{self.n}",
            "role": "analyst",
            "account_status": "active",
            **extra,
        }

    def decide(self, service: str) -> dict[str, Any]:
        """The probe for ``service``: a transfer of 500 (no user limit) or a payroll question."""
        if service == "finance":
            output: dict[str, Any] = {"type": "transfer", "amount": 500, "to": "acct-2"}
        else:
            output = {"type": "tool_call", "action": "explain", "arguments": {"topic": "payroll"}}
        reply = self.http.post(
            f"{self.services[service]}/act", json={"output": output, "user": self._user()}
        )
        check(reply.status_code == 200, f"{service}: /act answered HTTP {reply.status_code}")
        decision: dict[str, Any] = reply.json()["decision"]
        return decision

    def close(self) -> None:
        self.http.close()


def _wait(what: str, probe: Callable[[], bool], timeout: float, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise DrillFailure(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def _expect(client: Client, revision: str, *, changed: bool, limit: int | None = None) -> None:
    """Both services decide with ``revision``, and as the policy of that revision says."""
    fin, ast = client.decide("finance"), client.decide("assistant")
    for name, d in (("finance", fin), ("assistant", ast)):
        check(not d["fallback"], f"{name}: fallback refusal: {d['reason']}")
        check(
            d["bundle_revision"] == revision,
            f"{name}: decided with {d['bundle_revision']}, expected {revision}",
        )
    if not changed:
        check(
            fin["allowed"], f"finance: transfer of 500 refused before the change: {fin['reason']}"
        )
        check(
            ast["allowed"],
            f"assistant: payroll question refused before the change: {ast['reason']}",
        )
        return
    check(
        not fin["allowed"] and fin["policy_id"] == "FIN-002",
        f"finance: expected FIN-002 for 500 over the new limit, got {fin['policy_id']}",
    )
    if limit is not None:
        check(f"limit of {limit}" in fin["reason"], f"finance: reason {fin['reason']!r}")
    check(
        not ast["allowed"] and ast["policy_id"] == NEW_POLICY["id"],
        f"assistant: expected {NEW_POLICY['id']}, got {ast['policy_id']}",
    )


def _change(deployment: Deployment, work: Path, limit: int, **build: Any) -> Path:
    """Build the changed policy data: a lower default limit and the new assistant policy."""
    base = json.loads((deployment.policy_dir / "pygate" / "config" / "data.json").read_text())
    overlay = work / f"change-{limit}.json"
    overlay.write_text(
        json.dumps(
            {
                "default_transaction_limit": limit,
                "declarative_policies": [*base.get("declarative_policies", []), NEW_POLICY],
            }
        )
    )
    return overlay


def _publish_and_measure(
    deployment: Deployment, client: Client, bundle: Path, revision: str
) -> dict[str, float]:
    """Publish, then probe both services until each decides with ``revision``."""
    deployment.publish(bundle)
    start = time.monotonic()
    seen: dict[str, float] = {}
    deadline = start + 10 * MAX_POLL_DELAY
    while len(seen) < len(SERVICES):
        check(
            time.monotonic() < deadline,
            f"services still not deciding with {revision} after {deadline - start:.0f} s "
            f"(done: {sorted(seen)})",
        )
        for name in SERVICES:
            if name not in seen and client.decide(name)["bundle_revision"] == revision:
                seen[name] = round(time.monotonic() - start, 3)
        time.sleep(0.02)
    return seen


def _tamper(bundle: Path, out: Path, limit: int, *, unsign: bool = False) -> None:
    """Copy ``bundle`` with data.json edited after signing (and the signature dropped)."""
    with tarfile.open(bundle) as tar:
        files = {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }
    name = next(n for n in files if n.lstrip("/") == "data.json")
    data = json.loads(files[name])
    data["pygate"]["config"]["default_transaction_limit"] = limit
    files[name] = json.dumps(data).encode()
    if unsign:
        files = {n: c for n, c in files.items() if n.lstrip("/") != ".signatures.json"}
    with tarfile.open(out, "w:gz") as tar:
        for member, content in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))


def run_drill(
    deployment: Deployment,
    work: Path,
    *,
    rounds: int = 0,
    say: Callable[[str], None] = lambda _: None,
) -> DrillResult:
    """Run the scenario against a deployment that is up with its first bundle published.

    Raises:
        DrillFailure: naming the step that went wrong.
    """
    result = DrillResult()
    started = time.monotonic()
    client = Client(deployment.services)

    def step(text: str) -> None:
        result.steps.append(text)
        say(text)

    try:
        # 1. both services answer with the first bundle
        def first_revision() -> bool:
            decisions = [client.decide(name) for name in SERVICES]
            revisions = {d["bundle_revision"] for d in decisions if not d["fallback"]}
            return (
                len(revisions) == 1
                and None not in revisions
                and all(not d["fallback"] for d in decisions)
            )

        _wait("both services to decide with a bundle", first_revision, 30, every=0.2)
        rev0 = client.decide("finance")["bundle_revision"]
        _expect(client, rev0, changed=False)
        result.revisions.append(rev0)
        step(f"1. both services answer; decisions carry revision {rev0}")

        # 2. change a policy, publish, watch both services pick it up
        limit = 100
        b1 = build_bundle(
            work / "b1.tar.gz",
            signing_key=deployment.signing_key,
            policy_dir=deployment.policy_dir,
            data_files=[_change(deployment, work, limit)],
        )
        check(b1.revision != rev0, "the policy change did not change the revision")
        times = _publish_and_measure(deployment, client, b1.path, b1.revision)
        result.propagation.append(times)
        result.revisions.append(b1.revision)
        _expect(client, b1.revision, changed=True, limit=limit)
        step(
            f"2. limit 1000 -> {limit} and {NEW_POLICY['id']} published as {b1.revision}: "
            f"finance {times['finance']} s, assistant {times['assistant']} s; no restarts"
        )
        good = b1
        for i in range(rounds):
            limit = 90 - i
            b = build_bundle(
                work / f"r{i}.tar.gz",
                signing_key=deployment.signing_key,
                policy_dir=deployment.policy_dir,
                data_files=[_change(deployment, work, limit)],
            )
            times = _publish_and_measure(deployment, client, b.path, b.revision)
            result.propagation.append(times)
            result.revisions.append(b.revision)
            _expect(client, b.revision, changed=True, limit=limit)
            good = b
        if rounds:
            step(f"   {rounds} more publishes measured")

        # 3. tampered bundles are refused; decisions continue on the last good revision
        other = build_bundle(
            work / "other-key.tar.gz",
            signing_key=deployment.untrusted_key,
            policy_dir=deployment.policy_dir,
            data_files=[_change(deployment, work, 5000)],
        )
        edited, unsigned = work / "edited.tar.gz", work / "unsigned.tar.gz"
        _tamper(good.path, edited, 5000)
        _tamper(good.path, unsigned, 5000, unsign=True)
        for label, bad, needle in (
            ("signed with another key", other.path, "failed to verify JWT signature"),
            ("edited after signing", edited, "digest mismatch"),
            ("without a signature", unsigned, "bundle missing .signatures.json"),
        ):
            seen_before = {name: len(deployment.sidecar_log(name) or "") for name in SERVICES}
            since = time.monotonic()
            deployment.publish(bad)
            deployment.wait_for_polls(since)
            _expect(client, good.revision, changed=True, limit=limit)
            for name in SERVICES:
                log = deployment.sidecar_log(name)
                new = None if log is None else log[seen_before[name] :]
                check(new is None or needle in new, f"{name} sidecar did not log {needle!r}")
            step(
                f"3. bundle {label}: refused by both sidecars, still deciding with {good.revision}"
            )
        deployment.publish(good.path)

        # 4. the bundle server goes away; decisions continue
        deployment.stop_bundle_server()
        time.sleep(2 * MAX_POLL_DELAY)  # let every sidecar fail at least one poll
        _expect(client, good.revision, changed=True, limit=limit)
        for name in SERVICES:
            log = deployment.sidecar_log(name)
            check(log is None or "connection refused" in log, f"{name} sidecar never missed")
        step("4. bundle server stopped: both services keep deciding with the last good bundle")

        # 5. a sidecar dies: its service refuses, the other carries on; then it comes back
        deployment.kill_sidecar("finance")
        down = client.decide("finance")
        check(
            not down["allowed"] and down["fallback"],
            f"finance with its sidecar dead must refuse (fail closed), got {down}",
        )
        other_side = client.decide("assistant")
        check(
            other_side["bundle_revision"] == good.revision and not other_side["fallback"],
            "assistant was affected by the finance sidecar dying",
        )
        step(
            f"5. finance sidecar killed: finance refuses ({down['policy_id']}, fallback), "
            "assistant unaffected"
        )
        deployment.start_sidecar("finance")
        _wait("finance to recover", lambda: not client.decide("finance")["fallback"], 30, 0.1)
        _expect(client, good.revision, changed=True, limit=limit)
        step(
            f"   restarted with the bundle server still down: finance recovered alone, "
            f"deciding with the persisted {good.revision}"
        )
        deployment.start_bundle_server()

        # 6. one audit log for both services, every decision with its revision
        audit = open_audit(deployment.audit_db)
        try:
            verify = audit.verify()
            records = [
                r for r in audit.records() if (r.user_id or "").startswith(f"drill-{client.run}-")
            ]
        finally:
            audit.close()
        check(verify.ok, f"audit chain broken at record {verify.seq}: {verify.problem}")
        check(len(records) == client.n, f"{client.n} decisions but {len(records)} audited")
        check({r.service for r in records} == set(SERVICES), "a service is missing in the audit")
        seen = {r.bundle_revision for r in records if not r.fallback}
        check(seen <= set(result.revisions), f"unknown revisions in the audit: {seen}")
        check(any(r.fallback for r in records), "the fail-closed refusal was not audited")
        result.audit_records = len(records)
        step(
            f"6. audit: {len(records)} decisions from both services in one log, each with "
            "its revision; hash chain verified"
        )
    finally:
        client.close()
    result.seconds = round(time.monotonic() - started, 2)
    return result


# --- the deployment as plain processes ------------------------------------------------------


class _BundleHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the bundle folder under any one-segment prefix (one per sidecar), logging GETs."""

    def translate_path(self, path: str) -> str:
        prefix, _, rest = path.lstrip("/").partition("/")
        self.prefix = prefix
        return super().translate_path("/" + rest)

    def do_GET(self) -> None:
        super().do_GET()
        server: BundleServer = self.server  # type: ignore[assignment]
        server.fetched(self.prefix)

    def log_message(self, *args: object) -> None:
        pass


class BundleServer(http.server.ThreadingHTTPServer):
    """A static server for the published bundle; remembers when each sidecar fetched it."""

    daemon_threads = True

    def __init__(self, folder: Path, port: int) -> None:
        super().__init__(
            ("127.0.0.1", port), functools.partial(_BundleHandler, directory=str(folder))
        )
        self.fetches: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def fetched(self, prefix: str) -> None:
        with self._lock:
            self.fetches.setdefault(prefix, []).append(time.monotonic())

    def count_since(self, prefix: str, since: float) -> int:
        with self._lock:
            return sum(t > since for t in self.fetches.get(prefix, []))

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class ProcessDeployment:
    """The deployment as processes on 127.0.0.1: bundle server, two sidecars, two services.

    Args:
        work: a folder for keys, bundles, persistence folders and logs.
        audit_db: the shared audit database (default: SQLite in ``work``).
        policy_dir: the policies to build bundles from (default: the repo's ``rego/``).
    """

    def __init__(
        self, work: Path, audit_db: str | None = None, policy_dir: Path | None = None
    ) -> None:
        self.work = work
        self.policy_dir = policy_dir or PROJECT_ROOT / "rego"
        self.audit_db = audit_db or str(work / "audit.db")
        self.served = work / "served"
        self.served.mkdir(parents=True, exist_ok=True)
        keys = generate_keys(work / "keys")
        self.signing_key, self.verify_key = keys.private, keys.public
        self.untrusted_key = generate_keys(work / "untrusted-keys").private
        self.bundle_port = free_port()
        self.server: BundleServer | None = None
        self.sidecar_ports = {name: free_port() for name in SERVICES}
        self.sidecars: dict[str, subprocess.Popen[bytes]] = {}
        self.apps: dict[str, subprocess.Popen[bytes]] = {}
        self.services = {name: f"http://127.0.0.1:{free_port()}" for name in SERVICES}

    # the Deployment protocol
    def publish(self, bundle: Path) -> None:
        partial = self.served / ".pygate.tar.gz.part"
        partial.write_bytes(bundle.read_bytes())
        partial.replace(self.served / "pygate.tar.gz")

    def wait_for_polls(self, since: float, polls: int = 2) -> None:
        server = self.server
        check(server is not None, "the bundle server is not running")
        assert server is not None
        _wait(
            f"{polls} polls by every sidecar",
            lambda: all(server.count_since(n, since) >= polls for n in SERVICES),
            timeout=(polls + 2) * MAX_POLL_DELAY * 2,
        )

    def stop_bundle_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def start_bundle_server(self) -> None:
        if self.server is None:
            self.server = BundleServer(self.served, self.bundle_port)

    def kill_sidecar(self, service: str) -> None:
        proc = self.sidecars.pop(service)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def start_sidecar(self, service: str) -> None:
        env = {
            **os.environ,
            **sidecar_env(
                f"http://127.0.0.1:{self.bundle_port}/{service}", self.work / f"opa-{service}"
            ),
        }
        with open(self.work / f"opa-{service}.log", "ab") as log:
            self.sidecars[service] = subprocess.Popen(
                sidecar_command(self.sidecar_ports[service], verification_key=self.verify_key),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def sidecar_log(self, service: str) -> str | None:
        return (self.work / f"opa-{service}.log").read_text(errors="replace")

    # lifecycle
    def up(self) -> str:
        """Build and publish the first bundle, start everything; returns its revision."""
        first = build_bundle(
            self.work / "b0.tar.gz", signing_key=self.signing_key, policy_dir=self.policy_dir
        )
        self.publish(first.path)
        self.start_bundle_server()
        for name in SERVICES:
            self.start_sidecar(name)
        for name in SERVICES:
            port = self.services[name].rsplit(":", 1)[1]
            env = {
                **os.environ,
                "PYGATE_SERVICE": name,
                "SERVICE_PORT": port,
                "PYGATE_OPA_URL": f"http://127.0.0.1:{self.sidecar_ports[name]}",
                "PYGATE_AUDIT_DB": self.audit_db,
                "PYTHONUNBUFFERED": "1",
            }
            with open(self.work / f"service-{name}.log", "ab") as log:
                self.apps[name] = subprocess.Popen(
                    [sys.executable, str(SERVICE_APP)],
                    env=env,
                    cwd=self.work,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
        for name, url in self.services.items():
            _wait(f"the {name} service to answer", lambda u=url: _healthy(u), 30, 0.1)  # type: ignore[misc]
        return first.revision

    def down(self) -> None:
        for proc in [*self.apps.values(), *self.sidecars.values()]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*self.apps.values(), *self.sidecars.values()]:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.stop_bundle_server()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def process_deployment(work: Path, audit_db: str | None = None) -> Iterator[ProcessDeployment]:
    """A ProcessDeployment that is up, and down again afterwards."""
    deployment = ProcessDeployment(work, audit_db)
    try:
        deployment.up()
        yield deployment
    finally:
        deployment.down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=5, help="extra publishes to measure propagation (default 5)"
    )
    parser.add_argument("--audit-db", help="shared audit database (default: SQLite in a temp dir)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()

    def say(text: str) -> None:
        if not args.json:
            print(text, flush=True)

    with tempfile.TemporaryDirectory(prefix="pygate-drill-") as tmp:
        work = Path(tmp)
        try:
            with process_deployment(work, args.audit_db) as deployment:
                say(
                    f"up: bundle server :{deployment.bundle_port}, sidecars "
                    f"{deployment.sidecar_ports}, services {deployment.services}, "
                    f"audit {deployment.audit_db.split('@')[-1]}"
                )
                result = run_drill(deployment, work, rounds=args.rounds, say=say)
        except DrillFailure as exc:
            print(f"DRILL FAILED: {exc}", file=sys.stderr)
            return 1
    both = result.both
    summary = {
        "publishes": len(both),
        "both_services_s": both,
        "median_s": statistics.median(both),
        "max_s": max(both),
        "min_s": min(both),
        "audit_records": result.audit_records,
        "drill_seconds": result.seconds,
    }
    if args.json:
        print(
            json.dumps(
                {
                    **summary,
                    "propagation": result.propagation,
                    "revisions": result.revisions,
                    "steps": result.steps,
                }
            )
        )
    else:
        print(
            f"\npublish -> both services deciding with the new revision, {len(both)} "
            f"publishes: median {summary['median_s']} s, min {summary['min_s']} s, "
            f"max {summary['max_s']} s (polling 1-2 s)"
        )
        print(f"drill passed in {result.seconds} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
