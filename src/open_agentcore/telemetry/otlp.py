"""OTLP/HTTP trace payloads: protobuf and OTLP's JSON mapping in, protobuf out, as `SpanRecord`s.

Received bodies come from untrusted senders (an agent's code): every failure to read one is an
`OtlpError`, and a body may hold at most `MAX_SPANS` spans.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

from open_agentcore.store.traces import KINDS, STATUS_CODES, SpanRecord

from .otlp_json import MAX_SPANS, OtlpJsonError, read_json_export
from .pace import Pace, paced

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MAX_INFLATED = 32 * 1024 * 1024  # a gzip body may not unpack past this
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")
_SERVICE_NAME = "service.name"


class OtlpError(Exception):
    """A body that is not an OTLP trace export this server can read; the message says why."""


def inflate(body: bytes, encoding: str) -> bytes:
    """The body as sent before `Content-Encoding` (identity or gzip), bounded in size."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise OtlpError(f"Content-Encoding {encoding!r} is not accepted: send identity or gzip")
    unpacker = zlib.decompressobj(wbits=31)
    try:
        inflated = unpacker.decompress(body, MAX_INFLATED + 1)
    except zlib.error as error:
        raise OtlpError(f"the gzip body is corrupt: {error}") from None
    if len(inflated) > MAX_INFLATED or unpacker.unconsumed_tail:
        raise OtlpError(f"the gzip body unpacks past {MAX_INFLATED} bytes")
    if not unpacker.eof:
        raise OtlpError("the gzip body is truncated")
    return inflated


def decode(body: bytes, content_type: str, pace: Pace | None = None) -> list[SpanRecord]:
    """The spans of an ExportTraceServiceRequest in protobuf or OTLP JSON (by its content type); with
    `pace`, read in slices (see `pace.py`)."""
    media = content_type.split(";", 1)[0].strip().lower()
    request = ExportTraceServiceRequest()
    if media == PROTOBUF:
        try:
            request.ParseFromString(body)
        except (DecodeError, RecursionError, ValueError) as error:
            raise OtlpError(f"the body is not an OTLP protobuf trace export: {error}") from None
    elif media == JSON:
        try:
            return read_json_export(body, pace)
        except OtlpJsonError as error:
            raise OtlpError(f"the body is not an OTLP JSON trace export: {error}") from None
    else:
        raise OtlpError(f"Content-Type {content_type!r} is not OTLP: send {PROTOBUF} or {JSON}")
    return paced(_records(request), pace)


def _records(request: ExportTraceServiceRequest) -> Iterable[SpanRecord]:
    count = 0
    for resource_spans in request.resource_spans:
        service = "unknown_service"
        for attribute in resource_spans.resource.attributes:
            if attribute.key == _SERVICE_NAME and attribute.value.HasField("string_value"):
                service = attribute.value.string_value
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                count += 1
                if count > MAX_SPANS:
                    raise OtlpError(f"one export may carry at most {MAX_SPANS} spans")
                yield _record(span, service)


def _record(span: Span, service: str) -> SpanRecord:
    if len(span.trace_id) != 16 or len(span.span_id) != 8:
        raise OtlpError("every span needs a 16-byte traceId and an 8-byte spanId")
    if span.parent_span_id and len(span.parent_span_id) != 8:
        raise OtlpError("a parentSpanId is 8 bytes")
    code = span.status.code
    return SpanRecord(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        name=span.name[:1024],
        kind=KINDS[span.kind] if 0 <= span.kind < len(KINDS) else "UNSPECIFIED",
        service=service[:256],
        start_ns=span.start_time_unix_nano,
        end_ns=max(span.end_time_unix_nano, span.start_time_unix_nano),
        attributes=_attributes(span.attributes),
        status_code=STATUS_CODES[code] if 0 <= code < len(STATUS_CODES) else "UNSET",
        status_message=span.status.message[:4096],
        events=[
            {
                "name": event.name,
                "timeUnixNano": str(event.time_unix_nano),
                "attributes": _attributes(event.attributes),
            }
            for event in span.events
        ],
    )


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, which)


def encode(records: Sequence[SpanRecord]) -> bytes:
    """An ExportTraceServiceRequest in protobuf for `records`, one resource per service, runtime and
    session (the server's stamps become resource attributes, as a collector expects them)."""
    request = ExportTraceServiceRequest()
    groups: dict[tuple[str, str | None, str | None], ResourceSpans] = {}
    for record in records:
        key = (record.service, record.runtime_id, record.session_id)
        resource_spans = groups.get(key)
        if resource_spans is None:
            resource_spans = groups[key] = request.resource_spans.add()
            resource = {_SERVICE_NAME: record.service}
            if record.runtime_id is not None:
                resource["agentcore.runtime.id"] = record.runtime_id
            if record.session_id is not None:
                resource["agentcore.session.id"] = record.session_id
            resource_spans.resource.attributes.extend(_pairs(resource))
            resource_spans.scope_spans.add()
        resource_spans.scope_spans[0].spans.append(_span(record))
    return request.SerializeToString()


def _span(record: SpanRecord) -> Span:
    span = Span(
        trace_id=bytes.fromhex(record.trace_id),
        span_id=bytes.fromhex(record.span_id),
        parent_span_id=bytes.fromhex(record.parent_span_id) if record.parent_span_id else b"",
        name=record.name,
        kind=KINDS.index(record.kind) if record.kind in KINDS else 0,  # type: ignore[arg-type]
        start_time_unix_nano=record.start_ns,
        end_time_unix_nano=record.end_ns,
        status=Status(code=STATUS_CODES.index(record.status_code), message=record.status_message),  # type: ignore[arg-type]
    )
    span.attributes.extend(_pairs(record.attributes))
    for event in record.events:
        added = span.events.add(
            name=str(event.get("name", "")), time_unix_nano=int(event.get("timeUnixNano", 0))
        )
        added.attributes.extend(_pairs(event.get("attributes") or {}))
    return span


def _pairs(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=str(key), value=_any(value)) for key, value in attributes.items()]


def _any(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, (list, tuple)):
        array = AnyValue()
        array.array_value.values.extend(_any(item) for item in value)
        return array
    if isinstance(value, dict):
        kvlist = AnyValue()
        kvlist.kvlist_value.values.extend(_pairs(value))
        return kvlist
    return AnyValue(string_value="" if value is None else str(value))


def to_json(body: bytes) -> dict[str, Any]:
    """A protobuf export as OTLP JSON (ids in hex), for tests and diagnostics."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    document = MessageToDict(request)
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for name in _ID_FIELDS:
                    if name in span:
                        span[name] = binascii.hexlify(base64.b64decode(span[name])).decode()
    return document


__all__ = [
    "JSON",
    "MAX_INFLATED",
    "MAX_SPANS",
    "PROTOBUF",
    "OtlpError",
    "decode",
    "encode",
    "inflate",
    "to_json",
]
