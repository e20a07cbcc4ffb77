"""The sync transport: keep-alive per thread, reconnects, Unix sockets, errors translated."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pygate import AsyncGate, AuditLog, BadEngineResponse, EngineUnavailable, Gate, LocalOpa
from pygate.engine._transport import HttpClientTransport
from tests.conftest import ANALYST

TRANSFER = {"type": "transfer", "amount": 10}
ALLOW = json.dumps(
    {"result": {"allowed": True, "service": "finance", "refusals": [], "primary": None}}
).encode()


def _serve(handle: object, count: int) -> Iterator[str]:
    """A raw TCP server that runs ``handle(conn)`` for up to ``count`` connections."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(10)
    accepted: list[int] = []

    def loop() -> None:
        for _ in range(count):
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(1)
            with conn:
                handle(conn)  # type: ignore[operator]

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    thread.join(5)


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))  # fmt: skip
    while len(body) < length:
        body += conn.recv(65536)


@pytest.fixture
def drops_after_each_answer() -> Iterator[str]:
    """Answers one request per connection as HTTP/1.1 keep-alive, then silently closes."""

    def handle(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(ALLOW)}\r\n\r\n".encode()
            + ALLOW
        )

    yield from _serve(handle, 10)


def test_reconnects_when_a_kept_alive_connection_was_dropped(
    drops_after_each_answer: str, audit: AuditLog
) -> None:
    with Gate("finance", opa_url=drops_after_each_answer, audit=audit) as gate:
        decisions = [gate.evaluate(TRANSFER, ANALYST) for _ in range(3)]
    assert [(d.allowed, d.fallback) for d in decisions] == [(True, False)] * 3


def test_a_garbage_status_line_is_a_bad_response() -> None:
    def handle(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(b"SPDY/9 what\r\n\r\n")

    for url in _serve(handle, 1):
        transport = HttpClientTransport(url, 2.0)
        with pytest.raises(BadEngineResponse, match="unreadable"):
            transport.post("pygate/gate/decision", b"{}")
        transport.close()


def test_connection_refused_is_unavailable(dead_url: str) -> None:
    transport = HttpClientTransport(dead_url, 1.0)
    with pytest.raises(EngineUnavailable):
        transport.post("pygate/gate/decision", b"{}")


def test_bad_url_is_rejected() -> None:
    with pytest.raises(ValueError, match="OPA URL"):
        HttpClientTransport("ftp://x", 1.0)


def test_threads_share_one_gate(opa: LocalOpa, audit: AuditLog) -> None:
    results: list[bool] = []
    lock = threading.Lock()
    with Gate("finance", opa_url=opa.url, audit=audit) as gate:

        def work() -> None:
            for _ in range(20):
                allowed = gate.evaluate(TRANSFER, ANALYST).allowed
                with lock:
                    results.append(allowed)

        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(gate._transport._open) == 6  # one connection per thread
    assert results == [True] * 120
    assert audit.count() == 120
    assert audit.verify().ok


def test_unix_socket(tmp_path: Path, audit: AuditLog) -> None:
    sock = tmp_path / "opa.sock"
    with LocalOpa(supervise=False, extra_args=["--addr", f"unix://{sock}"]):
        url = f"unix://{sock}"
        with Gate("finance", opa_url=url, audit=audit) as gate:
            assert gate.evaluate(TRANSFER, ANALYST).allowed
            assert gate.evaluate_many([(TRANSFER, ANALYST)] * 2)[1].allowed

        async def run() -> bool:
            async with AsyncGate("finance", opa_url=url, audit=audit) as agate:
                return (await agate.evaluate(TRANSFER, ANALYST)).allowed

        assert asyncio.run(run())
    assert audit.count() == 4


def test_a_request_is_one_send_of_head_and_body(opa: LocalOpa) -> None:
    """Head and body go out in one write (the stock http.client made two: OPA woke twice)."""
    transport = HttpClientTransport(opa.url, 5.0)
    sent: list[bytes] = []
    body = b'{"input":{}}'
    try:
        transport.post("pygate/gate/decision", body)  # opens this thread's connection
        conn = transport._local.conn
        real = conn.send
        conn.send = lambda data: (sent.append(bytes(data)), real(data))[1]  # type: ignore[method-assign]
        status, _ = transport.post("pygate/gate/decision", body)
    finally:
        transport.close()
    assert status == 200
    assert len(sent) == 1
    assert sent[0].startswith(b"POST /v1/data/pygate/gate/decision")
    assert sent[0].endswith(b"\r\n\r\n" + body)


def test_meanwhile_runs_once_between_sending_and_reading_even_when_resent(
    drops_after_each_answer: str,
) -> None:
    """The caller's work overlaps OPA's; a request sent again (stale keep-alive) does not
    run it twice, and it runs after the request left."""
    transport = HttpClientTransport(drops_after_each_answer, 5.0)
    calls: list[str] = []
    try:
        for n in range(3):  # the 2nd and 3rd find their kept-alive connection dropped
            status, body = transport.post(
                "pygate/gate/decision", b"{}", lambda n=n: calls.append(f"call {n}")
            )
            assert (status, body) == (200, ALLOW)
    finally:
        transport.close()
    assert calls == ["call 0", "call 1", "call 2"]


def test_a_failing_meanwhile_drops_the_connection_whose_answer_was_not_read(opa: LocalOpa) -> None:
    """Otherwise the next request on this thread would read the unread answer as its own."""
    transport = HttpClientTransport(opa.url, 5.0)

    def boom() -> None:
        raise RuntimeError("caller's work failed")

    try:
        with pytest.raises(RuntimeError):
            transport.post("pygate/gate/decision", b'{"input":{}}', boom)
        assert getattr(transport._local, "conn", None) is None
        status, _ = transport.post("pygate/gate/decision", b'{"input":{}}')
        assert status == 200
    finally:
        transport.close()
