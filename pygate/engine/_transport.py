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
from typing import Protocol

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


class SyncTransport(Protocol):
    """POST a body to OPA and return ``(status, body)``; raise EngineError subclasses."""

    def post(self, path: str, body: bytes) -> tuple[int, bytes]: ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    """The async twin of SyncTransport."""

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]: ...

    async def aclose(self) -> None: ...


class _UnixHTTPConnection(http.client.HTTPConnection):
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
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
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
        self, conn: http.client.HTTPConnection, url: str, body: bytes
    ) -> tuple[int, bytes]:
        conn.request("POST", url, body=body, headers=self._headers)
        response = conn.getresponse()
        return response.status, response.read()

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        url = data_url(path)
        conn = getattr(self._local, "conn", None)
        try:
            if conn is not None:
                try:
                    return self._round_trip(conn, url, body)
                except _STALE:
                    self._drop(conn)
            conn = self._new_connection()
            return self._round_trip(conn, url, body)
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
