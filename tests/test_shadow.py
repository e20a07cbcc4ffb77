"""Shadow policies: evaluated and recorded as "would have refused", never refusing.

The property that matters: adding shadow policies changes nothing a caller acts on. Over the
whole decision corpus (the adversarial families, their controls and the host-fact variants),
a real OPA with shadow policies added gives the same ``allowed``, ``refusals``, ``primary``
and ``review`` as one without, even where a shadow policy reuses an enforcing policy's id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pygate import Gate, LocalOpa, SqliteAuditLog
from pygate.audit import _analytics as analytics
from pygate.cli._main import main
from pygate.policy._policy_index import with_index
from tests import adversarial_cases as cases
from tests.test_adversarial import CONTROLS, FAMILIES, bare_batch

JSON = dict[str, Any]

ANALYST = {"id": "u1", "role": "analyst", "account_status": "active", "transaction_limit": 1000}

# A Rego policy set that refuses every action it sees: shipped as shadow by a service mark.
CANDIDATE_REGO = """package pygate.policies.candidate

import data.pygate.canonical

# METADATA
# title: Candidate refuses everything
# custom:
#   id: CAND-001
#   reason: "candidate refuses {{.name}}"
#   action: log_refusal
#   priority: 1
refusals contains r if {
\tsome a in canonical.actions
\tr := data.pygate.lib.refusal(rego.metadata.chain(), {"name": a.name})
}
"""


def _catch_all(pid: str, set_name: str) -> JSON:
    # field_not_in on a field no output has: holds for every output.
    return {
        "id": pid, "set": set_name, "reason": f"{pid} would refuse", "action": "log_refusal",
        "priority": 0, "shadow": True,
        "conditions": [{"type": "field_not_in", "field": "__never__", "values": ["x"]}],
    }  # fmt: skip


def _lower_limit() -> JSON:
    """The candidate of the README walk-through: transfers over 500 (the live limit is 1000)."""
    return {
        "id": "FIN-LIMIT-500", "set": "finance", "title": "Transfer limit 500 (candidate)",
        "reason": "Transfer of {{.output.amount}} is over the candidate limit of 500",
        "action": "show_user_limit", "priority": 20, "shadow": True,
        "message": "That is more than you can move at once.",
        "hint": "Propose a transfer of at most 500.",
        "conditions": [{"type": "field_in", "field": "type", "values": ["transfer"]},
                       {"type": "field_compare", "field": "amount", "op": "gt", "value": 500}],
    }  # fmt: skip


def _shadowed_copy(policy_copy: Path) -> Path:
    data_path = policy_copy / "pygate" / "config" / "data.json"
    data = json.loads(data_path.read_text())
    data["declarative_policies"] += [
        _catch_all("SHADOW-FIN", "finance"),
        _catch_all("SHADOW-AST", "assistant"),
        _catch_all("FIN-002", "finance"),  # an enforcing policy's id: must lift nothing
        _lower_limit(),
    ]
    for name in ("finance", "assistant"):
        data["services"][name]["policy_sets"].append("candidate")
        data["services"][name]["shadow"] = ["candidate"]
    data_path.write_text(json.dumps(with_index(data)))
    folder = policy_copy / "pygate" / "policies" / "candidate"
    folder.mkdir()
    (folder / "candidate.rego").write_text(CANDIDATE_REGO)
    return policy_copy


@pytest.fixture
def shadow_opa(policy_copy: Path) -> Iterator[LocalOpa]:
    local = LocalOpa(_shadowed_copy(policy_copy), supervise=False).start()
    yield local
    local.stop()


def _corpus() -> list[JSON]:
    items = [
        {"output": o, "user": user, "context": {"service": service, "usage_today": 0}}
        for service, user, families in FAMILIES.values()
        for outputs in families.values()
        for o in outputs
    ]
    items += [
        {"output": o, "user": u, "context": {"service": s, "usage_today": 0}}
        for s, u, o in CONTROLS
    ]
    items += [
        {"output": {"type": "transfer", "amount": 10, "to": "a"}, "user": u,
         "context": {"service": "finance"}}
        for users in cases.host_facts().values() for u in users
    ]  # fmt: skip
    items += [  # quota, under review, and an input the gate refuses before any policy
        {"output": {"type": "text", "text": "hi"}, "user": ANALYST,
         "context": {"service": "assistant", "usage_today": 100}},
        {"output": {"type": "transfer", "amount": 5}, "context": {"service": "finance"},
         "user": {**ANALYST, "account_status": "under_review"}},
        {"output": "not an object", "user": ANALYST, "context": {"service": "finance"}},
    ]  # fmt: skip
    return items


def _acted_on(decision: JSON) -> JSON:
    return {k: v for k, v in decision.items() if k != "shadow_refusals"}


def test_shadow_policies_change_nothing_a_caller_acts_on(
    opa: LocalOpa, shadow_opa: LocalOpa
) -> None:
    items = _corpus()
    assert len(items) > 500
    live = bare_batch(opa, items)
    shadowed = bare_batch(shadow_opa, items)
    refused = 0
    for item, before, after in zip(items, live, shadowed, strict=True):
        assert _acted_on(after) == _acted_on(before), item
        assert "shadow_refusals" not in before
        refused += not before["allowed"]
        if before["actions"]:  # the input reached the policies: the shadows saw it too
            ids = {r["policy_id"] for r in after["shadow_refusals"]}
            assert {"SHADOW-FIN", "SHADOW-AST"} & ids, item
            assert all(r["shadow"] is True for r in after["shadow_refusals"])
    assert refused > 400  # the corpus is mostly refusals: the property is not vacuous


def test_shadow_refusals_are_audited_and_counted_beside_enforcing_ones(
    shadow_opa: LocalOpa, tmp_path: Path
) -> None:
    audit = SqliteAuditLog(tmp_path / "audit.db")
    with Gate("finance", opa_url=shadow_opa.url, audit=audit) as gate:
        ok = gate.evaluate({"type": "transfer", "amount": 800, "to": "a"}, ANALYST)
        over = gate.evaluate({"type": "transfer", "amount": 5000, "to": "a"}, ANALYST)
        small = gate.evaluate({"type": "transfer", "amount": 100, "to": "a"}, ANALYST)
    # the candidate limit would have refused 800, but 800 is allowed
    assert ok.allowed
    assert ok.refusals == []
    assert "FIN-LIMIT-500" in ok.shadow_policy_ids
    assert "CAND-001" in ok.shadow_policy_ids
    lower = next(r for r in ok.shadow_refusals if r.policy_id == "FIN-LIMIT-500")
    assert lower.shadow
    assert [c.text() for c in lower.would_pass][1] == "output.amount <= 500"
    # an enforcing refusal stays a refusal; the shadow FIN-002 lifted nothing
    assert not over.allowed
    assert over.policy_ids == ["FIN-002"]
    assert over.refusals[0].source == "rego"
    assert not over.refusals[0].shadow
    assert small.allowed
    assert "FIN-LIMIT-500" not in small.shadow_policy_ids

    records = {r.audit_id: r for r in audit.records()}
    stored = records[ok.audit_id].shadow_refusals or []
    assert {"policy_id": "FIN-LIMIT-500", "policy_set": "finance", "action": "show_user_limit",
            "reason": "Transfer of 800 is over the candidate limit of 500"} in stored  # fmt: skip
    assert records[ok.audit_id].allowed
    assert records[ok.audit_id].policy_ids == []
    assert audit.verify().ok

    rows = {p["policy_id"]: p for p in analytics.policy_triggers(audit, {})["triggered"]}
    assert rows["FIN-LIMIT-500"]["mode"] == "shadow"
    assert (rows["FIN-LIMIT-500"]["refusals"], rows["FIN-LIMIT-500"]["shadow_refusals"]) == (0, 2)
    assert rows["FIN-LIMIT-500"]["shadow_rate"] == round(2 / 3, 4)
    assert rows["FIN-002"]["mode"] == "both"  # enforcing, and the shadow copy of its id
    assert rows["FIN-002"]["rate"] == round(1 / 3, 4)
    audit.close()


def test_audit_policies_shows_the_would_be_rate(shadow_opa: LocalOpa, tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    audit = SqliteAuditLog(db)
    with Gate("finance", opa_url=shadow_opa.url, audit=audit) as gate:
        gate.evaluate({"type": "transfer", "amount": 800, "to": "a"}, ANALYST)
        gate.evaluate({"type": "transfer", "amount": 50, "to": "a"}, ANALYST)
    audit.close()
    result = CliRunner().invoke(main, ["--audit-db", str(db), "audit", "policies"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "FIN-LIMIT-500" in x)
    assert "50.0%" in line
    assert "shadow" in line
    as_json = CliRunner().invoke(main, ["--audit-db", str(db), "audit", "policies", "--json"])
    rows = {p["policy_id"]: p for p in json.loads(as_json.output)["triggered"]}
    assert rows["FIN-LIMIT-500"]["shadow_rate"] == 0.5


def test_promotion_is_removing_the_mark(policy_copy: Path, tmp_path: Path) -> None:
    data_path = policy_copy / "pygate" / "config" / "data.json"
    data = json.loads(data_path.read_text())
    promoted = {k: v for k, v in _lower_limit().items() if k != "shadow"}
    data["declarative_policies"].append(promoted)
    data_path.write_text(json.dumps(with_index(data)))
    local = LocalOpa(policy_copy, supervise=False).start()
    try:
        with Gate("finance", opa_url=local.url, audit=SqliteAuditLog(tmp_path / "a.db")) as gate:
            d = gate.evaluate({"type": "transfer", "amount": 800, "to": "a"}, ANALYST)
    finally:
        local.stop()
    assert not d.allowed
    assert d.policy_ids == ["FIN-LIMIT-500"]
    assert d.shadow_refusals == []
    assert d.message == "That is more than you can move at once."
    assert d.hint == "Propose a transfer of at most 500."


def test_shadow_refusals_are_stored_hash_chained_on_both_backends(audit_any: Any) -> None:
    from pygate import Decision, Refusal

    shadow = Refusal(
        policy_id="PAY-002", reason="transfer of 800 to sk_live_abcdefghijklmnop1234",
        action="show_user_limit", policy_set="candidates", shadow=True,
    )  # fmt: skip
    allowed = Decision(allowed=True, reason="allowed", service="payments", user_id="u1",
                       shadow_refusals=[shadow])  # fmt: skip
    plain = Decision(allowed=True, reason="allowed", service="payments", user_id="u2")
    first = audit_any.append(allowed, {"type": "transfer", "amount": 800})
    audit_any.append(plain, {"type": "transfer", "amount": 10})
    records = {r.audit_id: r for r in audit_any.records()}
    stored = records[first.audit_id].shadow_refusals
    assert stored is not None
    assert [s["policy_id"] for s in stored] == ["PAY-002"]
    assert stored[0]["policy_set"] == "candidates"
    assert "sk_live_" not in json.dumps(stored)  # redacted like the reason
    assert audit_any.verify().ok
    assert analytics.shadow_counts(audit_any) == {"PAY-002": 1}
    rows = {p["policy_id"]: p for p in analytics.policy_triggers(audit_any, {})["triggered"]}
    assert rows["PAY-002"]["shadow_rate"] == 0.5
    assert rows["PAY-002"]["mode"] == "shadow"


def test_declarative_shadow_and_hint_are_validated() -> None:
    from pygate import PolicyDataError
    from pygate.policy._policy_data import validate_policy

    policy = validate_policy(_lower_limit())
    assert policy.shadow is True
    assert policy.hint == "Propose a transfer of at most 500."
    for field, bad in (("shadow", "yes"), ("hint", 5)):
        with pytest.raises(PolicyDataError, match=field):
            validate_policy({**_lower_limit(), field: bad})
