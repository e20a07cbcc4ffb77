"""Group commit: many callers' audit writes share one transaction and one fsync.

A record must be durable before ``evaluate`` returns, and on this machine an fsync costs
about as much as the whole OPA round trip. When several decisions are in flight (threads,
asyncio tasks), their writes are queued; whoever finds the log idle becomes the *leader*,
takes everything queued, runs it as one transaction and completes every caller's future
after the commit. Nobody's future completes before the commit that holds its record.

Sync callers lead themselves when the log is idle (no thread hand-off on the common
sequential path) and otherwise wait for their future. Async callers never block the event
loop: they ``submit`` and await the future, and a writer thread (started on first use)
leads for them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from typing import Any, Generic, TypeVar

from pygate._errors import AuditError

Op = TypeVar("Op")

#: Runs one batch in one transaction; returns one result per op, in order, or raises.
Executor = Callable[[Sequence[Op]], list[Any]]


class GroupCommit(Generic[Op]):
    """A queue of write operations executed in shared transactions.

    Args:
        execute: runs a batch of ops in ONE transaction and returns one result per op.
            If it raises for a batch of several ops, each op is retried alone, so one
            bad op fails only its own caller.
        name: the writer thread's name.
        isolate: whether a failed batch's ops are worth retrying one by one after this error
            (not after a lock timeout: every op would wait the timeout again, in turn).
    """

    def __init__(
        self,
        execute: Executor[Op],
        name: str = "pygate-audit-writer",
        isolate: Callable[[Exception], bool] = lambda exc: True,
    ) -> None:
        self._execute = execute
        self._isolate = isolate
        self._name = name
        self._cv = threading.Condition()
        self._queue: list[tuple[Op, Future[Any]]] = []
        self._leading = False
        self._closed = False
        self._writer: threading.Thread | None = None

    def run(self, op: Op) -> Any:
        """Execute ``op`` (possibly together with others) and return its result.

        Raises:
            AuditError: the transaction holding ``op`` failed, or the log is closed.
        """
        future: Future[Any] = Future()
        batch = None
        with self._cv:
            self._check_open()
            self._queue.append((op, future))
            # Lead if the log is idle; else wait until our op is done or the lead is free
            # (then our op is still queued, and goes into the batch we take).
            while not future.done():
                batch = self._take_lead()
                if batch is not None:
                    break
                self._cv.wait()
        if batch is not None:
            self._run_batch(batch)
        return future.result()

    def submit(self, op: Op) -> Future[Any]:
        """Queue ``op`` without blocking; the returned future completes after its commit."""
        future: Future[Any] = Future()
        with self._cv:
            self._check_open()
            self._queue.append((op, future))
            if self._writer is None:
                self._writer = threading.Thread(target=self._writer_loop, name=self._name)
                self._writer.daemon = True
                self._writer.start()
            self._cv.notify_all()
        return future

    def close(self) -> None:
        """Finish what is queued, then stop the writer thread."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
            writer = self._writer
        if writer is not None:
            writer.join()

    # --- internals (call with self._cv held where noted) -----------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise AuditError("the audit log is closed")

    def _take_lead(self) -> list[tuple[Op, Future[Any]]] | None:
        """With the lock held: become leader if nobody leads and work is queued."""
        if self._leading or not self._queue:
            return None
        self._leading = True
        batch, self._queue = self._queue, []
        return batch

    def _run_batch(self, batch: list[tuple[Op, Future[Any]]]) -> None:
        try:
            self._complete(batch)
        finally:
            with self._cv:
                self._leading = False
                self._cv.notify_all()

    def _complete(self, batch: list[tuple[Op, Future[Any]]]) -> None:
        ops = [op for op, _ in batch]
        try:
            results = self._execute(ops)
        except Exception as exc:
            if len(batch) == 1 or not self._isolate(exc):
                for _, future in batch:
                    _settle(future, exception=exc)
                return
            for one in batch:  # isolate the failing op: each alone, in order
                self._complete([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result)

    def _writer_loop(self) -> None:
        while True:
            with self._cv:
                while not self._queue or self._leading:
                    if self._closed and not self._queue:
                        return
                    self._cv.wait()
                batch = self._take_lead()
            if batch is not None:
                self._run_batch(batch)


def _settle(future: Future[Any], result: Any = None, exception: Exception | None = None) -> None:
    """Complete a caller's future, unless its waiter gave up (an asyncio task cancelled by a
    timeout cancels the future it awaited): the op was committed all the same, and raising
    here would end the writer thread, leaving every later async write waiting forever.
    """
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass  # cancelled: nobody is waiting for this result
