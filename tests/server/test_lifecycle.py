"""Lifecycle to the letter: idle expiry is checked when a call arrives, maxLifetime ends busy sessions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import pytest

from tests.conftest import wait_until
from tests.server.conftest import KEY_ID, SECRET, Server, artifact, running_server

AGENT = """
import asyncio
import uuid
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()
INSTANCE = None  # named on the first call: forked sessions share what their version's import made
count = 0


@app.entrypoint
async def invoke(payload):
    global count, INSTANCE
    INSTANCE = INSTANCE or uuid.uuid4().hex
    count += 1
    if payload.get("linger"):
        await asyncio.sleep(3600)
    return {"count": count, "instance": INSTANCE}
"""


def deploy(server: Server, name: str, idle: int, lifetime: int) -> dict[str, Any]:
    # boto3 checks the managed service's 60 s minimum unless told not to; the server allows 1 s.
    unchecked = boto3.client(
        "bedrock-agentcore-control", region_name="us-east-1", endpoint_url=server.url,
        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
        config=botocore.config.Config(parameter_validation=False),
    )  # fmt: skip
    created: dict[str, Any] = unchecked.create_agent_runtime(
        agentRuntimeName=name, roleArn="arn:aws:iam::000000000000:role/agent",
        agentRuntimeArtifact=artifact(server.upload({"agent.py": AGENT})),
        lifecycleConfiguration={"idleRuntimeSessionTimeout": idle, "maxLifetime": lifetime},
    )  # fmt: skip
    server.wait_ready(created["agentRuntimeId"])
    return created


def invoke(server: Server, arn: str, session: str, **payload: Any) -> Any:
    reply = server.data.invoke_agent_runtime(
        agentRuntimeArn=arn, payload=json.dumps(payload).encode(), runtimeSessionId=session
    )
    return json.loads(reply["response"].read())


def listing(server: Server, runtime_id: str) -> dict[str, dict[str, Any]]:
    reply = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions?state=all")
    assert reply.status_code == 200, reply.text
    return {entry["sessionId"]: entry for entry in reply.json()["sessions"]}


@pytest.fixture
def unreaped(short_data_dir: Path) -> Iterator[Server]:
    """A server whose reaper waits an hour between passes: only arrivals can end idle sessions."""
    with running_server(short_data_dir, reap_interval=3600) as server:
        yield server


def test_a_call_after_the_idle_timeout_starts_a_fresh_worker_for_the_same_session(unreaped: Server) -> None:
    created = deploy(unreaped, "idlearrival", idle=1, lifetime=3600)
    arn, runtime_id = created["agentRuntimeArn"], created["agentRuntimeId"]
    session = "i" * 40
    first = invoke(unreaped, arn, session)
    assert invoke(unreaped, arn, session)["instance"] == first["instance"]  # warm within the timeout
    wait_until(lambda: listing(unreaped, runtime_id)[session]["idleSeconds"] >= 1.0, timeout=30)
    again = invoke(unreaped, arn, session)
    assert again["count"] == 1 and again["instance"] != first["instance"]
    entry = listing(unreaped, runtime_id)[session]
    assert entry["state"] != "ENDED"  # the new worker serves the same session id
    ended = unreaped.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions/{session}/logs").text
    assert "[open-agentcore] session ended: idle timeout" in ended


def test_max_lifetime_ends_a_session_with_a_call_in_flight_and_the_caller_is_told(server: Server) -> None:
    created = deploy(server, "lifetime", idle=2, lifetime=2)
    arn, runtime_id = created["agentRuntimeArn"], created["agentRuntimeId"]
    session = "m" * 40
    with pytest.raises(server.data.exceptions.RuntimeClientError) as failed:
        invoke(server, arn, session, linger=True)
    message = failed.value.response["Error"]["Message"]
    assert message == "the agent's session ended: maxLifetime reached: the session may live 2 s"
    # The session's end reaches the store through the journal's queue, maybe after the caller heard.
    ended = wait_until(lambda: listing(server, runtime_id).get(session, {}).get("endReason"), timeout=30)
    assert ended == "maxLifetime reached: the session may live 2 s"
    assert invoke(server, arn, session)["count"] == 1  # the next call starts the session afresh
