"""One span per operation, started in the one place every request is dispatched (`OperationRoute`).

The span's parent is the caller's W3C `traceparent` when it sent one. Inside the span, the
request's `traceparent`/`tracestate` headers are replaced by the server span's own, so whatever
the handler passes on to a worker (invocations, WebSockets) makes the agent's spans its children.
With `--tracing off` no `OperationTracer` exists and dispatch does none of this.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import SpanKind, StatusCode, Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from open_agentcore.auth import Caller
from open_agentcore.store.traces import RUNTIME_ATTRIBUTE, SESSION_ATTRIBUTE

from .errors import ServiceError

_TRACE_HEADERS = (b"traceparent", b"tracestate")
_PROPAGATOR = TraceContextTextMapPropagator()
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
    """Runs an operation's handler inside a server span named for the operation."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    async def run(
        self, name: str, runtime_id: str | None, app: ASGIApp, scope: Scope, receive: Receive, send: Send
    ) -> None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        carrier = {k.decode(): v.decode("latin-1") for k, v in headers if k in _TRACE_HEADERS}
        parent = _PROPAGATOR.extract(carrier) if carrier else None
        with self._tracer.start_as_current_span(
            name, context=parent, kind=SpanKind.SERVER, record_exception=False, set_status_on_exception=False
        ) as span:
            outgoing: dict[str, str] = {}
            _PROPAGATOR.inject(outgoing, context=set_span_in_context(span))
            scope["headers"] = [pair for pair in headers if pair[0] not in _TRACE_HEADERS] + [
                (key.encode(), value.encode("latin-1")) for key, value in outgoing.items()
            ]
            answer = _Answer(send)
            try:
                await app(scope, receive, answer.send)
            except BaseException as error:
                status = error.status if isinstance(error, ServiceError) else None
                span.set_status(StatusCode.ERROR, type(error).__name__)
                if status is not None:
                    span.set_attribute("http.response.status_code", status)
                raise
            finally:
                _describe(span, scope, runtime_id, answer)


class _Answer:
    """Watches what the handler sends: the status and how many body bytes."""

    __slots__ = ("bytes", "send_on", "status")

    def __init__(self, send: Send) -> None:
        self.send_on = send
        self.status = 0
        self.bytes = 0

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            self.bytes += len(message.get("body", b""))
        elif kind == "http.response.start":
            self.status = message["status"]
        await self.send_on(message)


def _describe(span: Any, scope: Scope, runtime_id: str | None, answer: _Answer) -> None:
    attributes: dict[str, Any] = {"http.request.method": scope.get("method", "GET")}
    if runtime_id is not None:
        attributes[RUNTIME_ATTRIBUTE] = runtime_id
    state = scope.get("state", {})
    for key, attribute in _STATE_ATTRIBUTES:
        if (value := state.get(key)) is not None:
            attributes[attribute] = value
    caller: Caller | None = state.get("caller")
    if caller is not None:
        attributes["agentcore.caller"] = caller.principal or caller.subject or caller.scheme.value
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            attributes["http.request.body.size"] = int(value)
            break
    if answer.status:
        attributes["http.response.status_code"] = answer.status
        attributes["http.response.body.size"] = answer.bytes
        if answer.status >= 400:
            span.set_status(StatusCode.ERROR, f"HTTP {answer.status}")
    span.set_attributes(attributes)


__all__ = ["QUALIFIER_STATE", "SESSION_STATE", "START_STATE", "VERSION_STATE", "OperationTracer"]
