"""Trust: retention keeps the chain verifiable, exports join OPA's decision logs, redaction
masks the same fields in pygate's audit log and in OPA's own decision logs."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from pygate import (
    AuditError,
    AuditLog,
    Decision,
    Gate,
    LocalOpa,
    PostgresAuditLog,
    Settings,
    SqliteAuditLog,
    open_audit,
)
from pygate.audit import DEFAULT_REDACT_KEYS
from pygate.audit._base import COLUMNS, canonical
from pygate.audit._mask import MASK_POLICY_PATH, render_mask_policy
from pygate.audit._retention import export_csv, export_jsonl, prune
from pygate.cli._main import main
from pygate.engine._opa_process import PROJECT_ROOT
from tests.conftest import raw_sql

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)


def _fill(log: AuditLog, days: list[int], now: datetime = NOW) -> list[str]:
    """One record per entry, ``days`` before ``now`` (in order)."""
    ids = []
    for i, back in enumerate(days):
        d = log.append(
            Decision(
                allowed=i % 3 != 0,
                reason="r",
                user_id=f"u{i}",
                decided_at=now - timedelta(days=back),
            ),
            {"i": i},
        )
        assert d.audit_id
        ids.append(d.audit_id)
    return ids


def _raw(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    for name in (
        "decisions_no_update",
        "decisions_no_delete",
        "chain_anchor_no_update",
        "chain_anchor_no_delete",
    ):
        db.execute(f"DROP TRIGGER IF EXISTS {name}")
    return db


# --- retention (both backends: ``audit_db`` is a SQLite file or a PostgreSQL schema) ----------
_GUARDED = (sqlite3.Error, psycopg.Error)


def test_prune_keeps_the_chain_verifiable(audit_any: AuditLog) -> None:
    log = audit_any
    ids = _fill(log, [90, 80, 70, 40, 35, 5, 1])
    result = prune(log, 30, now=NOW)
    assert result["pruned"] == 5
    assert result["through_seq"] == 5
    assert result["anchor_no"] == 1
    assert [r.audit_id for r in log.records()] == ids[5:]
    checked = log.verify()
    assert checked.ok, checked
    assert checked.checked == 2
    _fill(log, [0])  # the chain goes on from the remaining records
    again = prune(log, 3, now=NOW)  # a second checkpoint chains to the first
    assert again["anchor_no"] == 2
    assert log.verify().ok
    assert [a["anchor_no"] for a in log.anchors()] == [1, 2]


def test_the_chain_goes_on_after_every_record_was_pruned(audit_any: AuditLog) -> None:
    """Regression: the next record chained to genesis, not to the checkpoint, and broke verify."""
    _fill(audit_any, [90, 80])
    assert prune(audit_any, 30, now=NOW)["pruned"] == 2
    assert audit_any.count() == 0
    _fill(audit_any, [1, 0])
    checked = audit_any.verify()
    assert checked.ok, checked
    assert checked.checked == 2


def test_prune_only_removes_a_prefix(audit_any: AuditLog) -> None:
    log = audit_any
    _fill(log, [90, 10, 90, 90])  # an old record after a newer one must stay
    result = prune(log, 30, now=NOW)
    assert (result["pruned"], result["kept_older"]) == (1, 2)
    assert log.count() == 3
    assert log.verify().ok


def test_library_still_cannot_delete_after_a_prune(audit_db: str, audit_any: AuditLog) -> None:
    _fill(audit_any, [90, 1])
    prune(audit_any, 30, now=NOW)
    for sql in ("DELETE FROM decisions", "UPDATE decisions SET reason = 'x'",
                "UPDATE chain_anchor SET pruned = 0", "DELETE FROM chain_anchor"):  # fmt: skip
        with pytest.raises(_GUARDED, match="append-only"):
            raw_sql(audit_db, sql)
    assert audit_any.count() == 1
    assert audit_any.verify().ok


def _delete_as_if_pruning(url: str, through: int, where: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT set_config('pygate.prune_through', %s, true)", (str(through),))
        conn.execute(f"DELETE FROM decisions WHERE {where}")


def test_postgres_prune_bypass_is_scoped_to_a_covering_checkpoint(pg_schema_url: str) -> None:
    """The trigger lets a DELETE through only for rows a checkpoint covers, and only when the
    transaction says it is pruning: setting the flag alone deletes nothing."""
    log = PostgresAuditLog(pg_schema_url)
    _fill(log, [90, 80, 1])
    with pytest.raises(psycopg.Error, match="append-only"):
        _delete_as_if_pruning(pg_schema_url, 3, "seq <= 3")
    prune(log, 30, now=NOW)  # checkpoint through seq 2
    with pytest.raises(psycopg.Error, match="append-only"):
        _delete_as_if_pruning(pg_schema_url, 3, "seq = 3")
    with pytest.raises(psycopg.Error, match="append-only"):
        raw_sql(pg_schema_url, "TRUNCATE chain_anchor")
    assert log.count() == 1
    assert log.verify().ok
    log.close()


def test_deletion_after_prune_is_detected(audit_db: str, audit_any: AuditLog) -> None:
    ids = _fill(audit_any, [90, 80, 5, 4, 3])
    prune(audit_any, 30, now=NOW)
    raw_sql(audit_db, "DELETE FROM decisions WHERE seq = 3", guards=False)
    result = audit_any.verify()
    assert result.ok is False
    assert result.audit_id == ids[3]
    assert "3..3 are missing" in result.problem


def test_edited_or_removed_anchor_is_detected(audit_db: str, audit_any: AuditLog) -> None:
    _fill(audit_any, [90, 80, 5])
    prune(audit_any, 30, now=NOW)
    raw_sql(audit_db, "UPDATE chain_anchor SET pruned = 1", guards=False)
    result = audit_any.verify()
    assert result.ok is False
    assert "anchor 1 (covering records up to 2): content was edited" in result.problem
    # without its checkpoint the rest cannot verify
    raw_sql(audit_db, "DELETE FROM chain_anchor", guards=False)
    assert audit_any.verify().ok is False


def test_a_tampered_log_is_never_pruned(audit_db: str, audit_any: AuditLog) -> None:
    _fill(audit_any, [90, 80, 5])
    raw_sql(audit_db, "UPDATE decisions SET allowed = 1 WHERE seq = 1", guards=False)
    with pytest.raises(AuditError, match="does not verify at record 1"):
        prune(audit_any, 30, now=NOW)
    assert audit_any.count() == 3


def test_prune_cli_dry_run_then_yes(
    audit_db: str, audit_any: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = audit_any
    _fill(log, [4000, 3000, 1], now=datetime.now(UTC))
    monkeypatch.setenv("PYGATE_AUDIT_DB", audit_db)
    runner = CliRunner()
    dry = runner.invoke(main, ["audit", "prune", "--older-than", "365", "--json"])
    assert json.loads(dry.output)["would_prune_at_most"] == 2
    assert log.count() == 3
    done = runner.invoke(main, ["audit", "prune", "--older-than", "365", "--yes", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["pruned"] == 2
    assert runner.invoke(main, ["audit", "verify"]).exit_code == 0


# --- the hashed columns added later ----------------------------------------------------------
def test_records_without_approval_hash_as_before(tmp_path: Path) -> None:
    """The appended columns enter the hashed body only when set."""
    row = {c: None for c in COLUMNS} | {"audit_id": "a", "output": "{}"}
    old_body = json.dumps([row[c] for c in COLUMNS], separators=(",", ":"), sort_keys=True)
    assert canonical({**row, "approval_id": None, "approved_by": None}) == old_body
    assert canonical({**row, "approval_id": "x", "approved_by": "rita"}) != old_body


def test_editing_the_approver_is_detected(audit_db: str, audit_any: AuditLog) -> None:
    log = audit_any
    log.append(Decision(allowed=True, user_id="u", approval_id="ap", approved_by="rita"), {})
    assert log.verify().ok
    [record] = log.records()
    assert (record.approval_id, record.approved_by) == ("ap", "rita")
    raw_sql(audit_db, "UPDATE decisions SET approved_by = 'mallory'", guards=False)
    assert log.verify().problem.startswith("record content was edited")


def test_a_log_from_before_the_new_columns_opens_and_verifies(audit_db: str) -> None:
    old = open_audit(audit_db)
    _fill(old, [3, 2, 1])
    old.close()
    for sql in (  # make it look like the old schema
        "DROP INDEX IF EXISTS decisions_ts",
        "DROP TABLE approvals",
        "DROP TABLE followups",
        "DROP TABLE chain_anchor",
        "ALTER TABLE decisions DROP COLUMN approval_id",
        "ALTER TABLE decisions DROP COLUMN approved_by",
    ):
        raw_sql(audit_db, sql)
    reopened = open_audit(audit_db)
    assert reopened.verify().ok
    reopened.append(Decision(allowed=True, user_id="u", approval_id="a", approved_by="b"), {})
    assert reopened.verify().ok
    assert prune(reopened, 0, now=datetime.now(UTC))["pruned"] == 4
    assert reopened.verify().ok
    reopen_again = open_audit(audit_db)  # opening an up-to-date log changes nothing
    assert reopen_again.verify().ok
    reopen_again.close()
    reopened.close()


# --- export ------------------------------------------------------------------------------
def _opa_events(log_path: Path) -> list[dict[str, object]]:
    for _ in range(50):  # console decision logs are written asynchronously
        events = [
            json.loads(line)
            for line in log_path.read_text().splitlines()
            if '"Decision Log"' in line
        ]
        if events:
            return events
        time.sleep(0.1)
    return []


def test_export_carries_opa_decision_ids(
    logging_opa: tuple[LocalOpa, Path], tmp_path: Path
) -> None:
    opa, opa_log = logging_opa
    audit = SqliteAuditLog(tmp_path / "a.db")
    with Gate("finance", opa_url=opa.url, audit=audit) as gate:
        refused = gate.evaluate({"type": "transfer", "amount": 5000}, {"id": "u1"})
    assert refused.decision_id
    lines = io.StringIO()
    assert export_jsonl(audit, lines) == 1
    [doc] = [json.loads(x) for x in lines.getvalue().splitlines()]
    assert doc["decision_id"] == refused.decision_id
    assert doc["output"] == {"type": "transfer", "amount": 5000}
    assert doc["allowed"] is False
    assert doc["policy_ids"] == ["FIN-002"]
    opa_ids = {e["decision_id"] for e in _opa_events(opa_log)}
    assert refused.decision_id in opa_ids  # the join key works
    table = io.StringIO()
    export_csv(audit, table)
    rows = list(csv.DictReader(io.StringIO(table.getvalue())))
    assert rows[0]["decision_id"] == refused.decision_id
    assert rows[0]["allowed"] == "false"
    assert json.loads(rows[0]["output"])["amount"] == 5000


def test_export_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = SqliteAuditLog(tmp_path / "a.db")
    _fill(log, [3, 2, 1])
    monkeypatch.setenv("PYGATE_AUDIT_DB", str(log.path))
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(main, ["audit", "export", "--format", "csv", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["seq"]) for r in rows] == [1, 2, 3]
    since = CliRunner().invoke(main, ["audit", "export", "--since", "2025-06-28"])
    assert len(since.stdout.splitlines()) == 2


# --- redaction, here and in OPA's decision logs --------------------------------------------
def test_committed_mask_policy_matches_the_default_settings() -> None:
    committed = (PROJECT_ROOT / MASK_POLICY_PATH).read_text()
    assert committed == render_mask_policy(DEFAULT_REDACT_KEYS), (
        "regenerate with: pygate audit mask-policy --out " + MASK_POLICY_PATH
    )
    assert sorted(Settings().redact_keys) == sorted(DEFAULT_REDACT_KEYS)


def test_redact_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYGATE_REDACT_KEYS", "iban, Notes")
    monkeypatch.setenv("PYGATE_REDACT_PATTERNS", '["\\\\d{4}-\\\\d{4}"]')
    settings = Settings.load()
    assert settings.redact_keys == ["iban", "Notes"]
    assert settings.redact_patterns == ["\\d{4}-\\d{4}"]


def test_audit_log_and_opa_mask_the_same_fields(tmp_path: Path, policy_copy: Path) -> None:
    keys = ["iban", "password", "notes"]
    patterns = [r"\b\d{4}-\d{4}-\d{4}-\d{4}\b"]
    (policy_copy / "pygate" / "log" / "mask.rego").write_text(render_mask_policy(keys, patterns))
    opa_log = tmp_path / "opa.log"
    opa = LocalOpa(
        policy_copy,
        supervise=False,
        log_path=opa_log,
        extra_args=[
            "--set",
            "decision_logs.console=true",
            "--set",
            "decision_logs.mask_decision=/pygate/log/mask",
        ],
    ).start()
    output = {
        "type": "tool_call",
        "action": "explain",
        "IBAN": "DE89 3704 0044 0532 0130 00",
        "details": [{"password": {"nested": "x"}}, "card 4111-1111-1111-1111 on file"],
        "notes": "free text the user typed",
        "text": "pay 5500-0000-0000-0004 now",
    }
    try:
        settings = Settings(
            opa_url=opa.url,
            audit_db=str(tmp_path / "a.db"),
            service="assistant",
            redact_keys=keys,
            redact_patterns=patterns,
        )
        with Gate(settings=settings) as gate:
            decision = gate.evaluate(output, {"id": "u1", "role": "analyst"})
            assert gate.audit is not None
            stored = gate.audit.tail(1)[0].output
    finally:
        opa.stop()
    expected = {
        "type": "tool_call",
        "action": "explain",
        "IBAN": "***",
        "details": [{"password": "***"}, "card *** on file"],
        "notes": "***",
        "text": "pay *** now",
    }
    assert stored == expected
    [event] = [e for e in _opa_events(opa_log) if e.get("decision_id") == decision.decision_id]
    assert event["input"]["output"] == expected  # type: ignore[index]
    assert "4111" not in opa_log.read_text()
    assert "free text the user typed" not in opa_log.read_text()


def test_mask_policy_cli_writes_a_policy_from_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYGATE_REDACT_KEYS", "iban")
    out = tmp_path / "mask.rego"
    result = CliRunner().invoke(main, ["audit", "mask-policy", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert '"iban",' in out.read_text()
    assert '"password"' not in out.read_text()
    monkeypatch.setenv("PYGATE_REDACT_PATTERNS", '["(unclosed"]')
    bad = CliRunner().invoke(main, ["audit", "mask-policy"])
    assert bad.exit_code == 2
    assert "redact_patterns" in bad.output
