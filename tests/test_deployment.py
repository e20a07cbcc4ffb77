"""The multi-service deployment drill, as plain processes on 127.0.0.1 (no Docker needed).

Two example services, each with its own OPA sidecar polling one signed bundle, one shared
audit database (PostgreSQL when available, as in production; SQLite otherwise). The
scenario itself lives in scripts/deployment-drill.py, so the compose deployment runs the
very same steps; here it must pass end to end.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pygate.engine._opa_process import PROJECT_ROOT
from tests.conftest import load_drill


@pytest.fixture
def audit_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if os.environ.get("PYGATE_TEST_POSTGRES_URL"):
        return str(request.getfixturevalue("pg_schema_url"))
    return str(tmp_path / "audit.db")


def test_two_services_one_signed_bundle_hot_updates_and_failures(
    tmp_path: Path, audit_db: str
) -> None:
    drill = load_drill()
    with drill.process_deployment(tmp_path, audit_db) as deployment:
        result = drill.run_drill(deployment, tmp_path)
    assert len(result.revisions) == 2
    assert result.revisions[0] != result.revisions[1]
    assert [step[:2] for step in result.steps if step[0].isdigit()] == [
        "1.", "2.", "3.", "3.", "3.", "4.", "5.", "6.",
    ]  # fmt: skip
    assert set(result.propagation[0]) == {"finance", "assistant"}
    assert result.audit_records > 0


def test_the_drill_notices_a_sidecar_that_accepts_a_tampered_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A drill that cannot fail proves nothing. Without `signing:` a sidecar still checks a
    # bundle that carries a signature (OPA verifies any .signatures.json it finds), but it
    # accepts one without: the unsigned-bundle step must catch that.
    drill = load_drill()
    config = tmp_path / "no-signing.yaml"
    text = (PROJECT_ROOT / "deploy" / "opa-config.yaml").read_text()
    config.write_text(text.replace("    signing:\n      keyid: pygate\n", ""))
    deployment = drill.ProcessDeployment(tmp_path, str(tmp_path / "audit.db"))
    original = drill.sidecar_command

    def unsigned(port: int, **kwargs: object) -> list[str]:
        return list(original(port, config=config, **kwargs))

    monkeypatch.setattr(drill, "sidecar_command", unsigned)
    try:
        deployment.up()
        with pytest.raises(drill.DrillFailure, match="over the new limit, got None"):
            drill.run_drill(deployment, tmp_path)
    finally:
        deployment.down()
