"""Your own policies: a project from `pygate init`, plugged into pygate's entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pygate import Gate
from pygate._errors import ConfigError
from pygate._resources import PROJECT_ROOT, decision_schema_path
from pygate.engine._opa_process import find_opa_binary
from pygate.policy._packages import adapter_module, user_packages
from pygate.policy._scaffold import scaffold
from tests.conftest import write_shop_package

TRANSFER = {"type": "transfer", "to": "acct-2"}


def pygate(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYGATE_OPA_BIN": str(find_opa_binary())}
    env.pop("PYGATE_POLICY_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "pygate", *args],
        input=stdin, capture_output=True, text=True, cwd=cwd, env=env, timeout=300,
    )  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Path:
    scaffold(tmp_path / "proj")
    return tmp_path / "proj"


def test_gate_with_policy_dir_runs_the_users_package(project: Path) -> None:
    with Gate("payments", policy_dir=project / "policies", audit=None) as gate:
        ok = gate.evaluate({**TRANSFER, "amount": 500}, {"id": "u1"})
        big = gate.evaluate({**TRANSFER, "amount": 5000}, {"id": "u1"})
        text = gate.evaluate({**TRANSFER, "amount": "5000"}, {"id": "u1"})
    assert ok.allowed, ok
    assert not big.allowed
    assert big.policy_id == "PAY-001"
    assert big.action == "show_user_limit"
    assert big.reason == "transfer of 5000 exceeds the limit of 1000"
    assert not text.allowed
    # The action contract refuses a non-number amount first; the package refuses it too.
    assert text.policy_id == "GATE-012"
    assert ("acme.payments", "transfer amount must be a number") in {
        (r.policy_id, r.reason) for r in text.refusals
    }


def test_plain_package_with_deny_strings_and_data_argument(tmp_path: Path) -> None:
    services = write_shop_package(tmp_path)
    with Gate("shop", policy_dir=tmp_path, data=services, audit=None) as gate:
        refund = gate.evaluate({"type": "refund"}, {"id": "u1"})
        sale = gate.evaluate({"type": "sale"}, {"id": "u1"})
    assert (refund.allowed, refund.reason, refund.policy_id) == (False, "no refunds", "mine.shop")
    assert sale.allowed


def test_package_the_service_names_but_nobody_defines_refuses(tmp_path: Path) -> None:
    (tmp_path / "x.rego").write_text("package mine.other\n\ndeny := set()\n")
    services = {"services": {"shop": {"packages": ["mine.typo"]}}}
    with Gate("shop", policy_dir=tmp_path, data=services, audit=None) as gate:
        d = gate.evaluate({"type": "sale"}, {"id": "u1"})
    assert not d.allowed
    assert d.policy_id == "GATE-016"


def test_pygate_library_is_a_dependency_not_a_copy(project: Path) -> None:
    """The project holds only its own package; pygate's entry point comes from pygate."""
    names = {p.name for p in project.rglob("*.rego")}
    assert names == {"policy.rego", "policy_test.rego"}
    assert user_packages(project / "policies") == ["acme.payments"]
    assert 'deny["acme.payments"] := data["acme"]["payments"].deny' in adapter_module(
        ["acme.payments"]
    )


def test_init_then_opa_test_check_and_bundle_build(project: Path) -> None:
    opa = str(find_opa_binary())
    tested = subprocess.run([opa, "test", "policies"], cwd=project, capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr
    ok = pygate("check", "example.json", cwd=project)
    assert ok.returncode == 0, ok.stderr
    refused = dict(json.loads((project / "example.json").read_text()))
    refused["output"] = {**TRANSFER, "amount": 5000}
    no = pygate("check", "--json", "-", cwd=project, stdin=json.dumps(refused))
    assert no.returncode == 1, no.stderr
    assert json.loads(no.stdout)["policy_id"] == "PAY-001"
    assert pygate("bundle", "keys", cwd=project).returncode == 0
    built = pygate("bundle", "build", "--json", cwd=project)
    assert built.returncode == 0, built.stdout + built.stderr
    path = Path(json.loads(built.stdout)["path"])
    with tarfile.open(path) as tar:
        names = set(tar.getnames())
        manifest = json.loads(tar.extractfile("/.manifest").read())  # type: ignore[union-attr]
    assert manifest["roots"] == ["acme", "pygate"]
    assert "/pygate/gate/gate.rego" in names
    assert "/acme/payments/policy.rego" in names
    assert not any(n.endswith("_test.rego") for n in names)


def test_policy_commands_follow_policy_dir(project: Path) -> None:
    validated = pygate("policy", "validate", "--json", cwd=project)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert json.loads(validated.stdout) == {"ok": True, "policies": 0, "services": 1, "actions": 1}
    indexed = pygate("--policy-dir", "policies", "policy", "index", "--check", cwd=project)
    assert indexed.returncode in (0, 2), indexed.stderr
    assert "policies/pygate/config/data.json" in indexed.stdout + indexed.stderr


def test_init_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="not an empty folder"):
        scaffold(tmp_path)
    out = pygate("init", "--json", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 2
    assert json.loads(out.stdout)["ok"] is False


def test_decision_schema_matches_the_model() -> None:
    schema = json.loads(decision_schema_path().read_text())
    from pygate._models import OpaResult, Refusal

    assert set(schema["properties"]) == set(OpaResult.model_fields)
    assert set(schema["$defs"]["refusal"]["properties"]) == set(Refusal.model_fields)
    required = {n for n, f in Refusal.model_fields.items() if f.is_required()}
    assert set(schema["$defs"]["refusal"]["required"]) == required
    assert decision_schema_path().is_relative_to(PROJECT_ROOT / "pygate")


def test_users_package_builds_on_pygates_library(tmp_path: Path) -> None:
    """lib.refusal from pygate's library: ids and reasons from the user's METADATA."""
    pkg = tmp_path / "acme" / "tools"
    pkg.mkdir(parents=True)
    (pkg / "tools.rego").write_text(
        "package acme.tools\n\nimport data.pygate.lib\n\n"
        "# METADATA\n# title: No deletes\n# custom:\n#   id: TOOL-001\n"
        "#   reason: 'tool {{.action}} deletes data'\n#   action: require_review\n"
        "#   priority: 5\n"
        'refusals contains r if {\n\tinput.output.action == "delete"\n'
        '\tr := lib.refusal(rego.metadata.chain(), {"action": input.output.action})\n}\n'
    )
    services = {"services": {"tools": {"packages": ["acme.tools"]}}}
    with Gate("tools", policy_dir=tmp_path, data=services, audit=tmp_path / "a.db") as gate:
        d = gate.evaluate({"type": "tool_call", "action": "delete"}, {"id": "u1"})
        assert gate.approvals is not None
        pending = gate.approvals.find()
    assert (d.allowed, d.policy_id, d.action) == (False, "TOOL-001", "require_review")
    assert d.reason == "tool delete deletes data"
    assert d.output_hash is not None  # a person can approve it (pygate.approvals)
    assert [a.audit_id for a in pending] == [d.audit_id]


def test_library_holds_every_package_the_library_imports() -> None:
    """Regression: the gate imported pygate.canonical and pygate.contracts, which the library
    list did not ship, so every decision of a user's project was GATE-000."""
    import re

    from pygate._resources import LIBRARY_PACKAGES, library_dirs

    imported = set()
    for folder in library_dirs():
        for rego in folder.glob("*.rego"):
            if rego.name.endswith("_test.rego"):
                continue
            imported |= set(re.findall(r"^import data\.pygate\.(\w+)", rego.read_text(), re.M))
    assert imported - {"config", "packages"} <= set(LIBRARY_PACKAGES)
