"""The CLI, run as a user runs it: real OPA, real files, exit codes as documented."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pygate import LocalOpa
from pygate.engine._opa_process import PROJECT_ROOT


def pygate(*args: str, stdin: str = "", env_extra: dict[str, str] | None = None,
           cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "pygate", *args],
        input=stdin, capture_output=True, text=True, env=env, cwd=cwd, timeout=120,
    )  # fmt: skip


CHECK = ("check", "--service", "finance")


def _doc(amount: object, **user: object) -> str:
    return json.dumps({
        "output": {"type": "transfer", "amount": amount},
        "user": {"id": "cli-user", "transaction_limit": 1000, **user},
        "context": {"service": "finance"},
    })  # fmt: skip


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "audit.db")


def test_check_allowed_refused_and_json(opa: LocalOpa, db: str) -> None:
    ok = pygate("--opa-url", opa.url, "--audit-db", db, *CHECK, "-", stdin=_doc(10))
    assert ok.returncode == 0, ok.stderr
    assert "ALLOWED" in ok.stdout
    no = pygate("--opa-url", opa.url, "--audit-db", db, *CHECK, "--json", "-", stdin=_doc(5000))
    assert no.returncode == 1, no.stderr
    decision = json.loads(no.stdout)
    assert decision["allowed"] is False
    assert decision["policy_id"] == "FIN-002"
    assert decision["audit_id"]


def test_check_reads_a_file_and_uses_the_embedded_opa(tmp_path: Path, db: str) -> None:
    path = tmp_path / "in.json"
    path.write_text(_doc(5000))
    result = pygate("--audit-db", db, *CHECK, str(path))
    assert result.returncode == 1, result.stderr
    assert "FIN-002" in result.stdout


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("not json", "not valid JSON"),
        ("[1]", "expected a JSON object"),
        (json.dumps({"user": {"id": "u"}, "context": {"service": "finance"}}), "output: required"),
        (_doc(10, id=""), "user.id"),
        (_doc(10, transaction_limit="lots"), "user.transaction_limit"),
        (
            json.dumps({"output": {}, "user": {"id": "u"}, "context": {"service": "x"}}),
            "context.service",
        ),
        (json.dumps({"output": {}, "user": {"id": "u"}, "ctx": {}}), "unknown field(s) ctx"),
    ],
)
def test_bad_input_exits_2_naming_the_field(db: str, stdin: str, message: str) -> None:
    result = pygate("--opa-url", "http://127.0.0.1:9", "--audit-db", db, *CHECK, "-",
                    stdin=stdin)  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_engine_down_exits_1_as_fallback(dead_url: str, db: str) -> None:
    result = pygate("--opa-url", dead_url, "--audit-db", db, *CHECK, "--json", "-",
                    stdin=_doc(10))  # fmt: skip
    assert result.returncode == 1
    assert json.loads(result.stdout)["fallback"] is True


def test_missing_opa_binary_is_a_clear_error(tmp_path: Path, db: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYGATE_OPA_BIN": str(tmp_path / "nope")}
    result = pygate("--audit-db", db, *CHECK, "-", stdin=_doc(10), env_extra=env,
                    cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert f"the OPA binary {tmp_path / 'nope'}" in result.stderr
    assert "not an executable file" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_runs_every_scenario_as_the_seed_says(tmp_path: Path) -> None:
    db = str(tmp_path / "demo.db")
    result = pygate("--audit-db", db, "demo", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    summary = lines[-1]["summary"]
    assert summary["as_expected"] == summary["scenarios"] == len(lines) - 1
    assert summary["chain_ok"] is True
    assert summary["audit_records"] == 10 + 1 + 100 + 1 + 2
    assert summary["fallback"] == 1
    titles = {line["scenario"] for line in lines[:-1]}
    assert "[finance] transfer within limit, OPA down" in titles
    approved = [
        line for line in lines[:-1] if line["scenario"].endswith("approved and re-submitted")
    ]
    assert len(approved) == 1
    assert approved[0]["allowed"] is True
    assert approved[0]["approved_by"] == "rita"


def test_audit_commands(opa: LocalOpa, db: str) -> None:
    for amount in (10, 5000, 6000):
        pygate("--opa-url", opa.url, "--audit-db", db, *CHECK, "-", stdin=_doc(amount))
    summary = json.loads(pygate("--audit-db", db, "audit", "summary", "--json").stdout)
    assert summary["total"] == 3
    assert summary["refused"] == 2
    assert summary["top_policies"] == [{"policy_id": "FIN-002", "refusals": 2}]
    tail = pygate("--audit-db", db, "audit", "tail", "-n", "2", "--json").stdout.splitlines()
    assert [json.loads(t)["output"]["amount"] for t in tail] == [5000, 6000]
    verify = pygate("--audit-db", db, "audit", "verify", "--json")
    assert verify.returncode == 0
    assert json.loads(verify.stdout)["ok"] is True


def test_policy_validate(tmp_path: Path) -> None:
    assert pygate("policy", "validate").returncode == 0
    bad = tmp_path / "data.json"
    bad.write_text(
        json.dumps(
            {
                "declarative_policies": [
                    {
                        "id": "P",
                        "set": "s",
                        "reason": "r",
                        "action": "a",
                        "conditions": [{"type": "zz"}],
                    }
                ]
            }
        )
    )
    result = pygate("policy", "validate", "--json", str(bad))
    assert result.returncode == 2
    assert json.loads(result.stdout) == {
        "ok": False,
        "step": "validate",
        "policy_id": "P",
        "field": "conditions[0].type",
        "problem": json.loads(result.stdout)["problem"],
        "error": json.loads(result.stdout)["error"],  # every JSON error has "error"
    }
    assert "unknown condition type 'zz'" in json.loads(result.stdout)["problem"]


def test_help_documents_exit_codes() -> None:
    text = pygate("check", "--help").stdout
    assert "0  allowed" in text
    assert "1  refused" in text
    assert "2  bad input" in text


# --- input that cannot confuse the gate (issue 12, section 4) ------------------------------


def _tail(db: str) -> dict[str, object]:
    out = pygate("--audit-db", db, "audit", "tail", "-n", "1", "--json").stdout
    record: dict[str, object] = json.loads(out)
    return record


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        # the gate and a first-wins executor would see different amounts
        (
            '{"output": {"type": "transfer", "amount": 10, "amount": 5000}, "user": {"id": "u"}}',
            "duplicate key 'amount'",
        ),
        (
            '{"output": {"type": "transfer"}, "user": {"id": "u"}, "user": {"id": "v"}}',
            "duplicate key 'user'",
        ),
        (
            '{"output": {"type": "tool_call", "arguments": "{\\"a\\": 1, \\"a\\": 2}"},'
            ' "user": {"id": "u"}}',
            "output.arguments: embedded JSON has duplicate key 'a'",
        ),
        ('{"output": ' + "[" * 5000 + "]" * 5000 + ', "user": {"id": "u"}}', "nested deeper"),
        (
            '{"output": {"a": ' + '{"b": ' * 100 + "1" + "}" * 100 + '}, "user": {"id": "u"}}',
            "nested deeper than 64 levels",
        ),
        ('{"output": {"text": "\\ud800"}, "user": {"id": "u"}}', "output.text: holds a lone"),
        ('{"output": {"\\udc01": 1}, "user": {"id": "u"}}', "output: key"),
        ('{"output": {}, "user": {"id": "u"}, "context": []}', "context: expected an object"),
        ('{"output": {}, "user": {"id": "u"}, "context": 0}', "context: expected an object"),
        ('{"output": {}, "user": {"id": "u"}, "context": ""}', "context: expected an object"),
        ('{"output": {}, "user": {"id": "u\\u200b"}}', "user.id: holds an invisible"),
        ('{"output": {}, "user": {"id": " u"}}', "user.id: has surrounding whitespace"),
        ('{"output": {}, "user": {"id": "\\uff55"}}', "user.id: is not in Unicode NFKC"),
    ],
)
def test_ambiguous_input_exits_2_and_is_audited(db: str, stdin: str, message: str) -> None:
    # nothing listens on :9: had OPA been asked, the answer would be a fallback (exit 1)
    result = pygate("--opa-url", "http://127.0.0.1:9", "--audit-db", db, "check",
                    "--service", "finance", "-", stdin=stdin)  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    record = _tail(db)
    assert record["policy_id"] == "pygate.input"
    assert message in str(record["reason"])


def test_oversize_output_exits_2_and_only_its_digest_is_audited(db: str) -> None:
    doc = json.dumps({"output": {"text": "z" * 5000 + "TAIL"}, "user": {"id": "u"}})
    result = pygate("--opa-url", "http://127.0.0.1:9", "--audit-db", db, "check",
                    "--service", "finance", "-", stdin=doc,
                    env_extra={"PYGATE_MAX_OUTPUT_BYTES": "1000"})  # fmt: skip
    assert result.returncode == 2
    assert "exceed the cap of 1000" in result.stderr
    record = _tail(db)
    assert record["output"]["not_stored"] is True  # type: ignore[index]
    assert "TAIL" not in json.dumps(record)


def test_check_without_a_service_refuses_unless_opted_in(opa: LocalOpa, db: str) -> None:
    env = {"PYGATE_SERVICE": ""}
    refused = pygate("--opa-url", opa.url, "--audit-db", db, "check", "-", stdin=_doc(10),
                     env_extra=env)  # fmt: skip
    assert refused.returncode == 2
    assert "context.service: this gate has no configured service" in refused.stderr
    assert _tail(db)["policy_id"] == "pygate.input"
    opted = pygate("--opa-url", opa.url, "--audit-db", db, "check", "--service-from-input",
                   "-", stdin=_doc(10), env_extra=env)  # fmt: skip
    assert opted.returncode == 0, opted.stderr
    conflict = pygate("--opa-url", opa.url, "--audit-db", db, "check", "--service",
                      "assistant", "-", stdin=_doc(10))  # fmt: skip
    assert conflict.returncode == 2
    assert "conflicts with this gate's 'assistant'" in conflict.stderr


def test_check_shows_the_canonical_actions(opa: LocalOpa, db: str) -> None:
    call = {
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "explain", "arguments": '{"topic": "fx"}'},
            }
        ]
    }
    doc = json.dumps({"output": call, "user": {"id": "u", "role": "analyst"}})
    text = pygate("--opa-url", opa.url, "--audit-db", db, "check", "--service", "assistant",
                  "-", stdin=doc)  # fmt: skip
    assert text.returncode == 0, text.stdout + text.stderr
    assert 'action:  tool_call explain {"topic": "fx"}  (openai.chat.tool_call)' in text.stdout
    as_json = pygate("--opa-url", opa.url, "--audit-db", db, "check", "--service", "assistant",
                     "--json", "-", stdin=doc)  # fmt: skip
    [action] = json.loads(as_json.stdout)["actions"]
    assert (action["name"], action["arguments"]) == ("explain", {"topic": "fx"})
    tail = json.loads(pygate("--audit-db", db, "audit", "tail", "-n", "1", "--json").stdout)
    assert tail["actions"] == [action]
