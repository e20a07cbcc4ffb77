"""Replay recorded decisions against a candidate policy bundle, before it ships.

Every audit record written since the audit kept it holds what OPA was asked (``opa_input``):
the user, the context with the daily-quota usage and the approvals as they were at decision
time, and the output (its own column). ``replay`` sends those inputs, in batches, to a real
OPA process loaded with the candidate (a bundle ``.tar.gz`` from ``pygate bundle build`` or a
policy folder) and compares each answer with the recorded decision: what would flip from
allow to refuse, from refuse to allow, and which refusals would change policy.

Nothing is guessed. A record is **not replayable**, and counted as such by cause, when:

- it has no recorded input (written before inputs were kept, or refused by pygate before OPA
  was asked: invalid input);
- it was not OPA's decision (an engine fallback, an audit or rollback refusal by pygate);
- redaction masked a value in its input (``redacted``: a secret-looking key or text). Which
  policies read which fields is not known statically, so any masked value counts: a policy
  would decide on ``***`` instead of what the model wrote.

Time: approvals carry ``expires_at_ns``, which Rego compares with ``time.now_ns()``; each
recorded approval's expiry is moved forward by the time elapsed since the decision, so it is
as valid as it was then. Nothing else in the decision reads the clock.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pygate import _core
from pygate._errors import ConfigError, EngineError
from pygate._models import AuditRecord, JSONObject
from pygate.audit._base import AuditLog, to_record
from pygate.engine._opa_process import LocalOpa
from pygate.engine._transport import HttpClientTransport

#: Refusals pygate makes itself, never OPA: replaying their input answers another question.
OWN_POLICIES = frozenset({"pygate.engine", "pygate.input", "pygate.audit", "pygate.bundle"})

ALLOW_TO_REFUSE = "allow_to_refuse"
REFUSE_TO_ALLOW = "refuse_to_allow"
CHANGED = "changed_policies"
KINDS = (ALLOW_TO_REFUSE, REFUSE_TO_ALLOW, CHANGED)

#: Seconds one batch query may take before the replay fails (EngineTimeout).
QUERY_TIMEOUT = 900.0

#: Records read from the log per query, and inputs sent to OPA per batch query.
READ_CHUNK = 2000
DEFAULT_BATCH = 500


@dataclass
class _Tally:
    replayed: int = 0
    unchanged: int = 0
    not_replayable: int = 0
    kinds: Counter[str] = field(default_factory=Counter)


@dataclass
class _State:
    examples: int
    records: int = 0
    total: _Tally = field(default_factory=_Tally)
    causes: Counter[str] = field(default_factory=Counter)
    redacted_paths: Counter[str] = field(default_factory=Counter)
    services: dict[str, _Tally] = field(default_factory=lambda: defaultdict(_Tally))
    policies: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    policy_ids: dict[str, dict[str, list[str]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    policy_examples: dict[str, dict[str, list[JSONObject]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    flips: list[JSONObject] = field(default_factory=list)
    revision: str | None = None


def unreplayable(record: AuditRecord) -> str | None:
    """Why ``record`` cannot be replayed (``None``: it can)."""
    if record.fallback or (record.policy_id in OWN_POLICIES and not record.allowed):
        return "not_decided_by_opa"
    if record.opa_input is None:
        return "no_recorded_input"
    if record.opa_input.get("redacted"):
        return "redacted"
    return None


def replay_document(record: AuditRecord, now_ns: int) -> JSONObject:
    """The input document to ask the candidate for ``record`` (see the module docstring)."""
    stored = record.opa_input or {}
    context = dict(stored.get("context") or {})
    elapsed = max(0, now_ns - int(record.ts.timestamp() * 1e9))
    approvals = context.get("approvals")
    if isinstance(approvals, list):
        context["approvals"] = [
            {**a, "expires_at_ns": a["expires_at_ns"] + elapsed}
            if isinstance(a, dict) and isinstance(a.get("expires_at_ns"), int)
            else a
            for a in approvals
        ]
    return {"output": record.output, "user": stored.get("user"), "context": context}


def _recorded_policies(record: AuditRecord) -> list[str]:
    """The policies that refused ``record`` (enforcing ones: shadow refusals never count)."""
    if record.allowed:
        return []
    if record.refusals is not None:
        return [str(r.get("policy_id")) for r in record.refusals if not r.get("shadow")]
    return list(record.policy_ids)


def _flip(record: AuditRecord, answer: JSONObject) -> JSONObject | None:
    """The flip ``answer`` makes of ``record`` (``None``: the same decision)."""
    after = [r["policy_id"] for r in answer["refusals"]]
    before = _recorded_policies(record)
    if record.allowed == answer["allowed"]:
        if record.allowed or sorted(set(before)) == sorted(set(after)):
            return None
        kind = CHANGED
    else:
        kind = ALLOW_TO_REFUSE if record.allowed else REFUSE_TO_ALLOW
    primary = answer.get("primary") or (answer["refusals"][0] if answer["refusals"] else None)
    return {
        "kind": kind,
        "audit_id": record.audit_id,
        "ts": record.ts.isoformat(),
        "service": record.service,
        "user_id": record.user_id,
        "output": record.output,
        "before": {"allowed": record.allowed, "policies": before, "reason": record.reason},
        "after": {
            "allowed": answer["allowed"],
            "policies": after,
            "reason": primary["reason"] if primary else "allowed",
            "refusals": answer["refusals"],
        },
    }


def _count(state: _State, record: AuditRecord, flip: JSONObject | None) -> None:
    service = state.services[record.service or "-"]
    for tally in (state.total, service):
        tally.replayed += 1
    if flip is None:
        state.total.unchanged += 1
        service.unchanged += 1
        return
    kind = flip["kind"]
    state.total.kinds[kind] += 1
    service.kinds[kind] += 1
    state.flips.append(flip)
    before, after = set(flip["before"]["policies"]), set(flip["after"]["policies"])
    # Per policy: the policies that newly refuse (allow→refuse, changed), or that no longer
    # refuse (refuse→allow, changed).
    touched = [(p, kind) for p in sorted(after - before)] + [
        (p, REFUSE_TO_ALLOW if kind == REFUSE_TO_ALLOW else "no_longer_refuses")
        for p in sorted(before - after)
    ]
    for policy, how in touched:
        state.policies[policy][how] += 1
        state.policy_ids[policy][how].append(record.audit_id)
        if len(state.policy_examples[policy][how]) < state.examples:
            state.policy_examples[policy][how].append(flip)


def _records(log: AuditLog, since: str | None, service: str | None) -> Iterator[AuditRecord]:
    """The records to replay, oldest first, read in chunks (``READ_CHUNK``)."""
    after = 0
    while True:
        where = ["seq > ?"]
        params: list[Any] = [after]
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        if service is not None:
            where.append("service = ?")
            params.append(service)
        rows = log._select(
            f"WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?", (*params, READ_CHUNK)
        )
        if not rows:
            return
        for row in rows:
            yield to_record(row)
        after = int(rows[-1]["seq"])


def replay(
    log: AuditLog,
    candidate: str | Path,
    *,
    since: str | None = None,
    service: str | None = None,
    opa_bin: str | Path | None = None,
    batch: int = DEFAULT_BATCH,
    workers: int = 2,
    examples: int = 3,
    progress: Callable[[int, int], None] | None = None,
    now: datetime | None = None,
    verification_key: str | Path | None = None,
    key_id: str = "pygate",
) -> JSONObject:
    """Re-decide the recorded inputs with ``candidate`` and report what would flip.

    Args:
        log: the audit log to read.
        candidate: a bundle ``.tar.gz`` or a policy folder (loaded as ``LocalOpa`` loads it).
        since: only records from this ISO time on.
        service: only this service's records.
        opa_bin: the ``opa`` binary (default: ``find_opa_binary()``).
        batch: records per OPA query (identical inputs are asked once).
        workers: OPA queries in flight at once.
        examples: example flips kept per policy and kind.
        progress: called with ``(done, total)`` after each batch.
        now: the replay's clock (approval expiries are shifted to it).
        verification_key: the public key a signed bundle must verify with; without it
            the signature is not checked (replay decides nothing live).
        key_id: the key id the bundle was signed with (``pygate bundle build --key-id``).

    Returns:
        A JSON-ready report: counts (replayed, unchanged, flips by kind, not replayable by
        cause and redacted path), per policy and per service, and every flip with its audit
        id, the recorded decision and the candidate's.

    Raises:
        ConfigError: the candidate does not exist or OPA cannot load it.
        EngineError: OPA stopped answering during the replay.
    """
    path = Path(candidate)
    if not path.exists():
        raise ConfigError(f"candidate bundle {path} does not exist")
    if batch < 1 or workers < 1:
        raise ConfigError("batch, workers: must be at least 1")
    started = time.perf_counter()
    state = _State(examples=examples)
    now_ns = int((now or datetime.now(UTC)).timestamp() * 1e9)
    where = ""
    params: tuple[str, ...] = ()
    if since is not None or service is not None:
        conds = [c for c, v in (("ts >= ?", since), ("service = ?", service)) if v is not None]
        where = " WHERE " + " AND ".join(conds)
        params = tuple(v for v in (since, service) if v is not None)
    total = int(log._scalar(f"SELECT count(*) FROM decisions{where}", params))
    extra = ["--skip-verify"]
    if verification_key is not None:
        extra = ["--verification-key", str(verification_key), "--verification-key-id", key_id]
    opa = LocalOpa(path, opa_bin=opa_bin, supervise=False, extra_args=extra)
    try:
        opa.start()
    except (EngineError, ConfigError) as exc:
        raise ConfigError(f"OPA cannot load candidate {path}: {exc}") from exc
    # The OPA is ours and local: a batch that takes long is CPU starvation (a busy machine),
    # not a dead engine. A second 100k replay under load average 55 timed out at 120 s.
    transport = HttpClientTransport(opa.url, timeout=QUERY_TIMEOUT)
    try:
        _run(state, log, transport, _Plan(since, service, batch, workers, total, now_ns), progress)
    finally:
        transport.close()
        opa.stop()
    return _report(state, path, since, service, time.perf_counter() - started)


@dataclass(frozen=True)
class _Plan:
    since: str | None
    service: str | None
    batch: int
    workers: int
    total: int
    now_ns: int


#: A batch on its way: the records, the key of each one's input, the keys of the inputs sent.
_Batch = tuple[list[AuditRecord], list[str], list[str]]


def _run(
    state: _State,
    log: AuditLog,
    transport: HttpClientTransport,
    plan: _Plan,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Read, batch, ask (``workers`` queries in flight), count: in record order.

    Identical inputs are asked once: within a batch, and across batches once answered.
    """
    answered: dict[str, JSONObject] = {}
    in_flight: deque[tuple[Future[list[Any]], _Batch]] = deque()
    records: list[AuditRecord] = []
    with ThreadPoolExecutor(max_workers=plan.workers, thread_name_prefix="pygate-replay") as pool:

        def submit() -> None:
            keys: list[str] = []
            unique: dict[str, JSONObject] = {}
            for record in records:
                doc = replay_document(record, plan.now_ns)
                key = json.dumps(doc, sort_keys=True, separators=(",", ":"))
                keys.append(key)
                if key not in answered:
                    unique.setdefault(key, doc)
            future = pool.submit(_query, state, transport, list(unique.values()))
            in_flight.append((future, (list(records), keys, list(unique))))
            records.clear()

        def settle() -> None:
            future, (batch_records, keys, asked) = in_flight.popleft()
            answered.update(zip(asked, future.result(), strict=True))
            for record, key in zip(batch_records, keys, strict=True):
                answer = answered[key]
                if answer.get("error"):
                    _skip(state, record, "candidate_error")
                else:
                    _count(state, record, _flip(record, answer))
            if progress is not None:
                progress(state.records, plan.total)

        for record in _records(log, plan.since, plan.service):
            state.records += 1
            cause = unreplayable(record)
            if cause is not None:
                _skip(state, record, cause)
                continue
            records.append(record)
            if len(records) >= plan.batch:
                submit()
                while len(in_flight) > plan.workers:
                    settle()
        if records:
            submit()
        while in_flight:
            settle()
    if progress is not None:
        progress(state.records, plan.total)


def _skip(state: _State, record: AuditRecord, cause: str) -> None:
    state.causes[cause] += 1
    state.total.not_replayable += 1
    state.services[record.service or "-"].not_replayable += 1
    if cause == "redacted" and record.opa_input is not None:
        for path in record.opa_input.get("redacted") or []:
            state.redacted_paths[str(path)] += 1


def _query(state: _State, transport: HttpClientTransport, docs: list[JSONObject]) -> list[Any]:
    """One batch query; each answer read against the decision contract (runs in a worker)."""
    if not docs:
        return []
    status, body = transport.post(_core.BATCH_PATH, _core.batch_body(docs))
    result, envelope = _core.parse_response(status, body, _core.BATCH_PATH)
    answers = _core.read_batch(result, len(docs))
    if state.revision is None:
        state.revision = _core._revision(envelope)
    read: list[Any] = []
    for answer in answers:
        try:
            parsed = _core.read_result(answer, _core.BATCH_PATH)
        except EngineError as exc:
            # The candidate's answer breaks the contract: reported, never compared.
            read.append({"error": str(exc)})
            continue
        primary = parsed.primary
        # A shadow refusal ("shadow": true) never refuses: it is not part of the comparison.
        enforcing = [r for r in parsed.refusals if (r.model_extra or {}).get("shadow") is not True]
        read.append(
            {
                "allowed": parsed.allowed,
                "refusals": [r.model_dump(mode="json", exclude_none=True) for r in enforcing],
                "primary": primary.model_dump(mode="json", exclude_none=True) if primary else None,
            }
        )
    return read


def _tally(t: _Tally) -> JSONObject:
    return {
        "replayed": t.replayed,
        "unchanged": t.unchanged,
        "not_replayable": t.not_replayable,
        **{k: t.kinds[k] for k in KINDS},
    }


def _report(
    state: _State, path: Path, since: str | None, service: str | None, seconds: float
) -> JSONObject:
    policies = []
    for policy in sorted(state.policies, key=lambda p: (-sum(state.policies[p].values()), p)):
        counts = state.policies[policy]
        policies.append(
            {
                "policy_id": policy,
                **{k: counts[k] for k in (ALLOW_TO_REFUSE, REFUSE_TO_ALLOW, CHANGED)},
                "no_longer_refuses": counts["no_longer_refuses"],
                "audit_ids": {k: v for k, v in state.policy_ids[policy].items()},
                "examples": {k: v for k, v in state.policy_examples[policy].items()},
            }
        )
    return {
        "candidate": str(path),
        "candidate_revision": state.revision,
        "since": since,
        "service": service,
        "records": state.records,
        **_tally(state.total),
        "not_replayable_by_cause": dict(sorted(state.causes.items())),
        "redacted_paths": dict(state.redacted_paths.most_common()),
        "by_service": [
            {"service": name, **_tally(t)} for name, t in sorted(state.services.items())
        ],
        "by_policy": policies,
        "flips": state.flips,
        "seconds": round(seconds, 3),
    }


def load_report(path: str | Path) -> JSONObject:
    """A replay report saved with ``pygate replay --json`` (for ``audit report --replay``).

    Raises:
        ConfigError: not readable, or not a replay report.
    """
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"replay report {path}: {exc}") from exc
    if not isinstance(doc, dict) or "flips" not in doc or "by_policy" not in doc:
        raise ConfigError(f"replay report {path}: not the JSON of `pygate replay --json`")
    return doc
