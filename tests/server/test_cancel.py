"""Cancelling one invocation in flight: the agent sees `CancelledError`, the session stays warm."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import wait_until
from tests.security.attack import ADMIN, Key, Reply, Target, allow, encoded, raw_request
from tests.server.conftest import Server, running_server, sign

AGENT = """
import asyncio
import time
import uuid
from bedrock_agentcore import BedrockAgentCoreApp, BedrockAgentCoreContext

app = BedrockAgentCoreApp()
INSTANCE = uuid.uuid4().hex


@app.entrypoint
async def invoke(payload):
    request_id = BedrockAgentCoreContext.get_request_id()
    if payload.get("wait"):
        print(f"waiting {request_id}", flush=True)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            print(f"cancelled {request_id}", flush=True)
            raise
    if payload.get("stream"):
        return words(request_id)
    return {"instance": INSTANCE, "requestId": request_id}


async def words(request_id):
    yield "started"
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        print(f"stream cancelled {request_id}", flush=True)
        raise
    yield "never"
"""

SYNC_AGENT = """
import threading
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()
release = threading.Event()


@app.entrypoint
def invoke(payload):
    print("waiting", flush=True)
    release.wait(payload.get("wait", 0))
    return {"done": True}
"""


@pytest.fixture
def target(short_data_dir: Path) -> Iterator[Target]:
    with running_server(short_data_dir) as server:
        yield Target(server, {"a": server.deploy({"agent.py": AGENT}, "cancellable")})


def invoke(
    server: Server, arn: str, session: str, payload: Any, request_id: str | None = None
) -> httpx.Response:
    url = f"{server.url}/runtimes/{encoded(arn)}/invocations"
    headers = {"x-amzn-bedrock-agentcore-runtime-session-id": session, "content-type": "application/json"}
    if request_id is not None:
        headers["x-amzn-bedrock-agentcore-runtime-request-id"] = request_id
    body = json.dumps(payload).encode()
    return httpx.post(url, content=body, headers=sign("POST", url, body, headers), timeout=120)


def cancel(target: Target, session: str, request_id: str, key: Key = ADMIN) -> Reply:
    path = f"/_agentcore/runtimes/{encoded(target.arn('a'))}/sessions/{session}/requests/{request_id}/cancel"
    return raw_request(target.server.url, "POST", path, key=key)


def log_of(server: Server, runtime_id: str, session: str) -> str:
    return server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions/{session}/logs").text


def in_background(call: Any) -> tuple[threading.Thread, list[Any]]:
    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(call()), daemon=True)
    thread.start()
    return thread, answers


def test_cancel_interrupts_an_async_handler_and_the_session_stays_warm(target: Target) -> None:
    server, arn, runtime_id = target.server, target.arn("a"), target.id("a")
    session = "c" * 40
    first = invoke(server, arn, session, {})
    assert first.status_code == 200
    assert first.headers["x-amzn-requestid"] == first.json()["requestId"]  # every answer names its id
    thread, answers = in_background(lambda: invoke(server, arn, session, {"wait": 3600}, "job-1"))
    wait_until(lambda: "waiting job-1" in log_of(server, runtime_id, session), timeout=30)

    cancelled = cancel(target, session, "job-1")
    assert cancelled.status == 200, cancelled.body
    assert cancelled.json() == {"runtimeSessionId": session, "requestId": "job-1", "status": "CANCELLED"}
    thread.join(timeout=60)
    (answer,) = answers
    assert answer.status_code == 424 and answer.headers["x-amzn-errortype"] == "RuntimeClientError"
    assert "the invocation was cancelled" in answer.json()["message"]
    # The agent saw CancelledError (on its own loop, which may print after the answer went out).
    wait_until(lambda: "cancelled job-1" in log_of(server, runtime_id, session), timeout=30)

    after = invoke(server, arn, session, {})
    assert after.json()["instance"] == first.json()["instance"]  # the same worker, still warm


def test_cancel_mid_stream_ends_the_stream_with_a_cancelled_event(target: Target) -> None:
    server, arn, runtime_id = target.server, target.arn("a"), target.id("a")
    session = "t" * 40
    url = f"{server.url}/runtimes/{encoded(arn)}/invocations"
    headers = {"x-amzn-bedrock-agentcore-runtime-session-id": session, "content-type": "application/json"}
    body = b'{"stream": true}'
    with httpx.stream(
        "POST", url, content=body, headers=sign("POST", url, body, headers), timeout=60
    ) as reply:
        request_id = reply.headers["x-amzn-requestid"]  # known as soon as the answer begins
        chunks = reply.iter_raw()
        # Each relayed event carries its resumable id (`<request id>:<n>`).
        assert next(chunks) == f'data: "started"\nid: {request_id}:1\n\n'.encode()
        assert cancel(target, session, request_id).status == 200
        rest = b"".join(chunks).decode()  # ends cleanly: the cancel was asked for
    data, event_id = rest.strip().split("\n")
    assert event_id == f"id: {request_id}:2"
    last = json.loads(data.removeprefix("data: "))
    assert (last["error"], last["error_type"]) == ("the invocation was cancelled", "CancelledError")
    # The generator is cancelled on its own loop, which may print after the stream has ended.
    wait_until(lambda: f"stream cancelled {request_id}" in log_of(server, runtime_id, session), timeout=30)


def test_cancel_of_an_unknown_request_id_is_a_typed_404(target: Target) -> None:
    server, arn = target.server, target.arn("a")
    session = "u" * 40
    assert invoke(server, arn, session, {}).status_code == 200
    unknown = cancel(target, session, "never-made")
    assert (unknown.status, unknown.error_type) == (404, "ResourceNotFoundException")
    assert "never-made" in unknown.json()["message"]
    no_session = cancel(target, "n" * 40, "never-made")
    assert (no_session.status, no_session.error_type) == (404, "ResourceNotFoundException")


def test_another_principal_cannot_cancel_and_learns_nothing_of_the_call(target: Target) -> None:
    server, arn, runtime_id = target.server, target.arn("a"), target.id("a")
    actions = ["bedrock-agentcore:InvokeAgentRuntime", "bedrock-agentcore:CancelRuntimeInvocation"]
    mallory = target.add_key("mallory", allow(actions, runtime_id))
    session = "o" * 40
    thread, answers = in_background(lambda: invoke(server, arn, session, {"wait": 3600}, "job-2"))
    wait_until(lambda: "waiting job-2" in log_of(server, runtime_id, session), timeout=30)
    refused = cancel(target, session, "job-2", key=mallory)
    assert (refused.status, refused.error_type) == (403, "AccessDeniedException")
    assert "cancelled job-2" not in log_of(server, runtime_id, session)
    assert cancel(target, session, "job-2").status == 200  # its owner (here the admin) may
    thread.join(timeout=60)
    assert answers[0].status_code == 424


def test_a_sync_handler_cannot_be_cancelled_and_says_so(short_data_dir: Path) -> None:
    with running_server(short_data_dir) as server:
        created = server.deploy({"agent.py": SYNC_AGENT}, "blocking")
        target = Target(server, {"a": created})
        session = "s" * 40
        thread, answers = in_background(
            lambda: invoke(server, target.arn("a"), session, {"wait": 2}, "job-3")
        )
        wait_until(lambda: "waiting" in log_of(server, target.id("a"), session), timeout=30)
        refused = cancel(target, session, "job-3")
        assert (refused.status, refused.error_type) == (409, "ConflictException")
        assert "sync function" in refused.json()["message"]
        thread.join(timeout=60)
        assert answers[0].json() == {"done": True}  # it ran to its end
