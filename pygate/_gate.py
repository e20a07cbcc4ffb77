"""``Gate`` and ``AsyncGate``: thin twins around the I/O-free core in ``_core``."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from pygate import _core
from pygate._audit import AuditLog, open_audit
from pygate._audit._base import today
from pygate._errors import AuditError, EngineError, InputError, Refused
from pygate._models import Decision, JSONObject
from pygate._opa_process import LocalOpa
from pygate._settings import Settings
from pygate._transport import AiohttpTransport, HttpxTransport

log = logging.getLogger("pygate")

T = TypeVar("T")
P = ParamSpec("P")

AUDIT_POLICY_ID = "pygate.audit"


class _Prepared:
    """A validated request: the input document plus what the audit record needs."""

    __slots__ = ("day", "document", "output", "reserved", "service", "user_id")

    def __init__(self, document: JSONObject, service: str | None, user_id: str) -> None:
        self.document = document
        self.output = document["output"]
        self.service = service
        self.user_id = user_id
        self.day = today()
        self.reserved = False


class _BaseGate:
    """Everything the twins share: settings, OPA lifecycle, input preparation, auditing rules."""

    def __init__(
        self,
        service: str | None = None,
        *,
        opa_url: str | None = None,
        audit: AuditLog | str | Path | bool | None = True,
        timeout: float | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or Settings.load(
            {"service": service, "opa_url": opa_url, "timeout": timeout}
        )
        self.service = self.settings.service
        self.local_opa: LocalOpa | None = None
        if self.settings.opa_url:
            self.url = self.settings.opa_url
        else:
            self.local_opa = LocalOpa(self.settings.policy_dir, opa_bin=self.settings.opa_bin)
            self.local_opa.start()
            self.url = self.local_opa.url
        self._owns_audit = not isinstance(audit, AuditLog)
        if audit is True:
            self.audit: AuditLog | None = open_audit(self.settings.audit_db)
        elif audit is None or audit is False:
            self.audit = None
        elif isinstance(audit, AuditLog):
            self.audit = audit
        else:
            self.audit = open_audit(audit)

    def _prepare(self, output: Any, user: Any, context: Any) -> _Prepared:
        """Validate and build the OPA input (raises InputError naming the field)."""
        out = _core.normalize_output(output)
        usr = _core.normalize_user(user)
        ctx = _core.normalize_context(context)
        if self.service is not None:
            given = ctx.get("service")
            if given is not None and given != self.service:
                raise InputError(
                    "context.service", f"{given!r} conflicts with this gate's {self.service!r}"
                )
            ctx["service"] = self.service
        service = ctx.get("service")
        prepared = _Prepared(
            _core.build_input(out, usr, ctx),
            service if isinstance(service, str) else None,
            usr["id"],
        )
        if self.audit is not None:
            # The gate, not the caller, knows today's usage: never trust a supplied figure.
            # Reserving (not just reading) keeps the quota exact under concurrency; the unit
            # is given back with the audit record when the request is refused.
            ctx["usage_today"] = self.audit.reserve(usr["id"], prepared.day)
            prepared.reserved = True
        return prepared

    def _rejected(self, exc: InputError, output: Any, user: Any, context: Any) -> Decision:
        service = self.service
        if (
            service is None
            and isinstance(context, dict)
            and isinstance(context.get("service"), str)
        ):
            service = context["service"]
        return _core.input_refusal(exc, service=service, user_id=_core.safe_user_id(user))

    def _decide(self, prepared: _Prepared, status: int, body: bytes, started: float) -> Decision:
        """Turn OPA's HTTP answer into a Decision (engine errors propagate)."""
        result, envelope = _core.parse_response(status, body)
        parsed = _core.read_result(result)
        return _core.decision_from_result(
            parsed,
            envelope,
            service=prepared.service,
            user_id=prepared.user_id,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def _fallback(self, prepared: _Prepared, exc: EngineError, started: float) -> Decision:
        log.warning("policy engine failure, refusing: %s", exc)
        return _core.fallback_decision(
            exc,
            service=prepared.service,
            user_id=prepared.user_id,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def _unauditable(self, exc: AuditError, user: Any) -> Decision:
        """The audit log cannot take records: refuse (the refusal cannot be audited either)."""
        log.error("audit log unavailable, refusing: %s", exc)
        return _core.own_refusal(
            AUDIT_POLICY_ID,
            f"The decision could not be audited ({exc}); refused to be safe",
            fallback=True,
            service=self.service,
            user_id=_core.safe_user_id(user),
        )

    def _write(
        self, decision: Decision, output: Any, prepared: _Prepared | None = None
    ) -> Decision:
        """Audit one decision; an allow that cannot be audited becomes a refusal."""
        if self.audit is None:
            return decision
        release = None
        if prepared is not None and prepared.reserved and not decision.allowed:
            release = (prepared.user_id, prepared.day)
        try:
            return self.audit.append(decision, output, release)
        except AuditError as exc:
            return self._unauditable(exc, {"id": decision.user_id})

    def _close_owned(self) -> None:
        if self.audit is not None and self._owns_audit:
            self.audit.close()
        if self.local_opa is not None:
            self.local_opa.stop()


def _tool_output(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> JSONObject:
    bound = inspect.signature(fn).bind_partial(*args, **kwargs)
    return {"type": "tool_call", "action": fn.__name__, "arguments": dict(bound.arguments)}


class Gate(_BaseGate):
    """Gate model outputs through OPA before anything acts on them.

    Args:
        service: the service name sent as ``context.service`` (selects its policy sets).
        opa_url: an OPA sidecar URL; ``None`` starts the embedded local OPA.
        audit: ``True`` for the configured SQLite log, a path, an ``AuditLog``, or ``None``
            to skip auditing (benchmarks only: the daily quota then cannot be known).
        timeout: seconds per decision before refusing.
        settings: a full ``Settings`` (overrides the other arguments).

    Example:
        >>> gate = Gate("finance")
        >>> gate.evaluate({"type": "transfer", "amount": 50}, {"id": "u1"}).allowed
    """

    def __init__(self, service: str | None = None, **kwargs: Any) -> None:
        super().__init__(service, **kwargs)
        self._transport = HttpxTransport(self.url, self.settings.timeout)

    def evaluate(self, output: Any, user: Any, context: Any = None) -> Decision:
        """Decide whether ``output`` may be acted on for ``user`` now; always audited.

        Args:
            output: the model output: a dict, a pydantic model, an object, or text.
            user: dict, pydantic model or object with ``id`` (and e.g. ``role``).
            context: extra facts (e.g. approvals); the gate adds ``service`` and
                ``usage_today``.

        Returns:
            The Decision. Engine failures and bad input give refusals, never errors.
        """
        started = time.perf_counter()
        try:
            prepared = self._prepare(output, user, context)
        except InputError as exc:
            return self._write(self._rejected(exc, output, user, context), repr(output)[:2000])
        except AuditError as exc:
            return self._unauditable(exc, user)
        try:
            status, body = self._transport.post(
                _core.DECISION_PATH, _core.request_body(prepared.document)
            )
            decision = self._decide(prepared, status, body, started)
        except EngineError as exc:
            decision = self._fallback(prepared, exc, started)
        return self._write(decision, prepared.output, prepared)

    def execute(self, output: Any, user: Any, run: Callable[[], T], context: Any = None) -> T:
        """Run ``run()`` only if the gate allows ``output``.

        Raises:
            Refused: the gate said no (the refusal is already audited).
        """
        decision = self.evaluate(output, user, context)
        if not decision.allowed:
            raise Refused(decision)
        return run()

    def guard(self, fn: Callable[P, T]) -> Callable[..., T]:
        """Decorate a tool function: each call is gated as a ``tool_call`` output.

        The wrapped function takes two extra keyword arguments, ``user`` (required) and
        ``context``; the tool's name is the action and its arguments are recorded.

        Raises:
            Refused: when the gate refuses the call.
        """

        @functools.wraps(fn)
        def wrapper(*args: Any, user: Any, context: Any = None, **kwargs: Any) -> T:
            output = _tool_output(fn, args, kwargs)
            return self.execute(output, user, lambda: fn(*args, **kwargs), context)

        return wrapper

    def close(self) -> None:
        """Close the connection pool, the audit log and the local OPA, if owned."""
        self._transport.close()
        self._close_owned()

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncGate(_BaseGate):
    """The asyncio twin of ``Gate``; same arguments, same decisions."""

    def __init__(self, service: str | None = None, **kwargs: Any) -> None:
        super().__init__(service, **kwargs)
        self._transport = AiohttpTransport(self.url, self.settings.timeout)

    async def evaluate(self, output: Any, user: Any, context: Any = None) -> Decision:
        """Async ``Gate.evaluate``; the audit write runs in a worker thread."""
        started = time.perf_counter()
        try:
            prepared = await asyncio.to_thread(self._prepare, output, user, context)
        except InputError as exc:
            decision = self._rejected(exc, output, user, context)
            return await asyncio.to_thread(self._write, decision, repr(output)[:2000])
        except AuditError as exc:
            return self._unauditable(exc, user)
        try:
            status, body = await self._transport.post(
                _core.DECISION_PATH, _core.request_body(prepared.document)
            )
            decision = self._decide(prepared, status, body, started)
        except EngineError as exc:
            decision = self._fallback(prepared, exc, started)
        return await asyncio.to_thread(self._write, decision, prepared.output, prepared)

    async def execute(
        self, output: Any, user: Any, run: Callable[[], Awaitable[T]], context: Any = None
    ) -> T:
        """Await ``run()`` only if the gate allows ``output``.

        Raises:
            Refused: the gate said no (the refusal is already audited).
        """
        decision = await self.evaluate(output, user, context)
        if not decision.allowed:
            raise Refused(decision)
        return await run()

    def guard(self, fn: Callable[P, Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        """Decorate an async tool function; see ``Gate.guard``."""

        @functools.wraps(fn)
        async def wrapper(*args: Any, user: Any, context: Any = None, **kwargs: Any) -> T:
            output = _tool_output(fn, args, kwargs)
            return await self.execute(output, user, lambda: fn(*args, **kwargs), context)

        return wrapper

    async def aclose(self) -> None:
        """Close the session, the audit log and the local OPA, if owned."""
        await self._transport.aclose()
        self._close_owned()

    async def __aenter__(self) -> AsyncGate:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
