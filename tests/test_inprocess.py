"""The in-process tier decides exactly as the sidecar does, and fails closed like it.

Both evaluate the repository's ``rego/``: the sidecar is a real ``opa run`` (the session
``opa`` fixture), the in-process engine OPA's Go engine at the same version loaded into
this process (``pygate/engine/_inprocess.py``, built by ``./dev setup``). The corpus: the
seed scenarios, every adversarial variant and control, host facts, and every snippet of
``tests/corpus`` as an assistant output, for several users and quota figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pygate import AsyncGate, ConfigError, Gate, LocalOpa
from pygate._core import BATCH_PATH, DECISION_PATH, request_body
from pygate._errors import BadEngineResponse, EngineTimeout, EngineUnavailable
from pygate.cli._demo import scenarios
from pygate.engine._inprocess import InProcessEngine, find_inprocess_library, library_name
from pygate.engine._opa_process import OPA_VERSION
from tests import adversarial_cases as cases

JSON = dict[str, Any]
CORPUS = Path(__file__).resolve().parent / "corpus"


def _library_or_skip() -> None:
    """Tests need the built library; in CI (``CI`` set) a missing one is a failure."""
    try:
        find_inprocess_library()
    except ConfigError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"in-process engine not built here: {exc}")


@pytest.fixture(scope="module")
def engine() -> Iterator[InProcessEngine]:
    _library_or_skip()
    spec = LocalOpa(binary=False)
    eng = InProcessEngine(spec)
    spec.stop()
    yield eng
    eng.close()


def corpus() -> list[JSON]:
    """At least 500 input documents, covering every family the suite knows."""
    users = [cases.ANALYST, cases.DEVELOPER,
             {"id": "rex", "role": "analyst", "account_status": "under_review",
              "transaction_limit": 1000}]  # fmt: skip
    docs: list[JSON] = []

    def add(service: str, user: JSON, output: JSON, usage: int = 0) -> None:
        docs.append({"output": output, "user": user,
                     "context": {"service": service, "usage_today": usage}})  # fmt: skip

    for s in scenarios("corpus"):
        for usage in (0, 99, 100, 10_000):
            add(s.service, s.user, s.output, usage)
    families = [
        ("finance", cases.transfer_over_limit()),
        ("finance", cases.restricted_asset()),
        ("assistant", cases.code_for_analyst()),
        ("assistant", cases.tool_outside_allowlist()),
    ]
    for service, family in families:
        for outputs in family.values():
            for output in outputs:
                for user in users[:2]:
                    add(service, user, output)
    for name, args in (("transfer", {"amount": 500, "to": "acct-2"}),
                       ("recommendation", {"asset": "GLOBEX"}),
                       ("analyze", {"topic": "rates"})):  # fmt: skip
        for output in cases.envelopes(name, args):
            for service in ("finance", "assistant"):
                add(service, cases.ANALYST, output)
    for user_docs in cases.host_facts().values():
        for user in user_docs:
            add("finance", user, {"type": "transfer", "amount": 10, "to": "acct-2"})
    for path in sorted(CORPUS.glob("*.jsonl")):
        if (
            path.name == "decisions.jsonl"
        ):  # whole decision documents (test_decision_corpus), no text
            continue
        for i, line in enumerate(path.read_text().splitlines()):
            if not line.strip():
                continue
            text = json.loads(line)["text"]
            kind = "code" if i % 3 == 0 else "text"
            add("assistant", users[i % 2], {"type": kind, "text": text})
    return docs


def sidecar(opa: LocalOpa, path: str, body: bytes) -> Any:
    request = urllib.request.Request(
        f"{opa.url}/v1/data/{path}", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response).get("result")


def test_corpus_is_large_enough() -> None:
    assert len(corpus()) >= 500


def test_every_corpus_decision_is_identical_to_the_sidecar(
    opa: LocalOpa, engine: InProcessEngine
) -> None:
    docs = corpus()
    differ = []
    for doc in docs:
        body = request_body(doc)
        mine = json.loads(engine.post(DECISION_PATH, body, 5.0)[1]).get("result")
        theirs = sidecar(opa, DECISION_PATH, body)
        if mine != theirs:
            differ.append((doc, mine, theirs))
    assert not differ, f"{len(differ)}/{len(docs)} differ; first: {differ[0]}"
    # Not a vacuous comparison: both allow and refuse, with several policies.
    results = [json.loads(engine.post(DECISION_PATH, request_body(d), 5.0)[1]) for d in docs]
    assert {r["result"]["allowed"] for r in results} == {True, False}


def test_batch_entry_point_is_identical_too(opa: LocalOpa, engine: InProcessEngine) -> None:
    items = corpus()[:150]
    body = json.dumps({"input": {"items": items}}).encode()
    mine = json.loads(engine.post(BATCH_PATH, body, 10.0)[1])["result"]
    assert mine == sidecar(opa, BATCH_PATH, body)
    assert len(mine["decisions"]) == 150


def test_gate_on_the_inprocess_engine_gives_the_sidecars_decisions(
    opa: LocalOpa, tmp_path: Path
) -> None:
    """Long timeouts: on a loaded machine a late answer must not become a fallback refusal."""
    _library_or_skip()
    keep = {"allowed", "reason", "policy_id", "action", "refusals", "message", "actions"}
    with (
        Gate(
            engine="inprocess", allow_caller_service=True, audit=tmp_path / "a.db", timeout=30
        ) as mine,
        Gate(
            opa_url=opa.url, allow_caller_service=True, audit=tmp_path / "b.db", timeout=30
        ) as theirs,
    ):
        assert mine.engine is not None
        for s in scenarios("gate"):
            context = {**s.context, "service": s.service}
            a = mine.evaluate(s.output, s.user, context)
            b = theirs.evaluate(s.output, s.user, context)
            assert a.model_dump(include=keep) == b.model_dump(include=keep), s.name
            assert a.allowed is s.expect_allowed, s.name
            assert a.audit_id is not None  # audited like any decision


def test_async_gate_and_batches_on_the_inprocess_engine(tmp_path: Path) -> None:
    _library_or_skip()
    items = [({"type": "transfer", "amount": a, "to": "x"}, {**cases.ANALYST, "id": f"u{a}"})
             for a in (10, 5000, 20)]  # fmt: skip

    async def run() -> tuple[list[bool], list[bool]]:
        async with AsyncGate(
            "finance", engine="inprocess", audit=tmp_path / "a.db", timeout=30
        ) as gate:
            one = await asyncio.gather(*(gate.evaluate(o, u) for o, u in items))
            many = await gate.evaluate_many(items)
            return [d.allowed for d in one], [d.allowed for d in many]

    assert asyncio.run(run()) == ([True, False, True], [True, False, True])


def test_user_policy_project_and_data_load_as_in_the_sidecar(tmp_path: Path) -> None:
    """A user's policy folder (with pygate's library, tests ignored) and ``data=``."""
    _library_or_skip()
    pkg = tmp_path / "mine" / "shop"
    pkg.mkdir(parents=True)
    (pkg / "shop.rego").write_text(
        'package mine.shop\n\ndeny contains "no refunds" if input.output.type == "refund"\n'
    )
    (pkg / "shop_test.rego").write_text("package mine.shop_test\n\nbroken syntax here\n")
    declared = {"refund": {"arguments": {}}, "sale": {"arguments": {}}}
    services = {"services": {"shop": {"packages": ["mine.shop"], "actions": declared}}}
    with Gate(
        "shop", engine="inprocess", policy_dir=tmp_path, data=services, audit=None, timeout=30
    ) as gate:
        refund = gate.evaluate({"type": "refund"}, {"id": "u1"})
        sale = gate.evaluate({"type": "sale"}, {"id": "u1"})
    assert (refund.allowed, refund.reason, refund.policy_id) == (False, "no refunds", "mine.shop")
    assert sale.allowed


def test_engine_errors_fail_closed(engine: InProcessEngine, tmp_path: Path) -> None:
    with pytest.raises(BadEngineResponse, match="not prepared"):
        engine.post("pygate/gate/nothing", b'{"input": {}}', 1.0)
    with pytest.raises(BadEngineResponse, match="not JSON"):
        engine.post(DECISION_PATH, b"{nope", 1.0)
    _library_or_skip()
    gate = Gate("finance", engine="inprocess", audit=tmp_path / "a.db")
    assert gate.engine is not None
    gate.engine.close()
    with pytest.raises(EngineUnavailable):
        gate.engine.post(DECISION_PATH, b'{"input": {}}', 1.0)
    decision = gate.evaluate({"type": "transfer", "amount": 10, "to": "a"}, cases.ANALYST)
    assert not decision.allowed
    assert decision.fallback
    assert decision.policy_id == "pygate.engine"
    gate.close()


def test_a_forked_child_refuses_instead_of_calling_a_dead_go_runtime(tmp_path: Path) -> None:
    _library_or_skip()
    gate = Gate("finance", engine="inprocess", audit=None, timeout=30)
    assert gate.evaluate({"type": "transfer", "amount": 10, "to": "a"}, cases.ANALYST).allowed
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only for a fail-closed refusal naming the fork
        try:
            d = gate.evaluate({"type": "transfer", "amount": 10, "to": "a"}, cases.ANALYST)
            os._exit(0 if d.fallback and not d.allowed and "forked" in d.reason else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    gate.close()


def test_a_timeout_cancels_the_evaluation(engine: InProcessEngine) -> None:
    context = {"service": "assistant", "usage_today": 0}
    big = {"output": {"type": "text", "text": "x = 1\n" * 20_000}, "user": cases.ANALYST}
    big["context"] = context
    with pytest.raises(EngineTimeout):
        engine.post(DECISION_PATH, request_body(big), 1e-6)


def test_inprocess_cannot_go_with_an_opa_url(opa: LocalOpa) -> None:
    with pytest.raises(ConfigError, match="cannot go with opa_url"):
        Gate("finance", engine="inprocess", opa_url=opa.url, audit=None)


def test_a_missing_library_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a file"):
        find_inprocess_library(tmp_path / "x.so")


def test_an_unknown_engine_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="'engine'"):
        Gate("finance", engine="wasm", audit=None)


def test_a_second_library_is_refused_not_loaded(engine: InProcessEngine, tmp_path: Path) -> None:
    """Two Go runtimes in one process crash it: a second library is a ConfigError."""
    other = tmp_path / "libother.so"
    other.write_bytes(engine.library.read_bytes()[:16])
    with pytest.raises(ConfigError, match="already loaded"):
        InProcessEngine(LocalOpa(binary=False), library=other)


def test_cli_installs_the_inprocess_engine_into_the_user_cache(
    engine: InProcessEngine, tmp_path: Path
) -> None:
    """`pygate opa install --inprocess` reuses a library already built for this source."""
    cache = tmp_path / "cache" / "pygate" / "opa" / OPA_VERSION
    cache.mkdir(parents=True)
    (cache / library_name()).write_bytes(engine.library.read_bytes())
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-m", "pygate", "opa", "install", "--inprocess", "--json"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["path"] == str((cache / library_name()).resolve())
