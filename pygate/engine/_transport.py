"""How pygate talks to OPA: one small interface, one module, errors translated here only.

Both transports were chosen by ``benchmarks/bench.py`` (figures in the README):

* sync: ``HttpClientTransport``, keep-alive ``http.client`` connections, one per thread.
  An httpx ``Client`` posting the same body measured about 1.8x the bare ``http.client``
  round trip, which alone breaks the 1.3x budget of a whole ``Gate.evaluate``.
* async: aiohttp. httpx's default async transport fell from 1,000 to 344 decisions/s as
  concurrency rose to 32, where aiohttp served 7,360/s against the same OPA.

Both accept ``http://host:port`` or ``unix:///path/to.sock``.
"""

from __future__ import annotations

import http.client
import socket
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp

from pygate._errors import BadEngineResponse, EngineTimeout, EngineUnavailable

_HEADERS = {"Content-Type": "application/json"}


def _split(url: str) -> tuple[str, str | None]:
    """Return ``(base_url, unix_socket_path)``."""
    if url.startswith("unix://"):
        return "http://opa", url[len("unix://") :]
    return url.rstrip("/"), None


def data_url(path: str) -> str:
    """The Data API location of a rule, asking OPA for the bundle revision too."""
    return f"/v1/data/{path.strip('/')}?provenance=true"


#: Work a sync caller does while OPA evaluates (between sending and reading); never raises.
Meanwhile = Callable[[], None]


class SyncTransport(Protocol):
    """POST a body to OPA and return ``(status, body)``; raise EngineError subclasses.

    ``meanwhile``, if given, is called once after the request is sent and before the answer
    is read (or, by a transport that cannot split the two, before it returns), so the
    caller's own work overlaps OPA's evaluation.
    """

    def post(
        self, path: str, body: bytes, meanwhile: Meanwhile | None = None
    ) -> tuple[int, bytes]: ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    """The async twin of SyncTransport."""

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]: ...

    async def aclose(self) -> None: ...


class _Connection(http.client.HTTPConnection):
    """``http.client`` sending a request's head and body in ONE ``send``.

    The stock connection sends the head, then the body: two writes, so OPA's server wakes
    for the head and again for the body. Joining them (what ``http.client`` itself did
    before Python 3) measured ~2 % of the local round trip. Only a ``bytes`` body is
    joined; anything else goes the stock way.
    """

    # ``_send_output`` and ``_buffer`` are http.client internals (stable since Python 3.6,
    # absent from typeshed): the only place a request's head and body are put together.
    def _send_output(self, message_body: Any = None, encode_chunked: bool = False) -> None:
        if not isinstance(message_body, bytes) or encode_chunked:
            super()._send_output(message_body, encode_chunked)  # type: ignore[misc]  # see above
            return
        buffer: list[bytes] = self._buffer  # type: ignore[attr-defined]  # see above
        buffer.extend((b"", b""))
        head = b"\r\n".join(buffer)
        del buffer[:]
        self.send(head + message_body)


class _UnixHTTPConnection(_Connection):
    """``http.client`` over a Unix domain socket (OPA's ``--addr unix:///path``)."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


# A keep-alive connection that OPA (or anything between) closed while it sat idle fails
# on first use with one of these before any answer arrives; that request is sent again
# once on a fresh connection. A decision query has no side effects, so a resend is safe.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class HttpClientTransport:
    """Sync transport: keep-alive ``http.client`` connections, one per calling thread.

    Thread-safe because no connection is ever shared: each thread gets its own the first
    time it posts. ``timeout`` bounds the connect and each read (a socket timeout). After
    any failure the connection is dropped, so a late answer is never read as the next one.
    """

    def __init__(self, url: str, timeout: float) -> None:
        base, uds = _split(url)
        parsed = urllib.parse.urlsplit(base)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"OPA URL must be http://host:port or unix:///path, got {url!r}")
        self._host = parsed.hostname
        self._port = parsed.port or 80
        self._uds = uds
        self._timeout = timeout
        self._headers = {**_HEADERS, "Host": parsed.netloc if not uds else "localhost"}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()

    def _new_connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self._uds:
            conn = _UnixHTTPConnection(self._uds, self._timeout)
        else:
            conn = _Connection(self._host, self._port, timeout=self._timeout)
        with self._lock:
            self._open.add(conn)
        self._local.conn = conn
        return conn

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        with self._lock:
            self._open.discard(conn)
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None

    def _round_trip(
        self, conn: http.client.HTTPConnection, url: str, body: bytes, pending: list[Meanwhile]
    ) -> tuple[int, bytes]:
        conn.request("POST", url, body=body, headers=self._headers)
        while pending:  # once, even when the request is sent again
            try:
                pending.pop()()
            except BaseException:
                self._drop(conn)  # its answer is never read: it must not be the next one's
                raise
        response = conn.getresponse()
        return response.status, response.read()

    def post(self, path: str, body: bytes, meanwhile: Meanwhile | None = None) -> tuple[int, bytes]:
        url = data_url(path)
        pending = [meanwhile] if meanwhile is not None else []
        conn = getattr(self._local, "conn", None)
        try:
            if conn is not None:
                try:
                    return self._round_trip(conn, url, body, pending)
                except _STALE:
                    self._drop(conn)
            conn = self._new_connection()
            return self._round_trip(conn, url, body, pending)
        # The one place sync transport errors become EngineErrors.
        except TimeoutError as exc:
            self._drop_current()
            raise EngineTimeout(f"OPA did not answer in time: {exc}", policy_path=path) from exc
        except OSError as exc:
            self._drop_current()
            raise EngineUnavailable(f"OPA unreachable: {exc}", policy_path=path) from exc
        except http.client.HTTPException as exc:
            self._drop_current()
            raise BadEngineResponse(
                f"OPA response unreadable: {type(exc).__name__}: {exc}", policy_path=path
            ) from exc

    def _drop_current(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            self._drop(conn)

    def close(self) -> None:
        """Close every connection this transport opened (in any thread)."""
        with self._lock:
            conns, self._open = self._open, set()
        for conn in conns:
            conn.close()


class AiohttpTransport:
    """Async transport over one aiohttp ClientSession, created lazily inside the loop."""

    def __init__(self, url: str, timeout: float) -> None:
        self._base, self._uds = _split(url)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = (
                aiohttp.UnixConnector(path=self._uds, limit=256)
                if self._uds
                else aiohttp.TCPConnector(limit=256)
            )
            self._session = aiohttp.ClientSession(
                base_url=self._base, connector=connector, timeout=self._timeout, headers=_HEADERS
            )
        return self._session

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        session = self._get_session()
        try:
            async with session.post(data_url(path), data=body) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise EngineTimeout("OPA did not answer in time", policy_path=path) from exc
        except aiohttp.ClientResponseError as exc:
            raise BadEngineResponse(f"OPA response unreadable: {exc}", policy_path=path) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise EngineUnavailable(f"OPA unreachable: {exc}", policy_path=path) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
