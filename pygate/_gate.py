"""``Gate`` and ``AsyncGate``: thin twins around the I/O-free core in ``_core``."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from pygate import _core
from pygate._approvals import Approvals
from pygate._audit import AuditLog, open_audit
from pygate._audit._analytics import record_followup
from pygate._audit._base import today
from pygate._bundle import revision_stamp
from pygate._dispatch import decided_call, wants_actions
from pygate._errors import (
    ApprovalError,
    AuditError,
    ConfigError,
    EngineError,
    InputError,
    Refused,
)
from pygate._input import digest_summary, safe_repr
from pygate._models import Decision, JSONObject
from pygate._opa_process import LocalOpa
from pygate._settings import Settings
from pygate._transport import AiohttpTransport, HttpClientTransport

log = logging.getLogger("pygate")

T = TypeVar("T")
P = ParamSpec("P")

AUDIT_POLICY_ID = "pygate.audit"
#: Refusals of a decision made by a rolled-back (older) policy bundle.
BUNDLE_POLICY_ID = "pygate.bundle"
#: Seconds a gate trusts its cached bundle high-water mark before reading the store again.
_BUNDLE_CACHE_S = 1.0


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
        allow_caller_service: bool = False,
        policy_dir: str | Path | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings or Settings.load(
            {
                "service": service,
                "opa_url": opa_url,
                "timeout": timeout,
                "policy_dir": None if policy_dir is None else str(policy_dir),
            }
        )
        self.service = self.settings.service
        self.allow_caller_service = allow_caller_service
        if self.service is None and not allow_caller_service:
            log.warning(
                "gate without a service: every decision is refused (pass service=..., set "
                "PYGATE_SERVICE, or allow_caller_service=True to let context.service choose)"
            )
        self.local_opa: LocalOpa | None = None
        self.audit: AuditLog | None = None
        self._owns_audit = False
        if self.settings.opa_url:
            if data is not None:
                raise ConfigError("data= configures the embedded OPA; it cannot go with opa_url")
            self.url = self.settings.opa_url
        else:
            self.local_opa = LocalOpa(
                self.settings.policy_dir, opa_bin=self.settings.opa_bin, data=data
            )
            self.local_opa.start()
            self.url = self.local_opa.url
        try:
            self._open_audit(audit)
        except BaseException:
            # A constructor that fails leaves nothing running: no OPA, no open log.
            self._close_owned()
            raise

    def _open_audit(self, audit: AuditLog | str | Path | bool | None) -> None:
        self._owns_audit = not isinstance(audit, AuditLog)
        redaction = (self.settings.redact_keys, self.settings.redact_patterns)
        options = self.settings.audit_options()
        if audit is True:
            self.audit = open_audit(self.settings.audit_db, *redaction, **options)
        elif audit is None or audit is False:
            self.audit = None
        elif isinstance(audit, AuditLog):
            self.audit = audit
        else:
            self.audit = open_audit(audit, *redaction, **options)
        self._bundle_high: tuple[str, str] | None = None
        self._bundle_high_at = 0.0
        self.approvals: Approvals | None = None
        if self.audit is not None and self.audit.extensions:
            self.approvals = Approvals(self.audit, self.settings.approval_ttl)

    def _prepare(self, output: Any, user: Any, context: Any) -> _Prepared:
        """Validate and build the OPA input (raises InputError naming the field)."""
        ctx = _core.normalize_context(context, max_depth=self.settings.max_depth)
        if self.service is None and not self.allow_caller_service:
            raise InputError(
                "context.service",
                "this gate has no configured service, and the caller may not choose one "
                "(configure service=... or PYGATE_SERVICE; allow_caller_service=True opts in)",
            )
        usr = _core.normalize_user(user, max_depth=self.settings.max_depth)
        out = _core.normalize_output(
            output, max_depth=self.settings.max_depth, max_bytes=self.settings.max_output_bytes
        )
        if self.service is not None:
            given = ctx.get("service")
            if given is not None and given != self.service:
                raise InputError(
                    "context.service", f"{given!r} conflicts with this gate's {self.service!r}"
                )
            ctx["service"] = self.service
        service = ctx.get("service")
        if self.audit is not None:
            # The gate, not the caller, knows today's usage: never trust a supplied figure.
            # ``_use_quota`` fills it in from a reservation before OPA is asked.
            ctx.pop("usage_today", None)
        # Approvals reach OPA only from the approval store; a caller's own are dropped.
        ctx.pop("approvals", None)
        if self.approvals is not None:
            try:
                ctx["approvals"] = self.approvals.for_context(usr["id"])
            except AuditError as exc:
                # Fail closed: without the store's word there is no approval, so a
                # require_review refusal stands; the decision itself goes ahead.
                log.error("cannot read approvals, deciding without them: %s", exc)
        return _Prepared(
            _core.build_input(out, usr, ctx),
            service if isinstance(service, str) else None,
            usr["id"],
        )

    @staticmethod
    def _use_quota(prepared: list[_Prepared], usages: list[int]) -> None:
        """Give each request its reserved usage figure.

        Reserving (not just reading) keeps the quota exact under concurrency; the unit is
        given back with the audit record when the request is refused.
        """
        for item, usage in zip(prepared, usages, strict=True):
            item.document["context"]["usage_today"] = usage
            item.reserved = True

    def _prepare_many(self, items: Iterable[Any]) -> list[_Prepared | _Entry]:
        """Prepare each batch item; a bad one becomes its own refusal (an ``_Entry``)."""
        slots: list[_Prepared | _Entry] = []
        for index, item in enumerate(items):
            output, user, context = None, None, None
            try:
                output, user, context = _core.split_item(item, index)
                slots.append(self._prepare(output, user, context))
            except InputError as exc:
                named = InputError(f"items[{index}].{exc.field}".rstrip("."), exc.problem)
                if exc.field.startswith("items["):
                    named = exc
                decision = self._rejected(named, output, user, context)
                oversize = isinstance(exc, _core.OversizeOutput)
                slots.append(_Entry(decision, _rejected_output(exc, output if oversize else item)))
        return slots

    def _decide_many(
        self, prepared: list[_Prepared], status: int, body: bytes, started: float
    ) -> list[Decision]:
        """One Decision per item from the batch answer; a bad item refuses alone.

        Raises:
            EngineError: the answer as a whole is unusable (every item falls back).
        """
        result, envelope = _core.parse_response(status, body, _core.BATCH_PATH)
        answers = _core.read_batch(result, len(prepared))
        decisions = []
        for item, answer in zip(prepared, answers, strict=True):
            try:
                parsed = _core.read_result(answer, _core.BATCH_PATH)
                decisions.append(
                    _core.decision_from_result(
                        parsed,
                        envelope,
                        service=item.service,
                        user_id=item.user_id,
                        latency_ms=(time.perf_counter() - started) * 1000,
                    )
                )
            except EngineError as exc:
                decisions.append(self._fallback(item, exc, started))
        return decisions

    @staticmethod
    def _merge(slots: list[_Prepared | _Entry], decisions: list[Decision]) -> list[_Entry]:
        """Put OPA's decisions back between the rejected items, in input order."""
        answers = iter(decisions)
        return [
            _Entry(next(answers), slot.output, slot) if isinstance(slot, _Prepared) else slot
            for slot in slots
        ]

    def _rejected(self, exc: InputError, output: Any, user: Any, context: Any) -> Decision:
        service = self.service
        if (
            service is None
            and self.allow_caller_service
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

    def _write(
        self, decision: Decision, output: Any, prepared: _Prepared | None = None
    ) -> Decision:
        """Audit one decision; an allow that cannot be audited becomes a refusal."""
        return self._write_many([_Entry(decision, output, prepared)])[0]

    def _no_rollback(self, entries: list[_Entry]) -> list[_Entry]:
        """Refuse decisions made by a bundle older than the newest one decided with here.

        The high-water mark lives in the audit store (shared by every service on it) and is
        cached for ``_BUNDLE_CACHE_S``; a store that cannot be read refuses (fail closed).
        Revisions without a build-time stamp (a local policy folder) are not ordered.
        """
        if self.audit is None or not self.audit.extensions:
            return entries
        checked = []
        for entry in entries:
            revision = entry.decision.bundle_revision
            stamp = revision_stamp(revision)
            if stamp is None or revision is None:
                checked.append(entry)
                continue
            try:
                high = self._bundle_high
                if high is None or time.monotonic() - self._bundle_high_at > _BUNDLE_CACHE_S:
                    high = self.audit.bundle_high()
                if high is None or stamp > high[0]:
                    high = self.audit.raise_bundle_high(stamp, revision)
                self._bundle_high, self._bundle_high_at = high, time.monotonic()
            except AuditError as exc:
                reason = f"cannot check bundle revision {revision} against the newest: {exc}"
                message = "The policy version could not be confirmed as current; refused."
            else:
                if stamp >= high[0]:
                    checked.append(entry)
                    continue
                reason = (
                    f"bundle revision {revision} is older than {high[1]}, which this "
                    "deployment has already decided with (rollback refused)"
                )
                message = "The policy bundle was rolled back; no decision can be made with it."
            refusal = _core.own_refusal(
                BUNDLE_POLICY_ID,
                reason,
                service=entry.decision.service,
                user_id=entry.decision.user_id,
                message=message,
                latency_ms=entry.decision.latency_ms,
            ).model_copy(update={"bundle_revision": revision})
            log.error("refusing: %s", reason)
            checked.append(_Entry(refusal, entry.output, entry.prepared))
        return checked

    def _write_many(self, entries: list[_Entry]) -> list[Decision]:
        """Audit decisions in one durable transaction; see ``_audited``."""
        if self.audit is None:
            return [e.decision for e in entries]
        entries = self._no_rollback(entries)
        try:
            written = self.audit.append_many(
                [(e.decision, e.output) for e in entries], _releases(entries)
            )
        except AuditError as exc:
            return _unaudited(entries, exc)
        self._book_approvals(entries, written)
        return written

    async def _awrite_many(self, entries: list[_Entry]) -> list[Decision]:
        """``_write_many`` for the async twin (no worker thread with the SQLite log)."""
        if self.audit is None:
            return [e.decision for e in entries]
        if any(revision_stamp(e.decision.bundle_revision) for e in entries):
            entries = await asyncio.to_thread(self._no_rollback, entries)
        try:
            written = await self.audit.aappend_many(
                [(e.decision, e.output) for e in entries], _releases(entries)
            )
        except AuditError as exc:
            return _unaudited(entries, exc)
        if self.approvals is not None:
            await asyncio.to_thread(self._book_approvals, entries, written)
        return written

    def _book_approvals(self, entries: list[_Entry], written: list[Decision]) -> None:
        """Open review requests for require_review refusals; mark used approvals."""
        if self.approvals is None:
            return
        for entry, decision in zip(entries, written, strict=True):
            if entry.prepared is None:
                continue
            try:
                self.approvals.after_decision(decision, entry.prepared.output)
            except (AuditError, ApprovalError) as exc:
                # The decision itself is audited; a review request that cannot be opened
                # leaves the refusal standing, an approval not marked used expires anyway.
                log.error("approval book-keeping failed for %s: %s", decision.audit_id, exc)

    def record_followup(self, audit_id: str, kind: str, note: str | None = None) -> str:
        """Record what the user did after the refusal ``audit_id``: retry, escalate or leave.

        The host application knows this better than the log can guess; a recorded follow-up
        overrides the one ``pygate audit followups`` derives.

        Returns:
            The follow-up's id.

        Raises:
            InputError: ``kind`` is not one of retry, escalate, leave (names the field).
            AuditError: no audit log, no such record, or it could not be written.
        """
        if self.audit is None:
            raise AuditError("this gate has no audit log to record a follow-up in")
        return record_followup(self.audit, audit_id, kind, note)

    def _close_owned(self) -> None:
        try:
            if self.audit is not None and self._owns_audit:
                self.audit.close()
        finally:
            if self.local_opa is not None:
                self.local_opa.stop()


class _Entry:
    """A decision on its way to the audit log, with what its record needs."""

    __slots__ = ("decision", "output", "prepared")

    def __init__(self, decision: Decision, output: Any, prepared: _Prepared | None = None) -> None:
        self.decision = decision
        self.output = output
        self.prepared = prepared


def _rejected_output(exc: InputError, output: Any) -> Any:
    """What the audit keeps of input that was refused: a short repr, or for an oversize
    output only its size and digest (the output itself is never stored)."""
    if isinstance(exc, _core.OversizeOutput):
        return digest_summary(output)
    return safe_repr(output)


def _releases(entries: list[_Entry]) -> list[tuple[str, str]]:
    """Quota units to give back: those reserved for requests that were refused."""
    return [
        (e.prepared.user_id, e.prepared.day)
        for e in entries
        if e.prepared is not None and e.prepared.reserved and not e.decision.allowed
    ]


def _audit_refusal(exc: AuditError, service: str | None, user_id: str | None) -> Decision:
    """The audit log cannot take records: refuse (an allow must be audited)."""
    log.error("audit log unavailable, refusing: %s", exc)
    return _core.own_refusal(
        AUDIT_POLICY_ID,
        f"The decision could not be audited ({exc}); refused to be safe",
        fallback=True,
        service=service,
        user_id=user_id,
    )


def _unaudited(entries: list[_Entry], exc: AuditError) -> list[Decision]:
    """Nothing was committed: every decision becomes a refusal."""
    return [_audit_refusal(exc, e.decision.service, e.decision.user_id) for e in entries]


def _unreserved(prepared: list[_Prepared], exc: AuditError) -> list[Decision]:
    """The quota could not be reserved, so nothing was asked of OPA: refuse each request."""
    return [_audit_refusal(exc, p.service, p.user_id) for p in prepared]


def _tool_output(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> JSONObject:
    bound = inspect.signature(fn).bind_partial(*args, **kwargs)
    return {"type": "tool_call", "action": fn.__name__, "arguments": dict(bound.arguments)}


class Gate(_BaseGate):
    """Gate model outputs through OPA before anything acts on them.

    Args:
        service: the service name sent as ``context.service`` (selects its policy sets).
            Without one (here, in ``settings`` or ``PYGATE_SERVICE``) every decision is
            refused as ``pygate.input``, unless ``allow_caller_service`` is set.
        opa_url: an OPA sidecar URL; ``None`` starts the embedded local OPA.
        audit: ``True`` for the configured SQLite log, a path, an ``AuditLog``, or ``None``
            to skip auditing (benchmarks only: the daily quota then cannot be known).
        timeout: seconds per decision before refusing.
        settings: a full ``Settings`` (overrides the other arguments).
        allow_caller_service: opt in to letting the caller's ``context.service`` choose
            the service when the gate has none (a trusted router); off by default, because
            whoever picks the service picks the policies.

    Input is checked before anything is reserved or sent (``pygate._input``): duplicate keys
    in embedded ``arguments`` JSON, lone surrogates, nesting deeper than ``max_depth``, an
    output over ``max_output_bytes``, a non-object context and look-alike user ids are
    refused as ``pygate.input`` naming the field.
        policy_dir: your own policy folder for the embedded OPA: a Rego project loaded
            alongside pygate's Rego library (see "Your own policies" in the README), or a
            whole pygate policy tree. Default: pygate's example policies.
        data: policy data merged into ``data.pygate.config`` of the embedded OPA
            (``services``, limits, lists), e.g. ``{"services": {"pay": {"packages":
            ["acme.payments"]}}}``.

    Example:
        >>> gate = Gate("finance")
        >>> gate.evaluate({"type": "transfer", "amount": 50}, {"id": "u1"}).allowed
    """

    def __init__(self, service: str | None = None, **kwargs: Any) -> None:
        super().__init__(service, **kwargs)
        self._transport = HttpClientTransport(self.url, self.settings.timeout)

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
            decision = self._rejected(exc, output, user, context)
            return self._write(decision, _rejected_output(exc, output))
        if self.audit is not None:
            try:
                self._use_quota([prepared], [self.audit.reserve(prepared.user_id, prepared.day)])
            except AuditError as exc:
                return _unreserved([prepared], exc)[0]
        try:
            status, body = self._transport.post(
                _core.DECISION_PATH, _core.request_body(prepared.document)
            )
            decision = self._decide(prepared, status, body, started)
        except EngineError as exc:
            decision = self._fallback(prepared, exc, started)
        return self._write(decision, prepared.output, prepared)

    def refuse_input(self, exc: InputError, raw: Any = None, user: Any = None) -> Decision:
        """Record a refusal for input the caller could not even turn into a request.

        For a document read by the caller that failed strict parsing (e.g. duplicate keys,
        see ``pygate._input.loads``): the refusal is policy ``pygate.input``, names the
        field and is audited like any other; nothing is reserved and OPA is not asked.

        Args:
            exc: the problem, naming the field.
            raw: what was received (kept as a short repr; its digest if it is oversize).
            user: the user, if known, for the audit record.
        """
        return self._write(self._rejected(exc, raw, user, None), _rejected_output(exc, raw))

    def evaluate_many(self, items: Iterable[Any]) -> list[Decision]:
        """Decide many outputs with ONE request to OPA's batch entry point.

        Each item is decided on its own: a malformed item is refused alone and never
        changes another item's result. Every item gets its own audit record; all of them
        are committed in one durable transaction before this returns.

        Args:
            items: ``(output, user)`` or ``(output, user, context)`` tuples, or dicts with
                ``output``, ``user`` and optionally ``context``.

        Returns:
            One Decision per item, in input order. If OPA cannot answer, every item is a
            fail-closed refusal (each audited).
        """
        started = time.perf_counter()
        slots = self._prepare_many(items)
        prepared = [s for s in slots if isinstance(s, _Prepared)]
        decisions: list[Decision] = []
        if prepared:
            if self.audit is not None:
                keys = [(p.user_id, p.day) for p in prepared]
                try:
                    self._use_quota(prepared, self.audit.reserve_many(keys))
                except AuditError as exc:
                    return self._write_many(self._merge(slots, _unreserved(prepared, exc)))
            try:
                status, body = self._transport.post(
                    _core.BATCH_PATH, _core.batch_body([p.document for p in prepared])
                )
                decisions = self._decide_many(prepared, status, body, started)
            except EngineError as exc:
                decisions = [self._fallback(p, exc, started) for p in prepared]
        return self._write_many(self._merge(slots, decisions))

    def execute(self, output: Any, user: Any, run: Callable[..., T], context: Any = None) -> T:
        """Run ``run`` only if the gate allows ``output``, handing it what was decided.

        ``run`` takes either no argument (the original form) or one: the list of
        ``CanonicalAction`` the gate decided on. Use the actions — not ``output`` — to act,
        so the executor runs exactly what was checked (or use ``dispatch``).

        Raises:
            Refused: the gate said no (the refusal is already audited).
        """
        decision = self.evaluate(output, user, context)
        if not decision.allowed:
            raise Refused(decision)
        return run(list(decision.actions)) if wants_actions(run) else run()

    def guard(self, fn: Callable[P, T]) -> Callable[..., T]:
        """Decorate a tool function: each call is gated as a ``tool_call`` output.

        The wrapped function takes two extra keyword arguments, ``user`` (required) and
        ``context``; the tool's name is the action and its arguments are recorded. When
        allowed, ``fn`` runs with the arguments *as decided* (the canonical action's,
        after their JSON round trip: a tuple arrives as a list), not the ones passed in.

        Raises:
            Refused: when the gate refuses the call.
            DispatchError: the decision does not hold exactly this one call (nothing runs).
        """

        @functools.wraps(fn)
        def wrapper(*args: Any, user: Any, context: Any = None, **kwargs: Any) -> T:
            decision = self.evaluate(_tool_output(fn, args, kwargs), user, context)
            if not decision.allowed:
                raise Refused(decision)
            decided_args, decided_kwargs = decided_call(decision, fn)
            return fn(*decided_args, **decided_kwargs)

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
        """Async ``Gate.evaluate``: same decision, durable audit record before it returns.

        Concurrent evaluations share audit transactions (group commit), so many decisions
        in flight cost one fsync; the event loop never blocks on the database.
        """
        started = time.perf_counter()
        try:
            prepared = self._prepare(output, user, context)
        except InputError as exc:
            decision = self._rejected(exc, output, user, context)
            return (await self._awrite_many([_Entry(decision, _rejected_output(exc, output))]))[0]
        if self.audit is not None:
            keys = [(prepared.user_id, prepared.day)]
            try:
                self._use_quota([prepared], await self.audit.areserve_many(keys))
            except AuditError as exc:
                return _unreserved([prepared], exc)[0]
        try:
            status, body = await self._transport.post(
                _core.DECISION_PATH, _core.request_body(prepared.document)
            )
            decision = self._decide(prepared, status, body, started)
        except EngineError as exc:
            decision = self._fallback(prepared, exc, started)
        return (await self._awrite_many([_Entry(decision, prepared.output, prepared)]))[0]

    async def evaluate_many(self, items: Iterable[Any]) -> list[Decision]:
        """Async ``Gate.evaluate_many``: one request to OPA, one audit transaction."""
        started = time.perf_counter()
        slots = self._prepare_many(items)
        prepared = [s for s in slots if isinstance(s, _Prepared)]
        decisions: list[Decision] = []
        if prepared:
            if self.audit is not None:
                keys = [(p.user_id, p.day) for p in prepared]
                try:
                    self._use_quota(prepared, await self.audit.areserve_many(keys))
                except AuditError as exc:
                    unreserved = self._merge(slots, _unreserved(prepared, exc))
                    return await self._awrite_many(unreserved)
            try:
                status, body = await self._transport.post(
                    _core.BATCH_PATH, _core.batch_body([p.document for p in prepared])
                )
                decisions = self._decide_many(prepared, status, body, started)
            except EngineError as exc:
                decisions = [self._fallback(p, exc, started) for p in prepared]
        return await self._awrite_many(self._merge(slots, decisions))

    async def execute(
        self, output: Any, user: Any, run: Callable[..., Awaitable[T]], context: Any = None
    ) -> T:
        """Await ``run`` only if the gate allows ``output``; see ``Gate.execute``.

        Raises:
            Refused: the gate said no (the refusal is already audited).
        """
        decision = await self.evaluate(output, user, context)
        if not decision.allowed:
            raise Refused(decision)
        return await (run(list(decision.actions)) if wants_actions(run) else run())

    def guard(self, fn: Callable[P, Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        """Decorate an async tool function; see ``Gate.guard``."""

        @functools.wraps(fn)
        async def wrapper(*args: Any, user: Any, context: Any = None, **kwargs: Any) -> T:
            decision = await self.evaluate(_tool_output(fn, args, kwargs), user, context)
            if not decision.allowed:
                raise Refused(decision)
            decided_args, decided_kwargs = decided_call(decision, fn)
            return await fn(*decided_args, **decided_kwargs)

        return wrapper

    async def aclose(self) -> None:
        """Close the session, the audit log and the local OPA, if owned."""
        await self._transport.aclose()
        self._close_owned()

    async def __aenter__(self) -> AsyncGate:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
