"""The server's own span per operation, built by hand: ids, times, attributes and status in a slotted
object queued to the span sink as it ends, and turned into a `SpanRecord` on the sink's thread.

What the request was and how it was answered can be left for that thread too: a span may carry a
`describe` function and the facts it needs (`request`), run just before the conversion, so the
request's own thread (the event loop every request shares) only notes them.

The OpenTelemetry SDK's span did the same at several times the cost on the request's path: a context,
a sampler, attribute validation and processor dispatch per span, for one span that has no children,
no events and only text and integer attributes we set ourselves. Ids are drawn as the SDK's default
id generator draws them; a caller's unsampled context is honoured as its default sampler honours it.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from open_agentcore.store.traces import RUNTIME_ATTRIBUTE, SESSION_ATTRIBUTE, SpanRecord

from .config import SERVICE_NAME
from .sink import SpanSink

Attribute = str | int

# A generator of our own: drawing from the `random` module's would move the state that programs
# sharing this process (a test's Hypothesis, an embedding application) rely on being theirs alone.
_ids = random.Random()  # noqa: S311 - ids to correlate by, not secrets
os.register_at_fork(after_in_child=_ids.seed)
_random_bits = _ids.getrandbits


@dataclass(frozen=True, slots=True)
class RemoteParent:
    """The caller's span, from its W3C `traceparent`."""

    trace_id: int
    span_id: int
    sampled: bool


class ServerSpan:
    """One operation's span; `end` it once. Unsampled spans carry ids (for the worker) but are not kept."""

    __slots__ = (
        "attributes", "describe", "end_ns", "name", "parent_span_id", "request", "sampled", "span_id",
        "start_ns", "status_code", "status_message", "trace_id",
    )  # fmt: skip

    def __init__(self, name: str, parent: RemoteParent | None) -> None:
        self.name = name
        if parent is None:
            self.trace_id = _random_bits(128) or 1
            self.parent_span_id = 0
            self.sampled = True
        else:
            self.trace_id, self.parent_span_id, self.sampled = parent.trace_id, parent.span_id, parent.sampled
        self.span_id = _random_bits(64) or 1
        self.start_ns = time.time_ns()
        self.end_ns = 0
        self.attributes: dict[str, Attribute] = {}
        self.status_code = "UNSET"
        self.status_message = ""
        self.describe: Callable[[ServerSpan], None] | None = None
        self.request: object = None  # what `describe` reads

    def traceparent(self) -> bytes:
        """This span's context as a W3C `traceparent` header value."""
        return b"00-%032x-%016x-%s" % (self.trace_id, self.span_id, b"01" if self.sampled else b"00")

    def fail(self, message: str) -> None:
        """Mark the span an error, `message` saying why (a later call replaces it)."""
        self.status_code = "ERROR"
        self.status_message = message


class ServerTracer:
    """Starts server spans and hands the ended, sampled ones to `sink`."""

    def __init__(self, sink: SpanSink) -> None:
        self._sink = sink

    def start(self, name: str, parent: RemoteParent | None) -> ServerSpan:
        return ServerSpan(name, parent)

    def end(self, span: ServerSpan) -> None:
        span.end_ns = time.time_ns()
        if span.sampled:
            self._sink.submit(span)


def server_span_record(span: object) -> SpanRecord:
    """An ended `ServerSpan` as the store keeps it; its runtime and session from its own attributes
    (the server's spans are the one source trusted to say so)."""
    assert isinstance(span, ServerSpan)
    if span.describe is not None:
        span.describe(span)
    attributes = span.attributes
    runtime_id, session_id = attributes.get(RUNTIME_ATTRIBUTE), attributes.get(SESSION_ATTRIBUTE)
    return SpanRecord(
        trace_id=f"{span.trace_id:032x}",
        span_id=f"{span.span_id:016x}",
        parent_span_id=f"{span.parent_span_id:016x}" if span.parent_span_id else "",
        name=span.name,
        kind="SERVER",
        service=SERVICE_NAME,
        start_ns=span.start_ns,
        end_ns=span.end_ns or span.start_ns,
        attributes=attributes,  # the span is over: nothing changes it any more
        status_code=span.status_code,
        status_message=span.status_message,
        events=[],
        runtime_id=runtime_id if isinstance(runtime_id, str) else None,
        session_id=session_id if isinstance(session_id, str) else None,
    )


__all__ = ["RemoteParent", "ServerSpan", "ServerTracer", "server_span_record"]
