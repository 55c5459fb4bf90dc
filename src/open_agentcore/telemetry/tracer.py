"""The server's own tracer: an OpenTelemetry SDK `TracerProvider` of its own (never the process's
global one), whose finished spans go to the span sink.

A span is queued as it ends and converted to a `SpanRecord` later, on the sink's thread.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import Tracer

from open_agentcore.store.traces import RUNTIME_ATTRIBUTE, SESSION_ATTRIBUTE, SpanRecord

from .config import SERVICE_NAME
from .sink import SpanSink

_KIND_NAMES = {0: "INTERNAL", 1: "SERVER", 2: "CLIENT", 3: "PRODUCER", 4: "CONSUMER"}  # the SDK's SpanKind


class _ToSink(SpanProcessor):
    """Hands each finished span to the sink; nothing is done when a span starts."""

    def __init__(self, sink: SpanSink) -> None:
        self._sink = sink

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        self._sink.submit(span)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._sink.flush(timeout_millis / 1000)


def server_tracer(sink: SpanSink) -> tuple[TracerProvider, Tracer]:
    """The provider (shut down with the server) and the tracer the operation dispatch uses."""
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(_ToSink(sink))
    return provider, provider.get_tracer("open_agentcore.server")


def span_record(span: object) -> SpanRecord:
    """A finished SDK span as the store keeps it; its runtime and session from its own attributes
    (the server's spans are the one source trusted to say so)."""
    assert isinstance(span, ReadableSpan)
    context = span.context
    attributes = dict(span.attributes or {})
    runtime_id, session_id = attributes.get(RUNTIME_ATTRIBUTE), attributes.get(SESSION_ATTRIBUTE)
    return SpanRecord(
        trace_id=f"{context.trace_id:032x}",
        span_id=f"{context.span_id:016x}",
        parent_span_id=f"{span.parent.span_id:016x}" if span.parent is not None else "",
        name=span.name,
        kind=_KIND_NAMES.get(span.kind.value, "INTERNAL"),
        service=SERVICE_NAME,
        start_ns=span.start_time or 0,
        end_ns=span.end_time or span.start_time or 0,
        attributes={
            key: list(value) if isinstance(value, tuple) else value for key, value in attributes.items()
        },
        status_code=span.status.status_code.name,
        status_message=span.status.description or "",
        events=[
            {
                "name": event.name,
                "timeUnixNano": str(event.timestamp),
                "attributes": dict(event.attributes or {}),
            }
            for event in span.events
        ],
        runtime_id=runtime_id if isinstance(runtime_id, str) else None,
        session_id=session_id if isinstance(session_id, str) else None,
    )


__all__ = ["server_tracer", "span_record"]
