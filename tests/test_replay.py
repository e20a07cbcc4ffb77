"""``pygate replay`` and what the audit keeps for it, on both audit backends, with a real OPA.

A policy owner lowers the transfer limit in a candidate; replay must flip exactly the recorded
allows above the new limit, name them by audit id, count what it cannot replay (redacted,
older records, pygate's own refusals) and never guess.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pygate import Decision, Gate, LocalOpa, Refusal
from pygate._models import AuditRecord
from pygate._replay import ALLOW_TO_REFUSE, REFUSE_TO_ALLOW, replay, replay_document
from pygate.audit import AuditLog, open_audit
from pygate.cli._main import main
from pygate.policy._bundle import build_bundle, generate_keys
from tests.conftest import REGO, raw_sql

USER = {"id": "owner-test", "role": "analyst"}  # no own limit: the configured default applies


def _candidate(tmp_path: Path, limit: int) -> Path:
    """A copy of the repo's policies with ``default_transaction_limit`` set to ``limit``."""
    import shutil

    target = tmp_path / f"candidate-{limit}"
    shutil.copytree(REGO, target)
    data_file = target / "pygate" / "config" / "data.json"
    data = json.loads(data_file.read_text())
    data["default_transaction_limit"] = limit
    data_file.write_text(json.dumps(data))
    return target


def _transfer(amount: int, **extra: Any) -> dict[str, Any]:
    return {"type": "transfer", "amount": amount, "to": "acct-1", **extra}


@pytest.fixture
def history(opa: LocalOpa, audit_db: str) -> Iterator[tuple[AuditLog, dict[int, str]]]:
    """Decisions by the repo's policies (limit 1000): audit id per transfer amount."""
    ids: dict[int, str] = {}
    with Gate("finance", opa_url=opa.url, audit=audit_db) as gate:
        for amount in (100, 400, 600, 900, 1500, 2000):
            decision = gate.evaluate(_transfer(amount), USER)
            assert decision.allowed == (amount <= 1000)
            assert decision.audit_id is not None
            ids[amount] = decision.audit_id
        # A secret-looking key: masked in the record, so its input cannot be replayed.
        masked = gate.evaluate(_transfer(700, password="hunter2hunter2"), USER)
        assert masked.audit_id is not None
        ids[-1] = masked.audit_id
        # Invalid input is refused by pygate before OPA is asked: nothing to replay.
        bad = gate.evaluate({"type": "transfer", "amount": 5}, {"id": ""})
        assert bad.policy_id == "pygate.input"
    log = open_audit(audit_db)
    yield log, ids
    log.close()


def test_records_keep_the_opa_input_and_refusals_and_verify(
    history: tuple[AuditLog, dict[int, str]], audit_db: str
) -> None:
    log, ids = history
    assert log.verify().ok
    allowed = log.find(ids[600])
    refused = log.find(ids[1500])
    masked = log.find(ids[-1])
    assert allowed is not None
    assert refused is not None
    assert masked is not None
    assert allowed.opa_input is not None
    assert allowed.opa_input["user"] == USER
    assert allowed.opa_input["context"]["service"] == "finance"
    assert isinstance(allowed.opa_input["context"]["usage_today"], int)
    assert allowed.opa_input["context"]["approvals"] == []
    assert allowed.opa_input["redacted"] == []
    assert allowed.refusals == []
    assert refused.refusals is not None
    assert [r["policy_id"] for r in refused.refusals] == ["FIN-002"]
    assert refused.refusals[0]["action"] == "show_user_limit"
    # The masked value is not in the record, and the record says where it was.
    assert masked.output["password"] == "***"
    assert masked.opa_input is not None
    assert masked.opa_input["redacted"] == ["output.password"]
    assert "hunter2" not in json.dumps(masked.model_dump(mode="json"))
    # A short prefix finds the record too; an unknown id finds none.
    assert log.find(ids[600][:10]) == allowed
    assert log.find("0" * 32) is None


def test_the_chain_covers_the_recorded_input(
    history: tuple[AuditLog, dict[int, str]], audit_db: str
) -> None:
    log, ids = history
    target = log.find(ids[600])
    assert target is not None
    # Make the recorded allow look like it was decided with a higher usage: verify must see it.
    raw_sql(
        audit_db,
        "UPDATE decisions SET opa_input = replace(opa_input, '\"usage_today\": ', "
        f"'\"usage_today\": 9') WHERE audit_id = '{ids[600]}'",
        guards=False,
    )
    edited = log.find(ids[600])
    assert edited is not None
    assert edited.opa_input != target.opa_input
    result = log.verify()
    assert not result.ok
    assert result.seq == target.seq


def test_replay_of_a_lowered_limit_flips_exactly_the_allows_above_it(
    history: tuple[AuditLog, dict[int, str]], tmp_path: Path
) -> None:
    log, ids = history
    seen: list[tuple[int, int]] = []
    result = replay(
        log, _candidate(tmp_path, 500), batch=2, progress=lambda d, t: seen.append((d, t))
    )
    flips = {f["audit_id"]: f for f in result["flips"]}
    assert set(flips) == {ids[600], ids[900]}
    assert all(f["kind"] == ALLOW_TO_REFUSE for f in flips.values())
    assert flips[ids[600]]["after"]["policies"] == ["FIN-002"]
    assert "limit of 500" in flips[ids[600]]["after"]["reason"]
    assert flips[ids[600]]["after"]["refusals"][0]["policy_id"] == "FIN-002"
    assert result["records"] == 8
    assert result["replayed"] == 6
    assert result["unchanged"] == 4
    assert result[ALLOW_TO_REFUSE] == 2
    assert result[REFUSE_TO_ALLOW] == 0
    assert result["not_replayable"] == 2
    assert result["not_replayable_by_cause"] == {"not_decided_by_opa": 1, "redacted": 1}
    assert result["redacted_paths"] == {"output.password": 1}
    [policy] = result["by_policy"]
    assert policy["policy_id"] == "FIN-002"
    assert policy[ALLOW_TO_REFUSE] == 2
    assert sorted(policy["audit_ids"][ALLOW_TO_REFUSE]) == sorted([ids[600], ids[900]])
    assert [s["service"] for s in result["by_service"]] == ["finance"]
    assert result["by_service"][0][ALLOW_TO_REFUSE] == 2
    assert seen
    assert seen[-1] == (8, 8)


def test_replay_of_a_raised_limit_flips_refusals_to_allows(
    history: tuple[AuditLog, dict[int, str]], tmp_path: Path
) -> None:
    log, ids = history
    result = replay(log, _candidate(tmp_path, 1800))
    assert {f["audit_id"]: f["kind"] for f in result["flips"]} == {ids[1500]: REFUSE_TO_ALLOW}
    [policy] = result["by_policy"]
    assert policy["policy_id"] == "FIN-002"
    assert policy[REFUSE_TO_ALLOW] == 1
    # The same policies as recorded: nothing flips, and --service/--since filter.
    same = replay(log, REGO, service="finance")
    assert same["flips"] == []
    assert same["unchanged"] == 6
    assert replay(log, REGO, service="assistant")["records"] == 0
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert replay(log, REGO, since=later)["records"] == 0


def test_replay_reads_a_signed_bundle_and_verifies_it_when_given_the_key(
    history: tuple[AuditLog, dict[int, str]], tmp_path: Path
) -> None:
    log, ids = history
    if "postgresql" in repr(log).lower():
        pytest.skip("the bundle path does not depend on the backend; built once, on SQLite")
    keys = generate_keys(tmp_path / "keys")
    lower = tmp_path / "lower.json"
    lower.write_text(json.dumps({"default_transaction_limit": 500}))
    bundle = build_bundle(tmp_path / "candidate.tar.gz", signing_key=keys.private,
                          data_files=[lower])  # fmt: skip
    result = replay(log, tmp_path / "candidate.tar.gz", verification_key=keys.public)
    assert result["candidate_revision"] == bundle.revision
    assert {f["audit_id"] for f in result["flips"]} == {ids[600], ids[900]}
    other = generate_keys(tmp_path / "other")
    from pygate import ConfigError

    with pytest.raises(ConfigError, match="cannot load candidate"):
        replay(log, tmp_path / "candidate.tar.gz", verification_key=other.public)


def test_approvals_are_replayed_as_valid_as_they_were() -> None:
    decided = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    expires = int((decided + timedelta(minutes=5)).timestamp() * 1e9)
    record = AuditRecord(
        seq=1, audit_id="a1", ts=decided, service="finance", user_id="u", output={"type": "x"},
        allowed=True, reason="allowed", policy_id=None, policy_ids=[], action=None,
        decision_id=None, bundle_revision=None, fallback=False, latency_ms=1.0,
        prev_hash="0" * 64, hash="0" * 64,
        opa_input={"user": {"id": "u"}, "redacted": [], "context": {
            "usage_today": 3, "approvals": [{"approval_id": "p1", "expires_at_ns": expires}]}},
    )  # fmt: skip
    later = decided + timedelta(days=30)
    doc = replay_document(record, int(later.timestamp() * 1e9))
    shifted = doc["context"]["approvals"][0]["expires_at_ns"]
    # Still five minutes of validity left, thirty days later.
    assert shifted - int(later.timestamp() * 1e9) == 5 * 60 * 10**9
    assert doc["context"]["usage_today"] == 3
    assert doc["output"] == {"type": "x"}
    assert doc["user"] == {"id": "u"}


def test_an_old_database_migrates_and_its_records_are_not_replayable(
    opa: LocalOpa, audit_db: str, tmp_path: Path
) -> None:
    """A log written before inputs were kept: opened, migrated, verified, counted."""
    log = open_audit(audit_db)
    old = Decision(allowed=True, reason="allowed", service="finance", user_id="u-old")
    row = log._row(old, _transfer(600))
    row.update(refusals=None, opa_input=None)  # what the previous version wrote
    log._insert([row], [])
    log.close()
    for column in ("refusals", "opa_input"):
        raw_sql(audit_db, f"ALTER TABLE decisions DROP COLUMN {column}")
    log = open_audit(audit_db)  # migrates: the columns come back, empty
    try:
        with Gate("finance", opa_url=opa.url, audit=log) as gate:
            new = gate.evaluate(_transfer(600), USER)
        assert log.verify().ok
        records = list(log.records())
        assert [r.opa_input is None for r in records] == [True, False]
        assert records[0].refusals is None
        result = replay(log, _candidate(tmp_path, 500))
        assert result["not_replayable_by_cause"] == {"no_recorded_input": 1}
        assert [f["audit_id"] for f in result["flips"]] == [new.audit_id]
    finally:
        log.close()


def _cli(audit_db: str, *args: str) -> Any:
    return CliRunner().invoke(main, ["--audit-db", audit_db, *args])


def test_replay_cli(
    history: tuple[AuditLog, dict[int, str]], audit_db: str, tmp_path: Path
) -> None:
    _, ids = history
    candidate = str(_candidate(tmp_path, 500))
    human = _cli(audit_db, "replay", "--bundle", candidate)
    assert human.exit_code == 0, human.output
    assert "allow→refuse 2" in human.output
    assert ids[600] in human.output
    assert ids[900] in human.output
    assert "now: Transfer of 600 exceeds your transaction limit of 500" in human.output
    assert "output.password (1)" in human.output
    as_json = _cli(audit_db, "replay", "--bundle", candidate, "--json")
    assert as_json.exit_code == 0, as_json.output
    doc = json.loads(as_json.stdout)
    assert "replay: 8/8 records" in as_json.stderr  # progress, on stderr only
    assert {f["audit_id"] for f in doc["flips"]} == {ids[600], ids[900]}
    assert _cli(audit_db, "replay", "--bundle", candidate, "--fail-on-flip").exit_code == 1
    assert _cli(audit_db, "replay", "--bundle", str(REGO), "--fail-on-flip").exit_code == 0
    missing = _cli(audit_db, "replay", "--bundle", str(tmp_path / "nope.tar.gz"), "--json")
    assert missing.exit_code == 2
    assert "does not exist" in json.loads(missing.stdout)["error"]
    assert _cli(audit_db, "replay", "--bundle", candidate, "--since", "soon").exit_code == 2


def test_explain_shows_every_refusal_field_and_shadow_refusals_apart(
    audit_db: str, history: tuple[AuditLog, dict[int, str]]
) -> None:
    log, ids = history
    refused = _cli(audit_db, "audit", "explain", ids[1500])
    assert refused.exit_code == 0, refused.output
    for text in ("REFUSED by FIN-002 (show_user_limit)", "Transfer of 1500 exceeds",
                 "suggestion:", "usage_today", "replayable   yes"):  # fmt: skip
        assert text in refused.output
    masked = _cli(audit_db, "audit", "explain", ids[-1])
    assert "replayable   no: redacted output.password" in masked.output
    # Fields this version does not know (a policy's "why") are shown as stored.
    why = [{"field": "arguments.amount", "op": ">", "value": 5000, "bound": 1000}]
    decision = Decision(
        allowed=False, reason="too much", policy_id="FIN-002", action="show_user_limit",
        refusals=[
            Refusal(policy_id="FIN-002", reason="too much", action="show_user_limit", why=why),
            Refusal(policy_id="FIN-NEW", reason="would be too much", action="log_refusal",
                    shadow=True),
        ],
        service="finance", user_id="u1",
    )  # fmt: skip
    written = log.append(decision, _transfer(5000))
    assert written.audit_id is not None
    out = _cli(audit_db, "audit", "explain", written.audit_id)
    assert out.exit_code == 0, out.output
    assert 'why:          [{"bound": 1000, "field": "arguments.amount"' in out.output
    head, shadow = out.output.split("shadow (would have refused")
    assert "FIN-002" in head
    assert "FIN-NEW" not in head
    assert "FIN-NEW" in shadow
    assert "would be too much" in shadow
    as_json = json.loads(_cli(audit_db, "audit", "explain", written.audit_id, "--json").stdout)
    assert [r["policy_id"] for r in as_json["shadow_refusals"]] == ["FIN-NEW"]
    assert as_json["refusals"][0]["why"] == why
    assert as_json["replayable"] is False  # appended without an input
    missing = _cli(audit_db, "audit", "explain", "f" * 32)
    assert missing.exit_code == 2
    assert "no audit record" in missing.output


def test_shadow_refusals_never_count_as_a_recorded_refusal() -> None:
    """A record refused by FIN-002 with a shadow FIN-NEW beside it: the candidate refusing by
    FIN-002 alone is the same decision, not "refused by other policies"."""
    from pygate._replay import _flip

    record = AuditRecord(
        seq=1, audit_id="a1", ts=datetime(2026, 3, 1, tzinfo=UTC), service="finance",
        user_id="u", output={"type": "transfer"}, allowed=False, reason="too much",
        policy_id="FIN-002", policy_ids=["FIN-002", "FIN-NEW"], action="show_user_limit",
        decision_id=None, bundle_revision=None, fallback=False, latency_ms=1.0,
        prev_hash="0" * 64, hash="0" * 64,
        refusals=[{"policy_id": "FIN-002"}, {"policy_id": "FIN-NEW", "shadow": True}],
    )  # fmt: skip
    same = {"allowed": False, "refusals": [{"policy_id": "FIN-002", "reason": "too much"}]}
    assert _flip(record, same) is None
    other = {"allowed": False, "refusals": [{"policy_id": "FIN-NEW", "reason": "x"}]}
    flip = _flip(record, other)
    assert flip is not None
    assert flip["kind"] == "changed_policies"
    assert flip["before"]["policies"] == ["FIN-002"]
