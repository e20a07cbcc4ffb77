"""The benchmark still runs: ``--quick`` completes and reports every row (never a speed)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from pygate.engine._opa_process import PROJECT_ROOT

BENCH = PROJECT_ROOT / "benchmarks" / "bench.py"


def _row_ids() -> list[str]:
    """``ROW_IDS`` as written in bench.py (read, not imported: importing starts nothing)."""
    tree = ast.parse(BENCH.read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            if isinstance(target, ast.Name) and target.id == "ROW_IDS" and node.value:
                return list(ast.literal_eval(node.value))
    raise AssertionError("ROW_IDS not found in bench.py")


def test_quick_benchmark_reports_every_row(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["mode"] == "quick"
    rows = {row["id"]: row for row in report["rows"]}
    assert sorted(rows) == sorted(_row_ids())
    for row in rows.values():
        assert row["n"] > 0, row["id"]
        assert row["p50_us"] > 0, row["id"]
    assert len(report["targets"]) == 10
    assert "floor.http_client" in done.stdout  # the table was printed


INTERLEAVED = PROJECT_ROOT / "benchmarks" / "interleaved.py"


def test_quick_interleaved_benchmark_reports_every_row(tmp_path: Path) -> None:
    """A few rounds of every contender in one process; ratios and load average reported."""
    out = tmp_path / "interleaved.json"
    done = subprocess.run(
        [sys.executable, str(INTERLEAVED), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["mode"] == "quick"
    assert report["run"]["rounds"] >= 3
    assert len(report["run"]["load_before"]) == 3
    rows = {row["id"]: row for row in report["rows"]}
    assert "floor" in rows
    assert rows["floor"]["x_floor"] == 1.0
    for row in rows.values():
        if "skipped" in row:
            # only the optional tiers may be missing, and each says why
            assert "inprocess" in row["id"] or row["id"].startswith("peer."), row
            continue
        assert row["n"] > 0, row["id"]
        assert row["p50_us"] > 0, row["id"]
    assert {t["target"] for t in report["targets"]} >= {"Gate.evaluate no audit ÷ floor"}
    assert "load average" in done.stdout


def test_quick_server_tuning_benchmark_runs_and_servers_agree(tmp_path: Path) -> None:
    """benchmarks/opa_server_tuning.py: three OPA settings, the same decisions (never a speed)."""
    out = tmp_path / "tuning.json"
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "opa_server_tuning.py"),
         "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert len(report["scenarios"]) == 3
    for scenario in report["scenarios"].values():
        assert scenario["identical"] is True
        assert set(scenario["rows"]) == {"defaults", "store", "store+gogc"}
