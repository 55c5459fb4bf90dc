"""The invocation span recorded without the OpenTelemetry SDK's general path, where nobody can tell.

`Tracer.start_span` asks the sampler, builds a lock, a bounded attribute map and bounded event and
link lists, validates each attribute, and on `end` copies the span into a `ReadableSpan` for the
processors: about 120 Python calls, a third of what serving a hello invocation costs. Every
invocation makes one span of a shape known here: a SERVER span, a few text attributes, the
caller's sampled `traceparent` as its parent. When the provider is the one `tracing.py`
installed, with the default sampler (parent-based, always on), no span limits that could cut our
attributes and no SDK self-metrics, `FastInvocationSpans` makes that span itself: the same SDK
class (`opentelemetry.sdk.trace.Span`) with the same ids, flags, trace state, times, attributes
and processors, whose containers are built only if someone reads or changes them (a handler that
sets an attribute on the current span gets the SDK's own behaviour, limits and warnings included).
Any other case (no parent, an unsampled one, another provider or sampler) takes the SDK's path.

The span's fields are the SDK's private names; `FastInvocationSpans.for_tracer` compares them with
a span the installed SDK makes and declines (None) when a version differs, so a newer SDK falls
back to its own path instead of being misread.
"""

from __future__ import annotations

import logging
import os
import threading
from time import time_ns
from typing import Any

from opentelemetry import trace as _trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, Tracer, TracerProvider, sampling
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

logger = logging.getLogger("bedrock_agentcore.tracing")

# Built on first use (see `InvocationSpan.__getattr__`); everything else is set by the constructor.
_CONTAINERS = ("_attributes", "_events", "_links")
_build_lock = threading.Lock()  # a span's own lock is held by the SDK methods that first touch them
_UNSET = Status(StatusCode.UNSET)
_RANDOM = int(getattr(TraceFlags, "RANDOM_TRACE_ID", 0))  # a flag newer SDKs carry from the parent
_DEFAULT_SAMPLER = sampling.ParentBased(sampling.ALWAYS_ON).get_description()  # type: ignore[no-untyped-call]


class InvocationSpan(Span):
    """An SDK span whose attribute, event and link containers are made when first used."""

    def __init__(
        self, name: str, context: SpanContext, parent: SpanContext, attributes: dict[str, str], maker: Any
    ) -> None:
        # Not the SDK's constructor: it builds the containers at once (see the module docstring).
        self._name = name
        self._context = context
        self._kind = SpanKind.SERVER
        self._parent = parent
        self._start_time: int | None = None
        self._end_time: int | None = None
        self._status = _UNSET
        self._resource = maker.resource
        self._instrumentation_info = maker.instrumentation_info
        self._instrumentation_scope = maker.instrumentation_scope
        self._sampler = maker.sampler
        self._trace_config = None
        self._record_exception = True
        self._set_status_on_exception = True
        self._span_processor = maker.span_processor
        self._limits = maker.limits
        self._lock = threading.Lock()
        self._record_end_metrics = None
        self._plain_attributes = attributes

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not set: the containers, until something first asks for them.
        if name not in _CONTAINERS:
            raise AttributeError(name)
        with _build_lock:
            if "_attributes" not in self.__dict__:
                limits = self._limits
                self._attributes = BoundedAttributes(
                    limits.max_span_attributes,
                    self._plain_attributes,
                    immutable=False,
                    max_value_len=limits.max_span_attribute_length,
                )
                self._events = self._new_events()  # type: ignore[no-untyped-call]
                self._links = self._new_links(())
        return self.__dict__[name]

    def end(self, end_time: int | None = None) -> None:
        """End the span and hand it to the processors, as the SDK's `Span.end` does."""
        with self._lock:
            if self._start_time is None:
                raise RuntimeError("Calling end() on a not started span.")
            if self._end_time is not None:
                logger.warning("Calling end() on an ended span.")
                return
            self._end_time = end_time if end_time is not None else time_ns()
            built = "_attributes" in self.__dict__
            if built:
                self._attributes._immutable = True  # type: ignore[union-attr]
        on_ending = getattr(self._span_processor, "_on_ending", None)
        if on_ending is not None:
            on_ending(self)
        if built:
            readable = self._readable_span()
        else:
            readable = ReadableSpan(
                name=self._name,
                context=self._context,
                parent=self._parent,
                resource=self._resource,
                attributes=self._plain_attributes,
                kind=SpanKind.SERVER,
                status=self._status,
                start_time=self._start_time,
                end_time=self._end_time,
                instrumentation_info=self._instrumentation_info,
                instrumentation_scope=self._instrumentation_scope,
            )
        self._span_processor.on_end(readable)


class FastInvocationSpans:
    """Makes invocation spans for one SDK tracer, for a sampled parent; None when the SDK must."""

    def __init__(self, tracer: Tracer) -> None:
        self.resource = tracer.resource
        self.instrumentation_info = tracer.instrumentation_info
        self.instrumentation_scope = tracer._instrumentation_scope
        self.sampler = tracer.sampler
        self.span_processor = tracer.span_processor
        self.limits = tracer._span_limits
        self._new_span_id = tracer.id_generator.generate_span_id
        self._flags = TraceFlags(TraceFlags.SAMPLED)
        self._random_flags = TraceFlags(TraceFlags.SAMPLED | _RANDOM)

    @classmethod
    def for_tracer(cls, tracer: object, attribute_count: int) -> FastInvocationSpans | None:
        """The fast maker for `tracer` (of a provider this package installed), or None where its
        spans could differ from the SDK's: another sampler, span limits that would cut or drop
        `attribute_count` text attributes, SDK self-metrics, or span fields this module does not know."""
        if not isinstance(tracer, Tracer):
            return None
        try:
            limits = tracer._span_limits
            if (
                tracer.sampler.get_description() != _DEFAULT_SAMPLER
                or limits.max_span_attribute_length is not None
                or (limits.max_span_attributes is not None and limits.max_span_attributes < attribute_count)
                or os.environ.get("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "").strip().lower() == "true"
                or not tracer._is_enabled()
            ):
                return None
            maker = cls(tracer)
            if not maker._fields_match():
                return None
        except AttributeError:  # an SDK laid out otherwise
            return None
        return maker

    def start(
        self, name: str, parent_context: Context | None, attributes: dict[str, str]
    ) -> InvocationSpan | None:
        """A started span, child of the sampled span in `parent_context`; None without one."""
        if parent_context is None:
            return None
        parent = _trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid or not parent.trace_flags.sampled:
            return None
        context = SpanContext(
            parent.trace_id,
            self._new_span_id(),
            is_remote=False,
            trace_flags=self._random_flags if parent.trace_flags & _RANDOM else self._flags,
            trace_state=parent.trace_state,
        )
        span = InvocationSpan(name, context, parent, attributes, self)
        span.start(parent_context=parent_context)
        return span

    def _fields_match(self) -> bool:
        """Whether our span has exactly the fields (plus containers) of a span the SDK makes."""
        provider = TracerProvider(resource=Resource.get_empty(), shutdown_on_exit=False)
        sdk_span = provider.get_tracer("probe").start_span("probe")
        parent = SpanContext(1, 1, is_remote=True, trace_flags=self._flags)
        ours = InvocationSpan("probe", parent, parent, {}, self)
        made = (set(vars(ours)) - {"_plain_attributes"}) | set(_CONTAINERS)
        return made == set(vars(sdk_span))


__all__ = ["FastInvocationSpans", "InvocationSpan"]
