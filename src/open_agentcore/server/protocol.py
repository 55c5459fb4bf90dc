"""The HTTP/1.1 protocol the runtime server is served with: uvicorn's, with a bounded request head
(and idle TLS connections dropped at once when the server stops).

uvicorn bounds a request head only on its h11 parser (`h11_max_incomplete_event_size`); llhttp,
behind its default httptools parser, buffers a request line and headers of any size, so one
client could make the server hold megabytes per connection. This protocol applies the same
setting to httptools and answers 431 past it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Receive, Scope, Send

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is a dependency; h11 is uvicorn's fallback
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

DEFAULT_MAX_HEAD = 64 * 1024
_TOO_LARGE = b"request header fields too large"
_TOO_LARGE_RESPONSE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(_TOO_LARGE)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _TOO_LARGE
)


async def _refuse_large_head(scope: Scope, receive: Receive, send: Send) -> None:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(_TOO_LARGE)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 431, "headers": headers})
    await send({"type": "http.response.body", "body": _TOO_LARGE})


if HttpToolsProtocol is not None:

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        """httptools, refusing a request head larger than `h11_max_incomplete_event_size` with 431.

        A head still arriving is counted as its bytes come in and refused once past the bound, so
        at most the bound plus one read is ever buffered; a head that arrived whole is measured
        before its request is dispatched (or upgraded to a WebSocket).
        """

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._max_head: int = self.config.h11_max_incomplete_event_size or DEFAULT_MAX_HEAD
            self._in_head = True
            self._head_bytes = 0
            self._too_large = False

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                self._head_bytes += len(data)
            super().data_received(data)
            if self._in_head and self._head_bytes > self._max_head and not self.transport.is_closing():
                self.transport.write(_TOO_LARGE_RESPONSE)
                self.transport.close()

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._head_bytes = 0
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            self._too_large = size > self._max_head
            if not self._too_large:
                super().on_headers_complete()
                return
            # uvicorn dispatches to `self.app`; this one request goes to the refusal instead.
            app, self.app = self.app, _refuse_large_head
            try:
                super().on_headers_complete()
            finally:
                self.app = app

        def on_message_complete(self) -> None:
            self._in_head = True
            super().on_message_complete()

        def _should_upgrade(self) -> bool:
            return not self._too_large and super()._should_upgrade()

        def _unsupported_upgrade_warning(self) -> None:
            if not self._too_large:
                super()._unsupported_upgrade_warning()

        def shutdown(self) -> None:
            idle = self.cycle is None or self.cycle.response_complete
            super().shutdown()
            if idle and self.scheme == "https":
                # asyncio's TLS close waits up to 30 s for the client's close_notify, which a pooled
                # idle connection never sends: the server would take that long to stop.
                self.transport.abort()


def http_protocol() -> type[asyncio.Protocol] | str:
    """The protocol for uvicorn's `http=`: bounded httptools, else h11 (bounded by uvicorn itself)."""
    if HttpToolsProtocol is None:  # pragma: no cover
        return "h11"
    return BoundedHttpToolsProtocol


__all__ = ["DEFAULT_MAX_HEAD", "http_protocol"]
