"""One span per operation, started and ended by the gateway (`gateway.py`) around the operation's handler.

The span's parent is the caller's W3C `traceparent` when it sent a valid one. Inside the span, the
request's `traceparent` header is replaced by the server span's own (`tracestate` is passed on as
sent), so whatever the handler passes on to a worker (invocations, WebSockets) makes the agent's
spans its children. The span is started and ended directly, never made current: nothing in the
server makes child spans, and the context switch would cost every request. The span is our own
`ServerSpan`, not the OpenTelemetry SDK's (see `telemetry/server_span.py` for why).
With `--tracing off` no `OperationTracer` exists and dispatch does none of this.
"""

from __future__ import annotations

from typing import Any, cast

from starlette.types import Scope

from open_agentcore.auth import Caller
from open_agentcore.store.traces import RUNTIME_ATTRIBUTE, SESSION_ATTRIBUTE
from open_agentcore.telemetry import RemoteParent, ServerSpan, ServerTracer

from .errors import ServiceError
from .request_metrics import Exchange

_TRACEPARENT = b"traceparent"
_NO_STATE: dict[str, Any] = {}
# What `OperationTracer.end` notes of a request for `_describe`: method, runtime id, the scope's
# state, its headers, the answer's status (None before one was sent) and its body's size.
_Request = tuple[str, str | None, dict[str, Any], list[tuple[bytes, bytes]], int | None, int]
_HEX = frozenset("0123456789abcdef")
# What a data-plane route learnt on the way (set in `scope["state"]`), and the span attribute it becomes.
SESSION_STATE = "agentcore.session_id"
VERSION_STATE = "agentcore.runtime_version"
QUALIFIER_STATE = "agentcore.qualifier"
START_STATE = "agentcore.session_start"  # "cold", "warm", or absent for a session already running
_STATE_ATTRIBUTES = (
    (SESSION_STATE, SESSION_ATTRIBUTE),
    (VERSION_STATE, "agentcore.runtime.version"),
    (QUALIFIER_STATE, "agentcore.endpoint"),
    (START_STATE, "agentcore.session.start"),
)


class OperationTracer:
    """Starts and ends the server span of an operation; the gateway runs the handler in between."""

    def __init__(self, tracer: ServerTracer) -> None:
        self._tracer = tracer

    def begin(self, name: str, scope: Scope) -> ServerSpan:
        """Start the operation's span, and make the request's `traceparent` name it."""
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        parent: RemoteParent | None = None
        sent = False
        for key, value in headers:
            if key == _TRACEPARENT:
                parent, sent = _parent(value), True
                break
        span = self._tracer.start(name, parent)
        # `tracestate` passes on as the caller sent it, which W3C trace context allows.
        own = (_TRACEPARENT, span.traceparent())
        if sent:
            scope["headers"] = [pair for pair in headers if pair[0] != _TRACEPARENT] + [own]
        else:
            scope["headers"] = [*headers, own]
        return span

    def failed(self, span: ServerSpan, error: BaseException) -> None:
        """The handler raised `error` (past the point where it could become an error response)."""
        span.fail(type(error).__name__)
        if isinstance(error, ServiceError):
            span.attributes["http.response.status_code"] = error.status

    def end(self, span: ServerSpan, scope: Scope, runtime_id: str | None, exchange: Exchange) -> None:
        """Note what describes the request and its answer, and end the span: the attributes are made
        from those notes on the span sink's thread (`_describe`), off the requests' event loop."""
        span.request = (
            scope.get("method", "GET"), runtime_id, scope.get("state", _NO_STATE), scope["headers"],
            exchange.status, exchange.body_bytes,
        )  # fmt: skip
        span.describe = _describe
        self._tracer.end(span)


def _parent(value: bytes) -> RemoteParent | None:
    """The caller's span from a W3C `traceparent` (version 00 or later), or None when it is malformed."""
    parts = value.decode("latin-1").strip().lower().split("-")
    if len(parts) < 4 or [len(part) for part in parts[:4]] != [2, 32, 16, 2] or parts[0] == "ff":
        return None
    if parts[0] == "00" and len(parts) != 4:
        return None
    if not _HEX.issuperset("".join(parts[:4])):
        return None
    trace_id, span_id = int(parts[1], 16), int(parts[2], 16)
    if not trace_id or not span_id:
        return None
    return RemoteParent(trace_id, span_id, sampled=bool(int(parts[3], 16) & 1))


def _describe(span: ServerSpan) -> None:
    method, runtime_id, state, headers, status, body_bytes = cast("_Request", span.request)
    attributes = span.attributes
    attributes["http.request.method"] = method
    if runtime_id is not None:
        attributes[RUNTIME_ATTRIBUTE] = runtime_id
    for key, attribute in _STATE_ATTRIBUTES:
        if (value := state.get(key)) is not None:
            attributes[attribute] = value
    caller: Caller | None = state.get("caller")
    if caller is not None:
        attributes["agentcore.caller"] = caller.principal or caller.subject or caller.scheme.value
    for name, value in headers:
        if name == b"content-length" and value.isdigit():
            attributes["http.request.body.size"] = int(value)
            break
    if status:
        attributes["http.response.status_code"] = status
        attributes["http.response.body.size"] = body_bytes
        if status >= 400:
            span.fail(f"HTTP {status}")


__all__ = ["QUALIFIER_STATE", "SESSION_STATE", "START_STATE", "VERSION_STATE", "OperationTracer"]
