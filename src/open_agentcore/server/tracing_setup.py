"""The server's `Telemetry` from its configuration (None with `--tracing off`)."""

from __future__ import annotations

from open_agentcore.telemetry import Telemetry, TracingConfig

from .config import ServerConfig


def telemetry_of(config: ServerConfig) -> Telemetry | None:
    if not config.tracing:
        return None
    return Telemetry(
        TracingConfig(
            otlp_endpoint=config.otlp_endpoint,
            retention_seconds=config.trace_retention,
            max_spans=config.trace_max_spans,
            worker_endpoint=config.worker_url,
        )
    )


__all__ = ["telemetry_of"]
