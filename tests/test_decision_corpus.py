"""Every input of the decision corpus still gets exactly the decision document it got.

``tests/corpus/decisions.jsonl`` holds generated gate inputs (seed scenarios, adversarial
families, detection texts, malformed inputs, generated variants, approvals) and the whole
document a real OPA answered for each when the corpus was written
(``tests/corpus/decisions.py``). Making the Rego cheaper must not change one of them: each
input is re-evaluated through a real OPA, on the path the Python client queries and in
batches through ``data.pygate.gate.batch``, and the documents are compared whole.
"""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest

from pygate import LocalOpa
from pygate._core import BATCH_PATH, DECISION_PATH
from tests.corpus import decisions as corpus

ROWS = corpus.load()
REGENERATE = "if the change is intended, rewrite it with `python tests/corpus/decisions.py`"


def _post(conn: http.client.HTTPConnection, path: str, document: Any) -> Any:
    body = json.dumps({"input": document}, separators=(",", ":"), allow_nan=False)
    conn.request("POST", f"/v1/data/{path}", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    payload = response.read()
    assert response.status == 200, payload[:200]
    return json.loads(payload).get("result")


def test_the_corpus_is_large_and_varied() -> None:
    assert len(ROWS) >= 500
    decisions = [r["decision"] for r in ROWS]
    assert sum(d["allowed"] for d in decisions) >= 100
    assert sum(not d["allowed"] for d in decisions) >= 400
    ids = {r["policy_id"] for d in decisions for r in d["refusals"]}
    for expected in ("FIN-001", "FIN-002", "FIN-004", "AST-001", "AST-002", "AST-003",
                     "GATE-001", "GATE-009", "GATE-010", "GATE-011", "GATE-012", "GATE-014",
                     "FIN-DATA-001", "AST-DATA-001"):  # fmt: skip
        assert expected in ids
    assert any("approvals_applied" in d for d in decisions)
    assert any("review" in d for d in decisions)


def test_every_decision_is_identical(opa: LocalOpa) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", opa.port, timeout=60)
    try:
        differ = [
            r["name"] for r in ROWS if _post(conn, DECISION_PATH, r["input"]) != r["decision"]
        ]
    finally:
        conn.close()
    assert differ == [], f"{len(differ)} of {len(ROWS)} decisions changed; {REGENERATE}"


@pytest.mark.parametrize("start", range(0, len(ROWS), 250))
def test_every_decision_is_identical_in_a_batch(opa: LocalOpa, start: int) -> None:
    rows = ROWS[start : start + 250]
    conn = http.client.HTTPConnection("127.0.0.1", opa.port, timeout=60)
    try:
        answer = _post(conn, BATCH_PATH, {"items": [r["input"] for r in rows]})
    finally:
        conn.close()
    differ = [
        r["name"] for r, d in zip(rows, answer["decisions"], strict=True) if d != r["decision"]
    ]
    assert differ == [], f"{len(differ)} of {len(rows)} batch decisions changed; {REGENERATE}"
