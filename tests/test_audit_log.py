"""What every audit backend shares (``pygate.audit._base``), asserted on what a reader sees.

Issue 18: mutation testing showed faults in the shared code that no test noticed: a record
found by a prefix, what replay keeps, shadow refusals, a checkpoint that cannot be written,
the chain head a checkpoint is taken of. SQLite only (the code is shared; tests/test_audit.py
and tests/test_integrity.py run the backends against each other).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pygate import AuditError, ConfigError, Decision, Refusal, SqliteAuditLog
from pygate.audit._base import (
    GENESIS,
    AuditLog,
    Checked,
    Summary,
    VerifyResult,
    stored_refusals,
    to_record,
)
from pygate.audit._integrity import Checkpoint, Integrity
from pygate.audit._retention import prune

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)


def _decision(i: int, **fields: Any) -> Decision:
    return Decision(allowed=True, user_id=f"u{i}", decided_at=NOW, **fields)


# --- finding a record ---------------------------------------------------------------------


def test_find_by_the_whole_id_or_a_unique_hex_prefix_of_eight(audit: AuditLog) -> None:
    a = audit.append(_decision(1, audit_id="abcdef0123456789"), {}).audit_id
    b = audit.append(_decision(2, audit_id="abcdef01ffff"), {}).audit_id
    c = audit.append(_decision(3, audit_id="0123456789ab-cd"), {}).audit_id
    d = audit.append(_decision(4, audit_id="not-hex-xyz-0000"), {}).audit_id
    found = audit.find("abcdef0123456789")
    assert found is not None
    assert (found.audit_id, found.user_id, found.seq) == (a, "u1", 1)
    assert audit.find("abcdef01") is None  # two records begin so: ambiguous
    hit = audit.find("abcdef0123")
    assert hit is not None
    assert hit.audit_id == a
    hit = audit.find("ABCDEF0123")  # hex in either case (SQLite's LIKE ignores ASCII case)
    assert hit is not None
    assert hit.audit_id == a
    hit = audit.find("abcdef01f")
    assert hit is not None
    assert hit.audit_id == b
    hit = audit.find("01234567")  # exactly eight
    assert hit is not None
    assert hit.audit_id == c
    assert audit.find("0123456") is None  # seven: too short to be unique by design
    assert audit.find("not-hex-") is None  # a prefix must look like an id
    found = audit.find(d)
    assert found is not None
    assert found.seq == 4
    assert audit.find("%") is None
    assert audit.find("________") is None  # LIKE wildcards are not hex


def test_tail_and_records(audit: AuditLog) -> None:
    for i in range(1, 13):
        audit.append(_decision(i), {"i": i})
    assert [r.output for r in audit.tail()] == [{"i": i} for i in range(3, 13)]  # ten
    assert [r.seq for r in audit.tail(2)] == [11, 12]
    assert [r.user_id for r in audit.records()][:3] == ["u1", "u2", "u3"]


def test_summary_top_policies_are_limited_and_counted(audit: AuditLog) -> None:
    for pid in ["P1", "P2", "P2", "P3", "P3", "P3"]:
        refusal = Refusal(policy_id=pid, reason="no", action="log_refusal")
        audit.append(Decision(allowed=False, policy_id=pid, refusals=[refusal]), {})
    assert audit.summary().top_policies == [("P3", 3), ("P2", 2), ("P1", 1)]
    assert audit.summary(top=1).top_policies == [("P3", 3)]
    assert Summary(0, 0, 0, 0, []).refusal_rate == 0.0
    assert Summary(4, 1, 3, 0, []).refusal_rate == 0.75


# --- what a record keeps ------------------------------------------------------------------


def test_replay_input_keeps_the_document_minus_output_redacted_with_its_paths(
    audit: AuditLog,
) -> None:
    assert audit.replay_input(None) is None
    document = {
        "output": {"password": "p"},
        "user": {"id": "u1", "token": "t"},
        "context": {"usage_today": 2, "x": float("nan")},
    }
    stored = json.loads(audit.replay_input(document) or "")
    assert stored == {
        "user": {"id": "u1", "token": "***"},
        "context": {"usage_today": 2, "x": "NaN"},
        "redacted": ["output.password", "user.token"],
    }
    audit.append_many([(_decision(1), document["output"])], documents=[document])
    record = audit.tail(1)[0]
    assert record.opa_input == stored
    assert record.output == {"password": "***"}

    class Thing:
        def __repr__(self) -> str:
            return "<thing>"

    odd = json.loads(audit.replay_input({"context": {"t": Thing()}}) or "")
    assert odd == {"context": {"t": "<thing>"}, "redacted": []}


def test_a_document_list_must_match_the_items(audit: AuditLog) -> None:
    with pytest.raises(ValueError, match="zip"):
        audit.append_many([(_decision(1), {}), (_decision(2), {})], documents=[None])
    assert audit.count() == 0


def test_masked_applies_the_keys_and_the_text_patterns(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "a.db", redact_patterns=[r"ticket-\d+"])
    assert log.masked({"password": "p", "note": "see ticket-42, card 4111 1111 1111 1111"}) == {
        "password": "***",
        "note": "see ***, card ***",  # the configured pattern, and Luhn-valid cards always
    }
    log.close()


def test_append_gives_back_a_quota_unit_in_the_same_write(audit: AuditLog) -> None:
    day = "2025-06-30"
    assert audit.reserve("u1", day) == 0
    assert audit.reserve("u1", day) == 1
    audit.append(Decision(allowed=False, user_id="u1", decided_at=NOW), {}, release=("u1", day))
    assert audit.quota_used([("u1", day)]) == {("u1", day): 1}
    audit.append(Decision(allowed=False, user_id="u1", decided_at=NOW), {})
    assert audit.quota_used([("u1", day)]) == {("u1", day): 1}
    assert audit.count() == 2


def test_an_unserialisable_output_is_stored_as_its_repr(audit: AuditLog) -> None:
    class Thing:
        def __repr__(self) -> str:
            return "<thing>"

    assert audit.redacted_json({"b": Thing(), "a": 1}) == '{"a": 1, "b": "<thing>"}'
    audit.append(_decision(1), {"b": Thing()})
    assert audit.tail(1)[0].output == {"b": "<thing>"}


def test_shadow_refusals_are_kept_redacted_and_marked(audit: AuditLog) -> None:
    enforcing = Refusal(policy_id="FIN-1", reason="no", action="log_refusal")
    shadow = Refusal(
        policy_id="NEW-1",
        reason="card 4111 1111 1111 1111 over",
        action="require_review",
        policy_set="candidate",
    )
    decision = Decision(
        allowed=False, refusals=[enforcing], shadow_refusals=[shadow], decided_at=NOW
    )
    assert stored_refusals(decision) == [
        {"policy_id": "FIN-1", "reason": "no", "action": "log_refusal", "priority": 100,
         "why": [], "would_pass": [], "invalid": False, "shadow": False},
        {"policy_id": "NEW-1", "reason": "card 4111 1111 1111 1111 over",
         "action": "require_review", "priority": 100, "policy_set": "candidate",
         "why": [], "would_pass": [], "invalid": False, "shadow": True},
    ]  # fmt: skip
    audit.append(decision, {})
    row = audit._select("ORDER BY seq DESC LIMIT 1")[0]
    assert row["shadow_refusals"] == (
        '[{"action":"require_review","policy_id":"NEW-1","policy_set":"candidate",'
        '"reason":"card *** over"}]'
    )
    record = audit.tail(1)[0]
    assert record.shadow_refusals == [
        {"action": "require_review", "policy_id": "NEW-1", "policy_set": "candidate",
         "reason": "card *** over"},
    ]  # fmt: skip
    assert record.refusals is not None
    assert [r["shadow"] for r in record.refusals] == [False, True]
    assert record.refusals[1]["reason"] == "card *** over"
    audit.append(Decision(allowed=True, decided_at=NOW), {})
    row = audit._select("ORDER BY seq DESC LIMIT 1")[0]
    assert (row["shadow_refusals"], row["refusals"], row["opa_input"]) == (None, "[]", None)
    plain = audit.tail(1)[0]
    assert (plain.shadow_refusals, plain.refusals, plain.opa_input) == (None, [], None)


def test_stored_refusals_are_json_whatever_a_condition_holds() -> None:
    from pygate._models import Condition

    when = Condition(field="context.at", op="<", value=NOW, bound=(1, 2))
    refusal = Refusal(policy_id="P", reason="r", action="a", why=[when])
    decision = Decision(allowed=False, refusals=[refusal], shadow_refusals=[refusal])
    kept = stored_refusals(decision)
    assert [r["why"] for r in kept] == [
        [{"field": "context.at", "op": "<", "value": "2025-06-30T12:00:00Z", "bound": [1, 2]}]
    ] * 2


def test_to_record_reads_every_json_column() -> None:
    row = {
        "seq": 3, "audit_id": "a", "ts": NOW.isoformat(), "service": None, "user_id": "u",
        "output": '{"x": 1}', "allowed": 1, "reason": "", "policy_id": None,
        "policy_ids": '["P"]', "action": None, "decision_id": None, "bundle_revision": None,
        "fallback": 0, "latency_ms": 0.5, "prev_hash": GENESIS, "hash": "h",
        "actions": '[{"kind": "k"}]', "refusals": '[{"policy_id": "P"}]',
        "opa_input": '{"user": {}}', "shadow_refusals": '[{"policy_id": "S"}]',
    }  # fmt: skip
    record = to_record(row)
    assert (record.output, record.policy_ids, record.allowed, record.fallback) == (
        {"x": 1}, ["P"], True, False,
    )  # fmt: skip
    assert record.actions == [{"kind": "k"}]
    assert record.refusals == [{"policy_id": "P"}]
    assert record.opa_input == {"user": {}}
    assert record.shadow_refusals == [{"policy_id": "S"}]


def test_an_invalid_redaction_pattern_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^setting 'redact_patterns': invalid regex: "):
        SqliteAuditLog(tmp_path / "a.db", redact_patterns=["(unclosed"])


def test_append_many_and_its_async_twin_stamp_each_decision(audit: AuditLog) -> None:
    items = [(_decision(1), {"a": 1}), (_decision(2, audit_id="given"), {"b": 2})]
    written = audit.append_many(items)
    assert [d.user_id for d in written] == ["u1", "u2"]
    assert written[1].audit_id == "given"
    assert written[0].audit_id is not None
    assert all(d.decided_at == NOW for d in written)
    more = asyncio.run(audit.aappend_many([(_decision(3), {"c": 3})]))
    assert [r.audit_id for r in audit.records()] == [
        written[0].audit_id, "given", more[0].audit_id,
    ]  # fmt: skip
    assert audit.tail(1)[0].output == {"c": 3}
    assert audit.append_many([]) == []
    assert asyncio.run(audit.aappend_many([])) == []
    assert audit.count() == 3


def test_async_writes_checkpoint_like_the_sync_ones(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "a.db")
    asyncio.run(log.aappend_many([(_decision(1), {})]))  # the handle's first commit
    cp = log.integrity.read_checkpoint()
    assert cp is not None
    assert (cp.seq, cp.count) == (1, 1)
    [written] = asyncio.run(log.aappend_checked([Checked(_decision(2), {"n": 2})]))
    assert written is not None
    assert log.tail(1)[0].output == {"n": 2}
    log.close()
    cp = log.integrity.read_checkpoint()
    assert cp is not None
    assert (cp.seq, cp.count) == (2, 2)


@pytest.mark.parametrize("how", ["append_many", "aappend_many", "append_checked"])
def test_a_write_checkpoints_only_when_due(tmp_path: Path, how: str) -> None:
    integrity = Integrity(str(tmp_path / "a.db"), checkpoint_every=3, checkpoint_seconds=0)
    log = SqliteAuditLog(tmp_path / "a.db", integrity=integrity)

    def write(i: int) -> None:
        if how == "append_many":
            log.append_many([(_decision(i), {})])
        elif how == "aappend_many":
            asyncio.run(log.aappend_many([(_decision(i), {})]))
        else:
            log.append_checked([Checked(_decision(i), {})])

    seqs = []
    for i in range(1, 6):
        write(i)
        cp = log.integrity.read_checkpoint()
        seqs.append(cp.seq if cp else 0)
    assert seqs == [1, 1, 1, 4, 4]  # the handle's first commit, then every third record
    log.close()


# --- approvals the chain records as used ---------------------------------------------------


def test_used_approvals_come_from_allowed_records_first_use_wins(audit: AuditLog) -> None:
    audit.append(_decision(1, audit_id="r1", approval_id="ap1,ap2"), {})
    audit.append(Decision(allowed=False, user_id="u1", approval_id="ap3", audit_id="r2"), {})
    audit.append(_decision(2, audit_id="r3", approval_id="ap4"), {})
    audit.append(_decision(1, audit_id="r4", approval_id="ap1"), {})  # a second use: ignored
    audit.append(_decision(1, audit_id="r5"), {})
    assert audit.used_approvals() == {"ap1": "r1", "ap2": "r1", "ap4": "r3"}
    assert audit.used_approvals("u1") == {"ap1": "r1", "ap2": "r1"}
    assert audit.used_approvals("nobody") == {}


def test_an_allow_uses_up_every_approval_it_names(audit: AuditLog) -> None:
    from pygate.audit._approvals import Approvals

    approvals = Approvals(audit)
    ids = []
    for n in range(2):
        refusal = Refusal(policy_id=f"R{n}", reason="review", action="require_review")
        refused = audit.append(
            Decision(allowed=False, user_id="u1", refusals=[refusal], output_hash=f"h{n}"), {}
        )
        pending = approvals.request(refused, {})
        assert pending is not None
        approvals.approve(pending.approval_id, by="rita")
        ids.append(pending.approval_id)
    allow = Decision(allowed=True, user_id="u1", approval_id=",".join(ids))
    [written] = audit.append_checked([Checked(allow, {})])
    assert written is not None
    assert [(a.status, a.used_audit_id) for a in map(approvals.get, ids)] == [
        ("used", written.audit_id),
        ("used", written.audit_id),
    ]
    assert audit.used_approvals("u1") == dict.fromkeys(ids, written.audit_id)
    # used up: a second allow naming one of them is not written
    again = Decision(allowed=True, user_id="u1", approval_id=ids[1])
    assert audit.append_checked([Checked(again, {})]) == [None]


def test_seal_row_adds_a_key_id_and_mac_that_sealed_accepts(audit: AuditLog) -> None:
    row = {"followup_id": "f1", "audit_id": "a1", "kind": "retry", "ts": "t", "note": None}
    sealed = audit.seal_row("followups", row)
    assert set(sealed) == {*row, "key_id", "mac"}
    assert sealed["key_id"] == audit.integrity.keyring.current
    assert audit.sealed("followups", sealed) is True
    assert audit.sealed("followups", {**sealed, "kind": "escalate"}) is False
    assert audit.sealed("followups", row) is False


# --- the chain head a checkpoint is taken of ------------------------------------------------


def test_the_head_is_the_last_record_then_the_latest_anchor(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "a.db")
    assert log._head() == {
        "seq": 0, "head_hash": GENESIS, "count": 0, "anchor_no": 0, "anchor_hash": GENESIS,
    }  # fmt: skip
    for i in range(4):
        log.append(Decision(allowed=True, decided_at=NOW - timedelta(days=10 - i)), {})
    last = log.tail(1)[0]
    assert log._head() == {
        "seq": 4, "head_hash": last.hash, "count": 4, "anchor_no": 0, "anchor_hash": GENESIS,
    }  # fmt: skip
    prune(log, 1, now=NOW)  # every record goes: the anchor holds the head
    [anchor] = log.anchors()
    assert (anchor["anchor_no"], anchor["through_seq"], anchor["through_hash"]) == (
        1, 4, last.hash,
    )  # fmt: skip
    assert log._head() == {
        "seq": 4, "head_hash": last.hash, "count": 0, "anchor_no": 1,
        "anchor_hash": anchor["anchor_hash"],
    }  # fmt: skip
    log.append(Decision(allowed=True, decided_at=NOW), {})
    head = log._head()
    assert (head["seq"], head["count"], head["anchor_no"]) == (5, 1, 1)
    log.close()


def _cp(seq: int, head_hash: str) -> Checkpoint:
    return Checkpoint(seq, head_hash, 0, 0, GENESIS, "t", "k")


def test_holds_the_checkpoint_head_while_the_chain_or_an_anchor_still_has_it(
    tmp_path: Path,
) -> None:
    log = SqliteAuditLog(tmp_path / "a.db")
    assert log._holds(_cp(0, "anything")) is True  # an empty log's checkpoint
    for i in range(6):
        log.append(Decision(allowed=True, decided_at=NOW - timedelta(days=10 - i)), {})
    records = list(log.records())
    assert log._holds(_cp(3, records[2].hash)) is True
    assert log._holds(_cp(3, records[3].hash)) is False
    assert log._holds(_cp(9, records[5].hash)) is False  # not (yet) in the chain
    prune(log, 7, now=NOW)  # seq 1..3 go; the anchor is through seq 3
    [anchor] = log.anchors()
    assert anchor["through_seq"] == 3
    assert log._holds(_cp(3, records[2].hash)) is True  # pruned exactly there
    assert log._holds(_cp(3, "f" * 64)) is False
    assert log._holds(_cp(2, "f" * 64)) is True  # pruned past it: cannot be checked
    assert log._holds(_cp(4, records[3].hash)) is True
    log.close()


def test_a_checkpoint_that_cannot_be_written_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    integrity = Integrity(str(tmp_path / "a.db"), checkpoint_dir=blocker / "cp")
    log = SqliteAuditLog(tmp_path / "a.db", integrity=integrity)
    with caplog.at_level(logging.ERROR, logger="pygate.audit"):
        written = log.append(_decision(1), {})
    assert written.audit_id is not None
    assert log.count() == 1
    [message] = [r for r in caplog.records if r.name == "pygate.audit"]
    assert message.levelno == logging.ERROR
    assert message.getMessage().startswith(
        f"cannot write audit checkpoint {blocker / 'cp' / 'checkpoint.json'}: "
    )
    assert "Not a directory" in message.getMessage()  # the error itself, for the operator
    log.close()  # the failed attempt reset the pending count: close does not raise either


def test_close_checkpoints_only_a_handle_that_wrote(tmp_path: Path) -> None:
    def rare() -> Integrity:
        return Integrity(str(tmp_path / "a.db"), checkpoint_every=0, checkpoint_seconds=0)

    writer = SqliteAuditLog(tmp_path / "a.db", integrity=rare())
    writer.append(_decision(1), {})  # the first commit checkpoints
    writer.append(_decision(2), {})
    cp = writer.integrity.read_checkpoint()
    assert cp is not None
    assert cp.seq == 1
    reader = SqliteAuditLog(tmp_path / "a.db", integrity=rare())
    reader.close()  # wrote nothing: no checkpoint
    cp = reader.integrity.read_checkpoint()
    assert cp is not None
    assert cp.seq == 1
    writer.close()  # its pending record is checkpointed on close
    cp = writer.integrity.read_checkpoint()
    assert cp is not None
    assert cp.seq == 2


# --- no rollback ----------------------------------------------------------------------------


def test_the_bundle_high_water_mark_only_rises(audit: AuditLog) -> None:
    assert audit.bundle_high() is None
    assert audit.raise_bundle_high("20250101T000000Z", "r1") == ("20250101T000000Z", "r1")
    assert audit.raise_bundle_high("20240101T000000Z", "r0") == ("20250101T000000Z", "r1")
    assert audit.raise_bundle_high("20260101T000000Z", "r2") == ("20260101T000000Z", "r2")
    assert audit.bundle_high() == ("20260101T000000Z", "r2")


class _Bare(AuditLog):
    """A backend with only the required methods: no extension tables."""

    reserved: list[tuple[str, str]]

    def _insert(self, rows: Any, releases: Any, checks: Any = None) -> list[int]:
        return []

    def _select(self, sql_tail: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return []

    def _scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return 0

    def _select_raw(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        raise AssertionError(f"no extension table may be read: {sql}")

    def reserve(self, user_id: str, day: str) -> int:
        self.reserved.append((user_id, day))
        return len(self.reserved) - 1

    def close(self) -> None:
        pass


def test_a_backend_without_extension_tables(tmp_path: Path) -> None:
    bare = _Bare(target=str(tmp_path / "bare.db"))
    bare.reserved = []
    assert bare.integrity.key_file == tmp_path / "bare.db.state" / "audit.key"
    assert bare.bundle_high() is None
    assert bare.anchors() == []
    with pytest.raises(AuditError, match=r"^_Bare does not support approvals/follow-ups/"):
        bare.raise_bundle_high("s", "r")
    with pytest.raises(AuditError, match=r"^_Bare does not support retention$"):
        bare._prune(1, {})
    assert bare.reserve_many([("u", "d"), ("v", "e")]) == [0, 1]
    assert asyncio.run(bare.areserve_many([("w", "f")])) == [2]
    assert bare.reserved == [("u", "d"), ("v", "e"), ("w", "f")]


def test_verify_result_defaults() -> None:
    result = VerifyResult(ok=True, checked=0)
    assert (result.seq, result.audit_id, result.problem, result.missing) == (None, None, "", None)
    assert (result.checkpoint_seq, result.issues) == (0, ())


def test_the_hashed_form_of_a_record_is_compact_sorted_json() -> None:
    """Logs written earlier must keep verifying: the canonical form hashed into the chain
    is JSON without spaces, so a change of separators would break every old log."""
    from pygate.audit._base import COLUMNS, canonical

    row = {c: None for c in COLUMNS} | {COLUMNS[0]: "a b", COLUMNS[1]: 2}
    text = canonical(row)
    assert text == json.dumps([row[c] for c in COLUMNS], separators=(",", ":"))


def test_a_stored_value_with_nan_is_sorted_json_with_the_number_named() -> None:
    from pygate.audit._base import _stored_json

    assert _stored_json({"b": float("nan"), "a": [float("-inf"), 1]}) == (
        '{"a": ["-Infinity", 1], "b": "NaN"}'
    )
