"""OTLP's JSON trace exports read straight into `SpanRecord`s (our SDK's workers export JSON).

protobuf's `ParseDict` does the same in pure Python, one reflective call per field; at many
sessions that was most of what receiving spans cost the server. This reader walks the JSON once
and accepts what the protobuf JSON mapping accepts for the fields it keeps: ids in hex, 64-bit
integers as numbers or decimal strings, enums by number or by name, unknown fields ignored,
`null` as absent. Anything else is an `OtlpError` naming what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterator
from typing import Any

from open_agentcore.store.traces import KINDS, STATUS_CODES, SpanRecord

from .pace import Pace, paced

MAX_SPANS = 10_000
_SERVICE_NAME = "service.name"
_KIND_NAMES = {f"SPAN_KIND_{kind}": number for number, kind in enumerate(KINDS)}
_STATUS_NAMES = {f"STATUS_CODE_{code}": number for number, code in enumerate(STATUS_CODES)}
_DOUBLE_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class OtlpJsonError(ValueError):
    """The JSON is not an OTLP trace export; the message says where."""


def read_json_export(body: bytes, pace: Pace | None = None) -> list[SpanRecord]:
    """The spans of an OTLP JSON `ExportTraceServiceRequest`, at most `MAX_SPANS` of them (with
    `pace`, read in slices: see `pace.py`)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise OtlpJsonError(f"the body is not JSON: {str(error)[:200]}") from None
    if not isinstance(document, dict):
        raise OtlpJsonError("an OTLP JSON trace export is a JSON object with resourceSpans")
    return paced(_spans(document), pace)


def _spans(document: dict[str, Any]) -> Iterator[SpanRecord]:
    count = 0
    for resource_spans in _messages(document, "resourceSpans"):
        service = "unknown_service"
        resource = _message(resource_spans, "resource")
        for pair in _messages(resource, "attributes"):
            if _string(pair, "key") == _SERVICE_NAME:
                value = _message(pair, "value")
                if value.get("stringValue") is not None:
                    service = _string(value, "stringValue")
        for scope_spans in _messages(resource_spans, "scopeSpans"):
            for span in _messages(scope_spans, "spans"):
                count += 1
                if count > MAX_SPANS:
                    raise OtlpJsonError(f"one export may carry at most {MAX_SPANS} spans")
                yield _record(span, service)


def _record(span: dict[str, Any], service: str) -> SpanRecord:
    trace_id, span_id = _id(span, "traceId"), _id(span, "spanId")
    if len(trace_id) != 32 or len(span_id) != 16:
        raise OtlpJsonError("every span needs a 16-byte traceId and an 8-byte spanId")
    parent = _id(span, "parentSpanId")
    if parent and len(parent) != 16:
        raise OtlpJsonError("a parentSpanId is 8 bytes")
    kind = _enum(span, "kind", _KIND_NAMES)
    status = _message(span, "status")
    code = _enum(status, "code", _STATUS_NAMES)
    start, end = _integer(span, "startTimeUnixNano", 0, 2**64), _integer(span, "endTimeUnixNano", 0, 2**64)
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=_string(span, "name")[:1024],
        kind=KINDS[kind] if 0 <= kind < len(KINDS) else "UNSPECIFIED",
        service=service[:256],
        start_ns=start,
        end_ns=max(start, end),
        attributes=_attributes(span),
        status_code=STATUS_CODES[code] if 0 <= code < len(STATUS_CODES) else "UNSET",
        status_message=_string(status, "message")[:4096],
        events=[
            {
                "name": _string(event, "name"),
                "timeUnixNano": str(_integer(event, "timeUnixNano", 0, 2**64)),
                "attributes": _attributes(event),
            }
            for event in _messages(span, "events")
        ],
    )


def _attributes(holder: dict[str, Any], field: str = "attributes") -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for pair in _messages(holder, field):
        key, value = pair.get("key"), pair.get("value")
        # The usual pair, a text key and a text value alone, read inline: one span has several.
        if type(key) is str and type(value) is dict and len(value) == 1:
            text = value.get("stringValue")
            if type(text) is str:
                attributes[key] = text
                continue
        attributes[_string(pair, "key")] = _value(_message(pair, "value"))
    return attributes


def _value(value: dict[str, Any]) -> Any:
    # One of AnyValue's fields; the first one present wins (a valid export has one at most).
    for name, item in value.items():
        if item is None:
            continue
        if name == "stringValue":
            return _string(value, name)
        if name == "boolValue":
            if not isinstance(item, bool):
                raise OtlpJsonError(f"boolValue {str(item)[:40]!r} is not true or false")
            return item
        if name == "intValue":
            return _integer(value, name, -(2**63), 2**63)
        if name == "doubleValue":
            return _double(item)
        if name == "arrayValue":
            return [_value(entry) for entry in _messages(_message(value, name), "values")]
        if name == "kvlistValue":
            return _attributes(_message(value, name), "values")
        if name == "bytesValue":
            try:
                return base64.b64encode(base64.b64decode(_string(value, name), validate=True)).decode()
            except binascii.Error:
                raise OtlpJsonError("bytesValue is not base64") from None
    return None


def _message(holder: dict[str, Any], field: str) -> dict[str, Any]:
    item = holder.get(field)
    if item is None:
        return {}
    if not isinstance(item, dict):
        raise OtlpJsonError(f"{field} must be an object")
    return item


def _messages(holder: dict[str, Any], field: str) -> Iterator[dict[str, Any]]:
    items = holder.get(field)
    if items is None:
        return
    if not isinstance(items, list):
        raise OtlpJsonError(f"{field} must be a list")
    for item in items:
        if not isinstance(item, dict):
            raise OtlpJsonError(f"each of {field} must be an object")
        yield item


def _string(holder: dict[str, Any], field: str) -> str:
    item = holder.get(field)
    if item is None:
        return ""
    if not isinstance(item, str):
        raise OtlpJsonError(f"{field} must be a string")
    return item


def _id(holder: dict[str, Any], field: str) -> str:
    text = holder.get(field)
    if not text:
        return _string(holder, field)  # absent or empty; or a falsy non-string, refused there
    if type(text) is not str:
        raise OtlpJsonError(f"{field} must be a string")
    try:
        return bytes.fromhex(text).hex()
    except ValueError:
        raise OtlpJsonError(f"span {field} {text[:40]!r} is not hex") from None


def _integer(holder: dict[str, Any], field: str, low: int, high: int) -> int:
    item = holder.get(field)
    if item is None:
        return 0
    if isinstance(item, bool):
        raise OtlpJsonError(f"{field} must be a number, not {item}")
    if isinstance(item, float) and item.is_integer():
        item = int(item)
    elif isinstance(item, str):
        text = item
        try:
            item = int(text)
        except ValueError:
            raise OtlpJsonError(f"{field} {text[:40]!r} is not an integer") from None
    if not isinstance(item, int) or not low <= item < high:
        raise OtlpJsonError(f"{field} must be an integer from {low} to {high - 1}")
    return item


def _double(item: Any) -> float:
    if isinstance(item, bool):
        raise OtlpJsonError("doubleValue must be a number")
    if isinstance(item, (int, float)):
        return float(item)
    if isinstance(item, str):
        if item in _DOUBLE_WORDS:
            return _DOUBLE_WORDS[item]
        try:
            return float(item)
        except ValueError:
            pass
    raise OtlpJsonError("doubleValue must be a number")


def _enum(holder: dict[str, Any], field: str, names: dict[str, int]) -> int:
    item = holder.get(field)
    if item is None:
        return 0
    if isinstance(item, str):
        if item not in names:
            raise OtlpJsonError(f"{field} {item[:40]!r} is not one of {', '.join(names)}")
        return names[item]
    return _integer(holder, field, -(2**31), 2**31)


__all__ = ["MAX_SPANS", "OtlpJsonError", "read_json_export"]
