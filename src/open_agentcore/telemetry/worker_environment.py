"""The standard OpenTelemetry environment a worker gets, so an agent's own instrumentation (the
SDK's invocation span, Strands' spans, `opentelemetry-instrument`) exports to the server unconfigured."""

from __future__ import annotations

from urllib.parse import quote

from .credentials import SpanCredentials

WORKER_EXPORT_BATCH = 32


def worker_environment(
    credentials: SpanCredentials, endpoint: str, worker_id: str, runtime_id: str, version: int
) -> dict[str, str]:
    """`OTEL_*` variables for one worker: the server's OTLP endpoint, its span credential, its name.

    Only traces are exported: the server receives no metrics or logs over OTLP, so those exporters
    are turned off rather than left failing.
    """
    token = credentials.issue(worker_id, runtime_id)
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint.rstrip("/"),
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        # Percent-encoded as the variable's format wants (the space after "Bearer").
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=" + quote(f"Bearer {token}"),
        "OTEL_SERVICE_NAME": runtime_id,
        "OTEL_RESOURCE_ATTRIBUTES": f"agentcore.runtime.id={runtime_id},agentcore.runtime.version={version}",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_PROPAGATORS": "tracecontext,baggage",
        # The batch span processor exports as soon as this many spans wait (else every 5 s): the
        # worker encodes, and the server reads and stores, each export in one go, and a batch of
        # the default 512 held both processes' interpreters for the few invocations of that moment.
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": str(WORKER_EXPORT_BATCH),
    }


__all__ = ["WORKER_EXPORT_BATCH", "worker_environment"]
