"""A minimal OTLP/HTTP JSON span exporter on the standard library, for agents whose environment has
the OpenTelemetry SDK (Strands brings it) but not an OTLP exporter package.

Imported only when OpenTelemetry's SDK is present. It follows the standard environment:
`OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`, `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`, and
`OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` (milliseconds... as seconds when small, like the SDK's).
Batches are POSTed by `otlp_post.py` (a plain socket, or urllib where a proxy variable applies).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .otlp_post import post, post_via_proxy, proxy_configured

logger = logging.getLogger("bedrock_agentcore.tracing")

_KINDS = {0: 1, 1: 2, 2: 3, 3: 4, 4: 5}  # the SDK's SpanKind value -> OTLP's
_STATUS = {"UNSET": 0, "OK": 1, "ERROR": 2}
_NONE: Mapping[str, Any] = {}


class OtlpJsonExporter(SpanExporter):
    """POSTs batches of spans as OTLP JSON to one URL; a failure is logged once per outage."""

    def __init__(
        self, url: str, headers: Mapping[str, str], timeout: float = 10.0, proxied: bool = False
    ) -> None:
        """`proxied`: send through the environment's proxy (`otlp_post.proxy_configured`)."""
        self.url = url
        self.headers = {"content-type": "application/json", **headers}
        self.timeout = timeout
        self._post = post_via_proxy if proxied else post
        self._failing = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> OtlpJsonExporter:
        url = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        if not url:
            url = (
                environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318").rstrip("/") + "/v1/traces"
            )
        raw = environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or environ.get(
            "OTEL_EXPORTER_OTLP_HEADERS", ""
        )
        headers = {}
        for pair in raw.split(","):
            name, sep, value = pair.partition("=")
            if sep and name.strip():
                headers[unquote(name).strip().lower()] = unquote(value).strip()
        return cls(url, headers, proxied=proxy_configured(url, environ))

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        body = json.dumps(document(spans)).encode()
        try:
            status = self._post(self.url, body, self.headers, self.timeout)
            if not 200 <= status < 300:
                raise OSError(f"the collector answered HTTP {status}")
        except (OSError, ValueError) as error:
            if not self._failing:
                logger.warning("Exporting spans to %s failed: %s", self.url, error)
            self._failing = True
            return SpanExportResult.FAILURE
        self._failing = False
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def document(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """An OTLP JSON ExportTraceServiceRequest: one resource per distinct resource of the spans."""
    by_resource: dict[int, tuple[Any, list[dict[str, Any]]]] = {}
    for span in spans:
        entry = by_resource.setdefault(id(span.resource), (span.resource, []))
        entry[1].append(_span(span))
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _attributes(resource.attributes if resource else {})},
                "scopeSpans": [{"scope": {"name": "bedrock_agentcore"}, "spans": items}],
            }
            for resource, items in by_resource.values()
        ]
    }


def _span(span: ReadableSpan) -> dict[str, Any]:
    # Once per span on the exporter's thread, which shares the worker's core: plain lookups only.
    context = span.get_span_context()
    assert context is not None
    start = span.start_time or 0
    status = span.status
    events = span.events
    item: dict[str, Any] = {
        "traceId": f"{context.trace_id:032x}",
        "spanId": f"{context.span_id:016x}",
        "name": span.name,
        "kind": _KINDS.get(span.kind.value, 1),
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(span.end_time or start),
        "attributes": _attributes(span.attributes or _NONE),
        "status": {"code": _STATUS.get(status.status_code.name, 0), "message": status.description or ""},
        "events": [
            {
                "name": e.name,
                "timeUnixNano": str(e.timestamp),
                "attributes": _attributes(e.attributes or _NONE),
            }
            for e in events
        ]
        if events
        else [],
    }
    parent = span.parent
    if parent is not None:
        item["parentSpanId"] = f"{parent.span_id:016x}"
    return item


def _attributes(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"key": str(key), "value": {"stringValue": value} if type(value) is str else _value(value)}
        for key, value in attributes.items()
    ]


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_value(item) for item in value]}}
    return {"stringValue": str(value)}


__all__ = ["OtlpJsonExporter", "document"]
