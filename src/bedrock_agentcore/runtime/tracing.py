"""An invocation span around each handler call, when OpenTelemetry is importable; nothing otherwise.

Whether `opentelemetry` can be imported is decided once, when this module is imported: without it,
`TRACING` is None and `/invocations` does no tracing work at all. With it, each invocation runs in
a SERVER span whose parent is the caller's W3C `traceparent` (the runtime server's own span), so
spans the handler makes (Strands', the agent's own) are its children. While no TracerProvider is
installed at all, spans could only be no-ops, and none is made. Under the provider installed here,
the span is made by `invocation_span.py` (the same SDK span, without the SDK's general path).

Export: when the standard environment names an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, as the runtime server gives its workers) and the agent has
not installed a TracerProvider itself by its first invocation, one is installed that exports
there: with `opentelemetry-exporter-otlp-proto-http` when present, else with a small OTLP/JSON
exporter of ours on the standard library (see `otlp_json.py`).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

try:
    from opentelemetry import context as _context
    from opentelemetry import trace as _trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the agent's environment has no OpenTelemetry: no spans, no cost
    _trace = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from .invocation_span import FastInvocationSpans

SPAN_NAME = "agentcore.invocation"
# Version 00 exactly as the runtime server writes it; any other form goes to the propagator.
_CANONICAL_TRACEPARENT = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_SESSION_HEADER = b"x-amzn-bedrock-agentcore-runtime-session-id"
_REQUEST_ID_HEADER = b"x-amzn-bedrock-agentcore-runtime-request-id"
_ATTRIBUTE_COUNT = 2  # the most attributes `begin` gives a span


class OpenSpan(NamedTuple):
    """An invocation's span, current from `InvocationTracing.begin` until `end`."""

    span: Any
    token: Any  # the context's token, for `detach`


class InvocationTracing:
    """Starts invocation spans; installs the exporter the environment asks for, once."""

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        self._environ = environ
        self._propagator = TraceContextTextMapPropagator()
        self._configured = False
        self._lock = threading.Lock()
        self._tracer: Any = None
        self._fast: FastInvocationSpans | None = None  # for the provider installed here, where it applies

    def prepare(self) -> None:
        """Install the exporter the environment asks for now, before the first invocation, so that
        call does not pay for importing the OpenTelemetry SDK. Starts the exporter's thread: call it
        in the process that serves, never in one that will fork."""
        if not self._configured:
            self._configure()

    def preload(self) -> None:
        """Import what `prepare` will use (the OpenTelemetry SDK and the exporter) without
        installing anything or starting a thread: a process that forks workers calls it once, and
        each worker's `prepare` is then a few objects, not an import. Safe to call before `fork`."""
        preload_exporter()

    def active(self) -> bool:
        """Whether an invocation span would be recorded: some TracerProvider is installed (the
        agent's, or the exporter the environment asked for). Without one, every span would be a
        no-op, so invocations skip the work of making them."""
        if not self._configured:
            self._configure()
        return not isinstance(_trace.get_tracer_provider(), _trace.ProxyTracerProvider)

    def begin(self, headers: Sequence[tuple[bytes, bytes]]) -> OpenSpan:
        """Start the invocation's span and make it current (in this task's context) until `end`."""
        traceparent = tracestate = None
        attributes: dict[str, str] = {}
        for name, value in headers:
            if name == b"traceparent":
                traceparent = value
            elif name == b"tracestate":
                tracestate = value
            elif name == _SESSION_HEADER:
                attributes["session.id"] = value.decode("utf-8", "replace")
            elif name == _REQUEST_ID_HEADER:
                attributes["agentcore.request.id"] = value.decode("latin-1")
        parent = self._parent(traceparent, tracestate)
        fast = self._fast
        span = fast.start(SPAN_NAME, parent, attributes) if fast is not None else None
        if span is None:
            kind = _trace.SpanKind.SERVER
            span = self._tracer.start_span(SPAN_NAME, context=parent, kind=kind, attributes=attributes)
        # Into the current context, not `parent`'s: what `start_as_current_span` does too.
        return OpenSpan(span, _context.attach(_trace.set_span_in_context(span)))

    def _parent(self, traceparent: bytes | None, tracestate: bytes | None) -> Any:
        """The caller's context from its W3C headers, as the standard propagator extracts it; None
        without either header. The form the runtime server sends is read here directly."""
        if traceparent is not None and tracestate is None:
            match = _CANONICAL_TRACEPARENT.fullmatch(traceparent)
            if match is not None:
                trace_id, span_id = int(match[1], 16), int(match[2], 16)
                if not trace_id or not span_id:
                    return _context.Context()  # what the propagator makes of zero ids: no parent
                flags = _trace.TraceFlags(int(match[3], 16))
                remote = _trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)
                return _trace.set_span_in_context(_trace.NonRecordingSpan(remote), _context.Context())
        carrier: dict[str, str] = {}
        if traceparent is not None:
            carrier["traceparent"] = traceparent.decode("latin-1")
        if tracestate is not None:
            carrier["tracestate"] = tracestate.decode("latin-1")
        return self._propagator.extract(carrier) if carrier else None

    def fail(self, opened: OpenSpan, error: Exception) -> None:
        """The invocation raised `error`: recorded on its span with an ERROR status."""
        span = opened.span
        if span.is_recording():
            span.record_exception(error)
            span.set_status(_trace.Status(_trace.StatusCode.ERROR, f"{type(error).__name__}: {error}"))

    def end(self, opened: OpenSpan) -> None:
        """Stop the span being current and end it (call in the context `begin` was called in)."""
        _context.detach(opened.token)
        opened.span.end()

    @contextlib.contextmanager
    def span(self, headers: Sequence[tuple[bytes, bytes]]) -> Iterator[Any]:
        """The invocation's span, current for the handler (in the thread or loop that runs it)."""
        opened = self.begin(headers)
        try:
            yield opened.span
        except Exception as error:
            self.fail(opened, error)
            raise
        finally:
            self.end(opened)

    def _configure(self) -> None:
        with self._lock:
            if not self._configured:
                installed = install_exporter(self._environ)
                # Once: a tracer of the proxy provider follows a provider the agent installs later.
                self._tracer = _trace.get_tracer("bedrock_agentcore")
                if installed:
                    from .invocation_span import FastInvocationSpans

                    self._fast = FastInvocationSpans.for_tracer(self._tracer, _ATTRIBUTE_COUNT)
                self._configured = True


def install_exporter(environ: Mapping[str, str]) -> bool:
    """Install a TracerProvider exporting to the environment's OTLP endpoint; False when the
    environment names none, the agent installed its own provider, or the OpenTelemetry SDK is absent."""
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint or environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    if not isinstance(_trace.get_tracer_provider(), _trace.ProxyTracerProvider):
        return False  # the agent configured tracing itself: leave it alone
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        return False
    provider = TracerProvider(resource=_resource())
    provider.add_span_processor(BatchSpanProcessor(_exporter(environ)))
    _trace.set_tracer_provider(provider)
    return True


def preload_exporter() -> None:
    """Import the modules `install_exporter` needs and detect the resource, installing nothing and
    leaving no thread behind (so a process may fork after it); nothing when the SDK is absent."""
    global _preloaded
    try:
        from opentelemetry.sdk.resources import Resource  # noqa: F401 - imported for the forks
        from opentelemetry.sdk.trace import TracerProvider  # noqa: F401 - imported for the forks
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: F401 - likewise
    except ImportError:
        return
    _preloaded = _PreloadedResource.detect()
    _rehearse_tracer()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: F401
    except ImportError:
        from . import otlp_json  # noqa: F401 - the fallback exporter, imported for the forks


# The resource detector variables: the resource a process detects follows from them alone, as long
# as they name no detector beyond these two (others, such as "process", describe the process).
_RESOURCE_VARIABLES = (
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS",
)
_PORTABLE_DETECTORS = {"", "otel", "service_instance"}
_INSTANCE_ID = "service.instance.id"


class _PreloadedResource:
    """The resource detected once in a process that forks workers, for each of them to reuse.

    Detecting it runs a pool of threads; in every forked worker that would write to megabytes of
    pages it shares with its siblings (the threads' allocator arenas and stacks, the objects the
    detection touches). A worker whose variables match reuses it, with its own instance id."""

    def __init__(self, key: tuple[str | None, ...], resource: Any, instance_id: object) -> None:
        self.key = key
        self.resource = resource
        self.instance_id = instance_id  # the preloading process's own, to replace in each worker

    @staticmethod
    def key_of(environ: Mapping[str, str]) -> tuple[str | None, ...] | None:
        """What the detected resource follows from, or None when it depends on the process."""
        detectors = environ.get("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "")
        if any(name.strip() not in _PORTABLE_DETECTORS for name in detectors.split(",")):
            return None
        return tuple(environ.get(name) for name in _RESOURCE_VARIABLES)

    @classmethod
    def detect(cls) -> _PreloadedResource | None:
        from opentelemetry.sdk.resources import Resource

        key = cls.key_of(os.environ)  # what Resource.create reads
        if key is None:
            return None
        resource = Resource.create()
        return cls(key, resource, resource.attributes.get(_INSTANCE_ID))

    def for_this_process(self) -> Any:
        """The resource, with this process's own instance id where the detector gave it one."""
        from opentelemetry.sdk import resources

        detector = getattr(resources, "ServiceInstanceIdResourceDetector", None)
        if self.instance_id is None or detector is None:
            return self.resource
        if self.resource.attributes.get(_INSTANCE_ID) != self.instance_id:
            return self.resource
        return self.resource.merge(detector().detect())


_preloaded: _PreloadedResource | None = None


def _rehearse_tracer() -> None:
    """Do once, for the forks, what a worker's first tracer and first export would each do: make a
    tracer of a provider (it compiles regular expressions on the way, cached from then on) and
    import the codec a host name is encoded with when connecting. No thread, nothing installed."""
    import encodings.idna  # noqa: F401 - imported for the forks

    from opentelemetry.sdk.trace import TracerProvider

    TracerProvider(shutdown_on_exit=False).get_tracer("bedrock_agentcore")


def _resource() -> Any:
    """This process's resource: the preloaded one when the environment still matches (a forked
    worker's usually does), else detected now (reads OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES)."""
    from opentelemetry.sdk.resources import Resource

    preloaded = _preloaded
    if preloaded is not None and preloaded.key == _PreloadedResource.key_of(os.environ):
        return preloaded.for_this_process()
    return Resource.create()


def _exporter(environ: Mapping[str, str]) -> Any:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        from .otlp_json import OtlpJsonExporter

        return OtlpJsonExporter.from_environment(environ)
    return OTLPSpanExporter()


TRACING: InvocationTracing | None = InvocationTracing() if _trace is not None else None

__all__ = ["SPAN_NAME", "TRACING", "InvocationTracing", "OpenSpan", "install_exporter", "preload_exporter"]
