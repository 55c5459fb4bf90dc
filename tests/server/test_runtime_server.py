"""The runtime server end to end: boto3 against a real server, real workers per session."""

from __future__ import annotations

import http.client
import json
from typing import Any

import boto3
import botocore.exceptions
import httpx
import pytest

from tests.server.conftest import Server, artifact

AGENT = """
import os
import uuid
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()
count = 0
# Named on the first call, not at import: pids repeat across sandboxes (each worker has its own pid
# namespace), and forked sessions share what their version's import made.
INSTANCE = None


@app.entrypoint
def invoke(payload, context):
    global count, INSTANCE
    INSTANCE = INSTANCE or uuid.uuid4().hex
    if payload.get("stream"):
        return (f"word{i}" for i in range(payload["stream"]))
    if payload.get("fail"):
        raise RuntimeError("the agent fell over")
    if "write" in payload:
        with open(os.path.join(os.environ["HOME"], "note.txt"), "w") as note:
            note.write(payload["write"])
    count += 1
    return {"count": count, "instance": INSTANCE, "session": context.session_id,
            "greeting": os.environ.get("GREETING"), "version": "v1"}


if __name__ == "__main__":
    raise SystemExit("not run as __main__ on the server")
"""


def call(server: Server, arn: str, payload: Any, session: str, **extra: Any) -> tuple[dict[str, Any], Any]:
    reply = server.data.invoke_agent_runtime(
        agentRuntimeArn=arn, payload=json.dumps(payload).encode(), runtimeSessionId=session, **extra
    )
    return reply, reply["response"].read()


def test_deploy_and_invoke_with_sessions_kept_apart(server: Server) -> None:
    created = server.deploy({"agent.py": AGENT}, "counter", environmentVariables={"GREETING": "hi"})
    arn = created["agentRuntimeArn"]
    assert created["agentRuntimeId"].startswith("counter-")
    session_a, session_b = "a" * 33, "b" * 33
    reply, body = call(server, arn, {}, session_a)
    first = json.loads(body)
    assert reply["contentType"].startswith("application/json")
    assert reply["runtimeSessionId"] == session_a
    assert (first["count"], first["session"], first["greeting"]) == (1, session_a, "hi")
    second = json.loads(call(server, arn, {}, session_a)[1])
    other = json.loads(call(server, created["agentRuntimeId"], {}, session_b)[1])  # a bare id works too
    assert (second["count"], other["count"]) == (2, 1)
    assert second["instance"] == first["instance"] != other["instance"]

    server.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=session_a)
    assert json.loads(call(server, arn, {}, session_a)[1])["count"] == 1


def test_streaming_passes_through_as_server_sent_events(server: Server) -> None:
    arn = server.deploy({"agent.py": AGENT}, "streamer")["agentRuntimeArn"]
    reply, body = call(server, arn, {"stream": 3}, "s" * 33)
    assert reply["contentType"].startswith("text/event-stream")
    # Each frame as the agent wrote it, plus the id that lets a client resume (`docs/streams.md`).
    request_id = reply["ResponseMetadata"]["RequestId"]
    assert body.decode() == "".join(f'data: "word{n}"\nid: {request_id}:{n + 1}\n\n' for n in range(3))


def test_the_agent_failing_is_a_runtime_client_error(server: Server) -> None:
    arn = server.deploy({"agent.py": AGENT}, "faulty")["agentRuntimeArn"]
    with pytest.raises(server.data.exceptions.RuntimeClientError, match="the agent fell over"):
        call(server, arn, {"fail": True}, "f" * 33)
    assert json.loads(call(server, arn, {}, "f" * 33)[1])["count"] == 1  # the session survived


def test_update_makes_a_new_version_and_pinned_endpoints_stay(server: Server) -> None:
    created = server.deploy({"agent.py": AGENT}, "versioned")
    runtime_id, arn = created["agentRuntimeId"], created["agentRuntimeArn"]
    server.control.create_agent_runtime_endpoint(
        agentRuntimeId=runtime_id, name="stable", agentRuntimeVersion="1"
    )
    key = server.upload({"agent.py": AGENT.replace('"version": "v1"', '"version": "v2"')})
    updated = server.control.update_agent_runtime(
        agentRuntimeId=runtime_id,
        roleArn="arn:aws:iam::000000000000:role/agent",
        agentRuntimeArtifact=artifact(key),
    )
    assert updated["agentRuntimeVersion"] == "2"
    server.wait_ready(runtime_id)
    assert json.loads(call(server, arn, {}, "n" * 33)[1])["version"] == "v2"
    assert json.loads(call(server, arn, {}, "o" * 33, qualifier="stable")[1])["version"] == "v1"
    versions = server.control.list_agent_runtime_versions(agentRuntimeId=runtime_id)["agentRuntimes"]
    assert sorted(v["agentRuntimeVersion"] for v in versions) == ["1", "2"]
    v1 = server.control.get_agent_runtime(agentRuntimeId=runtime_id, agentRuntimeVersion="1")
    assert v1["agentRuntimeArtifact"]["codeConfiguration"]["code"]["s3"]["prefix"] != key
    default = server.control.get_agent_runtime_endpoint(agentRuntimeId=runtime_id, endpointName="DEFAULT")
    assert default["liveVersion"] == "2"


def test_a_failed_build_is_create_failed_with_the_reason_and_a_build_log(server: Server) -> None:
    key = server.upload({"agent.py": AGENT, "requirements.txt": "open-agentcore-no-such-package-xyz==1.0\n"})
    created = server.control.create_agent_runtime(
        agentRuntimeName="broken",
        roleArn="arn:aws:iam::000000000000:role/agent",
        agentRuntimeArtifact=artifact(key),
    )
    described = server.wait_ready(created["agentRuntimeId"])
    assert described["status"] == "CREATE_FAILED"
    assert "open-agentcore-no-such-package-xyz" in described["failureReason"]
    log = server.signed("GET", f"/_agentcore/runtimes/{created['agentRuntimeId']}/versions/1/build-log")
    assert log.status_code == 200 and "uv pip install" in log.text
    with pytest.raises(server.data.exceptions.RuntimeClientError, match="no ready version"):
        call(server, created["agentRuntimeArn"], {}, "x" * 33)


def test_the_build_log_reads_from_an_offset(server: Server) -> None:
    key = server.upload({"agent.py": AGENT, "requirements.txt": "open-agentcore-no-such-package-xyz==1.0\n"})
    created = server.control.create_agent_runtime(
        agentRuntimeName="offsets",
        roleArn="arn:aws:iam::000000000000:role/agent",
        agentRuntimeArtifact=artifact(key),
    )
    server.wait_ready(created["agentRuntimeId"])
    path = f"/_agentcore/runtimes/{created['agentRuntimeId']}/versions/1/build-log"
    whole = server.signed("GET", path).content
    assert len(whole) > 10
    assert server.signed("GET", path + "?offset=10").content == whole[10:]
    end = server.signed("GET", f"{path}?offset={len(whole)}")
    assert end.status_code == 200 and end.content == b""
    wrong = server.signed("GET", path + "?offset=-1")
    assert wrong.status_code == 400 and wrong.headers["x-amzn-errortype"].startswith("ValidationException")


def test_control_plane_errors_reach_boto3_typed(server: Server) -> None:
    control = server.control
    key = server.upload({"agent.py": AGENT})
    role = "arn:aws:iam::000000000000:role/agent"
    with pytest.raises(control.exceptions.ValidationException, match="agentRuntimeName"):
        control.create_agent_runtime(
            agentRuntimeName="9bad-name", roleArn=role, agentRuntimeArtifact=artifact(key)
        )
    with pytest.raises(control.exceptions.ValidationException, match="idleRuntimeSessionTimeout"):
        control.create_agent_runtime(
            agentRuntimeName="ok", roleArn=role, agentRuntimeArtifact=artifact(key),
            lifecycleConfiguration={"idleRuntimeSessionTimeout": 99999},
        )  # fmt: skip
    with pytest.raises(control.exceptions.ValidationException, match="bucket"):
        bad = artifact(key)
        bad["codeConfiguration"]["code"]["s3"]["bucket"] = "someone-elses-bucket"
        control.create_agent_runtime(agentRuntimeName="ok", roleArn=role, agentRuntimeArtifact=bad)
    control.create_agent_runtime(agentRuntimeName="dup", roleArn=role, agentRuntimeArtifact=artifact(key))
    with pytest.raises(control.exceptions.ConflictException, match="dup"):
        control.create_agent_runtime(agentRuntimeName="dup", roleArn=role, agentRuntimeArtifact=artifact(key))
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.get_agent_runtime(agentRuntimeId="missing-AAAAAAAAAA")
    with pytest.raises(server.data.exceptions.ResourceNotFoundException):
        call(
            server,
            "arn:aws:bedrock-agentcore:us-east-1:000000000000:runtime/missing-AAAAAAAAAA",
            {},
            "z" * 33,
        )


def test_listing_paginates_and_delete_removes(server: Server) -> None:
    key = server.upload({"agent.py": AGENT})
    role = "arn:aws:iam::000000000000:role/agent"
    ids = {
        server.control.create_agent_runtime(
            agentRuntimeName=f"many{i}", roleArn=role, agentRuntimeArtifact=artifact(key)
        )["agentRuntimeId"]
        for i in range(5)
    }
    paginator = server.control.get_paginator("list_agent_runtimes")
    listed = [
        r["agentRuntimeId"]
        for page in paginator.paginate(PaginationConfig={"PageSize": 2})
        for r in page["agentRuntimes"]
    ]
    assert sorted(listed) == sorted(ids)
    victim = ids.pop()
    assert server.control.delete_agent_runtime(agentRuntimeId=victim)["status"] == "DELETING"
    with pytest.raises(server.control.exceptions.ResourceNotFoundException):
        server.control.get_agent_runtime(agentRuntimeId=victim)


def test_requests_without_a_valid_signature_are_refused(server: Server) -> None:
    assert server.signed("GET", "/_agentcore/health").status_code == 200
    assert httpx.get(server.url + "/_agentcore/health").status_code == 200  # health needs no auth
    unsigned = httpx.post(server.url + "/runtimes/", content=b"{}")
    assert (
        unsigned.status_code == 403
        and unsigned.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    )
    wrong = server.signed("POST", "/runtimes/", b"{}", secret="not-the-secret")
    assert wrong.status_code == 403 and wrong.headers["x-amzn-errortype"] == "InvalidSignatureException"
    assert "not-the-secret" not in wrong.text


def test_boto3_with_a_wrong_key_gets_unrecognized_client(server: Server) -> None:
    stranger = boto3.client(
        "bedrock-agentcore-control", region_name="us-east-1", endpoint_url=server.url,
        aws_access_key_id="AKIASTRANGER00000000", aws_secret_access_key="x" * 40,
    )  # fmt: skip
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        stranger.list_agent_runtimes()
    assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_an_agent_with_requirements_runs_in_its_built_environment(server: Server) -> None:
    agent = AGENT.replace("import uuid\n", "import uuid\nimport six\n").replace(
        '"version": "v1"}', '"version": "v1", "six": six.__version__}'
    )
    arn = server.deploy({"agent.py": agent, "requirements.txt": "six==1.16.0\n"}, "withdeps")[
        "agentRuntimeArn"
    ]
    reply = json.loads(call(server, arn, {}, "d" * 33)[1])
    assert reply["six"] == "1.16.0" and reply["count"] == 1


HEADERS_AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload, context):
    seen = {k.lower(): v for k, v in context.request.headers.items()}
    return {
        "forwarded": dict(context.request_headers or {}),
        "user": seen.get("x-amzn-bedrock-agentcore-runtime-user-id"),
        "trace": seen.get("x-amzn-trace-id"),
        "has_signature": "x-amz-date" in seen or "authorization" in seen,
    }
"""


def test_allowlisted_headers_user_id_and_trace_reach_the_worker_and_nothing_else(server: Server) -> None:
    arn = server.deploy(
        {"agent.py": HEADERS_AGENT},
        "headers",
        requestHeaderConfiguration={
            "requestHeaderAllowlist": ["X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant"]
        },
    )["agentRuntimeArn"]

    def add_headers(request: Any, **_: Any) -> None:
        request.headers["X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant"] = "blue"
        request.headers["X-Amzn-Bedrock-AgentCore-Runtime-Custom-Other"] = "not allowlisted"

    server.data.meta.events.register("before-sign.bedrock-agentcore.InvokeAgentRuntime", add_headers)
    try:
        _, body = call(server, arn, {}, "h" * 33, runtimeUserId="user-7", traceId="Root=1-abc")
    finally:
        server.data.meta.events.unregister("before-sign.bedrock-agentcore.InvokeAgentRuntime", add_headers)
    seen = json.loads(body)
    assert seen["forwarded"] == {"X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant": "blue"}
    assert (seen["user"], seen["trace"]) == ("user-7", "Root=1-abc")
    assert seen["has_signature"] is False  # the caller's SigV4 headers never reach the agent


def test_a_container_artifact_fails_with_a_clear_reason(server: Server) -> None:
    created = server.control.create_agent_runtime(
        agentRuntimeName="container",
        roleArn="arn:aws:iam::000000000000:role/agent",
        agentRuntimeArtifact={"containerConfiguration": {"containerUri": "example.test/agent:latest"}},
    )
    described = server.wait_ready(created["agentRuntimeId"])
    assert described["status"] == "CREATE_FAILED"
    assert "container backend" in described["failureReason"]


def test_session_ids_longer_than_256_characters_are_refused(server: Server) -> None:
    arn = server.deploy({"agent.py": AGENT}, "sessions")["agentRuntimeArn"]
    with pytest.raises(server.data.exceptions.ValidationException, match="runtimeSessionId"):
        call(server, arn, {}, "x" * 257)


@pytest.mark.parametrize("path", ["/runtimes/x/../y/", "/runtimes//", "/runtimes/./x/"])
def test_paths_with_dot_or_empty_segments_are_refused_before_routing(server: Server, path: str) -> None:
    # http.client sends the path exactly as given (httpx would normalise the dots away).
    connection = http.client.HTTPConnection(server.url.removeprefix("http://"), timeout=10)
    connection.request("GET", path)
    refused = connection.getresponse()
    assert refused.status == 400 and refused.getheader("x-amzn-errortype") == "ValidationException"
    connection.close()
