"""OTLP JSON trace exports read straight into span records: the same records protobuf's own JSON
mapping gives for every valid export, and a typed error for what is not one."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from google.protobuf.json_format import ParseDict
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from open_agentcore.telemetry.otlp import JSON, PROTOBUF, OtlpError, decode
from open_agentcore.telemetry.otlp_json import MAX_SPANS

texts = st.text(max_size=12)
integers = st.integers(min_value=-(2**63), max_value=2**63 - 1)
times = st.integers(min_value=0, max_value=2**64 - 1)
scalars = st.one_of(
    st.builds(lambda v: {"stringValue": v}, texts),
    st.builds(lambda v: {"boolValue": v}, st.booleans()),
    st.builds(lambda v: {"intValue": v}, st.one_of(integers.map(str), st.integers(-(2**53), 2**53))),
    st.builds(lambda v: {"doubleValue": v}, st.floats(allow_nan=False, allow_infinity=False)),
    st.builds(lambda v: {"bytesValue": base64.b64encode(v).decode()}, st.binary(max_size=8)),
    st.just({}),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.builds(lambda items: {"arrayValue": {"values": items}}, st.lists(inner, max_size=3)),
        st.builds(
            lambda pairs: {"kvlistValue": {"values": [{"key": k, "value": v} for k, v in pairs]}},
            st.lists(st.tuples(texts, inner), max_size=3),
        ),
    ),
    max_leaves=6,
)
attributes = st.lists(st.builds(lambda k, v: {"key": k, "value": v}, texts, values), max_size=4)
hex_ids = st.binary(min_size=8, max_size=8).map(bytes.hex)
spans = st.fixed_dictionaries(
    {
        "traceId": st.binary(min_size=16, max_size=16).map(bytes.hex),
        "spanId": hex_ids,
        "name": texts,
        "kind": st.one_of(st.integers(0, 7), st.sampled_from(["SPAN_KIND_SERVER", "SPAN_KIND_CLIENT"])),
        "startTimeUnixNano": st.one_of(times.map(str), st.integers(0, 2**53)),
        "endTimeUnixNano": times.map(str),
        "attributes": attributes,
        "status": st.fixed_dictionaries(
            {"code": st.one_of(st.integers(0, 3), st.just("STATUS_CODE_ERROR")), "message": texts}
        ),
        "events": st.lists(
            st.fixed_dictionaries({"name": texts, "timeUnixNano": times.map(str), "attributes": attributes}),
            max_size=2,
        ),
    },
    optional={"parentSpanId": hex_ids},
)
exports = st.lists(
    st.fixed_dictionaries(
        {
            "resource": st.fixed_dictionaries({"attributes": attributes}),
            "scopeSpans": st.lists(st.fixed_dictionaries({"spans": st.lists(spans, max_size=3)}), max_size=2),
        }
    ),
    max_size=2,
).map(lambda resources: {"resourceSpans": resources})


def _through_protobuf(document: dict[str, Any]) -> bytes:
    """The same export as protobuf, by protobuf's own JSON mapping (which wants ids in base64)."""
    copy = json.loads(json.dumps(document))
    for resource in copy["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for name in ("traceId", "spanId", "parentSpanId"):
                    if name in span:
                        span[name] = base64.b64encode(bytes.fromhex(span[name])).decode()
    return ParseDict(copy, ExportTraceServiceRequest()).SerializeToString()


@settings(max_examples=150, deadline=None)
@given(exports)
def test_every_valid_export_reads_as_protobufs_json_mapping_reads_it(document: dict[str, Any]) -> None:
    expected = decode(_through_protobuf(document), PROTOBUF)
    assert decode(json.dumps(document).encode(), JSON) == expected


def _one_span(**fields: Any) -> bytes:
    span = {"traceId": "ab" * 16, "spanId": "cd" * 8, **fields}
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


@pytest.mark.parametrize(
    "body",
    [
        _one_span(attributes=[{"key": "n", "value": {"intValue": True}}]),
        _one_span(attributes=[{"key": "n", "value": {"intValue": "12x"}}]),
        _one_span(attributes=[{"key": "n", "value": {"intValue": str(2**63)}}]),
        _one_span(attributes=[{"key": "b", "value": {"boolValue": "true"}}]),
        _one_span(attributes=[{"key": "d", "value": {"doubleValue": "many"}}]),
        _one_span(attributes=[{"key": "x", "value": {"bytesValue": "not base64!"}}]),
        _one_span(attributes={"key": "a"}),
        _one_span(kind="SPAN_KIND_SIDEWAYS"),
        _one_span(startTimeUnixNano="-1"),
        _one_span(name=7),
        _one_span(parentSpanId="ab"),
        _one_span(status=[]),
        json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [7]}]}]}).encode(),
    ],
)
def test_what_is_not_an_export_is_a_typed_error(body: bytes) -> None:
    with pytest.raises(OtlpError):
        decode(body, JSON)


def test_an_export_past_the_span_limit_is_refused() -> None:
    span = {"traceId": "ab" * 16, "spanId": "cd" * 8}
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span] * (MAX_SPANS + 1)}]}]})
    with pytest.raises(OtlpError, match="at most"):
        decode(body.encode(), JSON)


def test_unknown_fields_and_nulls_are_ignored() -> None:
    body = _one_span(links=[{"whatever": 1}], droppedAttributesCount=None, status=None, futureField={"a": 1})
    (record,) = decode(body, JSON)
    assert (record.trace_id, record.status_code, record.attributes) == ("ab" * 16, "UNSET", {})
