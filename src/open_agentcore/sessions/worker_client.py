"""Talking HTTP to one worker over its unix socket, with a pooled connection per worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from open_agentcore.backends.unix_http import unix_transport

# Workers may take minutes to answer (an LLM thinking); only connecting must be quick.
_TIMEOUT = httpx.Timeout(connect=5.0, read=None, write=60.0, pool=60.0)


@dataclass
class WorkerReply:
    """A worker's response head; iterate `body` to stream it through, then `close()`."""

    status: int
    headers: Sequence[tuple[str, str]]
    body: AsyncIterator[bytes]
    _response: httpx.Response

    async def close(self) -> None:
        await self._response.aclose()


class WorkerUnreachable(Exception):
    """The worker's socket refused or dropped the connection (it crashed or is stopping)."""


class WorkerClient:
    """One keep-alive HTTP client per worker, reused by every call of its session."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self._client = httpx.AsyncClient(
            transport=unix_transport(socket_path),
            base_url="http://worker",
            timeout=_TIMEOUT,
        )

    async def send(
        self, method: str, path: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> WorkerReply:
        """Send one request and return as soon as the response head arrives (body unread)."""
        # Header values arrive decoded as latin-1 (ASGI); encoded back, they reach the worker byte
        # for byte, where httpx would refuse a str that is not ASCII.
        encoded = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        request = self._client.build_request(method, path, headers=encoded, content=body)
        try:
            response = await self._client.send(request, stream=True)
        except (httpx.TransportError, OSError) as error:
            raise WorkerUnreachable(str(error) or type(error).__name__) from error
        return WorkerReply(response.status_code, response.headers.multi_items(), _raw(response), response)

    async def ping(self, timeout: float = 5.0) -> str | None:
        """The worker's `/ping` status (`Healthy`, `HealthyBusy`), or None when it does not answer."""
        try:
            reply = await self._client.get("/ping", timeout=timeout)
            status = reply.json().get("status")
        except (httpx.HTTPError, OSError, ValueError, AttributeError):
            return None
        return status if isinstance(status, str) else None

    async def close(self) -> None:
        await self._client.aclose()


async def _raw(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except (httpx.TransportError, OSError) as error:
        raise WorkerUnreachable(str(error) or type(error).__name__) from error


__all__ = ["WorkerClient", "WorkerReply", "WorkerUnreachable"]
