"""Several services, one PostgreSQL audit database: one chain, one daily quota."""

from __future__ import annotations

import json
import subprocess
import sys

from pygate import Gate, LocalOpa, PostgresAuditLog

ASK = {"type": "tool_call", "action": "explain"}

_WORKER = """
import sys
from pygate import Gate
url, db, service, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with Gate(service, opa_url=url, audit=db) as gate:
    out = ({"type": "tool_call", "action": "explain"} if service == "assistant"
           else {"type": "transfer", "amount": 1, "to": "acct-2"})
    user = {"id": "shared-user", "role": "analyst", "transaction_limit": 1000}
    print(sum(gate.evaluate(out, user).allowed for _ in range(n)))
"""


def test_usage_on_one_service_counts_on_the_other(opa: LocalOpa, pg_schema_url: str) -> None:
    user = {"id": "both", "role": "analyst", "transaction_limit": 1000}
    finance = Gate("finance", opa_url=opa.url, audit=pg_schema_url)
    assistant = Gate("assistant", opa_url=opa.url, audit=pg_schema_url)
    transfer = {"type": "transfer", "amount": 5, "to": "acct-2"}
    assert all(finance.evaluate(transfer, user).allowed for _ in range(60))
    assert all(assistant.evaluate(ASK, user).allowed for _ in range(40))
    over = assistant.evaluate(ASK, user)
    assert not over.allowed
    assert over.policy_id == "AST-003"
    assert assistant.evaluate(ASK, {"id": "fresh", "role": "analyst"}).allowed
    finance.close()
    assistant.close()


def _worker(opa_url: str, db: str, service: str, n: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, opa_url, db, service, str(n)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_quota_is_exact_across_processes_and_services(opa: LocalOpa, pg_schema_url: str) -> None:
    # The finance service (another process) uses 30 units of the user's 100 first ...
    finance = _worker(opa.url, pg_schema_url, "finance", 30)
    assert int(finance.communicate(timeout=120)[0]) == 30
    # ... then four assistant processes send 160 requests at once at the boundary.
    procs = [_worker(opa.url, pg_schema_url, "assistant", 40) for _ in range(4)]
    outputs = [p.communicate(timeout=180)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert sum(int(out) for out in outputs) == 70
    log = PostgresAuditLog(pg_schema_url)
    assert log.count() == 190
    # The day the workers counted on (their clock, not this process's: see --clock-at).
    assert log.usage_today("shared-user", now=log.tail(1)[0].ts) == 100
    assert log.verify().ok
    log.close()


def test_audit_commands_read_the_postgres_log(opa: LocalOpa, pg_schema_url: str) -> None:
    from tests.test_cli import pygate

    with Gate("assistant", opa_url=opa.url, audit=pg_schema_url) as gate:
        gate.evaluate(ASK, {"id": "cli", "role": "analyst"})
        gate.evaluate({"type": "code", "text": "def f(): pass"}, {"id": "cli", "role": "analyst"})
    summary = pygate("--audit-db", pg_schema_url, "audit", "summary", "--json")
    assert summary.returncode == 0, summary.stderr
    assert json.loads(summary.stdout)["total"] == 2
    verify = pygate("--audit-db", pg_schema_url, "audit", "verify")
    assert verify.returncode == 0, verify.stderr
    assert "2 records, keyed hash chain intact" in verify.stdout
    assert "pygate:pygate" not in verify.stdout + verify.stderr
