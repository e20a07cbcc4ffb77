"""How pygate talks to OPA: one small interface, one module, errors translated here only.

The sync path uses an httpx ``Client`` (keep-alive pool). The async path uses aiohttp:
on this machine httpx's default async transport fell from 1,000 to 344 decisions/s as
concurrency rose to 32, where aiohttp served 7,360/s against the same OPA
(``../shared/MEASURED.md``; re-measured by ``benchmarks/bench.py``).
Both accept ``http://host:port`` or ``unix:///path/to.sock``.
"""

from __future__ import annotations

from typing import Protocol

import aiohttp
import httpx

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


class HttpxTransport:
    """Sync transport over an httpx Client with keep-alive."""

    def __init__(self, url: str, timeout: float) -> None:
        base, uds = _split(url)
        transport = httpx.HTTPTransport(uds=uds) if uds else None
        self._client = httpx.Client(
            base_url=base, timeout=timeout, transport=transport, headers=_HEADERS
        )

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            response = self._client.post(data_url(path), content=body)
        except httpx.TimeoutException as exc:
            raise EngineTimeout(f"OPA did not answer in time: {exc}", policy_path=path) from exc
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"OPA unreachable: {exc}", policy_path=path) from exc
        return response.status_code, response.content

    def close(self) -> None:
        self._client.close()


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
