"""Group commit: concurrent audit writes share transactions, and stay exact and chained."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from pygate import AuditError, Decision, SqliteAuditLog
from pygate.audit._group_commit import GroupCommit


def test_writers_that_arrive_during_a_commit_share_the_next_one() -> None:
    batches: list[list[str]] = []
    first_running = threading.Event()
    release_first = threading.Event()

    def execute(ops: Sequence[str]) -> list[str]:
        if not batches:
            first_running.set()
            release_first.wait(10)
        batches.append(list(ops))
        return [op.upper() for op in ops]

    group: GroupCommit[str] = GroupCommit(execute)
    results: dict[str, str] = {}

    def call(op: str) -> None:
        results[op] = group.run(op)

    leader = threading.Thread(target=call, args=("a",))
    leader.start()
    assert first_running.wait(10)
    followers = [threading.Thread(target=call, args=(op,)) for op in "bcd"]
    for t in followers:
        t.start()
    pending = [group.submit("e")]  # an async-style caller joins the same queue
    while True:  # wait until all four are queued behind the leader
        with group._cv:
            if len(group._queue) == 4:
                break
        threading.Event().wait(0.01)
    release_first.set()
    for t in [leader, *followers]:
        t.join(10)
    assert pending[0].result(10) == "E"
    group.close()
    assert results == {"a": "A", "b": "B", "c": "C", "d": "D"}
    assert batches[0] == ["a"]
    assert sorted(batches[1]) == ["b", "c", "d", "e"]  # one transaction for four writers
    assert len(batches) == 2


def test_a_failing_op_fails_alone() -> None:
    def execute(ops: Sequence[str]) -> list[str]:
        if "bad" in ops:
            raise AuditError("bad op")
        return list(ops)

    group: GroupCommit[str] = GroupCommit(execute)
    futures = [group.submit(op) for op in ("x", "bad", "y")]
    assert futures[0].result(10) == "x"
    assert futures[2].result(10) == "y"
    with pytest.raises(AuditError):
        futures[1].result(10)
    group.close()
    with pytest.raises(AuditError, match="closed"):
        group.run("z")


def test_threads_share_one_chain(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "a.db")
    ids: list[str | None] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(25):
            d = log.append(Decision(allowed=True, user_id=f"u{n}"), {"n": n, "i": i})
            with lock:
                ids.append(d.audit_id)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.count() == 200
    assert {r.audit_id for r in log.records()} == set(ids)
    assert log.verify().ok
    log.close()


def test_async_writers_share_one_chain(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "a.db")

    async def run() -> list[int]:
        usages = await asyncio.gather(
            *(log.areserve_many([("u", "2030-01-01")]) for _ in range(50))
        )
        await asyncio.gather(
            *(
                log.aappend_many([(Decision(allowed=True, user_id="u"), {"i": i})])
                for i in range(50)
            )
        )
        return sorted(u[0] for u in usages)

    assert asyncio.run(run()) == list(range(50))  # each reservation got its own unit
    assert log.count() == 50
    assert log.verify().ok
    log.close()


def test_reserve_many_hands_out_consecutive_units(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "a.db")
    day = "2030-01-01"
    assert log.reserve("a", day) == 0
    assert log.reserve_many([("a", day), ("b", day), ("a", day), ("a", day)]) == [1, 0, 2, 3]
    log.release("a", day)
    assert log.reserve("a", day) == 3
    log.close()


def test_a_cancelled_waiter_does_not_kill_the_writer_thread() -> None:
    # An async caller whose task is cancelled (a request timeout, a client gone) cancels its
    # future; the commit still completes. The writer used to die setting that future's
    # result (InvalidStateError), and every later async audit write then waited forever.
    running = threading.Event()
    release = threading.Event()

    def execute(ops: Sequence[str]) -> list[str]:
        running.set()
        release.wait(10)
        return [op.upper() for op in ops]

    group: GroupCommit[str] = GroupCommit(execute)
    first = group.submit("a")
    assert running.wait(10)
    assert first.cancel()  # its waiter gave up while the batch is being committed
    second = group.submit("b")  # queued behind the running batch, then given up too
    assert second.cancel()
    release.set()
    assert group.submit("c").result(10) == "C"  # the writer is alive
    group.close()


def test_a_cancelled_async_write_leaves_the_log_usable(tmp_path: Path) -> None:
    log = SqliteAuditLog(tmp_path / "audit.db")
    decision = Decision(allowed=False, reason="x", policy_id="p")

    async def run() -> None:
        writes = [asyncio.ensure_future(log.aappend_many([(decision, {})])) for _ in range(20)]
        await asyncio.sleep(0)
        for task in writes[::2]:
            task.cancel()
        await asyncio.gather(*writes, return_exceptions=True)
        await asyncio.wait_for(log.aappend_many([(decision, {})]), 10)

    asyncio.run(run())
    log.close()


def test_sqlite_reads_do_not_queue_behind_the_writer(tmp_path: Path) -> None:
    """A decision's reads (quota, approvals) see the last commit while another batch holds
    the write connection (its fsync), instead of waiting for it to finish."""
    log = SqliteAuditLog(tmp_path / "a.db")
    try:
        log.append(Decision(allowed=True, user_id="u1"), {"type": "x"})
        got: list[int] = []
        with log._lock:  # the writer is busy (as during a commit's fsync)
            reader = threading.Thread(target=lambda: got.append(log.count()))
            reader.start()
            reader.join(30)
            done_while_writing = not reader.is_alive()
        reader.join()
        assert done_while_writing
        assert got == [1]
    finally:
        log.close()
