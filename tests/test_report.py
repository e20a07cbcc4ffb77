"""``pygate audit report``: one self-contained HTML file that renders in headless Chromium."""

from __future__ import annotations

import json
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

from pygate import Decision, Refusal, SqliteAuditLog
from pygate.audit import _analytics as analytics
from pygate.audit._report import build_report
from pygate.audit._synthetic import generate_history
from pygate.audit._trends import shadow_refusals, trends
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


def _artefacts() -> Path:
    """Where tests leave files for people to look at (the report's screenshot):
    ``PYGATE_TEST_ARTEFACTS``, else ``build/test-artefacts`` in the project (git-ignored)."""
    folder = Path(
        os.environ.get("PYGATE_TEST_ARTEFACTS") or PROJECT_ROOT / "build" / "test-artefacts"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


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
    "How fast are decisions?",
    "Decision latency per",
    "Did a bundle publish change the refusals?",
    "by bundle revision",
    "Per-service trends",
    "Shadow policies: what would have been refused",
    "Drill-down: the audit ids behind each bar",
)

#: Charts of every report: rate, policies, actions, funnel, incidents, latency over time,
#: latency per service, refusals by revision, per-service trends (+ shadow, + replay).
CHARTS = 9


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
    assert parser.tags.count("svg") == CHARTS
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
    shot = _artefacts() / "report.png"
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
    assert len(re.findall(r"<svg\b", dom.stdout)) == CHARTS
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


def _links_resolve(page: str) -> list[str]:
    """Every in-page link target (``href="#x"``) that no element's id names."""
    ids = set(re.findall(r"""\bid=['"]([^'"]+)['"]""", page))
    targets = re.findall(r"""href=['"]#([^'"]+)['"]""", page)
    assert targets, "no drill-down links at all"
    return [t for t in targets if t not in ids]


def test_every_bar_links_to_the_audit_ids_behind_it(report_file: Path) -> None:
    page = report_file.read_text()
    assert _links_resolve(page) == []
    # The refusal-rate bars, the policy bars and the latency bars all link somewhere.
    for kind in ("refused", "policy", "slow", "service"):
        assert f'href="#drill-{kind}-' in page or f"href='#drill-{kind}-" in page, kind
    assert "pygate audit explain ID" in page
    # Readable timestamps: no raw ISO times with offsets in the tables.
    assert "+00:00</td>" not in page
    assert re.search(r"<td>20\d\d-\d\d-\d\d \d\d:\d\d UTC</td>", page)


def _decision(day: int, allowed: bool, revision: str, **extra: object) -> Decision:
    return Decision(
        allowed=allowed,
        reason="allowed" if allowed else "Transfer exceeds",
        policy_id=None if allowed else "FIN-002",
        action=None if allowed else "show_user_limit",
        refusals=[]
        if allowed
        else [Refusal(policy_id="FIN-002", reason="Transfer exceeds", action="show_user_limit")],
        service="finance",
        user_id="u1",
        bundle_revision=revision,
        latency_ms=1.0 + day,
        decided_at=NOW - timedelta(days=10 - day),
        **extra,  # type: ignore[arg-type]
    )


def test_a_publish_that_raises_refusals_shows_as_a_jump_by_revision(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "r.db")
    items = []
    for day in range(10):
        revision = "r-old" if day < 5 else "r-new"
        refused = 1 if day < 5 else 8  # the new bundle refuses far more
        for n in range(10):
            items.append((_decision(day, n >= refused, revision), {"type": "transfer"}))
    log.append_many(items)
    trend = trends(log)
    assert [r["revision"] for r in trend["revisions"]] == ["r-old", "r-new"]
    refused = [b["refused_by_revision"] for b in trend["buckets"]]
    assert refused[4] == {"r-old": 1}
    assert refused[5] == {"r-new": 8}
    assert trend["buckets"][9]["p50"] == 10.0
    page = build_report(log, _known(), now=NOW)
    assert "r-new published" in page
    assert "r-old" in page
    assert _links_resolve(page) == []
    assert page.count("<svg") == CHARTS
    log.close()


def test_shadow_refusals_are_shown_apart_as_would_have_refused(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "s.db")
    shadow = Refusal(policy_id="FIN-LOWER", reason="over 500", action="log_refusal",
                     shadow=True)  # fmt: skip
    written = []
    for day in range(4):
        d = _decision(day, True, "r1").model_copy(update={"refusals": [shadow]})
        written.append(log.append(d, {"type": "transfer", "amount": 700}))
    log.append(_decision(5, False, "r1"), {"type": "transfer", "amount": 5000})
    data = shadow_refusals(log)
    [policy] = data["policies"]
    assert policy["policy_id"] == "FIN-LOWER"
    assert policy["would_refuse"] == 4
    assert policy["of_which_allowed"] == 4
    assert policy["audit_ids"] == [d.audit_id for d in written]
    page = build_report(log, _known(), now=NOW)
    assert "no shadow refusals recorded" not in page
    assert "Would have refused (shadow)" in page
    assert "drill-shadow-FIN-LOWER" in page
    assert page.count("<svg") == CHARTS + 1
    assert _links_resolve(page) == []
    log.close()


REPLAY = {
    "candidate": "candidate.tar.gz", "candidate_revision": "r2", "records": 10, "replayed": 9,
    "unchanged": 7, "allow_to_refuse": 2, "refuse_to_allow": 0, "changed_policies": 0,
    "not_replayable": 1, "not_replayable_by_cause": {"redacted": 1},
    "redacted_paths": {"output.password": 1},
    "by_service": [{"service": "finance", "replayed": 9, "unchanged": 7, "not_replayable": 1,
                    "allow_to_refuse": 2, "refuse_to_allow": 0, "changed_policies": 0}],
    "by_policy": [{"policy_id": "FIN-002", "allow_to_refuse": 2, "refuse_to_allow": 0,
                   "changed_policies": 0, "no_longer_refuses": 0,
                   "audit_ids": {"allow_to_refuse": ["aaaa1111", "bbbb2222"]}, "examples": {}}],
    "flips": [], "seconds": 0.5,
}  # fmt: skip


def test_the_replay_section_shows_flips_with_their_audit_ids(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "p.db")
    log.append(_decision(1, True, "r1"), {"type": "transfer", "amount": 700})
    without = build_report(log, _known(), now=NOW)
    assert "Replay: what the candidate bundle would change" not in without
    page = build_report(log, _known(), now=NOW, replay=REPLAY)
    assert "Replay: what the candidate bundle would change" in page
    assert "2 allow→refuse" in page
    assert "1 redacted" in page
    assert "drill-replay-FIN-002" in page
    assert "<code>aaaa1111</code>" in page
    assert page.count("<svg") == CHARTS + 1
    assert _links_resolve(page) == []
    log.close()


def test_report_cli_takes_a_saved_replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = SqliteAuditLog(tmp_path / "h.db")
    log.append(_decision(1, True, "r1"), {"type": "transfer", "amount": 700})
    saved = tmp_path / "replay.json"
    saved.write_text(json.dumps(REPLAY))
    monkeypatch.setenv("PYGATE_AUDIT_DB", str(log.path))
    out = tmp_path / "r.html"
    result = CliRunner().invoke(
        main, ["audit", "report", "--out", str(out), "--replay", str(saved)]
    )
    assert result.exit_code == 0, result.output
    assert "drill-replay-FIN-002" in out.read_text()
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    failed = CliRunner().invoke(main, ["audit", "report", "--out", str(out), "--replay", str(bad)])
    assert failed.exit_code == 2
    assert "not the JSON of `pygate replay --json`" in failed.output
