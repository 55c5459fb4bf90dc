"""How an invocation ended, as `agentcore_invocations_total` labels it: a stream cut by a dying
worker, a client that left mid-stream, a call cancelled before its answer began, a call to a
runtime that does not exist. Each test counts its own call against what the module's server had
counted before it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import free_port, wait_until
from tests.metrics.test_metrics import samples, value
from tests.server.conftest import Server, running_server, sign

AGENT = """
import asyncio
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


async def stream():
    yield "first"
    await asyncio.sleep(3600)  # until the test kills the worker or leaves
    yield "never"


@app.entrypoint
async def invoke(payload):
    if payload.get("mode") == "stream":
        return stream()
    await asyncio.sleep(3600)  # until the test cancels the call
    return {"never": True}
"""


class Agent:
    def __init__(self, server: Server, metrics_url: str, runtime_id: str, arn: str) -> None:
        self.server = server
        self.metrics_url = metrics_url
        self.runtime_id = runtime_id
        self.arn = arn

    def outcomes(self, runtime_id: str | None = None) -> dict[str, float]:
        """The runtime's invocations by outcome, those at 0 left out."""
        found = samples(httpx.get(self.metrics_url, timeout=30).text)
        runtime = runtime_id or self.runtime_id
        return {
            dict(labels)["outcome"]: count
            for (name, labels), count in found.items()
            if name == "agentcore_invocations_total" and ("runtime", runtime) in labels and count
        }

    def worker_pid(self, session_id: str) -> int:
        reply = self.server.signed("GET", f"/_agentcore/runtimes/{self.runtime_id}/sessions")
        (entry,) = [entry for entry in reply.json()["sessions"] if entry["sessionId"] == session_id]
        return int(entry["pid"])

    @contextlib.contextmanager
    def stream(self, session_id: str) -> Iterator[httpx.Response]:
        """A streamed invocation, its answer begun; leaving the block closes the connection."""
        url = f"{self.server.url}/runtimes/{quote(self.arn, safe='')}/invocations"
        body = b'{"mode": "stream"}'
        headers = sign("POST", url, body, {
            "content-type": "application/json", "accept": "text/event-stream",
            "x-amzn-bedrock-agentcore-runtime-session-id": session_id,
        })  # fmt: skip
        with (
            httpx.Client(timeout=30) as client,
            client.stream("POST", url, content=body, headers=headers) as reply,
        ):
            assert reply.status_code == 200
            yield reply


@pytest.fixture(scope="module")
def agent() -> Iterator[Agent]:
    data_dir = Path(tempfile.mkdtemp(prefix="oacm-", dir="/tmp"))
    port = free_port()
    try:
        with running_server(data_dir, metrics_port=port) as server:
            runtime_id = server.deploy({"agent.py": AGENT}, "outcomes")["agentRuntimeId"]
            arn = server.control.get_agent_runtime(agentRuntimeId=runtime_id)["agentRuntimeArn"]
            yield Agent(server, f"http://127.0.0.1:{port}/metrics", runtime_id, arn)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_a_stream_cut_by_a_dying_worker_counts_as_cut(agent: Agent) -> None:
    session_id = "outcome-cut-000000000000000000000000000"
    with agent.stream(session_id) as reply:
        chunks = reply.iter_bytes()
        assert b"first" in next(chunks)
        os.kill(agent.worker_pid(session_id), signal.SIGKILL)
        with pytest.raises(httpx.HTTPError):
            for _ in chunks:
                pass
    wait_until(lambda: agent.outcomes().get("cut") == 1, timeout=30)


def test_a_client_that_leaves_mid_stream_counts_as_cancelled(agent: Agent) -> None:
    session_id = "outcome-left-00000000000000000000000000"
    cancelled = agent.outcomes().get("cancelled", 0)
    with agent.stream(session_id) as reply:
        assert b"first" in next(reply.iter_bytes())
    wait_until(lambda: agent.outcomes().get("cancelled") == cancelled + 1, timeout=30)
    agent.server.data.stop_runtime_session(agentRuntimeArn=agent.arn, runtimeSessionId=session_id)


def test_a_call_cancelled_before_its_answer_counts_as_cancelled_not_as_an_agent_error(agent: Agent) -> None:
    session_id = "outcome-cancelled-000000000000000000000"
    request_id = "call-to-cancel-1"
    statuses: list[int] = []
    cancelled = agent.outcomes().get("cancelled", 0)  # a client that left counts as cancelled too
    caller = threading.Thread(target=lambda: statuses.append(_invoke(agent, session_id, request_id)))
    caller.start()
    path = f"/_agentcore/runtimes/{agent.runtime_id}/sessions/{session_id}/requests/{request_id}/cancel"
    # 404 until the call is in flight in its worker; then the cancel is accepted.
    wait_until(lambda: agent.server.signed("POST", path).status_code == 200, timeout=30, interval=0.05)
    caller.join(30)
    assert statuses == [424]  # RuntimeClientError on the wire, as before
    wait_until(lambda: agent.outcomes().get("cancelled") == cancelled + 1, timeout=30)
    assert "agent_error" not in agent.outcomes()


def _invoke(agent: Agent, session_id: str, request_id: str) -> int:
    url = f"{agent.server.url}/runtimes/{quote(agent.arn, safe='')}/invocations"
    headers = sign("POST", url, b"{}", {
        "content-type": "application/json", "x-amzn-bedrock-agentcore-runtime-session-id": session_id,
        "x-amzn-bedrock-agentcore-runtime-request-id": request_id,
    })  # fmt: skip
    return httpx.post(url, content=b"{}", headers=headers, timeout=60).status_code


def test_a_call_to_a_missing_runtime_counts_as_a_client_error_of_no_runtime(agent: Agent) -> None:
    missing = "arn:aws:bedrock-agentcore:us-east-1:000000000000:runtime/missing-AAAAAAAAAA"
    with pytest.raises(agent.server.data.exceptions.ResourceNotFoundException):
        agent.server.data.invoke_agent_runtime(agentRuntimeArn=missing, payload=b"{}")
    assert agent.outcomes("unknown") == {"client_error": 1}
    found = samples(httpx.get(agent.metrics_url, timeout=30).text)
    # It never reached a worker: no latency is observed for it, and its made-up id is no label.
    assert not value(found, "agentcore_invocation_duration_seconds_count", runtime="unknown")
    assert not [labels for _, labels in found if ("runtime", "missing-AAAAAAAAAA") in labels]
