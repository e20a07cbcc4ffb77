"""The questions the audit data answers, on a log whose answers are known.

Every test runs on both audit backends, SQLite and PostgreSQL (``audit`` below).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from pygate import AuditError, AuditLog, Decision, Gate, InputError, Refusal, open_audit
from pygate.audit import _analytics as analytics
from pygate.cli._main import main
from pygate.engine._opa_process import PROJECT_ROOT, find_opa_binary

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def audit(audit_any: AuditLog) -> AuditLog:
    """This module's audit log, on each backend (``make_gate`` shares it)."""
    return audit_any


def _put(
    log: AuditLog,
    minutes: float,
    user: str,
    output: dict[str, object],
    refused_by: str | None = None,
    action: str = "log_refusal",
    service: str = "assistant",
    fallback: bool = False,
    also: tuple[str, ...] = (),
) -> str:
    refusals = [
        Refusal(policy_id=p, reason=f"no ({p})", action=action)
        for p in ((refused_by, *also) if refused_by else ())
    ]
    reason = "allowed"
    if fallback:
        reason = "The policy engine could not decide (EngineTimeout: slow); refused to be safe"
    elif refusals:
        reason = refusals[0].reason
    d = log.append(
        Decision(
            allowed=not refusals,
            reason=reason,
            policy_id=refused_by,
            action=action if refusals else None,
            refusals=refusals,
            service=service,
            user_id=user,
            fallback=fallback,
            decided_at=T0 + timedelta(minutes=minutes),
        ),
        output,
    )
    assert d.audit_id
    return d.audit_id


@pytest.fixture
def story(audit: AuditLog) -> dict[str, str]:
    """ana retries and gets through, bob leaves, cy does something else, dee's refusal is
    followed up by the host app; two engine incidents."""
    tool = {"type": "tool_call", "action": "delete_records"}
    ids = {
        "ana_1": _put(audit, 0, "ana", tool, "AST-002", "require_review", also=("AST-001",)),
        "ana_2": _put(audit, 5, "ana", tool),
        "bob": _put(
            audit,
            10,
            "bob",
            {"type": "transfer", "amount": 5000},
            "FIN-002",
            "show_user_limit",
            "finance",
        ),
        "bob_late": _put(audit, 200, "bob", {"type": "transfer", "amount": 50}, service="finance"),
        "cy": _put(audit, 20, "cy", {"type": "text", "text": "import os"}, "AST-001"),
        "cy_2": _put(audit, 21, "cy", {"type": "tool_call", "action": "explain"}),
        "dee": _put(audit, 30, "dee", {"type": "text", "text": "x"}, "AST-001"),
        "f1": _put(audit, 60, "eve", {"type": "x"}, "pygate.engine", fallback=True),
        "f2": _put(audit, 62, "eve", {"type": "x"}, "pygate.engine", fallback=True),
        "f3": _put(audit, 24 * 60, "eve", {"type": "x"}, "pygate.engine", fallback=True),
    }
    analytics.record_followup(audit, ids["dee"], "escalate", "asked a manager")
    return ids


def test_refused_outputs_by_action_and_type_with_examples(
    audit: AuditLog, story: dict[str, str]
) -> None:
    data = analytics.refused_outputs(audit, examples=1)
    assert data["refused"] == 7
    by_action = {g["action"]: g for g in data["by_action"]}
    assert by_action["log_refusal"]["refusals"] == 5
    assert by_action["log_refusal"]["policies"] == ["pygate.engine", "AST-001"]
    assert by_action["require_review"]["examples"][0]["output"] == {
        "type": "tool_call",
        "action": "delete_records",
    }
    by_type = {g["type"]: g["refusals"] for g in data["by_type"]}
    assert by_type == {"text": 2, "x": 3, "tool_call": 1, "transfer": 1}


def test_rates_per_time_service_user_and_policy(audit: AuditLog, story: dict[str, str]) -> None:
    days = analytics.refusal_rates(audit, "day")["buckets"]
    assert [(b["day"], b["decisions"], b["refused"]) for b in days] == [
        ("2025-03-01", 9, 6),
        ("2025-03-02", 1, 1),
    ]
    hours = analytics.refusal_rates(audit, "hour")["buckets"]
    assert hours[0] == {
        "hour": "2025-03-01T09:00",
        "decisions": 6,
        "refused": 4,
        "fallback": 0,
        "rate": round(4 / 6, 4),
    }
    services = {
        b["service"]: b["rate"] for b in analytics.refusal_rates(audit, "service")["buckets"]
    }
    assert services == {"assistant": round(6 / 8, 4), "finance": 0.5}
    users = analytics.refusal_rates(audit, "user", top=1)["buckets"]
    assert [(u["user"], u["refused"]) for u in users] == [("eve", 3)]
    policies = {b["policy"]: b for b in analytics.refusal_rates(audit, "policy")["buckets"]}
    assert policies["AST-001"]["refusals"] == 3  # twice primary, once beside AST-002
    assert policies["AST-001"]["primary"] == 2
    since = analytics.refusal_rates(audit, "day", since="2025-03-02")["buckets"]
    assert [b["day"] for b in since] == ["2025-03-02"]


def test_policies_that_never_trigger_come_from_opa_metadata(
    audit: AuditLog, story: dict[str, str]
) -> None:
    known = analytics.known_policies(PROJECT_ROOT / "rego", find_opa_binary())
    assert known["FIN-002"]["source"] == "rego"
    assert known["FIN-DATA-001"]["source"] == "data"
    assert "GATE-001" in known
    data = analytics.policy_triggers(audit, known)
    triggered = [p["policy_id"] for p in data["triggered"]]
    assert triggered[:2] == ["AST-001", "pygate.engine"]
    never = {p["policy_id"] for p in data["never"]}
    assert {"FIN-001", "FIN-004", "AST-003", "FIN-DATA-001"} <= never
    assert not never & set(triggered)
    assert (
        next(p for p in data["triggered"] if p["policy_id"] == "pygate.engine")["source"]
        == "pygate"
    )


def test_followups_retry_leave_other_and_recorded(audit: AuditLog, story: dict[str, str]) -> None:
    data = analytics.followups(audit, timedelta(minutes=30))
    assert data["refusals"] == 7
    # ana retried (allowed); bob left (his next decision came after the window); cy did
    # something else; dee's was recorded as escalate; eve's fallback refusals: f1 -> retry
    # (f2, same kind, refused), f2 and f3 -> leave.
    assert data["counts"] == {"retry": 2, "escalate": 1, "leave": 3, "other": 1}
    assert data["retry_allowed"] == 1
    assert data["recorded"] == 1
    longer = analytics.followups(audit, timedelta(hours=4))
    assert longer["counts"]["leave"] == 2  # bob's later transfer now counts as a retry
    assert longer["retry_allowed"] == 2


def test_record_followup_checks_kind_and_record(audit: AuditLog, story: dict[str, str]) -> None:
    with pytest.raises(InputError, match="kind"):
        analytics.record_followup(audit, story["bob"], "complain")
    with pytest.raises(AuditError, match="no audit record"):
        analytics.record_followup(audit, "nope", "retry")
    with pytest.raises(AuditError, match="allowed"):
        analytics.record_followup(audit, story["ana_2"], "retry")
    analytics.record_followup(audit, story["bob"], "retry")
    assert analytics.followups(audit, timedelta(minutes=30))["counts"]["retry"] == 3


def test_engine_health_groups_fallbacks_into_incidents(
    audit: AuditLog, story: dict[str, str]
) -> None:
    data = analytics.engine_health(audit)
    assert data["fallback"] == 3
    assert [i["refusals"] for i in data["incidents"]] == [2, 1]
    assert data["incidents"][0]["causes"] == {"EngineTimeout": 2}
    assert data["first"].startswith("2025-03-01T10:00")
    assert [h["fallback"] for h in data["by_hour"]] == [2, 1]


@pytest.mark.parametrize(
    ("text", "ok"), [("30m", True), ("2h", True), ("7d", True), ("0m", False), ("soon", False)]
)
def test_durations(text: str, ok: bool) -> None:
    if ok:
        assert analytics.parse_duration(text) > timedelta(0)
    else:
        with pytest.raises(InputError, match="window"):
            analytics.parse_duration(text)


def test_gate_record_followup(make_gate: Callable[..., Gate], audit: AuditLog) -> None:
    gate = make_gate("finance")
    refused = gate.evaluate({"type": "transfer", "amount": 5000}, {"id": "u"})
    assert refused.audit_id is not None
    gate.record_followup(refused.audit_id, "leave")
    assert analytics.followups(audit, timedelta(minutes=30))["counts"]["leave"] == 1


def test_every_question_has_a_json_command(audit_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYGATE_AUDIT_DB", audit_db)
    runner = CliRunner()
    made = runner.invoke(main, ["audit", "generate", "--records", "3000", "--days", "14", "--json"])
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["records"] == 3000
    refused = runner.invoke(main, ["audit", "generate", "--records", "10"])
    assert refused.exit_code == 2
    assert "--append" in refused.output
    expect = {
        ("refusals",): "by_action",
        ("rates", "--by", "hour"): "buckets",
        ("rates", "--by", "user"): "buckets",
        ("rates", "--by", "policy"): "buckets",
        ("policies",): "never",
        ("followups", "--window", "15m"): "counts",
        ("health",): "incidents",
    }
    for args, key in expect.items():
        result = runner.invoke(main, ["audit", *args, "--json"])
        assert result.exit_code == 0, (args, result.output)
        assert key in json.loads(result.output), args
        human = runner.invoke(main, ["audit", *args])
        assert human.exit_code == 0, (args, human.output)
    bad = runner.invoke(main, ["audit", "refusals", "--since", "yesterday"])
    assert bad.exit_code == 2
    assert "since" in bad.output
    record = runner.invoke(main, ["audit", "tail", "-n", "1", "--json"])
    audit_id = json.loads(record.output)["audit_id"]
    kind = runner.invoke(main, ["audit", "followup", audit_id, "escalate", "--json"])
    assert kind.exit_code in (0, 2)  # 2 when the last record happens to be an allow
    log = open_audit(audit_db)
    assert log.verify().ok
    log.close()
