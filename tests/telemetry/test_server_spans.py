"""The server's span per operation: attributes, the caller's traceparent honoured, and the worker
given the server span's own traceparent; `--tracing off` removes it all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from bedrock_agentcore.runtime import AgentCoreRuntimeClient
from open_agentcore.telemetry.worker_environment import WORKER_EXPORT_BATCH
from tests.conftest import wait_until
from tests.server.conftest import KEY_ID, SECRET, Server
from tests.server.test_websocket import _UPGRADE
from tests.telemetry.conftest import trace, traced_server, traces, wait_for_spans

# Echoes the trace context it was called with, and whether OTEL_* reached it.
AGENT = """
import os
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload, context):
    headers = context.request.headers
    return {"traceparent": headers.get("traceparent"), "tracestate": headers.get("tracestate"),
            "endpoint": os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
            "headers": os.environ.get("OTEL_EXPORTER_OTLP_HEADERS"),
            "service": os.environ.get("OTEL_SERVICE_NAME"),
            "batch": os.environ.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")}
"""

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"


def invoke(server: Server, arn: str, session: str, **headers: str) -> dict[str, Any]:
    def add_headers(request: Any, **kwargs: Any) -> None:
        for name, value in headers.items():
            request.headers[name] = value

    server.data.meta.events.register("before-sign.bedrock-agentcore.InvokeAgentRuntime", add_headers)
    try:
        reply = server.data.invoke_agent_runtime(agentRuntimeArn=arn, payload=b"{}", runtimeSessionId=session)
    finally:
        server.data.meta.events.unregister("before-sign.bedrock-agentcore.InvokeAgentRuntime", add_headers)
    answer: dict[str, Any] = json.loads(reply["response"].read())
    return answer


def test_invocation_span_names_runtime_session_caller_and_outcome(server: Server) -> None:
    created = server.deploy({"agent.py": AGENT}, "traced")
    runtime_id, session = created["agentRuntimeId"], "s" * 40
    answer = invoke(server, created["agentRuntimeArn"], session)
    trace_id = answer["traceparent"].split("-")[1]

    spans = wait_for_spans(
        server, trace_id, lambda spans: any(s["name"] == "InvokeAgentRuntime" for s in spans)
    )
    root = next(s for s in spans if s["name"] == "InvokeAgentRuntime")
    attributes = root["attributes"]
    assert root["kind"] == "SERVER" and root["service"] == "open-agentcore"
    assert attributes["agentcore.runtime.id"] == runtime_id
    assert attributes["agentcore.session.id"] == session
    assert attributes["agentcore.runtime.version"] == 1
    assert attributes["agentcore.endpoint"] == "DEFAULT"
    assert attributes["agentcore.session.start"] == "cold"
    assert attributes["agentcore.caller"] == "admin"
    assert attributes["http.response.status_code"] == 200
    assert attributes["http.request.body.size"] == 2
    assert attributes["http.response.body.size"] > 0
    assert root["status"]["code"] == "UNSET"
    # The worker was handed the server span's context, not the caller's.
    assert answer["traceparent"].split("-")[2] == root["spanId"]

    listed = wait_until(
        lambda: [t for t in traces(server, f"?runtime={runtime_id}") if t["traceId"] == trace_id]
    )
    assert listed[0]["rootName"] == "InvokeAgentRuntime"
    assert (listed[0]["runtimeId"], listed[0]["sessionId"], listed[0]["status"]) == (
        runtime_id,
        session,
        "OK",
    )
    assert int(listed[0]["durationNanos"]) > 0 and int(listed[0]["startTimeUnixNano"]) > 0

    # A second call of the session is neither a cold nor a warm start.
    second = invoke(server, created["agentRuntimeArn"], session)["traceparent"].split("-")[1]
    again = wait_for_spans(
        server, second, lambda spans: any(s["name"] == "InvokeAgentRuntime" for s in spans)
    )
    assert (
        "agentcore.session.start"
        not in next(s for s in again if s["name"] == "InvokeAgentRuntime")["attributes"]
    )


def test_client_traceparent_is_the_parent_of_the_server_span(server: Server) -> None:
    created = server.deploy({"agent.py": AGENT}, "parented")
    answer = invoke(
        server, created["agentRuntimeArn"], "p" * 40,
        traceparent=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01", tracestate="vendor=value",
    )  # fmt: skip
    _, trace_id, parent, flags = answer["traceparent"].split("-")
    assert (trace_id, flags) == (CLIENT_TRACE, "01") and parent != CLIENT_SPAN
    assert answer["tracestate"] == "vendor=value"
    spans = wait_for_spans(server, CLIENT_TRACE, lambda spans: any(s["spanId"] == parent for s in spans))
    server_span = next(s for s in spans if s["spanId"] == parent)
    assert server_span["parentSpanId"] == CLIENT_SPAN
    # The client's span is not kept here, so the server's span is the trace's root in the listing.
    listed = wait_until(lambda: [t for t in traces(server) if t["traceId"] == CLIENT_TRACE])
    assert listed[0]["rootName"] == "InvokeAgentRuntime"


def test_workers_get_the_otlp_environment(server: Server) -> None:
    created = server.deploy({"agent.py": AGENT}, "environ")
    answer = invoke(server, created["agentRuntimeArn"], "e" * 40)
    assert answer["endpoint"] == server.url
    assert answer["headers"].startswith("authorization=Bearer%20oac-span.")
    assert answer["service"] == created["agentRuntimeId"]
    assert answer["batch"] == str(WORKER_EXPORT_BATCH)


def test_a_runtimes_own_otel_variables_win_over_the_servers(server: Server) -> None:
    created = server.deploy(
        {"agent.py": AGENT}, "own_batch", environmentVariables={"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "512"}
    )
    answer = invoke(server, created["agentRuntimeArn"], "b" * 40)
    assert answer["batch"] == "512"
    assert answer["headers"].startswith("authorization=Bearer%20oac-span.")


def test_failed_operations_are_error_spans(server: Server) -> None:
    reply = server.signed("GET", "/runtimes/missing-0123456789/")
    assert reply.status_code == 404

    def failed() -> list[dict[str, Any]]:
        return [t for t in traces(server) if t["rootName"] == "GetAgentRuntime" and t["status"] == "ERROR"]

    listed = wait_until(failed, timeout=30)
    span = trace(server, listed[0]["traceId"])["spans"][0]
    assert span["attributes"]["http.response.status_code"] == 404
    assert span["attributes"]["agentcore.runtime.id"] == "missing-0123456789"


def test_tracing_off_passes_the_caller_context_through_and_keeps_nothing(short_data_dir: Path) -> None:
    with traced_server(short_data_dir, tracing=False) as server:
        created = server.deploy({"agent.py": AGENT}, "untraced")
        answer = invoke(
            server, created["agentRuntimeArn"], "o" * 40, traceparent=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
        )
        assert answer["traceparent"] == f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
        assert answer["endpoint"] is None and answer["headers"] is None and answer["batch"] is None
        listing = server.signed("GET", "/_agentcore/traces")
        assert listing.status_code == 404
        assert "--tracing off" in listing.json()["message"]


WEBSOCKET_AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.websocket
async def talk(websocket, context):
    await websocket.accept()
    await websocket.receive_text()
    await websocket.send_text(websocket.headers.get("traceparent") or "none")
    await websocket.close()
"""


def test_websockets_carry_the_server_spans_context_to_the_worker(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # AWS itself cannot exist here: the admin key of the local server stands in for IAM credentials.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    arn = server.deploy({"agent.py": WEBSOCKET_AGENT}, "wstraced")["agentRuntimeArn"]
    client = AgentCoreRuntimeClient(region="us-east-1", endpoint_url=server.url)
    url, headers = client.generate_ws_connection(arn, session_id="w" * 40)
    kept = {name: value for name, value in headers.items() if name.lower() not in _UPGRADE}
    kept["traceparent"] = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    with connect(url, additional_headers=kept, open_timeout=60) as websocket:
        websocket.send("hello")
        seen = websocket.recv(timeout=30)
    _, trace_id, parent, _ = str(seen).split("-")
    assert trace_id == CLIENT_TRACE
    spans = wait_for_spans(server, CLIENT_TRACE, lambda spans: any(s["spanId"] == parent for s in spans))
    span = next(s for s in spans if s["spanId"] == parent)
    assert (span["name"], span["parentSpanId"]) == ("InvokeAgentRuntimeWithWebSocketStream", CLIENT_SPAN)
    assert span["attributes"]["agentcore.session.id"] == "w" * 40


def test_an_unsampled_caller_is_not_recorded_and_the_worker_is_told(server: Server) -> None:
    created = server.deploy({"agent.py": AGENT}, "unsampled")
    answer = invoke(
        server, created["agentRuntimeArn"], "u" * 40, traceparent=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"
    )
    _, trace_id, parent, flags = answer["traceparent"].split("-")
    assert trace_id == CLIENT_TRACE and not int(flags, 16) & 1 and parent != CLIENT_SPAN
    # A sampled call after it is recorded, so the store is being written: the unsampled one never is.
    sampled = invoke(server, created["agentRuntimeArn"], "u" * 40)["traceparent"].split("-")[1]
    wait_for_spans(server, sampled, bool)
    assert server.signed("GET", f"/_agentcore/traces/{CLIENT_TRACE}").status_code == 404


def test_a_malformed_traceparent_starts_a_new_trace(server: Server) -> None:
    created = server.deploy({"agent.py": AGENT}, "malformed")
    for bad in ("garbage", f"00-{'0' * 32}-{CLIENT_SPAN}-01", f"ff-{CLIENT_TRACE}-{CLIENT_SPAN}-01"):
        answer = invoke(server, created["agentRuntimeArn"], "m" * 40, traceparent=bad)
        _, trace_id, _, flags = answer["traceparent"].split("-")
        assert trace_id not in (CLIENT_TRACE, "0" * 32) and int(flags, 16) & 1, bad  # a new, sampled trace


def test_a_spans_attributes_are_made_on_the_sinks_thread_not_the_requests() -> None:
    import threading

    from open_agentcore.auth import Caller, Scheme
    from open_agentcore.server.request_metrics import Exchange
    from open_agentcore.server.tracing import SESSION_STATE, OperationTracer
    from open_agentcore.telemetry import ServerTracer, SpanSink, TracingConfig, server_span_record

    sink = SpanSink(TracingConfig())  # not started: the test takes the queued span itself
    tracer = OperationTracer(ServerTracer(sink))
    caller = Caller(principal="arn:aws:iam::123456789012:user/alice", scheme=Scheme.SIGV4)
    traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01".encode()
    scope: dict[str, Any] = {
        "method": "POST",
        "headers": [(b"content-length", b"17"), (b"traceparent", traceparent)],
        "state": {SESSION_STATE: "session-1", "caller": caller},
    }
    span = tracer.begin("InvokeAgentRuntime", scope)
    assert scope["headers"] == [(b"content-length", b"17"), (b"traceparent", span.traceparent())]
    exchange = Exchange(0.0)
    exchange.status, exchange.body_bytes = 503, 42
    tracer.end(span, scope, "hello-0123456789", exchange)
    assert span.attributes == {} and span.status_code == "UNSET"  # nothing done on the request's path
    assert list(sink._pending) == [span]

    records = []
    thread = threading.Thread(target=lambda: records.append(server_span_record(span)))
    thread.start()
    thread.join(10)
    [record] = records
    assert record.attributes == {
        "http.request.method": "POST",
        "agentcore.runtime.id": "hello-0123456789",
        "agentcore.session.id": "session-1",
        "agentcore.caller": "arn:aws:iam::123456789012:user/alice",
        "http.request.body.size": 17,
        "http.response.status_code": 503,
        "http.response.body.size": 42,
    }
    assert (record.status_code, record.status_message) == ("ERROR", "HTTP 503")
    assert (record.runtime_id, record.session_id) == ("hello-0123456789", "session-1")
    assert (record.trace_id, record.parent_span_id) == (CLIENT_TRACE, CLIENT_SPAN)
