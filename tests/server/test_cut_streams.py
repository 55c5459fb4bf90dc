"""Answers cut short by a dying worker end abnormally for the client, never as a clean end."""

from __future__ import annotations

import json
import os
import signal
from typing import Any
from urllib.parse import quote

import botocore.exceptions
import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from bedrock_agentcore.runtime import AgentCoreRuntimeClient
from tests.conftest import wait_until
from tests.server.conftest import KEY_ID, SECRET, Server, sign

AGENT = """
import asyncio
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
async def invoke(payload):
    yield "first"
    await asyncio.sleep(3600)  # until the test kills the worker
    yield "never"


@app.websocket
async def talk(websocket, context):
    await websocket.accept()
    await websocket.send_text("ready")
    await asyncio.sleep(3600)
"""

_UPGRADE = {"upgrade", "connection", "sec-websocket-version", "sec-websocket-key", "host", "user-agent"}


def listing(server: Server, runtime_id: str) -> dict[str, dict[str, Any]]:
    reply = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions?state=all")
    assert reply.status_code == 200, reply.text
    return {entry["sessionId"]: entry for entry in reply.json()["sessions"]}


def kill_worker(server: Server, runtime_id: str, session: str) -> None:
    os.kill(listing(server, runtime_id)[session]["pid"], signal.SIGKILL)


def end_reason(server: Server, runtime_id: str, session: str) -> str | None:
    entry = listing(server, runtime_id).get(session)
    return entry["endReason"] if entry and entry["state"] == "ENDED" else None


def test_a_worker_killed_mid_stream_ends_the_stream_with_an_error_event_then_a_broken_connection(
    server: Server,
) -> None:
    created = server.deploy({"agent.py": AGENT}, "cutsse")
    arn, runtime_id = created["agentRuntimeArn"], created["agentRuntimeId"]
    session = "k" * 40
    url = f"{server.url}/runtimes/{quote(arn, safe='')}/invocations"
    headers = sign("POST", url, b"{}", {"x-amzn-bedrock-agentcore-runtime-session-id": session})
    received: list[bytes] = []
    with httpx.stream("POST", url, content=b"{}", headers=headers, timeout=60) as reply:
        assert reply.status_code == 200
        request_id = reply.headers["x-amzn-requestid"]
        chunks = reply.iter_raw()
        received.append(next(chunks))
        assert received == [f'data: "first"\nid: {request_id}:1\n\n'.encode()]
        kill_worker(server, runtime_id, session)
        with pytest.raises(httpx.RemoteProtocolError):
            received.extend(chunks)
    events = b"".join(received).decode().split("\n\n")
    assert events[0] == f'data: "first"\nid: {request_id}:1'
    data, event_id = events[1].split("\n")
    assert event_id == f"id: {request_id}:2"  # the error event is kept for a resume too
    last = json.loads(data.removeprefix("data: "))
    assert last["error_type"] == "RuntimeClientError"
    assert "the agent's session ended" in last["error"] and "SIGKILL" in last["error"]
    assert events[2:] == [""]  # nothing after the error event
    assert "SIGKILL" in (wait_until(lambda: end_reason(server, runtime_id, session)) or "")


def test_boto3_raises_when_the_stream_is_cut(server: Server) -> None:
    created = server.deploy({"agent.py": AGENT}, "cutboto")
    arn, runtime_id = created["agentRuntimeArn"], created["agentRuntimeId"]
    session = "b" * 40
    reply = server.data.invoke_agent_runtime(agentRuntimeArn=arn, payload=b"{}", runtimeSessionId=session)
    body = reply["response"]
    first = f'data: "first"\nid: {reply["ResponseMetadata"]["RequestId"]}:1\n\n'.encode()
    assert body.read(len(first)) == first
    kill_worker(server, runtime_id, session)
    with pytest.raises(botocore.exceptions.ResponseStreamingError):
        body.read()


def test_a_worker_killed_mid_websocket_closes_it_with_1011_and_the_reason(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = server.deploy({"agent.py": AGENT}, "cutws")
    arn, runtime_id = created["agentRuntimeArn"], created["agentRuntimeId"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    client = AgentCoreRuntimeClient(region="us-east-1", endpoint_url=server.url)
    session = "w" * 40
    url, headers = client.generate_ws_connection(arn, session_id=session)
    kept = {name: value for name, value in headers.items() if name.lower() not in _UPGRADE}
    with connect(url, additional_headers=kept, open_timeout=60) as websocket:
        assert websocket.recv(timeout=30) == "ready"
        kill_worker(server, runtime_id, session)
        with pytest.raises(ConnectionClosed) as closed:
            websocket.recv(timeout=30)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1011
    assert "session ended" in closed.value.rcvd.reason and "SIGKILL" in closed.value.rcvd.reason
    assert "SIGKILL" in (wait_until(lambda: end_reason(server, runtime_id, session)) or "")
