"""``pygate serve``: the library's decisions over HTTP, on a real port, with a real OPA and audit.

The service runs in a thread on 127.0.0.1 (``serve_until``, the code ``pygate serve`` runs);
clients are httpx, ``curl`` (a client that is not Python) and schemathesis, which fuzzes the
service's own OpenAPI document against it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from pygate import AsyncGate, Gate, LocalOpa, Settings, open_audit
from pygate._errors import ConfigError
from pygate.cli._main import main
from pygate.integrations._serve_api import openapi_document
from pygate.integrations.serve import (
    DecisionService,
    Limits,
    TokenTable,
    create_app,
    hash_token,
    serve_until,
)
from tests.conftest import ANALYST

FIN_TOKEN = "tok-finance-" + "f" * 20
AST_TOKEN = "tok-assistant-" + "a" * 20
TOKENS = TokenTable([("finance", hash_token(FIN_TOKEN)), ("assistant", hash_token(AST_TOKEN))])
SMALL = {"type": "transfer", "amount": 10}
LARGE = {"type": "transfer", "amount": 5000}
TOOL = {"type": "tool_call", "action": "delete_records", "table": "users"}
OPENAI = {
    "tool_calls": [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "transfer", "arguments": '{"amount": 20}'},
        }
    ]
}
#: Fields of a Decision that differ between two decisions of the same request.
VOLATILE = {"audit_id", "latency_ms", "decided_at", "decision_id"}


class Served:
    """A DecisionService on a real port, served from a thread by ``serve_until``."""

    def __init__(self, service: DecisionService) -> None:
        self.service = service
        self.url = ""
        self._up = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="pygate-serve-test", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await serve_until(self.service, "127.0.0.1", 0, self._stop, self._listening)

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by start()
            self._failed = exc
            self._up.set()

    def _listening(self, url: str) -> None:
        self.url = url
        self._up.set()

    def start(self) -> Served:
        self._thread.start()
        assert self._up.wait(30), "the service did not start"
        if self._failed is not None:
            raise self._failed
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def client(self, token: str | None = FIN_TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture
def serve(opa: LocalOpa, tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start services (on the session OPA, a fresh SQLite audit log); stopped at teardown."""
    started: list[Served] = []

    def start(limits: Limits | None = None, **settings: Any) -> Served:
        settings.setdefault("opa_url", opa.url)
        settings.setdefault("audit_db", str(tmp_path / "audit.db"))
        # A loaded shared machine must not turn a slow OPA into a refusal the test misreads.
        settings.setdefault("timeout", 5)
        service = DecisionService(Settings(**settings), TOKENS, limits=limits)
        served = Served(service).start()
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


@pytest.fixture
def served(serve: Callable[..., Served]) -> Served:
    return serve()


def _records(served: Served) -> list[Any]:
    log = open_audit(served.service.settings.audit_db)
    try:
        return list(log.records())
    finally:
        log.close()


def _stable(decision: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in decision.items() if k not in VOLATILE}


# -- the same decisions as the library ----------------------------------------------------------
@pytest.mark.parametrize(
    ("token", "service", "output", "user"),
    [
        (FIN_TOKEN, "finance", SMALL, ANALYST),
        (FIN_TOKEN, "finance", LARGE, ANALYST),
        (FIN_TOKEN, "finance", OPENAI, ANALYST),
        (AST_TOKEN, "assistant", TOOL, {"id": "ana", "role": "analyst"}),
        (AST_TOKEN, "assistant", "Here is the summary you asked for.", {"id": "ana"}),
    ],
)
def test_a_decision_over_http_is_the_librarys(
    served: Served,
    opa: LocalOpa,
    tmp_path: Path,
    token: str,
    service: str,
    output: Any,
    user: dict[str, Any],
) -> None:
    with served.client(token) as client:
        reply = client.post("/v1/decisions", json={"output": output, "user": user})
    body = reply.json()
    with Gate(service, opa_url=opa.url, audit=tmp_path / "library.db", timeout=5) as gate:
        library = gate.evaluate(output, user).model_dump(mode="json")
    assert reply.status_code == 200
    assert _stable(body) == _stable(library)
    assert body["service"] == service
    # Audited, as the library audits: the record is the one the answer names.
    [record] = [r for r in _records(served) if r.audit_id == body["audit_id"]]
    assert (record.service, record.allowed, record.policy_id) == (
        service, body["allowed"], body["policy_id"],
    )  # fmt: skip


def test_allowed_decisions_carry_the_canonical_actions_to_run(served: Served) -> None:
    with served.client() as client:
        body = client.post("/v1/decisions", json={"output": OPENAI, "user": ANALYST}).json()
    assert body["allowed"] is True
    assert [(a["name"], a["arguments"]) for a in body["actions"]] == [("transfer", {"amount": 20})]


def test_async_gate_and_serve_agree_on_a_batch(
    served: Served, opa: LocalOpa, tmp_path: Path
) -> None:
    items = [
        {"output": SMALL, "user": ANALYST},
        {"output": LARGE, "user": ANALYST},
        {"output": 42, "user": ANALYST},  # a bad item is refused alone
        {"output": SMALL, "user": ANALYST, "context": {"service": "assistant"}},
    ]
    with served.client() as client:
        reply = client.post("/v1/decisions/batch", json={"items": items})

    async def library() -> list[dict[str, Any]]:
        async with AsyncGate(
            "finance", opa_url=opa.url, audit=tmp_path / "lib.db", timeout=5
        ) as gate:
            return [d.model_dump(mode="json") for d in await gate.evaluate_many(items)]

    expected = asyncio.run(library())
    assert reply.status_code == 200
    body = reply.json()
    assert body["allowed"] is False  # not every item is allowed
    assert [_stable(d) for d in body["decisions"]] == [_stable(d) for d in expected]
    assert [d["allowed"] for d in body["decisions"]] == [True, False, False, False]
    assert body["decisions"][2]["policy_id"] == "pygate.input"
    assert "context.service" in body["decisions"][3]["reason"]


def test_a_batch_of_allows_is_allowed_and_limits_hold(serve: Callable[..., Served]) -> None:
    served = serve(Limits(max_batch_items=2))
    with served.client() as client:
        ok = client.post(
            "/v1/decisions/batch", json={"items": [{"output": SMALL, "user": ANALYST}]}
        )
        too_many = client.post(
            "/v1/decisions/batch", json={"items": [{"output": SMALL, "user": ANALYST}] * 3}
        )
        empty = client.post("/v1/decisions/batch", json={"items": []})
    assert ok.status_code == 200
    assert ok.json()["allowed"] is True
    for reply in (too_many, empty):
        assert reply.status_code == 400
        assert reply.json()["allowed"] is False
        assert reply.json()["error"]["field"] == "items"


def test_approvals_work_through_serve(served: Served) -> None:
    user = {"id": "ana", "role": "analyst"}
    with served.client(AST_TOKEN) as client:
        first = client.post("/v1/decisions", json={"output": TOOL, "user": user}).json()
        assert first["allowed"] is False
        assert first["policy_id"] == "AST-002"
        assert len(first["output_hash"]) == 64
        approvals = served.service.gates["assistant"].approvals
        assert approvals is not None
        [pending] = approvals.find("pending")
        approvals.approve(pending.approval_id, by="rita")
        passed = client.post("/v1/decisions", json={"output": TOOL, "user": user}).json()
        again = client.post("/v1/decisions", json={"output": TOOL, "user": user}).json()
    assert passed["allowed"] is True
    assert (passed["approval_id"], passed["approved_by"]) == (pending.approval_id, "rita")
    assert again["allowed"] is False  # used up


def test_concurrent_requests_keep_the_daily_quota_exact(serve: Callable[..., Served]) -> None:
    # 130 at once on two cores: no engine or request timeout, only the quota refuses.
    served = serve(Limits(request_timeout=300), timeout=30)
    body = {"output": "Here is the summary.", "user": {"id": "quota-user", "role": "analyst"}}

    async def burst() -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {AST_TOKEN}"}
        async with httpx.AsyncClient(base_url=served.url, headers=headers, timeout=60) as client:
            replies = await asyncio.gather(
                *(client.post("/v1/decisions", json=body) for _ in range(130))
            )
        return [r.json() for r in replies]

    decisions = asyncio.run(burst())
    # The assistant's daily quota (rego data) is 100 decisions a day per user.
    assert {d["policy_id"] for d in decisions if not d["allowed"]} == {"AST-003"}
    assert sum(d["allowed"] for d in decisions) == 100


# -- authentication: the token names the service -------------------------------------------------
@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong-token", f"Basic {FIN_TOKEN}", FIN_TOKEN,
     f"Bearer {FIN_TOKEN}x", f"Bearer {FIN_TOKEN[:-1]}"],
)  # fmt: skip
def test_no_or_unknown_token_is_401_and_nothing_is_decided(
    served: Served, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    reply = httpx.post(
        f"{served.url}/v1/decisions", json={"output": SMALL, "user": ANALYST}, headers=headers
    )
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert reply.json()["allowed"] is False
    assert reply.json()["error"]["code"] == "unauthorized"
    assert _records(served) == []


def test_the_bearer_scheme_is_case_insensitive(served: Served) -> None:
    reply = httpx.post(
        f"{served.url}/v1/decisions",
        json={"output": SMALL, "user": ANALYST},
        headers={"Authorization": f"bearer {FIN_TOKEN}"},
    )
    assert reply.status_code == 200


def test_the_body_cannot_choose_another_service(served: Served) -> None:
    with served.client(FIN_TOKEN) as client:
        in_context = client.post(
            "/v1/decisions",
            json={"output": SMALL, "user": ANALYST, "context": {"service": "assistant"}},
        )
        top_level = client.post(
            "/v1/decisions", json={"output": SMALL, "user": ANALYST, "service": "assistant"}
        )
        same = client.post(
            "/v1/decisions",
            json={"output": SMALL, "user": ANALYST, "context": {"service": "finance"}},
        )
    assert in_context.status_code == 400
    assert in_context.json()["error"]["field"] == "context.service"
    assert in_context.json()["decision"]["service"] == "finance"
    assert top_level.status_code == 400
    assert top_level.json()["error"]["field"] == "service"
    assert "bearer token" in top_level.json()["error"]["message"]
    assert same.status_code == 200
    assert same.json()["allowed"] is True
    # Both refusals are audited for the token's service, never the body's.
    records = _records(served)
    assert [r.service for r in records] == ["finance", "finance", "finance"]
    assert [r.policy_id for r in records[:2]] == ["pygate.input", "pygate.input"]


def test_each_token_selects_its_own_services_policies(served: Served) -> None:
    output = {"type": "tool_call", "action": "run_sql", "query": "DROP TABLE users"}
    with served.client(FIN_TOKEN) as fin, served.client(AST_TOKEN) as ast:
        as_finance = fin.post("/v1/decisions", json={"output": output, "user": ANALYST}).json()
        as_assistant = ast.post("/v1/decisions", json={"output": output, "user": ANALYST}).json()
    assert (as_finance["service"], as_assistant["service"]) == ("finance", "assistant")
    assert as_finance["refusals"] != as_assistant["refusals"]


def test_tokens_are_never_logged(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with served.client(FIN_TOKEN) as client:
        client.post("/v1/decisions", json={"output": SMALL, "user": ANALYST})
        client.post("/v1/decisions", content=b"{bad")
    httpx.post(f"{served.url}/v1/decisions", headers={"Authorization": "Bearer not-a-token-xyz"})
    assert "POST /v1/decisions" in caplog.text  # the access log was captured
    assert FIN_TOKEN not in caplog.text
    assert "not-a-token-xyz" not in caplog.text
    assert hash_token(FIN_TOKEN)[7:] not in caplog.text


# -- malformed requests: 400 naming the field, audited, never an allow --------------------------
@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        (b"", "body", "required"),
        (b"{not json", "body", "not valid JSON"),
        (b"\xff\xfe{}", "body", "not valid JSON"),
        (b'{"output": {"type": "transfer", "amount": 1}, "output": {"type": "transfer", '
         b'"amount": 10}, "user": {"id": "u1"}}', "body", "duplicate key 'output'"),
        (b'{"output": {"type": "transfer", "amount": 10, "amount": 1}, "user": {"id": "u1"}}',
         "body", "duplicate key 'amount'"),
        (b"[1, 2]", "body", "expected a JSON object"),
        (b'{"output": {"type": "transfer", "amount": 10}}', "user", "required"),
        (b'{"user": {"id": "u1"}}', "output", "required"),
        (b'{"output": 7, "user": {"id": "u1"}}', "output", "expected an object or text"),
        (b'{"output": {"type": "transfer", "amount": 10}, "user": {"id": "u\\u200b1"}}',
         "user.id", "invisible"),
        (b'{"output": {"type": "transfer", "amount": 10}, "user": {"id": ""}}',
         "user.id", "required"),
        (b'{"output": {"type": "text", "text": "\\ud800"}, "user": {"id": "u1"}}',
         "output.text", "lone surrogate"),
        (b'{"output": {"type": "transfer", "amount": NaN}, "user": {"id": "u1"}}',
         "body", "not a JSON number"),
        (b'{"output": {"tool_calls": [{"type": "function", "function": {"name": "transfer", '
         b'"arguments": "{\\"amount\\": 1, \\"amount\\": 99999}"}}]}, "user": {"id": "u1"}}',
         "output.tool_calls[0].function.arguments", "duplicate key 'amount'"),
        (b'{"output": {"type": "transfer", "amount": 10}, "user": {"id": "u1"}, "context": []}',
         "context", "expected an object"),
        (b"[" * 100_000 + b"]" * 100_000, "body", "nested"),
    ],
)  # fmt: skip
def test_a_request_that_cannot_be_read_is_400_naming_the_field(
    served: Served, body: bytes, field: str, problem: str
) -> None:
    with served.client() as client:
        reply = client.post(
            "/v1/decisions", content=body, headers={"Content-Type": "application/json"}
        )
    assert reply.status_code == 400, reply.text
    doc = reply.json()
    assert doc["allowed"] is False
    assert doc["error"]["code"] == "invalid_input"
    assert doc["error"]["field"] == field
    assert problem in doc["error"]["message"]
    assert doc["decision"]["allowed"] is False
    assert doc["decision"]["policy_id"] == "pygate.input"
    [record] = _records(served)  # audited, and only as this refusal
    assert (record.audit_id, record.policy_id, record.allowed) == (
        doc["decision"]["audit_id"], "pygate.input", False,
    )  # fmt: skip


def test_a_body_over_the_cap_is_413_and_never_read(serve: Callable[..., Served]) -> None:
    served = serve(Limits(max_body_bytes=4096))
    big = {"output": {"type": "text", "text": "x" * 5000}, "user": ANALYST}
    with served.client() as client:
        sized = client.post("/v1/decisions", json=big)
        chunked = client.post(
            "/v1/decisions", content=iter([json.dumps(big).encode()[:3000]] * 2)
        )  # no Content-Length: the cap holds while reading
        fits = client.post("/v1/decisions", json={"output": SMALL, "user": ANALYST})
    for reply in (sized, chunked):
        assert reply.status_code == 413, reply.text
        assert reply.json()["allowed"] is False
        assert reply.json()["error"] == {
            "code": "too_large", "field": "body", "message": reply.json()["error"]["message"],
        }  # fmt: skip
        assert reply.json()["decision"]["policy_id"] == "pygate.input"
    assert fits.status_code == 200
    assert "x" * 100 not in json.dumps([r.output for r in _records(served)])


def test_unknown_paths_and_methods_answer_json_non_allows(served: Served) -> None:
    with served.client() as client:
        missing = client.post("/v1/nothing", json={})
        wrong = client.get("/v1/decisions")
    assert missing.status_code == 404
    assert wrong.status_code == 405
    for reply in (missing, wrong):
        assert reply.headers["Content-Type"].startswith("application/json")
        assert reply.json()["allowed"] is False


# -- fail closed: engine down, audit down, timeout -----------------------------------------------
def test_engine_down_is_503_with_the_librarys_refusal(
    serve: Callable[..., Served], dead_url: str
) -> None:
    served = serve(opa_url=dead_url)
    with served.client() as client:
        reply = client.post("/v1/decisions", json={"output": SMALL, "user": ANALYST})
        batch = client.post(
            "/v1/decisions/batch", json={"items": [{"output": SMALL, "user": ANALYST}]}
        )
        ready = client.get("/ready")
    assert reply.status_code == 503
    assert reply.headers["Retry-After"] == "1"
    doc = reply.json()
    assert doc["allowed"] is False
    assert doc["error"]["code"] == "engine_unavailable"
    assert doc["decision"]["fallback"] is True
    assert doc["decision"]["policy_id"] == "pygate.engine"
    assert doc["decision"]["message"]  # what to tell the user
    assert batch.status_code == 200
    assert batch.json()["allowed"] is False
    assert batch.json()["decisions"][0]["policy_id"] == "pygate.engine"
    assert ready.status_code == 503
    assert ready.json()["ready"] is False
    assert ready.json()["engine"]["ok"] is False
    assert [r.policy_id for r in _records(served)] == ["pygate.engine", "pygate.engine"]


def test_audit_down_is_503_and_nothing_is_allowed(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    served = serve(audit_db=str(tmp_path / "locked.db"), audit_timeout=0.2)
    with served.client() as client:
        assert (
            client.post("/v1/decisions", json={"output": SMALL, "user": ANALYST}).status_code == 200
        )
        # Another process holds the database's write lock: no record can be written.
        lock = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            reply = client.post("/v1/decisions", json={"output": SMALL, "user": ANALYST})
            ready = client.get("/ready")
        finally:
            lock.execute("ROLLBACK")
            lock.close()
    assert reply.status_code == 503
    doc = reply.json()
    assert doc["allowed"] is False
    assert doc["error"]["code"] == "audit_unavailable"
    assert doc["decision"]["policy_id"] == "pygate.audit"
    assert ready.status_code == 200  # a held write lock still lets the log be read


def test_an_audit_log_that_cannot_be_read_is_not_ready(served: Served) -> None:
    assert served.service.audit is not None
    served.service.audit.close()  # the database is gone from under the service
    ready = httpx.get(f"{served.url}/ready")
    assert ready.status_code == 503
    assert ready.json()["audit"]["ok"] is False
    assert ready.json()["engine"]["ok"] is True


def test_a_request_past_its_timeout_is_503(
    serve: Callable[..., Served], fake_opa: Callable[..., str]
) -> None:
    served = serve(Limits(request_timeout=0.3), opa_url=fake_opa(hang=True), timeout=5)
    with served.client() as client:
        reply = client.post("/v1/decisions", json={"output": SMALL, "user": ANALYST})
    assert reply.status_code == 503
    assert reply.json()["allowed"] is False
    assert reply.json()["error"]["code"] == "timeout"


# -- health, readiness and the OpenAPI document ---------------------------------------------------
def test_health_and_ready_need_no_token(served: Served, opa: LocalOpa) -> None:
    health = httpx.get(f"{served.url}/health")
    ready = httpx.get(f"{served.url}/ready")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200
    doc = ready.json()
    assert doc["ready"] is True
    assert doc["engine"]["ok"] is True
    assert doc["audit"]["ok"] is True
    assert doc["services"] == ["assistant", "finance"]
    # The revision the engine decides with: the one a decision reports.
    with served.client() as client:
        decision = client.post("/v1/decisions", json={"output": SMALL, "user": ANALYST}).json()
    assert doc["engine"]["bundle_revision"] == decision["bundle_revision"]
    assert _records(served)[0].user_id == "ana"  # readiness probes are not audited


def test_the_openapi_document_lists_exactly_the_routes_served(served: Served) -> None:
    doc = httpx.get(f"{served.url}/openapi.json").json()
    assert doc == json.loads(json.dumps(openapi_document()))
    assert doc["openapi"].startswith("3.1")
    app = create_app(served.service)
    routes = {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert routes == documented


def _operations(url: str) -> list[Any]:
    import schemathesis

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def test_schemathesis_fuzz_no_5xx_and_responses_match_the_document(served: Served) -> None:
    from hypothesis import HealthCheck, given, settings
    from schemathesis import checks

    auth = {"Authorization": f"Bearer {FIN_TOKEN}"}
    for operation in _operations(served.url):

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def positive(case: Any) -> None:
            response = case.call(base_url=served.url, headers=auth)
            case.validate_response(
                response,
                checks=[
                    checks.not_a_server_error,
                    checks.status_code_conformance,
                    checks.content_type_conformance,
                    checks.response_schema_conformance,
                ],
            )

        positive()


def _malformed(valid: Callable[[Any], bool], body: Any) -> bool:
    """Whether the document calls ``body`` malformed (raw bytes: if they are not its JSON)."""
    if isinstance(body, (bytes, bytearray)):
        try:
            body = json.loads(body)
        except ValueError:
            return True
    try:
        return not valid(body)
    except (ValueError, TypeError):  # not a JSON value at all (e.g. no body)
        return True


def test_schemathesis_negative_fuzz_never_allows_a_malformed_request(served: Served) -> None:
    from hypothesis import HealthCheck, given, settings
    from jsonschema_rs import Draft202012Validator  # schemathesis's own validator
    from schemathesis import GenerationMode, checks

    document = openapi_document()
    auth = {"Authorization": f"Bearer {FIN_TOKEN}"}
    for operation in _operations(served.url):
        if operation.method.upper() != "POST":
            continue
        name = operation.definition.raw["requestBody"]["content"]["application/json"]["schema"]
        valid = Draft202012Validator({**name, "components": document["components"]}).is_valid
        batch = operation.path.endswith("/batch")

        @given(case=operation.as_strategy(GenerationMode.NEGATIVE))
        @settings(max_examples=30, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def negative(case: Any) -> None:
            # A body the document calls malformed is sent with a valid token, so it reaches
            # the gate; a valid body goes with the case's own (broken) headers: 401.
            # (run at once, inside this iteration: the loop variables are the current ones)
            malformed = _malformed(valid, case.body)  # noqa: B023
            response = case.call(base_url=served.url, headers=auth if malformed else None)
            # A batch reads a malformed item as that item's refusal (200, allowed false).
            codes = (400, 413, 200) if batch else (400, 413)  # noqa: B023
            assert response.status_code in (codes if malformed else (401,)), response.text
            assert response.json()["allowed"] is False
            case.validate_response(
                response,
                checks=[checks.content_type_conformance, checks.response_schema_conformance],
            )

        negative()


# -- a client that is not Python: curl against `pygate serve`, the real command ------------------
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_drives_pygate_serve(opa: LocalOpa, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# calling services\nfinance {hash_token(FIN_TOKEN)}\n")
    env = {**os.environ, "PYGATE_AUDIT_DB": str(tmp_path / "audit.db")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pygate", "--opa-url", opa.url, "serve", "--port", "0",
         "--tokens", str(tokens), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        url = started["url"]
        assert started["services"] == ["finance"]

        def curl(*args: str) -> tuple[int, dict[str, Any]]:
            done = subprocess.run(
                ["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True, text=True,
                check=True, timeout=30,
            )  # fmt: skip
            body, _, status = done.stdout.rpartition("\n")
            return int(status), json.loads(body)

        auth = ["-H", f"Authorization: Bearer {FIN_TOKEN}", "-H", "Content-Type: application/json"]
        status, refused = curl(*auth, "-d", json.dumps({"output": LARGE, "user": ANALYST}),
                               f"{url}/v1/decisions")  # fmt: skip
        assert (status, refused["allowed"], refused["policy_id"]) == (200, False, "FIN-002")
        status, allowed = curl(*auth, "-d", json.dumps({"output": SMALL, "user": ANALYST}),
                               f"{url}/v1/decisions")  # fmt: skip
        assert (status, allowed["allowed"]) == (200, True)
        status, anonymous = curl("-d", json.dumps({"output": SMALL, "user": ANALYST}),
                                 f"{url}/v1/decisions")  # fmt: skip
        assert (status, anonymous["allowed"]) == (401, False)
        status, bad = curl(*auth, "-d", "{oops", f"{url}/v1/decisions")
        assert (status, bad["allowed"], bad["error"]["field"]) == (400, False, "body")
        status, ready = curl(f"{url}/ready")
        assert (status, ready["ready"]) == (200, True)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert FIN_TOKEN not in err  # the access log went to stderr, without the token


# -- configuration ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no serve tokens"),
        ("finance plain-token", "plain tokens are not stored"),
        (f"Finance {hash_token('x')}", "not a service name"),
        (f"finance {hash_token('x')}\nassistant {hash_token('x')}", "configured twice"),
        ("finance", "expected '<service> sha256:<hex>'"),
    ],
)
def test_bad_token_configuration_is_refused(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        TokenTable.parse(text)


def test_token_lines_parse_from_file_text_and_env_form() -> None:
    lines = f"# comment\nfinance {hash_token('a')}  # the finance team\n\n"
    assert TokenTable.parse(lines).service_for("Bearer a") == "finance"
    env = f"finance {hash_token('a')},assistant {hash_token('b')}"
    table = TokenTable.parse(env)
    assert table.services == ["assistant", "finance"]
    assert table.service_for("Bearer b") == "assistant"
    assert table.service_for("Bearer c") is None


def test_serve_token_prints_a_working_line() -> None:
    result = CliRunner().invoke(main, ["serve-token", "finance", "--json"])
    assert result.exit_code == 0, result.output
    made = json.loads(result.output)
    table = TokenTable.parse(made["line"])
    assert table.service_for(f"Bearer {made['token']}") == "finance"
    assert made["token"] not in made["line"]
    bad = CliRunner().invoke(main, ["serve-token", "Not A Name"])
    assert bad.exit_code == 2


def test_serve_without_tokens_exits_2_naming_them(
    monkeypatch: pytest.MonkeyPatch, opa: LocalOpa
) -> None:
    monkeypatch.delenv("PYGATE_SERVE_TOKENS", raising=False)
    monkeypatch.delenv("PYGATE_SERVE_TOKENS_FILE", raising=False)
    result = CliRunner().invoke(main, ["--opa-url", opa.url, "serve", "--json"])
    assert result.exit_code == 2
    assert json.loads(result.output)["field"] == "tokens"


def test_serve_on_a_taken_port_exits_2_naming_it(opa: LocalOpa, tmp_path: Path) -> None:
    import socket

    tokens = tmp_path / "tokens"
    tokens.write_text(f"finance {hash_token(FIN_TOKEN)}\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            main,
            ["--opa-url", opa.url, "--audit-db", str(tmp_path / "a.db"), "serve",
             "--port", str(port), "--tokens", str(tokens), "--json"],
        )  # fmt: skip
    assert result.exit_code == 2, result.output
    body = json.loads(result.output)
    assert body["field"] == "port"
    assert f"127.0.0.1:{port}" in body["error"]
