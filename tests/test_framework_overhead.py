"""The framework-overhead benchmark runs: ``--quick`` reports every contender (no speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pygate.engine._opa_process import PROJECT_ROOT

BENCH = PROJECT_ROOT / "benchmarks" / "framework_overhead.py"


def test_quick_run_reports_every_contender_and_adapter(tmp_path: Path) -> None:
    out = tmp_path / "overhead.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    frameworks = ["langchain", "openai_agents", "pydantic_ai"]
    assert sorted(report["overhead"]) == frameworks
    expected = {"direct.gate", "direct.async_gate"}
    expected |= {f"{fw}.{kind}" for fw in frameworks for kind in ("plain", "gated")}
    assert set(report["rows"]) == expected
    # every gated run decided once (and was audited), and so did every direct call
    rounds_and_warmup = report["rounds"] + 1
    assert report["audit_records"] == rounds_and_warmup * 5
