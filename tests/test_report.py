"""``pygate audit report``: one self-contained HTML file that renders in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from pygate import Decision, SqliteAuditLog
from pygate.audit import _analytics as analytics
from pygate.audit._report import build_report
from pygate.audit._synthetic import generate_history
from pygate.cli._main import main
from pygate.engine._opa_process import PROJECT_ROOT, find_opa_binary

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


def _chromium() -> str | None:
    named = os.environ.get("PYGATE_CHROMIUM")
    if named and Path(named).is_file():
        return named
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.refs += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href")]


# Synthetic history is generated at a fixed `now` and seed, so the report tests see the same
# records at any hour: 21:15 UTC is an hour at which the old generator put its only outage in a
# quiet stretch with no decisions, and the report lost its "Engine incidents" section.
NOW = datetime(2026, 3, 14, 21, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    log = SqliteAuditLog(folder / "h.db")
    generate_history(log, 5000, days=10, seed=7, now=NOW)
    hostile = "<script>alert('x')</script>"
    log.append(
        Decision(
            allowed=False,
            reason=hostile,
            policy_id="AST-001",
            action="log_refusal",
            service="assistant",
            user_id="u<b>",
            decided_at=NOW,
        ),
        {"type": "text", "text": hostile},
    )
    out = folder / "report.html"
    out.write_text(build_report(log, _known(), now=NOW), encoding="utf-8")
    return out


_KNOWN: dict[str, dict[str, object]] = {}


def _known() -> dict[str, dict[str, object]]:
    """The repo's policies (``opa inspect``), read once per test session."""
    if not _KNOWN:
        _KNOWN.update(analytics.known_policies(PROJECT_ROOT / "rego", find_opa_binary()))
    return _KNOWN


SECTIONS = (
    "How often are outputs refused?",
    "Refusal rate per",
    "Which policies trigger most, and which never do?",
    "Refusals per policy",
    "Refusals by action",
    "What do users do after a refusal?",
    "What users did within",
    "Engine health",
    "Engine incidents",
)


@pytest.mark.parametrize("hour", [0, 6, 14, 21, 22])
def test_report_fixture_has_engine_incidents_at_any_hour(hour: int, tmp_path: Path) -> None:
    """The generator's outages always hold decisions, whatever the hour of `now`.

    Before the fix an outage was a random window of the last `days` days; at 00:00, 06:00,
    14:00 and 22:00 UTC (seed 7) it fell where no decision was and the history had none.
    """
    now = NOW.replace(hour=hour, minute=0)
    log = SqliteAuditLog(tmp_path / "h.db")
    written = generate_history(log, 5000, days=10, seed=7, now=now)
    health = analytics.engine_health(log)
    assert written["fallback"] > 0
    assert health["fallback"] == written["fallback"]
    assert health["incidents"], "an outage in the generated history holds no decision"
    page = build_report(log, _known(), now=now)
    for title in SECTIONS:
        assert title in page
    assert "no engine incidents" not in page
    log.close()


def test_report_shows_every_section_when_empty(tmp_path: Path) -> None:
    """An empty log (and one with no incidents) still shows each heading, saying it is empty."""
    log = SqliteAuditLog(tmp_path / "empty.db")
    page = build_report(log, _known(), now=NOW)
    for title in SECTIONS:
        assert title in page
    assert "no engine incidents: the policy engine decided every request" in page
    assert "no decisions recorded" in page
    log.append(
        Decision(allowed=True, reason="allowed", service="finance", user_id="u1", decided_at=NOW),
        {"type": "transfer", "amount": 5},
    )
    page = build_report(log, _known(), now=NOW + timedelta(minutes=1))
    assert "Engine incidents" in page
    assert "no engine incidents" in page
    assert "no decisions recorded" not in page
    log.close()


def test_report_is_one_self_contained_page(report_file: Path) -> None:
    page = report_file.read_text()
    parser = _Tags()
    parser.feed(page)
    assert parser.tags.count("svg") == 5  # rate, policies, actions, funnel, incidents
    assert parser.tags.count("table") >= 8
    assert "script" not in parser.tags  # no JavaScript at all
    external = [r for r in parser.refs if not r.startswith("#")]
    assert external == []  # nothing fetched from anywhere
    assert "<script>alert" not in page  # log content is escaped
    assert "&lt;script&gt;alert" in page
    assert "hash chain verified" in page
    for title in SECTIONS:
        assert title in page
    assert "no engine incidents" not in page


def test_report_renders_in_headless_chromium(report_file: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed and scripts/install-chromium.sh could not add it")
    shot = tmp_path / "report.png"
    base = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    run = subprocess.run(
        [*base, "--window-size=1200,2400", f"--screenshot={shot}", report_file.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Page load failed" not in run.stderr
    with Image.open(shot) as image:
        assert image.size == (1200, 2400)
        colors = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colors is not None
    assert len(colors) > 50  # charts and text, not a blank page
    white = max(n for n, c in colors if c == (255, 255, 255))
    assert white < 0.97 * 1200 * 2400
    dom = subprocess.run(
        [*base, "--dump-dom", report_file.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert len(re.findall(r"<svg\b", dom.stdout)) == 5
    assert "pygate refusal report" in dom.stdout


def test_report_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = SqliteAuditLog(tmp_path / "h.db")
    generate_history(log, 500, days=3, now=NOW)
    monkeypatch.setenv("PYGATE_AUDIT_DB", str(log.path))
    out = tmp_path / "r.html"
    result = CliRunner().invoke(main, ["audit", "report", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 10_000
    bad = CliRunner().invoke(main, ["audit", "report", "--out", str(out), "--window", "x"])
    assert bad.exit_code == 2
