"""``Gate`` and ``AsyncGate``: thin twins around the I/O-free core in ``_core``."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from pydantic import BaseModel

from pygate import _core
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
from pygate._settings import Settings
from pygate.audit import AuditLog, open_audit
from pygate.audit._analytics import record_followup
from pygate.audit._approvals import Approvals
from pygate.audit._base import QUOTA_ACTION, Checked, redact, today
from pygate.engine._inprocess import AsyncInProcessTransport, InProcessEngine, InProcessTransport
from pygate.engine._opa_process import LocalOpa
from pygate.engine._transport import (
    AiohttpTransport,
    AsyncTransport,
    HttpClientTransport,
    SyncTransport,
)
from pygate.policy._bundle import revision_stamp

log = logging.getLogger("pygate")

T = TypeVar("T")
P = ParamSpec("P")

AUDIT_POLICY_ID = "pygate.audit"
#: Refusals of a decision made by a rolled-back (older) policy bundle.
BUNDLE_POLICY_ID = "pygate.bundle"
#: The most concurrent ``AsyncGate.evaluate`` calls asked in one batch request to OPA.
COALESCE_MAX = 64
#: Seconds a gate trusts its cached bundle high-water mark before reading the store again.
_BUNDLE_CACHE_S = 1.0


class _Prepared:
    """A validated request: the input document plus what the audit record needs."""

    __slots__ = ("day", "document", "exact", "output", "service", "stored", "usage", "user_id")

    def __init__(self, document: JSONObject, service: str | None, user_id: str) -> None:
        self.document = document
        self.output = document["output"]
        self.service = service
        self.user_id = user_id
        # Reset by ``_quota_keys`` before any use (mutating it is an equivalent mutant).
        self.day = today()
        #: The daily-quota usage OPA was asked with (``None``: not counted). Reset by
        #: ``_quota_keys`` and only read where an audit log set it: another initial value is
        #: an equivalent mutant.
        self.usage: int | None = None
        #: Ask with the committed figure only (its last quota refusal did not stand).
        self.exact = False
        #: The document as the audit stores it (``AuditLog.stored_document``), worked out
        #: while OPA evaluates it; ``None``: not yet (the record then works it out).
        self.stored: tuple[str, Any] | None = None


#: How many times a decision is asked again when what it claimed moved meanwhile (an approval
#: used by a concurrent request, the quota counter): each retry means another request
#: committed, so this is only reached under extreme contention; then the item is refused.
MAX_ROUNDS = 50


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
        engine: str | None = None,
    ) -> None:
        self.settings = settings or Settings.load(
            {
                "service": service,
                "opa_url": opa_url,
                "timeout": timeout,
                "policy_dir": None if policy_dir is None else str(policy_dir),
                "engine": engine,
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
        self.engine: InProcessEngine | None = None
        self.audit: AuditLog | None = None
        self._owns_audit = False
        if self.settings.engine == "inprocess":
            if self.settings.opa_url:
                raise ConfigError(
                    "engine='inprocess' evaluates in this process; it cannot go with opa_url"
                )
            # The same files the embedded OPA would load, read by OPA's engine in-process.
            spec = LocalOpa(self.settings.policy_dir, data=data, binary=False)
            try:
                self.engine = InProcessEngine(spec, library=self.settings.opa_lib)
            finally:
                spec.stop()  # the engine has read the data file; its temp folder can go
            self.url = "inprocess:"
        elif self.settings.opa_url:
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
        # The cached mark and when it was read; a start of 0.0 is older than any cache period,
        # so whatever the first mark starts as, the store is read (an equivalent mutant).
        self._bundle_high: tuple[str, str] | None = None
        self._bundle_high_at = 0.0
        self.approvals: Approvals | None = None
        self._flight_lock = threading.Lock()
        self._in_flight: Counter[tuple[str, str]] = Counter()
        if self.audit is not None and self.audit.extensions:
            self.approvals = Approvals(
                self.audit, self.settings.approval_ttl, self.settings.approval_ttl_max
            )

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
            # ``_use_quota`` fills it in from the committed counter before OPA is asked.
            ctx.pop("usage_today", None)
        # Approvals reach OPA only from the approval store; a caller's own are dropped.
        ctx.pop("approvals", None)
        prepared = _Prepared(
            _core.build_input(out, usr, ctx),
            service if isinstance(service, str) else None,
            usr["id"],
        )
        self._load_approvals(prepared)
        return prepared

    def _load_approvals(self, prepared: _Prepared) -> None:
        """Put the user's usable approvals, as the store has them now, into the input."""
        if self.approvals is None:
            return
        context = prepared.document["context"]
        context.pop("approvals", None)
        try:
            context["approvals"] = self.approvals.for_context(prepared.user_id)
        except AuditError as exc:
            # Fail closed: without the store's word there is no approval, so a
            # require_review refusal stands; the decision itself goes ahead.
            log.error("cannot read approvals, deciding without them: %s", exc)

    def _use_quota(self, prepared: list[_Prepared], used: dict[tuple[str, str], int]) -> None:
        """Give each request the usage to decide with: the committed counter, plus one per
        request of that user this gate has in flight ahead of it (as if each is allowed),
        or, for a request whose quota refusal did not stand, one per earlier item of the same
        user in this call only.

        Nothing is taken here: an allow takes its unit in its own audit transaction, only if
        the counter has not passed the figure OPA saw (``_audit._base.claims``). Counting
        the in-flight requests makes concurrent allows of one user in one process succeed in
        one round instead of conflicting with each other; a quota refusal decided again
        counts only the committed figure, so it settles instead of chasing the others.
        ``_done`` forgets the in-flight requests.
        """
        ahead: Counter[tuple[str, str]] = Counter()
        with self._flight_lock:
            for item in prepared:
                key = (item.user_id, item.day)
                # Counting other calls' in-flight requests (not only this call's) saves rounds
                # under concurrency; the audit's claim check keeps decisions right either way,
                # so a mutant that always counts ``ahead`` is equivalent in every decision.
                item.usage = used[key] + (ahead[key] if item.exact else self._in_flight[key])
                self._in_flight[key] += 1
                ahead[key] += 1
                item.document["context"]["usage_today"] = item.usage

    def _done(self, prepared: list[_Prepared]) -> None:
        """These requests' round is over (audited, conflicted or failed): not in flight."""
        with self._flight_lock:
            for item in prepared:
                if item.usage is None:
                    continue
                key = (item.user_id, item.day)
                self._in_flight[key] -= 1
                if self._in_flight[key] <= 0:
                    del self._in_flight[key]

    def _quota_keys(self, prepared: list[_Prepared]) -> list[tuple[str, str]]:
        for item in prepared:
            # ``_use_quota`` sets it next; only a failed quota read leaves it (the items are
            # then refused unasked), so another "not counted" value is equivalent.
            item.usage = None
            item.day = today()
        return [(p.user_id, p.day) for p in prepared]

    def _round(
        self, slots: list[_Prepared | _Entry], todo: list[int], attempt: int
    ) -> list[_Prepared]:
        """The items to ask OPA about in this round (approvals re-read after the first)."""
        prepared = [s for i in todo if isinstance(s := slots[i], _Prepared)]
        if attempt:
            for item in prepared:
                self._load_approvals(item)
        return prepared

    @staticmethod
    def _settled(
        results: list[Decision | None],
        todo: list[int],
        written: list[Decision | None],
    ) -> list[int]:
        """Store this round's audited decisions; return the items to decide again."""
        again = []
        # ``strict``: a guard only; ``written`` is built from these very items.
        for index, decision in zip(todo, written, strict=True):
            if decision is None:
                again.append(index)
            else:
                results[index] = decision
        return again

    def _contended(self, slots: list[_Prepared | _Entry], todo: list[int]) -> list[_Entry]:
        """Items still unsettled after MAX_ROUNDS: refused, and audited as such."""
        entries = []
        for index in todo:
            slot = slots[index]
            assert isinstance(slot, _Prepared)  # only prepared items carry claims
            decision = _core.own_refusal(
                AUDIT_POLICY_ID,
                "The quota or approval this decision needed kept changing under concurrent "
                "requests; refused to be safe",
                fallback=True,
                service=slot.service,
                user_id=slot.user_id,
            )
            slot.usage = None
            entries.append(_Entry(decision, slot.output, slot))
        return entries

    def _input_record(self, exc: InputError, output: Any) -> Any:
        """What is stored for an output that failed validation: masked, THEN shown.

        An oversize output is never stored: only its size and digest. Otherwise ``repr`` of
        the raw value would write every secret in it in clear, so the value is masked like
        any other output first (its text patterns apply to the resulting text too).
        """
        if isinstance(exc, _core.OversizeOutput):
            return digest_summary(output)
        value = output
        if isinstance(output, BaseModel):
            # pydantic reads any mode but "json" as python: a mutated literal is equivalent.
            value = output.model_dump(mode="python")
        elif not isinstance(output, (dict, list, tuple, str, int, float, bool, type(None))):
            attrs = getattr(output, "__dict__", None)
            value = {"type": type(output).__name__, **attrs} if isinstance(attrs, dict) else output
        try:
            value = self.audit.masked(value) if self.audit is not None else redact(value)
        except RecursionError:
            return f"<{type(output).__name__} nested too deeply to show>"
        return safe_repr(value)

    def _prepare_many(self, items: Iterable[Any]) -> list[_Prepared | _Entry]:
        """Prepare each batch item; a bad one becomes its own refusal (an ``_Entry``)."""
        slots: list[_Prepared | _Entry] = []
        for index, item in enumerate(items):
            output, user, context = _core.loose_parts(item)
            try:
                output, user, context = _core.split_item(item, index)
                slots.append(self._prepare(output, user, context))
            except InputError as exc:
                named = InputError(f"items[{index}].{exc.field}".rstrip("."), exc.problem)
                if exc.field.startswith("items["):
                    named = exc
                decision = self._rejected(named, user, context)
                oversize = isinstance(exc, _core.OversizeOutput)
                slots.append(
                    _Entry(decision, self._input_record(exc, output if oversize else item))
                )
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

    def _rejected(self, exc: InputError, user: Any, context: Any) -> Decision:
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
        # The rule that answered (decision or batch) is in the log, not in the refusal.
        log.warning("policy engine failure at %s, refusing: %s", exc.policy_path or "?", exc)
        return _core.fallback_decision(
            exc,
            service=prepared.service,
            user_id=prepared.user_id,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def _write(self, decision: Decision, output: Any) -> Decision:
        """Audit one decision that claims nothing (an input refusal)."""
        written = self._write_many([_Entry(decision, output)])[0]
        assert written is not None  # nothing claimed, so nothing can be skipped
        return written

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

    def _write_many(self, entries: list[_Entry]) -> list[Decision | None]:
        """Audit decisions in one durable transaction, each with its claims.

        Returns:
            Per entry, the audited decision, or ``None`` when its claim failed (decide again).
            An allow that cannot be audited becomes a refusal (and takes no quota unit).
        """
        if self.audit is None:
            return [e.decision for e in entries]
        entries = self._no_rollback(entries)
        try:
            written = self.audit.append_checked(_checked(entries))
        except AuditError as exc:
            return list(_unaudited(entries, exc))
        self._book_approvals(entries, written)
        return written

    async def _awrite_many(self, entries: list[_Entry]) -> list[Decision | None]:
        """``_write_many`` for the async twin (no worker thread with the SQLite log)."""
        if self.audit is None:
            return [e.decision for e in entries]
        if any(revision_stamp(e.decision.bundle_revision) for e in entries):
            entries = await asyncio.to_thread(self._no_rollback, entries)
        try:
            written = await self.audit.aappend_checked(_checked(entries))
        except AuditError as exc:
            return list(_unaudited(entries, exc))
        if self.approvals is not None and any(
            _may_book(e, d) for e, d in zip(entries, written, strict=True)
        ):
            await asyncio.to_thread(self._book_approvals, entries, written)
        return written

    def _book_approvals(self, entries: list[_Entry], written: list[Decision | None]) -> None:
        """Open review requests for require_review refusals."""
        if self.approvals is None:
            return
        for entry, decision in zip(entries, written, strict=True):
            if entry.prepared is None or decision is None:
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


def _may_book(entry: _Entry, decision: Decision | None) -> bool:
    """Whether ``Approvals.after_decision`` can have anything to do for this decision: only
    an audited refusal of a gated output, with OPA's output hash, opens a review request
    (an allow, a fallback or an input refusal never does)."""
    return (
        entry.prepared is not None
        and decision is not None
        and not decision.allowed
        and not decision.fallback
        and bool(decision.output_hash)
    )


def _checked(entries: list[_Entry]) -> list[Checked]:
    """The audit items: each with the quota usage OPA decided with, when it was asked one.

    A quota refusal carries the lowest usage at which OPA refused this user by quota in
    this round: the quota is at most that, so the refusal stands once the counter reaches
    it (items of one batch past the boundary see higher figures than the counter will).
    """
    floor: dict[tuple[str, str], int] = {}
    for e in entries:
        if e.prepared is not None and e.prepared.usage is not None and _quota_refusal(e):
            key = (e.prepared.user_id, e.prepared.day)
            floor[key] = min(floor.get(key, e.prepared.usage), e.prepared.usage)
    items = []
    for e in entries:
        quota = None
        if e.prepared is not None and e.prepared.usage is not None:
            key = (e.prepared.user_id, e.prepared.day)
            usage = floor[key] if _quota_refusal(e) else e.prepared.usage
            quota = (e.prepared.user_id, e.prepared.day, usage)
        document = e.prepared.document if e.prepared is not None else None
        stored = e.prepared.stored if e.prepared is not None else None
        items.append(Checked(e.decision, e.output, quota, document, stored))
    return items


def _mark_exact(entries: list[_Entry], written: list[Decision | None]) -> None:
    """A quota refusal that did not stand is asked again with the committed figure only."""
    # ``strict``: a guard only; ``written`` is built from these very entries.
    for entry, decision in zip(entries, written, strict=True):
        if decision is None and entry.prepared is not None:
            entry.prepared.exact = _quota_refusal(entry)


def _quota_refusal(entry: _Entry) -> bool:
    return not entry.decision.allowed and any(
        r.action == QUOTA_ACTION for r in entry.decision.refusals
    )


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
    """The quota could not be read, so nothing was asked of OPA: refuse each request."""
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

    Input is checked before the quota is read or anything is sent (``pygate._input``):
    duplicate keys in embedded ``arguments`` JSON, lone surrogates, nesting deeper than
    ``max_depth``, an output over ``max_output_bytes``, a non-object context and look-alike
    user ids are refused as ``pygate.input`` naming the field.
        policy_dir: your own policy folder for the embedded OPA: a Rego project loaded
            alongside pygate's Rego library (see "Your own policies" in the README), or a
            whole pygate policy tree. Default: pygate's example policies.
        data: policy data merged into ``data.pygate.config`` of the embedded OPA
            (``services``, limits, lists), e.g. ``{"services": {"pay": {"packages":
            ["acme.payments"]}}}``.
        engine: ``"sidecar"`` (default: an OPA process, embedded or at ``opa_url``) or
            ``"inprocess"``: OPA's Go engine at the same version evaluates the same policies
            inside this process, without HTTP (built by ``./dev setup``); engine failures
            refuse exactly as with the sidecar.

    Example:
        >>> gate = Gate("finance")
        >>> gate.evaluate({"type": "transfer", "amount": 50}, {"id": "u1"}).allowed
    """

    def __init__(self, service: str | None = None, **kwargs: Any) -> None:
        super().__init__(service, **kwargs)
        self._transport: SyncTransport = (
            InProcessTransport(self.engine, self.settings.timeout)
            if self.engine is not None
            else HttpClientTransport(self.url, self.settings.timeout)
        )

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
            rejected = self._rejected(exc, user, context)
            return self._write(rejected, self._input_record(exc, output))
        return self._settle([prepared], started, single=True)[0]

    def refuse_input(self, exc: InputError, raw: Any = None, user: Any = None) -> Decision:
        """Record a refusal for input the caller could not even turn into a request.

        For a document read by the caller that failed strict parsing (e.g. duplicate keys,
        see ``pygate._input.loads``): the refusal is policy ``pygate.input``, names the
        field and is audited like any other; no quota is read and OPA is not asked.

        Args:
            exc: the problem, naming the field.
            raw: what was received (kept as a short repr; its digest if it is oversize).
            user: the user, if known, for the audit record.
        """
        return self._write(self._rejected(exc, user, None), self._input_record(exc, raw))

    def evaluate_many(self, items: Iterable[Any]) -> list[Decision]:
        """Decide many outputs with ONE request to OPA's batch entry point.

        Each item is decided on its own: a malformed item is refused alone and never
        changes another item's result. Every item gets its own audit record, committed
        durably before this returns. Items decide as if submitted one after another: an
        approval lets only the first matching item through, and the quota counts only
        the items allowed before.

        Args:
            items: ``(output, user)`` or ``(output, user, context)`` tuples, or dicts with
                ``output``, ``user`` and optionally ``context``.

        Returns:
            One Decision per item, in input order. If OPA cannot answer, every item is a
            fail-closed refusal (each audited).
        """
        started = time.perf_counter()
        # ``single`` is only tested for truth (``None`` for ``False``: an equivalent mutant).
        return self._settle(self._prepare_many(items), started, single=False)

    def _settle(
        self, slots: list[_Prepared | _Entry], started: float, single: bool
    ) -> list[Decision]:
        """Decide and audit until every item's claims hold (see ``MAX_ROUNDS``)."""
        results: list[Decision | None] = [None] * len(slots)
        todo = list(range(len(slots)))
        for attempt in range(MAX_ROUNDS):
            prepared = self._round(slots, todo, attempt)
            try:
                decisions = self._ask(prepared, started, single)
                entries = self._merge([slots[i] for i in todo], decisions)
                written = self._write_many(entries)
            finally:
                self._done(prepared)
            _mark_exact(entries, written)
            todo = self._settled(results, todo, written)
            if not todo:
                break
        else:
            self._settled(results, todo, self._write_many(self._contended(slots, todo)))
        return [d for d in results if d is not None]

    def _ask(self, prepared: list[_Prepared], started: float, single: bool) -> list[Decision]:
        """OPA's decisions for ``prepared``, each asked with its quota usage."""
        if not prepared:
            return []
        if self.audit is not None:
            keys = self._quota_keys(prepared)
            try:
                self._use_quota(prepared, self.audit.quota_used(keys))
            except AuditError as exc:
                return _unreserved(prepared, exc)
        # Work overlapped with OPA's evaluation, for speed only: without it the record works
        # the same redaction out itself (dropping it is an equivalent mutant; benchmarks/).
        meanwhile = self._meanwhile(prepared)
        try:
            if single:
                status, body = self._transport.post(
                    _core.DECISION_PATH, _core.request_body(prepared[0].document), meanwhile
                )
                return [self._decide(prepared[0], status, body, started)]
            status, body = self._transport.post(
                _core.BATCH_PATH, _core.batch_body([p.document for p in prepared]), meanwhile
            )
            return self._decide_many(prepared, status, body, started)
        except EngineError as exc:
            return [self._fallback(p, exc, started) for p in prepared]

    def _meanwhile(self, prepared: list[_Prepared]) -> Callable[[], None] | None:
        """What to do while OPA evaluates: redact the documents as their records store them
        (most of a record's cost), so only the decision's own fields are left for after.

        Speed only: a missing or empty ``stored`` makes the record work it out itself, so
        mutants that skip or blank this work are equivalent in every record (benchmarks/).
        """
        audit = self.audit
        for item in prepared:
            item.stored = None  # a document sent again may differ (approvals re-read)
        if audit is None:
            return None

        def work() -> None:
            for item in prepared:
                try:
                    item.stored = audit.stored_document(item.document)
                except Exception:  # the record works it out again, and raises there
                    item.stored = None

        return work

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
        self._transport: AsyncTransport = (
            AsyncInProcessTransport(self.engine, self.settings.timeout)
            if self.engine is not None
            else AiohttpTransport(self.url, self.settings.timeout)
        )
        self._queued: list[tuple[_Prepared, float, asyncio.Future[Decision]]] = []
        self._batches: set[asyncio.Task[None]] = set()

    async def evaluate(self, output: Any, user: Any, context: Any = None) -> Decision:
        """Async ``Gate.evaluate``: same decision, durable audit record before it returns.

        Concurrent evaluations share audit transactions (group commit), so many decisions
        in flight cost one fsync; the event loop never blocks on the database. Calls made
        in the same event-loop tick are asked in ONE request to OPA's batch entry point
        (up to ``COALESCE_MAX``), each decided and audited on its own as ``evaluate_many``
        does; a lone call is asked alone.
        """
        started = time.perf_counter()
        try:
            prepared = self._prepare(output, user, context)
        except InputError as exc:
            decision = self._rejected(exc, user, context)
            written = await self._awrite_many([_Entry(decision, self._input_record(exc, output))])
            assert written[0] is not None  # nothing claimed, so nothing can be skipped
            return written[0]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Decision] = loop.create_future()
        self._queued.append((prepared, started, future))
        if len(self._queued) == 1:
            loop.call_soon(self._ask_queued)
        return await future

    def _ask_queued(self) -> None:
        """Ask OPA about the calls queued in this tick, in batches of ``COALESCE_MAX``."""
        queued, self._queued = self._queued, []
        for at in range(0, len(queued), COALESCE_MAX):
            task = asyncio.ensure_future(self._settle_queued(queued[at : at + COALESCE_MAX]))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _settle_queued(
        self, queued: list[tuple[_Prepared, float, asyncio.Future[Decision]]]
    ) -> None:
        """Decide and audit queued calls together; hand each caller its own decision."""
        try:
            decisions = await self._settle(
                [p for p, _, _ in queued], min(s for _, s, _ in queued), single=len(queued) == 1
            )
        except BaseException as exc:  # every caller gets it (there is nobody else to raise to)
            for _, _, future in queued:
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
            return
        for (_, _, future), decision in zip(queued, decisions, strict=True):
            if not future.done():  # a cancelled caller's record is written all the same
                future.set_result(decision)

    async def refuse_input(self, exc: InputError, raw: Any = None, user: Any = None) -> Decision:
        """Async ``Gate.refuse_input``: audit a refusal for a request that could not be read."""
        decision = self._rejected(exc, user, None)
        written = await self._awrite_many([_Entry(decision, self._input_record(exc, raw))])
        assert written[0] is not None  # nothing claimed, so nothing can be skipped
        return written[0]

    async def evaluate_many(self, items: Iterable[Any]) -> list[Decision]:
        """Async ``Gate.evaluate_many``: one request to OPA, one audit transaction."""
        started = time.perf_counter()
        # ``single`` is only tested for truth (see ``Gate.evaluate_many``).
        return await self._settle(self._prepare_many(items), started, single=False)

    async def _settle(
        self, slots: list[_Prepared | _Entry], started: float, single: bool
    ) -> list[Decision]:
        """Async ``Gate._settle``."""
        results: list[Decision | None] = [None] * len(slots)
        todo = list(range(len(slots)))
        for attempt in range(MAX_ROUNDS):
            prepared = self._round(slots, todo, attempt)
            try:
                decisions = await self._ask(prepared, started, single)
                entries = self._merge([slots[i] for i in todo], decisions)
                written = await self._awrite_many(entries)
            finally:
                self._done(prepared)
            _mark_exact(entries, written)
            todo = self._settled(results, todo, written)
            if not todo:
                break
        else:
            written = await self._awrite_many(self._contended(slots, todo))
            self._settled(results, todo, written)
        return [d for d in results if d is not None]

    async def _ask(self, prepared: list[_Prepared], started: float, single: bool) -> list[Decision]:
        """Async ``Gate._ask``."""
        if not prepared:
            return []
        if self.audit is not None:
            keys = self._quota_keys(prepared)
            try:
                used = await asyncio.to_thread(self.audit.quota_used, keys)
            except AuditError as exc:
                return _unreserved(prepared, exc)
            self._use_quota(prepared, used)
        try:
            if single:
                status, body = await self._transport.post(
                    _core.DECISION_PATH, _core.request_body(prepared[0].document)
                )
                return [self._decide(prepared[0], status, body, started)]
            status, body = await self._transport.post(
                _core.BATCH_PATH, _core.batch_body([p.document for p in prepared])
            )
            return self._decide_many(prepared, status, body, started)
        except EngineError as exc:
            return [self._fallback(p, exc, started) for p in prepared]

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
