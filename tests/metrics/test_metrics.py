"""`/metrics` after known traffic: a real server, real workers, boto3, and the Prometheus client's
own parsers reading what the server exposed, both on the SigV4 route and on `--metrics-port`.

The module's server sees, in this order: two runtimes built; N successful calls on A in one
session that takes the warm worker; B deployed while A's session fills the server (so B gets no
warm worker); A's session stopped; M failing calls on B in one session, started cold; one call
with a bad signature. Tests that add refusals of their own never add a bad signature.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, wait_until
from tests.server.conftest import KEY_ID, SECRET, Server, running_server

N_SUCCESSES = 3
M_FAILURES = 2
SESSION_A = "metrics-session-a-0000000000000000000000"
SESSION_B = "metrics-session-b-0000000000000000000000"

FINE = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    return {"ok": True}
"""

FAILING = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    raise RuntimeError("this agent always fails")
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Traffic:
    server: Server
    metrics_url: str
    runtime_a: str
    runtime_b: str


def signed(
    method: str, url: str, key: tuple[str, str] = (KEY_ID, SECRET), headers: dict[str, str] | None = None
) -> httpx.Response:
    """A request signed with SigV4 as boto3 signs it (AWS itself cannot exist here: our server's keys)."""
    request = botocore.awsrequest.AWSRequest(method=method, url=url, data=b"", headers=headers or {})
    credentials = botocore.credentials.Credentials(*key)
    botocore.auth.SigV4Auth(credentials, "bedrock-agentcore", "us-east-1").add_auth(request)
    return httpx.request(method, url, headers=dict(request.headers), timeout=30)


def samples(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, parsed by the client library's parser."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def family(found: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples called `name` that counted something, by their labels (a runtime's invocation
    series exist from its first call on, every outcome at 0)."""
    return {labels: count for (sample, labels), count in found.items() if sample == name and count}


def scrape(traffic: Traffic) -> Samples:
    reply = httpx.get(traffic.metrics_url, timeout=30)
    assert reply.status_code == 200, reply.text
    return samples(reply.text)


def new_key(server: Server, name: str, actions: list[str]) -> tuple[str, str]:
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    body = json.dumps({"principal": name, "policy": policy}).encode()
    reply = server.signed("POST", "/_agentcore/access-keys", body)
    assert reply.status_code == 200, reply.text
    created = reply.json()
    return created["accessKeyId"], created["secretAccessKey"]


@pytest.fixture(scope="module")
def traffic() -> Iterator[Traffic]:
    # Short: worker sockets live under the data dir, and unix socket paths max out at 107 bytes.
    data_dir = Path(tempfile.mkdtemp(prefix="oacm-", dir="/tmp"))
    try:
        yield from _traffic(data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _traffic(data_dir: Path) -> Iterator[Traffic]:
    port = free_port()
    # One worker at most: a stopped session leaves the room empty and nothing refills the warm
    # pool, so the next new session's start is cold, whatever the timing.
    with running_server(data_dir, warm_pool=1, max_sessions=1, metrics_port=port) as server:
        traffic = Traffic(server, f"http://127.0.0.1:{port}/metrics", "", "")
        traffic.runtime_a = server.deploy({"agent.py": FINE}, "metricsA")["agentRuntimeId"]
        arn_a = server.control.get_agent_runtime(agentRuntimeId=traffic.runtime_a)["agentRuntimeArn"]
        wait_until(lambda: value(scrape(traffic), "agentcore_sessions", runtime=traffic.runtime_a,
                                 state="warm") == 1, timeout=60, interval=0.1)  # fmt: skip
        for _ in range(N_SUCCESSES):
            reply = server.data.invoke_agent_runtime(
                agentRuntimeArn=arn_a, payload=b"{}", runtimeSessionId=SESSION_A
            )
            assert json.loads(reply["response"].read()) == {"ok": True}
        traffic.runtime_b = server.deploy({"agent.py": FAILING}, "metricsB")["agentRuntimeId"]
        server.data.stop_runtime_session(agentRuntimeArn=arn_a, runtimeSessionId=SESSION_A)
        arn_b = server.control.get_agent_runtime(agentRuntimeId=traffic.runtime_b)["agentRuntimeArn"]
        for _ in range(M_FAILURES):
            with pytest.raises(botocore.exceptions.ClientError) as failed:
                server.data.invoke_agent_runtime(
                    agentRuntimeArn=arn_b, payload=b"{}", runtimeSessionId=SESSION_B
                )
            assert failed.value.response["Error"]["Code"] == "RuntimeClientError"
        forged = (KEY_ID, "not-the-secret-" + SECRET[15:])
        assert signed("GET", server.url + "/metrics", forged).status_code == 403
        yield traffic


def test_invocations_are_counted_by_runtime_and_outcome(traffic: Traffic) -> None:
    found = scrape(traffic)
    assert family(found, "agentcore_invocations_total") == {
        frozenset({("runtime", traffic.runtime_a), ("outcome", "success")}): N_SUCCESSES,
        frozenset({("runtime", traffic.runtime_b), ("outcome", "agent_error")}): M_FAILURES,
    }


@pytest.mark.parametrize(
    "histogram",
    [
        "agentcore_invocation_duration_seconds",
        "agentcore_invocation_first_byte_seconds",
        "agentcore_invocation_server_overhead_seconds",
    ],
)
def test_latency_histograms_hold_every_call_that_reached_a_worker(traffic: Traffic, histogram: str) -> None:
    found = scrape(traffic)
    for runtime_id, calls in ((traffic.runtime_a, N_SUCCESSES), (traffic.runtime_b, M_FAILURES)):
        assert value(found, f"{histogram}_count", runtime=runtime_id) == calls
        assert value(found, f"{histogram}_bucket", runtime=runtime_id, le="+Inf") == calls
        assert (value(found, f"{histogram}_sum", runtime=runtime_id) or 0) > 0


def test_server_overhead_is_a_part_of_the_time_to_first_byte(traffic: Traffic) -> None:
    found = scrape(traffic)
    for runtime_id in (traffic.runtime_a, traffic.runtime_b):
        overhead = value(found, "agentcore_invocation_server_overhead_seconds_sum", runtime=runtime_id)
        first_byte = value(found, "agentcore_invocation_first_byte_seconds_sum", runtime=runtime_id)
        total = value(found, "agentcore_invocation_duration_seconds_sum", runtime=runtime_id)
        assert overhead is not None and first_byte is not None and total is not None
        assert overhead < first_byte <= total


def test_session_starts_are_cold_or_warm(traffic: Traffic) -> None:
    found = scrape(traffic)
    assert family(found, "agentcore_session_starts_total") == {
        frozenset({("runtime", traffic.runtime_a), ("start", "warm")}): 1,
        frozenset({("runtime", traffic.runtime_b), ("start", "cold")}): 1,
    }


def test_builds_are_counted_with_their_durations(traffic: Traffic) -> None:
    found = scrape(traffic)
    for runtime_id in (traffic.runtime_a, traffic.runtime_b):
        assert value(found, "agentcore_builds_total", runtime=runtime_id, outcome="succeeded") == 1
    assert value(found, "agentcore_build_duration_seconds_count", outcome="succeeded") == 2
    assert (value(found, "agentcore_build_duration_seconds_sum", outcome="succeeded") or 0) > 0


def test_a_failed_build_is_counted_as_failed(traffic: Traffic) -> None:
    server = traffic.server
    created = server.control.create_agent_runtime(
        agentRuntimeName="metricsImage", roleArn="arn:aws:iam::000000000000:role/agent",
        agentRuntimeArtifact={"containerConfiguration": {"containerUri": "example.invalid/agent:1"}},
    )  # fmt: skip
    assert server.wait_ready(created["agentRuntimeId"])["status"] == "CREATE_FAILED"
    found = scrape(traffic)
    assert value(found, "agentcore_builds_total", runtime=created["agentRuntimeId"], outcome="failed") == 1
    assert value(found, "agentcore_build_duration_seconds_count", outcome="failed") == 1


def test_a_bad_signature_is_counted_by_its_reason(traffic: Traffic) -> None:
    assert value(scrape(traffic), "agentcore_auth_failures_total", reason="SignatureMismatch") == 1


def test_live_sessions_are_shown_by_state(traffic: Traffic) -> None:
    found = scrape(traffic)
    assert value(found, "agentcore_sessions", runtime=traffic.runtime_b, state="idle") == 1
    sessions = family(found, "agentcore_sessions")
    assert not [labels for labels in sessions if ("runtime", traffic.runtime_a) in labels]


def test_worker_memory_and_cpu_are_read_per_runtime(traffic: Traffic) -> None:
    found = scrape(traffic)
    memory = [v for (name, labels), v in found.items() if name == "agentcore_worker_memory_bytes"
              and ("runtime", traffic.runtime_b) in labels]  # fmt: skip
    cpu = [v for (name, labels), v in found.items() if name == "agentcore_worker_cpu_seconds_total"
           and ("runtime", traffic.runtime_b) in labels]  # fmt: skip
    # A Python worker that imported the SDK and served calls holds megabytes and has used CPU time.
    assert len(memory) == 1 and memory[0] > 1024 * 1024
    assert len(cpu) == 1 and cpu[0] > 0


def test_the_signed_route_serves_the_same_metrics(traffic: Traffic) -> None:
    reply = signed("GET", traffic.server.url + "/metrics")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(reply.text)
    for runtime_id, outcome, calls in (
        (traffic.runtime_a, "success", N_SUCCESSES), (traffic.runtime_b, "agent_error", M_FAILURES),
    ):  # fmt: skip
        assert value(found, "agentcore_invocations_total", runtime=runtime_id, outcome=outcome) == calls


def test_openmetrics_is_served_when_asked_for(traffic: Traffic) -> None:
    reply = httpx.get(traffic.metrics_url, headers={"accept": "application/openmetrics-text"}, timeout=30)
    assert reply.headers["content-type"].startswith("application/openmetrics-text")
    families = {family.name: family for family in openmetrics_families(reply.text)}
    counted = {
        sample.labels["outcome"]: sample.value
        for sample in families["agentcore_invocations"].samples
        if sample.name == "agentcore_invocations_total"
        and sample.labels["runtime"] == traffic.runtime_a
        and sample.value
    }
    assert counted == {"success": N_SUCCESSES}


def test_labels_never_carry_session_or_request_ids(traffic: Traffic) -> None:
    found = scrape(traffic)
    names = {name for _, labels in found for name, _ in labels}
    assert names <= {"runtime", "outcome", "state", "start", "source", "reason", "operation", "le"}
    values = {label_value for _, labels in found for _, label_value in labels}
    assert SESSION_A not in values and SESSION_B not in values
    assert not any("session" in label_value for label_value in values)


def test_an_unsigned_request_is_refused_in_the_aws_error_shape(traffic: Traffic) -> None:
    reply = httpx.get(traffic.server.url + "/metrics", timeout=30)
    assert reply.status_code == 403
    assert reply.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    assert reply.json()["message"]
    assert "agentcore_invocations" not in reply.text


def test_a_key_whose_policy_lacks_get_metrics_is_denied(traffic: Traffic) -> None:
    key = new_key(traffic.server, "invoker", ["bedrock-agentcore:InvokeAgentRuntime"])
    reply = signed("GET", traffic.server.url + "/metrics", key)
    assert reply.status_code == 403
    assert reply.headers["x-amzn-errortype"] == "AccessDeniedException"
    assert "bedrock-agentcore:GetMetrics" in reply.json()["message"]


def test_a_key_allowed_only_get_metrics_reads_them_and_invokes_nothing(traffic: Traffic) -> None:
    key = new_key(traffic.server, "scraper", ["bedrock-agentcore:GetMetrics"])
    reply = signed("GET", traffic.server.url + "/metrics", key)
    assert reply.status_code == 200
    assert "agentcore_invocations_total" in reply.text
    arn = f"arn:aws:bedrock-agentcore:us-east-1:000000000000:runtime/{traffic.runtime_a}"
    for method, path in (
        ("POST", f"/runtimes/{arn.replace('/', '%2F')}/invocations"),
        ("POST", "/runtimes/"),
        ("GET", "/_agentcore/access-keys"),
    ):
        refused = signed(method, traffic.server.url + path, key)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.headers["x-amzn-errortype"] == "AccessDeniedException"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 404),
        ("GET", "/_agentcore/health", 404),
        ("POST", "/runtimes/", 404),
        ("GET", "/metrics/", 404),
        ("GET", "/metricsx", 404),
        ("POST", "/metrics", 405),
        ("DELETE", "/metrics", 405),
    ],
)
def test_the_metrics_port_serves_nothing_else(traffic: Traffic, method: str, path: str, status: int) -> None:
    url = traffic.metrics_url.removesuffix("/metrics") + path
    reply = httpx.request(method, url, timeout=30)
    assert reply.status_code == status
    assert "agentcore_" not in reply.text
