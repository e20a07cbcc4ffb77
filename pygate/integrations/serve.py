"""``pygate serve``: the gate's decisions over HTTP, for services written in any language.

The same decisions as the library, because the library makes them: each calling service has
its own :class:`~pygate.AsyncGate` (audit, daily quota, approvals, canonical actions, fail
closed), all sharing one OPA and one audit log. The HTTP layer only authenticates, reads the
request strictly and maps the Decision to a status:

==========================  =====  =========================================================
outcome                     HTTP   body
==========================  =====  =========================================================
decided (allow or refusal)  200    the Decision (``allowed`` true or false)
request cannot be read      400    ``{"allowed": false, "error": {..., "field"}, "decision"}``
(bad JSON, duplicate keys,         (the input refusal, audited as ``pygate.input``)
wrong shape or types)
no / unknown bearer token   401    ``{"allowed": false, "error": {...}}``
body over the cap           413    ``{"allowed": false, "error": {...}, "decision"}``
engine or audit down,       503    ``{"allowed": false, "error": {...}, "decision"}`` with
timeout (fail closed)              ``Retry-After``; the decision is the library's refusal
==========================  =====  =========================================================

Every body the API sends has a top-level ``allowed``, and it is ``true`` only in a 200 whose
Decision allowed the action: a client that reads ``allowed`` cannot mistake an error for an
allow. The calling service is named by its token, never by the body: a ``context.service``
naming another service is refused (400), exactly as a library gate configured for one
service refuses it.

Tokens are configured as ``<service> sha256:<hex>`` lines (a file, or ``PYGATE_SERVE_TOKENS``);
only their SHA-256 is held, compared in constant time, and never logged.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import json
import logging
import re
import secrets
import signal
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from pygate import _core
from pygate._errors import ConfigError, EngineError, InputError
from pygate._gate import AUDIT_POLICY_ID, AsyncGate
from pygate._input import loads
from pygate._models import Decision
from pygate._settings import Settings
from pygate.audit import AuditLog, open_audit
from pygate.audit._base import today
from pygate.engine._opa_process import LocalOpa
from pygate.integrations._serve_api import (
    BatchResponse,
    Check,
    EngineCheck,
    ErrorDetail,
    ErrorResponse,
    Health,
    Ready,
    openapi_document,
)

log = logging.getLogger("pygate.serve")

#: A service name as a token line may give it (the same form policy data uses).
SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
_PROBE_USER = "pygate-ready-probe"


# -- tokens -----------------------------------------------------------------------------------
def hash_token(token: str) -> str:
    """The form a token is configured in: ``sha256:<hex>`` of its UTF-8 bytes."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh bearer token: 32 random bytes, URL-safe (256 bits, so plain SHA-256 suffices)."""
    return "pgt_" + secrets.token_urlsafe(32)


class TokenTable:
    """Which calling service a bearer token belongs to; holds only the tokens' SHA-256.

    Args:
        entries: ``(service, "sha256:<hex>")`` pairs.

    Raises:
        ConfigError: a bad service name, a digest not in ``sha256:<64 hex>`` form, a digest
            given twice, or no entry at all (every request would be refused).
    """

    def __init__(self, entries: Iterable[tuple[str, str]]) -> None:
        self._entries: list[tuple[bytes, str]] = []
        seen: set[bytes] = set()
        for number, (service, digest) in enumerate(entries, 1):
            where = f"token {number}"
            if not SERVICE_NAME.match(service):
                raise ConfigError(f"{where}: service {service!r} is not a service name")
            match = _DIGEST.match(digest)
            if match is None:
                raise ConfigError(
                    f"{where} ({service}): expected sha256:<64 lower-case hex>, the token's "
                    "digest (`pygate serve-token` prints one); plain tokens are not stored"
                )
            raw = bytes.fromhex(match.group(1))
            if raw in seen:
                raise ConfigError(f"{where} ({service}): the same token is configured twice")
            seen.add(raw)
            self._entries.append((raw, service))
        if not self._entries:
            raise ConfigError("no serve tokens configured: every request would be refused")

    @classmethod
    def parse(cls, text: str, source: str = "tokens") -> TokenTable:
        """Read ``<service> sha256:<hex>`` entries, one a line (or separated by commas).

        Blank lines and ``#`` comments are skipped.

        Raises:
            ConfigError: naming ``source`` and the line.
        """
        entries = []
        for number, line in enumerate(re.split(r"[\n,]", text), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ConfigError(f"{source}: entry {number}: expected '<service> sha256:<hex>'")
            entries.append((parts[0], parts[1]))
        try:
            return cls(entries)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from exc

    @property
    def services(self) -> list[str]:
        """The calling services, sorted, each once."""
        return sorted({service for _, service in self._entries})

    def service_for(self, authorization: str | None) -> str | None:
        """The service whose token the ``Authorization`` header carries, or ``None``.

        Every configured digest is compared (``hmac.compare_digest``), whatever matched,
        so the time taken does not say which entry, or how much of one, matched.
        """
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found = None
        for raw, service in self._entries:
            if hmac.compare_digest(raw, digest):
                found = service
        return found


# -- the service ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Limits:
    """What one request may cost.

    Attributes:
        max_body_bytes: a larger body is refused with 413 before it is read.
        max_batch_items: more items in one batch are refused with 400.
        request_timeout: seconds for reading the body and deciding; past it, 503.
    """

    max_body_bytes: int = 2_000_000
    max_batch_items: int = 100
    request_timeout: float = 10.0


class DecisionService:
    """The gates behind the API: one ``AsyncGate`` per calling service, one OPA, one log.

    Args:
        settings: as for a Gate (``opa_url``: the engine, else a local OPA is started here;
            ``audit_db``: the shared log). ``settings.service`` is ignored: each gate's
            service is the one its token names.
        tokens: the calling services' tokens.
        limits: request limits.
        audit: an open audit log to use (not closed here); default: ``settings.audit_db``.
    """

    def __init__(
        self,
        settings: Settings,
        tokens: TokenTable,
        *,
        limits: Limits | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.tokens = tokens
        self.limits = limits or Limits()
        self.local_opa: LocalOpa | None = None
        self._owns_audit = audit is None
        self.audit: AuditLog | None = None
        try:
            url = settings.opa_url
            if url is None:
                self.local_opa = LocalOpa(settings.policy_dir, opa_bin=settings.opa_bin).start()
                url = self.local_opa.url
            self.audit = audit or open_audit(
                settings.audit_db,
                settings.redact_keys,
                settings.redact_patterns,
                **settings.audit_options(),
            )
            self.gates = {
                name: AsyncGate(
                    settings=settings.model_copy(update={"service": name, "opa_url": url}),
                    audit=self.audit,
                )
                for name in tokens.services
            }
        except BaseException:
            self._close_owned()
            raise
        self.settings = settings.model_copy(update={"opa_url": url})

    async def ready(self) -> Ready:
        """Ask the engine a real decision and read the audit log; neither is audited."""
        name = self.tokens.services[0]
        gate = self.gates[name]
        engine = EngineCheck(ok=True)
        probe = _core.build_input(
            {"type": "text", "text": ""}, {"id": _PROBE_USER}, {"service": name}
        )
        try:
            status, body = await gate._transport.post(
                _core.DECISION_PATH, _core.request_body(probe)
            )
            result, envelope = _core.parse_response(status, body)
            _core.read_result(result)
            engine.bundle_revision = _core._revision(envelope)
        except EngineError as exc:
            engine = EngineCheck(ok=False, error=f"{type(exc).__name__}: {exc}")
        audit = Check(ok=True)
        if self.audit is not None:
            try:
                await asyncio.to_thread(self.audit.quota_used, [(_PROBE_USER, today())])
            except Exception as exc:  # any failure to read means "not ready", never a crash
                audit = Check(ok=False, error=f"{type(exc).__name__}: {exc}")
        return Ready(
            ready=engine.ok and audit.ok, engine=engine, audit=audit, services=self.tokens.services
        )

    async def aclose(self) -> None:
        """Close every gate's connections, the owned audit log and the local OPA."""
        for gate in self.gates.values():
            await gate.aclose()  # the audit log is not the gates' (passed in): left open
        self._close_owned()

    def _close_owned(self) -> None:
        try:
            if self.audit is not None and self._owns_audit:
                self.audit.close()
        finally:
            if self.local_opa is not None:
                self.local_opa.stop()


# -- HTTP -------------------------------------------------------------------------------------
#: The calling service, as its token names it; set by ``_guard`` for the handler's task (a
#: context variable rather than request storage: the same on every aiohttp 3.x).
_CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("pygate_serve_caller")
_SERVICE_KEY: web.AppKey[DecisionService] = web.AppKey("pygate_service", DecisionService)


def _json(
    body: BaseModel | dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    doc = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    return web.Response(
        body=json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _error(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    decision: Decision | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    detail = ErrorDetail(code=code, message=message, field=field)  # type: ignore[arg-type]  # code is one of the Literal's values, checked by pydantic
    return _json(ErrorResponse(error=detail, decision=decision), status, headers)


def _input_field(decision: Decision) -> str | None:
    """The field an input refusal names (its reason is ``Invalid input: <field>: ...``)."""
    text = decision.reason.removeprefix("Invalid input: ")
    field, sep, _ = text.partition(": ")
    return field if sep else None


def _answer(decision: Decision) -> web.Response:
    """The HTTP answer for one Decision of ``POST /v1/decisions``."""
    if decision.policy_id == _core.INPUT_POLICY_ID:
        return _error(
            400, "invalid_input", decision.reason, field=_input_field(decision), decision=decision
        )
    if decision.fallback:
        code = "engine_unavailable" if decision.policy_id == _core.ENGINE_POLICY_ID else (
            "audit_unavailable" if decision.policy_id == AUDIT_POLICY_ID else "internal"
        )  # fmt: skip
        return _error(503, code, decision.reason, decision=decision, headers={"Retry-After": "1"})
    return _json(decision)


async def _read_document(
    request: web.Request, gate: AsyncGate, limits: Limits
) -> tuple[Any, web.Response | None]:
    """The request body as strict JSON, or the audited 400/413 answer."""
    size = request.content_length
    if size is not None and size > limits.max_body_bytes:
        exc = InputError("body", f"{size} bytes exceed the cap of {limits.max_body_bytes}")
        decision = await gate.refuse_input(exc, {"not_stored": True, "bytes": size})
        return None, _error(413, "too_large", str(exc), field="body", decision=decision)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        exc = InputError("body", f"more than the cap of {limits.max_body_bytes} bytes")
        decision = await gate.refuse_input(exc, {"not_stored": True})
        return None, _error(413, "too_large", str(exc), field="body", decision=decision)
    try:
        if not raw.strip():
            raise InputError("body", "required: a JSON object")
        return loads(raw, "body"), None
    except InputError as exc:
        decision = await gate.refuse_input(exc, raw.decode("utf-8", "replace"))
        return None, _error(400, "invalid_input", str(exc), field=exc.field, decision=decision)


def _check_fields(doc: Any, allowed: tuple[str, ...], required: tuple[str, ...]) -> None:
    """The top level of a request: an object with only ``allowed`` keys, ``required`` present.

    Raises:
        InputError: naming the field (``service`` is explained: the token names it).
    """
    if not isinstance(doc, dict):
        raise InputError("body", f"expected a JSON object, got {type(doc).__name__}")
    for key in doc:
        if key not in allowed:
            hint = " (the service comes from the bearer token)" if key == "service" else ""
            raise InputError(key, f"unknown field{hint}")
    for key in required:
        if key not in doc:
            raise InputError(key, "required")


async def _decide(request: web.Request) -> web.Response:
    """``POST /v1/decisions``."""
    service: DecisionService = request.app[_SERVICE_KEY]
    gate = service.gates[_CALLER.get()]
    doc, problem = await _read_document(request, gate, service.limits)
    if problem is not None:
        return problem
    try:
        _check_fields(doc, ("output", "user", "context"), ("output", "user"))
    except InputError as exc:
        decision = await gate.refuse_input(exc, doc)
        return _error(400, "invalid_input", str(exc), field=exc.field, decision=decision)
    return _answer(await gate.evaluate(doc["output"], doc["user"], doc.get("context")))


async def _decide_batch(request: web.Request) -> web.Response:
    """``POST /v1/decisions/batch``."""
    service: DecisionService = request.app[_SERVICE_KEY]
    gate = service.gates[_CALLER.get()]
    doc, problem = await _read_document(request, gate, service.limits)
    if problem is not None:
        return problem
    try:
        _check_fields(doc, ("items",), ("items",))
        items = doc["items"]
        if not isinstance(items, list) or not items:
            raise InputError("items", "expected a non-empty array of {output, user, context}")
        if len(items) > service.limits.max_batch_items:
            raise InputError(
                "items", f"{len(items)} items exceed the cap of {service.limits.max_batch_items}"
            )
    except InputError as exc:
        decision = await gate.refuse_input(exc, doc)
        return _error(400, "invalid_input", str(exc), field=exc.field, decision=decision)
    decisions = await gate.evaluate_many(items)
    return _json(BatchResponse(allowed=all(d.allowed for d in decisions), decisions=decisions))


async def _health(request: web.Request) -> web.Response:
    return _json(Health())


async def _ready(request: web.Request) -> web.Response:
    ready = await request.app[_SERVICE_KEY].ready()
    return _json(ready, 200 if ready.ready else 503)


async def _openapi(request: web.Request) -> web.Response:
    return _json(openapi_document())


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PUBLIC = frozenset({"/health", "/ready", "/openapi.json"})


@web.middleware
async def _guard(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Authenticate, bound the time, and turn every failure into a JSON non-allow."""
    service: DecisionService = request.app[_SERVICE_KEY]
    try:
        if request.path not in _PUBLIC or request.method not in ("GET", "HEAD"):
            name = service.tokens.service_for(request.headers.get("Authorization"))
            if name is None:
                log.warning("refused a request without a valid token: %s %s", request.method,
                            request.path)  # fmt: skip
                return _error(
                    401,
                    "unauthorized",
                    "a valid bearer token is required (Authorization: Bearer <token>)",
                    headers={"WWW-Authenticate": 'Bearer realm="pygate"'},
                )
            _CALLER.set(name)
        return await asyncio.wait_for(handler(request), service.limits.request_timeout)
    except TimeoutError:
        log.error("request timed out after %s s: %s", service.limits.request_timeout, request.path)
        return _error(
            503,
            "timeout",
            f"no decision within {service.limits.request_timeout:g} s; refused to be safe",
            headers={"Retry-After": "1"},
        )
    except web.HTTPNotFound:
        return _error(404, "not_found", f"no such endpoint: {request.path}")
    except web.HTTPMethodNotAllowed as exc:
        return _error(405, "method_not_allowed", f"{request.method} is not allowed here",
                      headers={"Allow": ",".join(sorted(exc.allowed_methods))})  # fmt: skip
    except web.HTTPException as exc:
        # Anything else aiohttp raises for a bad request (e.g. a malformed header).
        code = "invalid_input" if exc.status < 500 else "internal"
        return _error(exc.status if exc.status < 500 else 500, code, exc.reason)
    except Exception:
        log.exception("internal error in %s %s; refused", request.method, request.path)
        return _error(500, "internal", "internal error; refused to be safe")


def create_app(service: DecisionService) -> web.Application:
    """The aiohttp application serving ``service``; closing the app closes the service."""
    app = web.Application(middlewares=[_guard], client_max_size=service.limits.max_body_bytes)
    app[_SERVICE_KEY] = service
    app.router.add_post("/v1/decisions", _decide)
    app.router.add_post("/v1/decisions/batch", _decide_batch)
    app.router.add_get("/health", _health)
    app.router.add_get("/ready", _ready)
    app.router.add_get("/openapi.json", _openapi)

    async def close(app: web.Application) -> None:
        await app[_SERVICE_KEY].aclose()

    app.on_cleanup.append(close)
    return app


# -- running ----------------------------------------------------------------------------------
def run(
    service: DecisionService,
    host: str,
    port: int,
    *,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM, then close the service.

    Args:
        ready: called with the base URL once the socket listens (port 0: the one chosen).
    """

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve_until(service, host, port, stop, ready)

    asyncio.run(main())


async def serve_until(
    service: DecisionService,
    host: str,
    port: int,
    stop: asyncio.Event,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve ``service`` on ``host:port`` until ``stop`` is set; then close it."""
    # The access log names address, request line, status, size and time: never a header,
    # so never the token.
    runner = web.AppRunner(create_app(service), access_log_format='%a "%r" %s %b %Tf')
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        url = f"http://{host}:{bound[1]}" if isinstance(bound, tuple) else str(bound)
        log.info("serving decisions on %s", url)
        if ready is not None:
            ready(url)
        await stop.wait()
    finally:
        await runner.cleanup()
