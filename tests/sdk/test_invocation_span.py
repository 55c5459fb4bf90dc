"""The fast invocation span: for every case it takes, what processors and exporters receive is what
the OpenTelemetry SDK's own path gives; every case it must not take goes to the SDK.

Each test builds a tracer of its own (a process has one global provider, which these leave alone),
and compares a fast `InvocationTracing` with one whose fast maker is off: ids and times aside, the
finished spans must be equal field by field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, Tracer, TracerProvider, sampling
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from bedrock_agentcore.runtime.invocation_span import FastInvocationSpans, InvocationSpan
from bedrock_agentcore.runtime.tracing import InvocationTracing

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
HEADERS = [
    (b"host", b"agent"),
    (b"traceparent", TRACEPARENT),
    (b"x-amzn-bedrock-agentcore-runtime-session-id", b"session-1"),
    (b"x-amzn-bedrock-agentcore-runtime-request-id", b"request-1"),
]


def _provider(**options: Any) -> tuple[Tracer, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False, **options)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bedrock_agentcore")
    assert isinstance(tracer, Tracer)
    return tracer, memory


def _tracing(tracer: Tracer, fast: bool) -> InvocationTracing:
    tracing = InvocationTracing({})
    tracing._configured = True
    tracing._tracer = tracer
    tracing._fast = FastInvocationSpans.for_tracer(tracer, 2) if fast else None
    return tracing


def _fields(span: ReadableSpan) -> dict[str, Any]:
    """Everything an exporter reads of a span, but its own span id and its times."""
    context, parent = span.context, span.parent
    assert context is not None
    return {
        "name": span.name,
        "kind": span.kind,
        "trace_id": context.trace_id,
        "flags": int(context.trace_flags),
        "trace_state": context.trace_state.to_header(),
        "remote": context.is_remote,
        "parent": parent and (parent.trace_id, parent.span_id, parent.is_remote, int(parent.trace_flags)),
        "attributes": dict(span.attributes or {}),
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
        "status": (span.status.status_code, span.status.description),
        "events": [(event.name, dict(event.attributes or {})) for event in span.events],
        "links": list(span.links),
        "resource": dict(span.resource.attributes),
        "scope": span.instrumentation_scope,
        "ended_after_start": (span.end_time or 0) >= (span.start_time or 0) > 0,
    }


def _both(
    work: Callable[[InvocationTracing], None], headers: list[tuple[bytes, bytes]] = HEADERS, **options: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The finished spans of `work` on the fast path and on the SDK's, as `_fields`."""
    results = []
    for fast in (True, False):
        tracer, memory = _provider(**options)
        tracing = _tracing(tracer, fast)
        assert (tracing._fast is not None) == fast
        work(tracing)
        results.append([_fields(span) for span in memory.get_finished_spans()])
    return results[0], results[1]


def _invoke(handler: Callable[[Any], None] = lambda span: None, headers: list[tuple[bytes, bytes]] = HEADERS):
    def work(tracing: InvocationTracing) -> None:
        opened = tracing.begin(headers)
        try:
            handler(opened.span)
        except Exception as error:
            tracing.fail(opened, error)
        finally:
            tracing.end(opened)

    return work


def test_a_plain_invocation_span_is_the_sdks() -> None:
    fast, sdk = _both(_invoke())
    assert fast == sdk
    assert fast[0]["parent"] == (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True, 1)
    assert fast[0]["attributes"] == {"session.id": "session-1", "agentcore.request.id": "request-1"}


@pytest.mark.parametrize(
    "headers",
    [
        [(b"traceparent", TRACEPARENT), (b"tracestate", b"vendor=abc,other=1")],
        [(b"traceparent", TRACEPARENT[:-2] + b"03")],  # sampled, with the random-trace-id flag
        [(b"traceparent", TRACEPARENT[:-2] + b"00")],  # not sampled: the SDK's path, both times
        [(b"traceparent", b"00-" + b"0" * 32 + TRACEPARENT[35:])],  # an invalid parent: a root
        [],
    ],
)
def test_every_kind_of_parent_gives_the_sdks_span(headers: list[tuple[bytes, bytes]]) -> None:
    fast, sdk = _both(_invoke(headers=headers), headers=headers)
    if headers and headers[0][1].endswith(b"00") and b"-" + b"0" * 32 not in headers[0][1]:
        assert fast == sdk == []  # not recorded at all
        return
    trace_ids = [spans[0].pop("trace_id") for spans in (fast, sdk)]
    assert fast == sdk
    assert (trace_ids[0] == trace_ids[1]) == (fast[0]["parent"] is not None)


def test_the_fast_path_makes_its_own_span_class_only_where_it_applies() -> None:
    tracer, _ = _provider()
    opened = _tracing(tracer, fast=True).begin(HEADERS)
    assert isinstance(opened.span, InvocationSpan)
    unsampled = [(b"traceparent", TRACEPARENT[:-2] + b"00")]
    for headers in ([], unsampled):
        other = _tracing(tracer, fast=True).begin(headers)
        assert not isinstance(other.span, InvocationSpan)
        _tracing(tracer, fast=True).end(other)
    _tracing(tracer, fast=True).end(opened)


def test_what_a_handler_does_to_the_current_span_is_kept_as_the_sdk_keeps_it() -> None:
    def handler(span: Any) -> None:
        current = trace.get_current_span()
        assert current is span and current.is_recording()
        current.set_attribute("user.id", "alice")
        current.set_attribute("", "no key")  # the SDK drops it with a warning
        current.set_attributes({"count": 3, "ratio": 0.5, "tags": ["a", "b"]})
        current.add_event("step", {"n": 1})
        current.update_name("renamed")
        current.set_status(trace.Status(trace.StatusCode.OK))
        current.set_status(trace.Status(trace.StatusCode.ERROR, "ignored after OK"))

    fast, sdk = _both(_invoke(handler))
    assert fast == sdk
    assert fast[0]["name"] == "renamed" and fast[0]["attributes"]["user.id"] == "alice"
    assert "" not in fast[0]["attributes"] and fast[0]["status"][0] is trace.StatusCode.OK


def test_an_invocation_that_raises_records_the_exception_and_fails_its_span() -> None:
    def handler(span: Any) -> None:
        raise ValueError("no such thing")

    fast, sdk = _both(_invoke(handler))
    for spans in (fast, sdk):  # the stack trace differs by a line number: compare the rest
        spans[0]["events"][0][1].pop("exception.stacktrace")
    assert fast == sdk
    assert fast[0]["status"] == (trace.StatusCode.ERROR, "ValueError: no such thing")
    assert fast[0]["events"][0][0] == "exception"
    assert fast[0]["events"][0][1]["exception.type"] == "ValueError"


def test_a_handlers_own_span_is_the_invocation_spans_child() -> None:
    tracer, memory = _provider()
    tracing = _tracing(tracer, fast=True)
    before = otel_context.get_current()
    opened = tracing.begin(HEADERS)
    tracer.start_span("handler-work").end()
    tracing.end(opened)
    assert otel_context.get_current() == before
    spans = {span.name: span for span in memory.get_finished_spans()}
    work, invocation = spans["handler-work"], spans["agentcore.invocation"]
    assert work.parent is not None and invocation.context is not None
    assert work.parent.span_id == invocation.context.span_id
    assert work.context is not None and work.context.trace_id == invocation.context.trace_id


def test_an_attribute_set_after_the_end_is_refused_as_the_sdk_refuses_it() -> None:
    def work(tracing: InvocationTracing) -> None:
        opened = tracing.begin(HEADERS)
        tracing.end(opened)
        opened.span.set_attribute("late", True)
        opened.span.end()  # a second end is ignored (with the SDK's warning)

    fast, sdk = _both(work)
    assert fast == sdk and len(fast) == 1 and "late" not in fast[0]["attributes"]


def test_a_processor_added_later_sees_the_fast_span_start_and_end() -> None:
    tracer, _ = _provider()
    tracing = _tracing(tracer, fast=True)
    later = InMemorySpanExporter()
    seen: list[str] = []

    class Starts(SimpleSpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            span.set_attribute("seen.at.start", True)  # what baggage processors do
            seen.append(span.name)

    provider = tracer.span_processor  # the provider's active processor, which the provider adds to
    provider.add_span_processor(Starts(later))
    tracing.end(tracing.begin(HEADERS))
    assert seen == ["agentcore.invocation"]
    [span] = later.get_finished_spans()
    assert span.attributes is not None and span.attributes["seen.at.start"] is True


@pytest.mark.parametrize(
    "options",
    [
        {"sampler": sampling.TraceIdRatioBased(0.5)},
        {"sampler": sampling.ParentBased(sampling.ALWAYS_OFF)},
        {"span_limits": SpanLimits(max_span_attribute_length=4)},
        {"span_limits": SpanLimits(max_span_attributes=1)},
    ],
)
def test_a_provider_that_could_shape_the_span_otherwise_gets_the_sdks_path(options: dict[str, Any]) -> None:
    tracer, _ = _provider(**options)
    assert FastInvocationSpans.for_tracer(tracer, 2) is None


def test_an_unfamiliar_span_layout_gets_the_sdks_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # A newer SDK whose spans carry a field ours do not: the fast path declines rather than guess.
    tracer, _ = _provider()
    original = InvocationSpan.__init__

    def without_a_field(self: InvocationSpan, *args: Any) -> None:
        original(self, *args)
        del self._trace_config

    monkeypatch.setattr(InvocationSpan, "__init__", without_a_field)
    assert FastInvocationSpans.for_tracer(tracer, 2) is None


_PROPAGATOR = TraceContextTextMapPropagator()
_HEX = "0123456789abcdef"
_hex = lambda size: st.text(alphabet=_HEX, min_size=size, max_size=size)  # noqa: E731
_canonical = st.builds(
    lambda t, s, f: f"00-{t}-{s}-{f}", _hex(32) | st.just("0" * 32), _hex(16) | st.just("0" * 16), _hex(2)
)
_bent = st.text(alphabet=_HEX + "ABCDEF- \tx0", max_size=60) | _canonical.map(lambda v: f" {v}\t")


def _seen(context: Any) -> Any:
    if context is None:
        return None
    span_context = trace.get_current_span(context).get_span_context()
    return (
        span_context.trace_id, span_context.span_id, span_context.is_remote,
        int(span_context.trace_flags), span_context.trace_state.to_header(),
    )  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(traceparent=_canonical | _bent, tracestate=st.none() | st.sampled_from(["a=1", "b=2,c=3", ""]))
def test_the_callers_context_is_read_as_the_standard_propagator_reads_it(
    traceparent: str, tracestate: str | None
) -> None:
    tracing = InvocationTracing({})
    ours = tracing._parent(traceparent.encode(), None if tracestate is None else tracestate.encode())
    carrier = {"traceparent": traceparent}
    if tracestate is not None:
        carrier["tracestate"] = tracestate
    assert _seen(ours) == _seen(_PROPAGATOR.extract(carrier))


def test_the_exported_json_of_a_fast_span_is_the_sdks() -> None:
    from bedrock_agentcore.runtime.otlp_json import document

    def encoded(fast: bool) -> dict[str, Any]:
        tracer, memory = _provider()
        tracing = _tracing(tracer, fast)
        tracing.end(tracing.begin(HEADERS))
        [span] = memory.get_finished_spans()
        item: dict[str, Any] = json.loads(json.dumps(document([span])))
        spans = item["resourceSpans"][0]["scopeSpans"][0]["spans"]
        for exported in spans:
            for volatile in ("spanId", "startTimeUnixNano", "endTimeUnixNano"):
                exported.pop(volatile)
        return item

    assert encoded(True) == encoded(False)
