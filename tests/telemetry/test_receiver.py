"""`POST /v1/traces`: OTLP/HTTP in protobuf and JSON, gzip, typed refusals for garbage, and a
worker's span credential that may post its own session's spans and do nothing else."""

from __future__ import annotations

import gzip
import json
import os
import secrets
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.conftest import wait_until
from tests.server.conftest import Server
from tests.telemetry.conftest import post_spans, traces, wait_for_spans

AGENT = """
import os
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    return {"headers": os.environ.get("OTEL_EXPORTER_OTLP_HEADERS")}
"""


def json_export(trace_id: str, span_id: str, name: str = "agent-step", **resource: str) -> bytes:
    attributes = [{"key": "service.name", "value": {"stringValue": "my-agent"}}]
    attributes += [{"key": k, "value": {"stringValue": v}} for k, v in resource.items()]
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": attributes},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": [{
            "traceId": trace_id, "spanId": span_id, "name": name, "kind": 3,
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000500000000",
            "attributes": [{"key": "gen_ai.system", "value": {"stringValue": "scripted"}},
                           {"key": "tokens", "value": {"intValue": "42"}},
                           {"key": "agentcore.session.id", "value": {"stringValue": "someone-else"}}],
            "status": {"code": 2, "message": "the tool failed"},
            "events": [{"name": "retry", "timeUnixNano": "1700000000100000000", "attributes": []}],
        }]}],
    }]}).encode()  # fmt: skip


def protobuf_export(trace_id: str, span_id: str, parent: str = "") -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(string_value="pb-agent"))
    )
    span = resource_spans.scope_spans.add().spans.add()
    span.trace_id, span.span_id = bytes.fromhex(trace_id), bytes.fromhex(span_id)
    span.parent_span_id = bytes.fromhex(parent) if parent else b""
    span.name, span.kind = "pb-step", 1
    span.start_time_unix_nano, span.end_time_unix_nano = 1_700_000_000_000_000_000, 1_700_000_001_000_000_000
    span.attributes.append(KeyValue(key="flag", value=AnyValue(bool_value=True)))
    return request.SerializeToString()


def ids() -> tuple[str, str]:
    return secrets.token_hex(16), secrets.token_hex(8)


def worker_credential(server: Server, name: str, session: str) -> tuple[dict[str, Any], str]:
    created = server.deploy({"agent.py": AGENT}, name)
    reply = server.data.invoke_agent_runtime(
        agentRuntimeArn=created["agentRuntimeArn"], payload=b"{}", runtimeSessionId=session
    )
    header = json.loads(reply["response"].read())["headers"]
    name_, _, value = header.partition("=")
    assert name_ == "authorization"
    return created, unquote(value)


def test_json_export_is_kept_with_its_attributes_status_and_events(server: Server) -> None:
    trace_id, span_id = ids()
    reply = post_spans(server, json_export(trace_id, span_id), "application/json")
    assert reply.status_code == 200, reply.text
    assert reply.json() == {}
    span = wait_for_spans(server, trace_id, bool)[0]
    assert (span["spanId"], span["name"], span["kind"], span["service"]) == (
        span_id,
        "agent-step",
        "CLIENT",
        "my-agent",
    )
    assert span["attributes"]["gen_ai.system"] == "scripted" and span["attributes"]["tokens"] == 42
    # A SigV4 sender is trusted with its spans, not with naming a session.
    assert "agentcore.session.id" not in span["attributes"]
    assert span["status"] == {"code": "ERROR", "message": "the tool failed"}
    assert (span["startTimeUnixNano"], span["endTimeUnixNano"]) == (
        "1700000000000000000",
        "1700000000500000000",
    )
    assert span["events"][0]["name"] == "retry"


def test_protobuf_export_is_answered_in_protobuf(server: Server) -> None:
    trace_id, span_id = ids()
    reply = post_spans(server, protobuf_export(trace_id, span_id), "application/x-protobuf")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/x-protobuf"
    ExportTraceServiceResponse().ParseFromString(reply.content)
    span = wait_for_spans(server, trace_id, bool)[0]
    assert (span["name"], span["kind"], span["service"], span["attributes"]) == (
        "pb-step",
        "INTERNAL",
        "pb-agent",
        {"flag": True},
    )


def test_gzip_bodies_are_accepted(server: Server) -> None:
    trace_id, span_id = ids()
    body = gzip.compress(protobuf_export(trace_id, span_id))
    reply = post_spans(server, body, "application/x-protobuf", **{"content-encoding": "gzip"})
    assert reply.status_code == 200, reply.text
    assert wait_for_spans(server, trace_id, bool)[0]["spanId"] == span_id


GARBAGE = {
    "protobuf that is not protobuf": (b"\xff\xff\xff\xff", "application/x-protobuf", {}),
    "JSON that is not JSON": (b"{nope", "application/json", {}),
    "JSON that is a list": (b"[1, 2]", "application/json", {}),
    "JSON with a wrongly typed field": (b'{"resourceSpans": [{"scopeSpans": 7}]}', "application/json", {}),
    "a trace id that is not hex": (json_export("zz" * 16, "ab" * 8), "application/json", {}),
    "a trace id of the wrong length": (json_export("ab" * 4, "ab" * 8), "application/json", {}),
    "another content type": (b"hello", "text/plain", {}),
    "corrupt gzip": (b"\x1f\x8bnot gzip", "application/json", {"content-encoding": "gzip"}),
    "an unknown encoding": (b"{}", "application/json", {"content-encoding": "br"}),
}


@pytest.mark.parametrize("case", GARBAGE)
def test_garbage_is_a_typed_400(server: Server, case: str) -> None:
    body, content_type, headers = GARBAGE[case]
    reply = post_spans(server, body, content_type, **headers)
    assert reply.status_code == 400, reply.text
    assert reply.headers["x-amzn-errortype"] == "ValidationException"
    assert reply.json()["message"]


def test_a_gzip_bomb_is_refused(server: Server) -> None:
    bomb = gzip.compress(b"\0" * (40 * 1024 * 1024))
    reply = post_spans(server, bomb, "application/x-protobuf", **{"content-encoding": "gzip"})
    assert reply.status_code == 400
    assert "unpacks past" in reply.json()["message"]


def test_a_body_past_the_limit_is_refused(server: Server) -> None:
    reply = post_spans(server, os.urandom(9 * 1024 * 1024), "application/x-protobuf")
    assert reply.status_code == 413


def test_unauthenticated_and_forged_credentials_are_refused(server: Server) -> None:
    trace_id, span_id = ids()
    body = json_export(trace_id, span_id)
    bare = httpx.post(server.url + "/v1/traces", content=body, headers={"content-type": "application/json"})
    assert bare.status_code == 401 and bare.headers["x-amzn-errortype"] == "UnauthorizedException"
    for token in ("Bearer oac-span.d3h4eXovcnQtMDEyMzQ1Njc4OQ.AAAA", "Bearer not-a-credential"):
        forged = post_spans(server, body, "application/json", authorization=token)
        assert forged.status_code == 401, token
    assert post_spans(server, body, "application/json", authorization="Basic abc").status_code == 400


def test_a_worker_credential_posts_as_its_own_session_only(server: Server) -> None:
    created, authorization = worker_credential(server, "poster", "mine-" + "m" * 30)
    runtime_id = created["agentRuntimeId"]
    trace_id, span_id = ids()
    # It claims another runtime and session in its resource and span attributes: the server stamps its own.
    body = json_export(
        trace_id, span_id, **{"agentcore.runtime.id": "other-0123456789", "agentcore.session.id": "x"}
    )
    reply = post_spans(server, body, "application/json", authorization=authorization)
    assert reply.status_code == 200, reply.text
    span = wait_for_spans(server, trace_id, bool)[0]
    assert span["attributes"]["agentcore.runtime.id"] == runtime_id
    assert span["attributes"]["agentcore.session.id"] == "mine-" + "m" * 30
    listed = wait_until(
        lambda: [t for t in traces(server, f"?runtime={runtime_id}") if t["traceId"] == trace_id]
    )
    assert listed[0]["sessionId"] == "mine-" + "m" * 30

    # It reads nothing, and calls nothing else.
    for method, path in (("GET", "/_agentcore/traces"), ("GET", f"/_agentcore/traces/{trace_id}"),
                         ("POST", "/runtimes/"), ("GET", f"/runtimes/{runtime_id}/")):  # fmt: skip
        refused = httpx.request(method, server.url + path, headers={"authorization": authorization})
        assert refused.status_code in (401, 403), (path, refused.status_code)


def test_a_worker_credential_dies_with_its_session(server: Server) -> None:
    created, authorization = worker_credential(server, "ender", "gone-" + "g" * 30)
    server.data.stop_runtime_session(
        agentRuntimeArn=created["agentRuntimeArn"], runtimeSessionId="gone-" + "g" * 30
    )
    trace_id, span_id = ids()

    def refused() -> bool:
        return (
            post_spans(
                server, json_export(trace_id, span_id), "application/json", authorization=authorization
            ).status_code
            == 401
        )

    assert wait_until(refused)


def test_unknown_trace_is_not_found_and_bad_ids_are_invalid(server: Server) -> None:
    assert server.signed("GET", f"/_agentcore/traces/{'ab' * 16}").status_code == 404
    bad = server.signed("GET", "/_agentcore/traces/not-a-trace")
    assert bad.status_code == 400 and bad.headers["x-amzn-errortype"] == "ValidationException"
    for query in ("?limit=0", "?limit=abc", "?limit=101", "?runtime=not_a_runtime_id", "?nextToken=forged"):
        reply = server.signed("GET", f"/_agentcore/traces{query}")
        assert reply.status_code == 400, (query, reply.text)
