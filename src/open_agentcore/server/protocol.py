"""The HTTP/1.1 protocol the runtime server is served with: uvicorn's httptools protocol, with a
bounded request head, header and body timeouts, a cap on open connections, and fewer writes.

uvicorn (0.55) leaves all of these to the deployment: llhttp buffers a request head of any size;
the keep-alive timer is armed only after a response and cancelled by the first byte of the next
request, and never armed on a fresh connection, so a client that sends nothing, or one header line
a second, or half a body, keeps its connection forever; and `limit_concurrency` answers 503 only
once `connections` or request *tasks* reach the limit (itself included, so one less than it says),
and never for a WebSocket upgrade. This protocol adds:

- a request head past `h11_max_incomplete_event_size` bytes is answered 431 and closed;
- a fresh connection must start its request within `header_timeout` seconds, and every request
  head must be complete within `header_timeout` of its first byte; idle time between requests is
  uvicorn's keep-alive timeout, as before;
- while a request body is incomplete, the client may stall for at most `body_timeout` seconds.
  Time the server spends not reading (the app has not asked for more of the body yet, or has not
  yet let a `100-continue` client go on) does not count, nor does anything after the body has
  arrived: a slow app, a long streamed response, or a WebSocket after its upgrade (served by
  another protocol object) is never cut by these timers;
- a connection opened while `max_connections` others are open (HTTP and WebSocket alike) gets a
  503 with `connection: close` for its request, WebSocket upgrades included;
- a response's head is written together with the first piece of its body (or at the end of the
  event loop's turn, whichever comes first): one send per small answer instead of two.

Past a timeout the connection is closed. If the client has started a request and no response to it
has begun, it first gets `408 Request Timeout` with `connection: close`; a fresh connection that sent
nothing is closed without a word, like an idle keep-alive one. A request the app is still handling
sees the client as disconnected. Connections still in their TLS handshake are not counted or timed
here: the protocol exists only once the handshake is done, and uvicorn offers no setting for the
event loop's `ssl_handshake_timeout`, so asyncio's and uvloop's default of 60 s bounds them.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.flow_control import FlowControl

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is a dependency; h11 is uvicorn's fallback
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

DEFAULT_MAX_HEAD = 64 * 1024


def _plain_response(status: str, text: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n".encode()
        + f"content-length: {len(text)}\r\nconnection: close\r\n\r\n".encode()
        + text
    )


_TOO_LARGE = b"request header fields too large"
_TOO_LARGE_RESPONSE = _plain_response("431 Request Header Fields Too Large", _TOO_LARGE)
_TIMED_OUT_RESPONSE = _plain_response("408 Request Timeout", b"request timeout")


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take to send a request, and how many connections may be open at once."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1000


def _refusal(status: int, text: bytes) -> ASGIApp:
    """An app answering every request with `status` and `text`, then closing the connection."""
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(text)).encode()),
        (b"connection", b"close"),
    ]

    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": text})

    return refuse


_REFUSE_LARGE_HEAD = _refusal(431, _TOO_LARGE)
_REFUSE_OVER_CAP = _refusal(503, b"too many connections")


class _Phase(enum.Enum):
    """What the connection is waiting for from its client."""

    FIRST_BYTE = "first byte"  # a fresh connection, nothing received yet
    HEAD = "head"
    BODY = "body"
    NOTHING = "nothing"  # between requests (keep-alive), the app's turn, or handed to a WebSocket


class _ReadingFlow(FlowControl):
    """uvicorn's flow control, telling the protocol whenever the app is ready for more of the body."""

    def __init__(self, transport: asyncio.Transport, on_resume: Callable[[], None]) -> None:
        super().__init__(transport)
        self._on_resume = on_resume

    def resume_reading(self) -> None:
        super().resume_reading()
        self._on_resume()


class _JoinedHead:
    """The transport as one response's cycle writes to it: the response head waits for the first
    piece of the body, until the end of the event loop's turn at most, so that a small answer
    (the usual invocation result) leaves in one send, not two.
    """

    __slots__ = ("_first", "_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._first = True

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif self._first:
            self._first = False
            self._held = data
            # A streamed answer's first chunk may be long coming: its head must not wait for it.
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


if HttpToolsProtocol is not None:

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        """httptools with the bounds in the module docstring; `http_protocol` sets `limits`.

        A head still arriving is counted as its bytes come in and refused once past the bound, so
        at most the bound plus one read is ever buffered; a head that arrived whole is measured
        before its request is dispatched (or upgraded to a WebSocket). One timer per connection,
        armed only while the client owes the server something and a read left it incomplete.
        """

        limits = ConnectionLimits()

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._max_head: int = self.config.h11_max_incomplete_event_size or DEFAULT_MAX_HEAD
            self._head_bytes = 0
            self._refusal: ASGIApp | None = None
            self._over_cap = False
            self._phase = _Phase.FIRST_BYTE
            self._since = 0.0  # when the client last made progress on what it owes
            self._now = 0.0  # when the data being parsed arrived
            self._timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.flow = _ReadingFlow(transport, self._reading_resumed)
            self._over_cap = len(self.connections) > self.limits.max_connections
            self._since = self.loop.time()
            self._watch()

        def connection_lost(self, exc: Exception | None) -> None:
            self._settle()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            now = self.loop.time()
            if self._phase is _Phase.BODY:
                self._since = now
            else:
                self._head_bytes += len(data)
            self._now = now
            super().data_received(data)
            if self._phase is not _Phase.BODY and self._head_bytes > self._max_head:
                if not self.transport.is_closing():
                    self.transport.write(_TOO_LARGE_RESPONSE)
                    self.transport.close()
                return
            self._watch()

        def on_message_begin(self) -> None:
            self._phase, self._since = _Phase.HEAD, self._now
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._phase, self._since = _Phase.BODY, self._now
            self._head_bytes = 0
            # Summed in C: a generator over the headers was a visible share of a small call.
            headers = self.headers
            size = len(self.url) + 4 * len(headers) + sum(map(len, itertools.chain.from_iterable(headers)))
            self._refusal = self._refusal_for(size)
            if self._refusal is None:
                super().on_headers_complete()
                cycle = self.cycle
                if cycle is not None and cycle.transport is self.transport:
                    cycle.transport = _JoinedHead(self.transport, self.loop)  # type: ignore[assignment]
                return
            # uvicorn dispatches to `self.app`; this one request goes to the refusal instead.
            app, self.app = self.app, self._refusal
            try:
                super().on_headers_complete()
            finally:
                self.app = app

        def _refusal_for(self, head_size: int) -> ASGIApp | None:
            if head_size > self._max_head:
                return _REFUSE_LARGE_HEAD
            if self._over_cap:
                self.logger.warning("More than %d connections open: 503", self.limits.max_connections)
                return _REFUSE_OVER_CAP
            return None

        def on_message_complete(self) -> None:
            self._settle()
            super().on_message_complete()

        def _should_upgrade(self) -> bool:
            return self._refusal is None and super()._should_upgrade()

        def _unsupported_upgrade_warning(self) -> None:
            if self._refusal is None:
                super()._unsupported_upgrade_warning()

        def handle_websocket_upgrade(self) -> None:
            # The WebSocket protocol takes the transport over; nothing here may close it later.
            self._settle()
            super().handle_websocket_upgrade()

        def shutdown(self) -> None:
            idle = self.cycle is None or self.cycle.response_complete
            super().shutdown()
            if idle and self.scheme == "https":
                # asyncio's TLS close waits up to 30 s for the client's close_notify, which a pooled
                # idle connection never sends: the server would take that long to stop.
                self.transport.abort()

        def _reading_resumed(self) -> None:
            if self._phase is _Phase.BODY:
                self._since = self.loop.time()

        def _timeout(self) -> float:
            return self.limits.body_timeout if self._phase is _Phase.BODY else self.limits.header_timeout

        def _watch(self) -> None:
            if self._phase is not _Phase.NOTHING and self._timer is None:
                self._timer = self.loop.call_at(self._since + self._timeout(), self._check)

        def _settle(self) -> None:
            self._phase = _Phase.NOTHING
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _waiting_on_the_server(self) -> bool:
            if self._phase is not _Phase.BODY:
                return False
            return self.flow.read_paused or (self.cycle is not None and self.cycle.waiting_for_100_continue)

        def _check(self) -> None:
            self._timer = None
            if self._phase is _Phase.NOTHING or self.transport.is_closing():
                return
            now = self.loop.time()
            if self._waiting_on_the_server():
                self._since = now
            if now < self._since + self._timeout():
                self._watch()
                return
            self._time_out()

        def _time_out(self) -> None:
            cycle = self.cycle
            if self._phase is _Phase.BODY:
                answer = not cycle.response_started
            else:
                answer = self._phase is _Phase.HEAD and (cycle is None or cycle.response_complete)
            if cycle is not None and not cycle.response_complete:
                # The app sees a client that went away, and writes nothing more here.
                cycle.disconnected = True
                cycle.message_event.set()
            self._settle()
            if answer:
                self.transport.write(_TIMED_OUT_RESPONSE)
            self.transport.close()
            if self.scheme == "https" or self.transport.get_write_buffer_size():
                # What the kernel has taken is still delivered. Without this, a TLS close waits up
                # to 30 s for the client's close_notify, and a plain one for a client that reads
                # nothing to read what is left.
                self.transport.abort()


def http_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol] | str:
    """The protocol for uvicorn's `http=`: httptools bounded by `limits`, else h11 (which bounds
    the head itself, but has none of the timeouts or the connection cap)."""
    if HttpToolsProtocol is None:  # pragma: no cover
        return "h11"

    class Limited(BoundedHttpToolsProtocol):
        pass

    Limited.limits = limits
    return Limited


__all__ = ["DEFAULT_MAX_HEAD", "ConnectionLimits", "http_protocol"]
