"""Traces: the server's own spans, spans agents export to it over OTLP, keeping and forwarding them.

No HTTP here: the server's routes (`server/tracing.py`, `server/traces.py`) call into this.
"""

from .config import SERVICE_NAME, TracingConfig
from .credentials import InvalidSpanCredential, SpanCredentials, SpanSource
from .forward import Forwarder, traces_url
from .otlp import OtlpError, decode, encode, inflate
from .server_span import RemoteParent, ServerSpan, ServerTracer, server_span_record
from .service import Telemetry
from .sink import SpanSink
from .worker_environment import worker_environment

__all__ = [
    "SERVICE_NAME",
    "Forwarder",
    "InvalidSpanCredential",
    "OtlpError",
    "RemoteParent",
    "ServerSpan",
    "ServerTracer",
    "SpanCredentials",
    "SpanSink",
    "SpanSource",
    "Telemetry",
    "TracingConfig",
    "decode",
    "encode",
    "inflate",
    "server_span_record",
    "traces_url",
    "worker_environment",
]
