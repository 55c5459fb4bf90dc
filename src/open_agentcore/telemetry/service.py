"""The server's tracing, assembled: its tracer, the span sink, and its workers' span credentials."""

from __future__ import annotations

from open_agentcore.sessions import SessionTarget
from open_agentcore.store import Store

from .config import TracingConfig
from .credentials import SpanCredentials
from .server_span import ServerTracer, server_span_record
from .sink import SpanSink
from .worker_environment import worker_environment


class Telemetry:
    """Built once with the app; `start` with the store in the server's lifespan, `close` at its end."""

    def __init__(self, config: TracingConfig) -> None:
        self.config = config
        self.sink = SpanSink(config, server_span_record)
        self.credentials = SpanCredentials()
        self.tracer = ServerTracer(self.sink)

    def worker_environment(self, target: SessionTarget, worker_id: str) -> dict[str, str]:
        """The `OTEL_*` environment of a worker about to start (empty when workers cannot export)."""
        endpoint = self.config.worker_endpoint
        if endpoint is None:
            return {}
        return worker_environment(self.credentials, endpoint, worker_id, target.runtime_id, target.version)

    def session_event(self, event: str, worker_id: str, session_id: str) -> None:
        """A session started on a worker (its span credential now names the session) or ended (the
        credential is refused from now on)."""
        if event == "started":
            self.credentials.bind(worker_id, session_id)
        elif event == "ended":
            self.credentials.end(worker_id)

    def start(self, store: Store) -> None:
        self.sink.start(store)

    def close(self) -> None:
        """Write the spans still queued, then stop."""
        self.sink.close()


__all__ = ["Telemetry"]
