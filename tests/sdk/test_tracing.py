"""The SDK's invocation span: parented by the caller's traceparent, current for the handler, exported
where OTEL_* says; and with OpenTelemetry not importable, no spans and no OpenTelemetry import at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

from tests.conftest import REPO, wait_until
from tests.telemetry.conftest import Collector, collector  # noqa: F401 - the fixture

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

APP = """
from starlette.testclient import TestClient
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    {handler}
    return {{"ok": True}}


with TestClient(app) as client:
    reply = client.post("/invocations", json={{}}, headers={{"traceparent": "{traceparent}"}})
    assert reply.status_code == 200 and reply.json() == {{"ok": True}}, reply.text
"""


def run(script: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=60,
        cwd=REPO, env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_without_opentelemetry_the_sdk_serves_and_imports_none_of_it() -> None:
    hidden = """
    import sys

    class Hide:
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ModuleNotFoundError(name)
            return None

    sys.meta_path.insert(0, Hide())
    """
    app = APP.format(handler="pass", traceparent=TRACEPARENT)
    check = """
    from bedrock_agentcore.runtime import tracing
    assert tracing.TRACING is None
    print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))
    """
    script = textwrap.dedent(hidden) + app + textwrap.dedent(check)
    out = run(script, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert out.strip() == "[]"


def test_invocation_span_is_the_callers_child_and_the_handlers_parent() -> None:
    setup = """
    import json
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)  # the agent's own provider: the SDK must use it, not replace it
    """
    handler = 'trace.get_tracer("agent").start_span("handler-work").end()'
    report = """
    spans = {s.name: s for s in memory.get_finished_spans()}
    print(json.dumps({name: [f"{s.context.span_id:016x}", f"{s.parent.span_id:016x}" if s.parent else None,
                             f"{s.context.trace_id:032x}", s.kind.name] for name, s in spans.items()}))
    """
    out = run(
        textwrap.dedent(setup)
        + APP.format(handler=handler, traceparent=TRACEPARENT)
        + textwrap.dedent(report),
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},  # set, but the agent configured its own
    )
    spans = json.loads(out)
    invocation, work = spans["agentcore.invocation"], spans["handler-work"]
    assert invocation[1:] == ["b7ad6b7169203331", "0af7651916cd43dd8448eb211c80319c", "SERVER"]
    assert work[1] == invocation[0] and work[2] == invocation[2]


def test_the_otel_environment_exports_invocation_spans(collector: Collector) -> None:  # noqa: F811
    report = """
    from opentelemetry import trace
    trace.get_tracer_provider().force_flush()
    """
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20secret-token",
        "OTEL_SERVICE_NAME": "my-agent",
    }
    run(APP.format(handler="pass", traceparent=TRACEPARENT) + textwrap.dedent(report), env)
    posts = wait_until(lambda: list(collector.posts))
    path, headers, body = posts[0]
    assert path == "/v1/traces" and headers["authorization"] == "Bearer secret-token"
    document = json.loads(body) if headers["content-type"] == "application/json" else None
    assert document is not None
    resource = document["resourceSpans"][0]
    assert {"key": "service.name", "value": {"stringValue": "my-agent"}} in resource["resource"]["attributes"]
    span = resource["scopeSpans"][0]["spans"][0]
    assert (span["name"], span["traceId"], span["parentSpanId"]) == (
        "agentcore.invocation",
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
    )


def test_preloading_imports_the_exporter_but_installs_nothing_and_starts_no_thread() -> None:
    # A fork server preloads before it forks: a thread there would not survive into its children,
    # and a provider would export every session's spans with the fork server's settings.
    script = textwrap.dedent(
        """
        import os, sys, threading
        from bedrock_agentcore import BedrockAgentCoreApp
        from opentelemetry import trace
        from open_agentcore.backends import worker_main
        worker_main.preload_tracing()
        print(
            "opentelemetry.sdk.trace" in sys.modules,
            any(name in sys.modules for name in (  # the exporter, whichever is installed
                "opentelemetry.exporter.otlp.proto.http.trace_exporter", "bedrock_agentcore.runtime.otlp_json"
            )),
            isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider),
            threading.active_count(), len(os.listdir("/proc/self/task")),
        )
        """
    )
    environment = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=environment, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "True", "1", "1"]


def test_a_worker_sets_up_its_exporter_before_the_first_call() -> None:
    # worker_main prepares tracing before serving, so no invocation pays for the SDK's import.
    script = textwrap.dedent(
        """
        import sys
        from bedrock_agentcore import BedrockAgentCoreApp
        from opentelemetry import trace
        before = isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        from open_agentcore.backends import worker_main
        worker_main._prepare_tracing()
        after = isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        print(before, after, "opentelemetry.sdk.trace" in sys.modules)
        """
    )
    environment = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=environment, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False", "True"]


RESOURCE_AFTER_FORK = """
import json, os, sys
from opentelemetry import trace
from opentelemetry.sdk import resources
from bedrock_agentcore.runtime import tracing

tracing.preload_exporter()
parent = tracing._preloaded.resource.attributes if tracing._preloaded else {}
detections = []
detect = resources.Resource.create
resources.Resource.create = lambda *args: detections.append(1) or detect(*args)

def child(environment):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.environ.update(environment)
        tracing.install_exporter(os.environ)
        attributes = dict(trace.get_tracer_provider().resource.attributes)
        os.write(write, json.dumps([attributes, len(detections)]).encode())
        os._exit(0)
    os.close(write)
    answer = json.loads(os.read(read, 65536))
    os.waitpid(pid, 0)
    return answer

same, sibling = child({}), child({})
print(json.dumps({
    "parent": dict(parent), "same": same, "sibling": sibling,
    "renamed": child({"OTEL_SERVICE_NAME": "renamed"}),
    "process": child({"OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "process"}),
}))
"""


def test_a_forked_worker_reuses_the_preloaded_resource_with_its_own_instance_id() -> None:
    # Detecting the resource runs a pool of threads: done once before forking, not in every session.
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SERVICE_NAME": "my-agent",
           "OTEL_RESOURCE_ATTRIBUTES": "agentcore.runtime.id=a-1"}  # fmt: skip
    found = json.loads(run(RESOURCE_AFTER_FORK, env))
    (same, same_detections), (sibling, _) = found["same"], found["sibling"]
    assert same_detections == 0
    assert same["service.name"] == "my-agent" and same["agentcore.runtime.id"] == "a-1"
    instance = "service.instance.id"
    if instance in found["parent"]:  # an SDK whose resource has one: each process its own
        assert len({found["parent"][instance], same[instance], sibling[instance]}) == 3


def test_a_worker_whose_resource_variables_differ_detects_its_own() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SERVICE_NAME": "my-agent"}
    found = json.loads(run(RESOURCE_AFTER_FORK, env))
    renamed, renamed_detections = found["renamed"]
    assert renamed["service.name"] == "renamed" and renamed_detections == 1
    process, process_detections = found["process"]  # a detector that describes the process itself
    assert process_detections == 1 and "process.pid" in process


STREAMING_APP = """
import json
from opentelemetry import trace
from starlette.testclient import TestClient
from bedrock_agentcore import BedrockAgentCoreApp
from bedrock_agentcore.runtime import tracing

app = BedrockAgentCoreApp()


def words(cut):
    yield "a"
    if cut:
        raise RuntimeError("stream cut")
    yield "b"


@app.entrypoint
def invoke(payload):
    if payload.get("fail"):
        raise RuntimeError("handler failed")
    with trace.get_tracer("agent").start_as_current_span("handler-work"):
        trace.get_current_span().set_attribute("step", 1)
    return words(payload.get("cut"))


def call(client, payload, fast):
    session = {{"x-amzn-bedrock-agentcore-runtime-session-id": f"session-{{fast}}"}}
    return client.post("/invocations", json=payload, headers={{"traceparent": "{traceparent}", **session}})


with TestClient(app) as client:
    for fast in (True, False):  # the fast invocation span, then the SDK's own path
        if not fast:
            tracing.TRACING._fast = None
        else:
            tracing.TRACING.prepare()
            assert tracing.TRACING._fast is not None
        stream = call(client, {{}}, fast)
        assert stream.status_code == 200 and stream.text.count("data:") == 2, stream.text
        failed = call(client, {{"fail": True}}, fast)
        assert failed.status_code == 500, failed.text
        cut = call(client, {{"cut": True}}, fast)
        assert cut.status_code == 200 and "stream cut" in cut.text, cut.text
trace.get_tracer_provider().force_flush()
"""


def test_streamed_and_failed_invocations_export_the_same_spans_on_the_fast_and_the_sdk_path(
    collector: Collector,  # noqa: F811
) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
    run(STREAMING_APP.format(traceparent=TRACEPARENT), env)
    posts = wait_until(lambda: list(collector.posts))
    spans = [
        span
        for _, _, body in posts
        for resource in json.loads(body)["resourceSpans"]
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
    ]
    assert len(spans) == 10  # per path: two streamed calls and their handler's spans, the failed call

    def described(span: dict[str, object]) -> dict[str, object]:
        kept = {k: v for k, v in span.items() if k not in ("spanId", "parentSpanId", "startTimeUnixNano",
                                                            "endTimeUnixNano", "attributes")}  # fmt: skip
        attributes = span["attributes"]
        assert isinstance(attributes, list)
        kept["attributes"] = [pair for pair in attributes if pair["key"] != "session.id"]
        return kept

    def session_of(span: dict[str, Any]) -> str:
        return str(next(p["value"]["stringValue"] for p in span["attributes"] if p["key"] == "session.id"))

    by_session: dict[str, list[dict[str, object]]] = {}
    ids = {span["spanId"]: span for span in spans}
    for span in spans:
        if span["name"] == "agentcore.invocation":
            assert span["parentSpanId"] == "b7ad6b7169203331" and span["status"]["code"] == 0
            by_session.setdefault(session_of(span), []).append(described(span))
        else:  # the handler's own span, the child of its invocation's
            parent = ids[span["parentSpanId"]]
            assert parent["name"] == "agentcore.invocation" and span["traceId"] == parent["traceId"]
            by_session.setdefault(session_of(parent), []).append(described(span))
    assert sorted(by_session) == ["session-False", "session-True"]
    key = json.dumps
    assert sorted(map(key, by_session["session-True"])) == sorted(map(key, by_session["session-False"]))


def test_a_sampler_named_by_the_environment_still_decides(collector: Collector) -> None:  # noqa: F811
    report = """
    from opentelemetry import trace
    from bedrock_agentcore.runtime import tracing
    trace.get_tracer_provider().force_flush()
    print(tracing.TRACING._fast is None)
    """
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_TRACES_SAMPLER": "always_off"}
    out = run(APP.format(handler="pass", traceparent=TRACEPARENT) + textwrap.dedent(report), env)
    assert out.split()[-1] == "True"  # the SDK's own path, which asks the sampler
    assert list(collector.posts) == []  # flushed: nothing was sampled, so nothing was sent
