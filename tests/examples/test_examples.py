"""Each example in examples/ runs as a real process and answers as its docstring says."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import httpx
import websockets

from tests.conftest import REPO, wait_until

EXAMPLES = REPO / "examples"
SESSION = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"


def _frames(text: str) -> list[Any]:
    return [json.loads(chunk.removeprefix("data: ")) for chunk in text.split("\n\n") if chunk]


def test_hello(agent_process: Any) -> None:
    agent = agent_process(EXAMPLES / "hello" / "agent.py")
    session = {SESSION: "s" * 33}
    first = httpx.post(agent.url + "/invocations", json={"name": "Ada"}, headers=session).json()
    assert first == {"message": "Hello, Ada!", "visit": 1}
    again = httpx.post(agent.url + "/invocations", json={"prompt": "Bo"}, headers=session).json()
    assert again == {"message": "Hello, Bo!", "visit": 2}
    streamed = httpx.post(agent.url + "/invocations", json={"name": "Cy", "stream": True}).text
    assert _frames(streamed) == ["Hello", ", ", "Cy", "!"]

    async def over_websocket() -> str:
        async with websockets.connect(agent.url.replace("http://", "ws://") + "/ws") as ws:
            await ws.send('{"name": "Di"}')
            return str(await ws.recv())

    assert asyncio.run(over_websocket()) == "Hello over a WebSocket, Di!"


def test_session_aware_counts_per_session(agent_process: Any) -> None:
    agent = agent_process(EXAMPLES / "session_aware" / "agent.py")

    def call(session: str) -> Any:
        return httpx.post(agent.url + "/invocations", json={}, headers={SESSION: session}).json()

    assert [call("alice")["count"], call("alice")["count"], call("bob")["count"]] == [1, 2, 1]
    assert call("alice")["same_as_context"] is True


def test_streaming_async_and_sync_generators(agent_process: Any) -> None:
    for script in ("agent.py", "sync_agent.py"):
        agent = agent_process(EXAMPLES / "streaming" / script)
        reply = httpx.post(agent.url + "/invocations", json={"prompt": "a b c", "delay": 0})
        assert reply.headers["content-type"].startswith("text/event-stream")
        tokens = [{"token": t} for t in "abc"]
        assert _frames(reply.text) == [*tokens, {"done": True, "tokens": 3}]


def test_websocket_echo(agent_process: Any) -> None:
    agent = agent_process(EXAMPLES / "websocket_echo" / "agent.py")

    async def talk() -> list[str]:
        async with websockets.connect(agent.url.replace("http://", "ws://") + "/ws") as ws:
            replies = []
            for text in ("one", "two"):
                await ws.send(text)
                replies.append(str(await ws.recv()))
            return replies

    assert asyncio.run(talk()) == ["one", "two"]


def test_async_task_keeps_the_agent_busy_until_the_job_ends(agent_process: Any) -> None:
    agent = agent_process(EXAMPLES / "async_task" / "agent.py")
    assert httpx.get(agent.url + "/ping").json()["status"] == "Healthy"
    started = httpx.post(agent.url + "/invocations", json={"action": "start", "seconds": 1}).json()
    assert started == {"started": "job-1"}
    assert httpx.get(agent.url + "/ping").json()["status"] == "HealthyBusy"
    wait_until(lambda: httpx.get(agent.url + "/ping").json()["status"] == "Healthy", timeout=10)
    status = httpx.post(agent.url + "/invocations", json={"action": "status"}).json()
    assert status["finished"] == ["job-1"] and status["running"] == 0


def test_middleware_adds_its_headers(agent_process: Any) -> None:
    agent = agent_process(EXAMPLES / "middleware" / "agent.py")
    reply = httpx.post(agent.url + "/invocations", json={"prompt": "hi"})
    assert reply.json() == {"echo": {"prompt": "hi"}}
    assert reply.headers["x-agent-name"] == "middleware-example"
    assert float(reply.headers["x-process-time-ms"]) >= 0


def test_demo_runs_the_workflow_against_a_real_server() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo.py")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "is READY" in out
    assert '{"message": "Hello, Alice!", "visit": 1}' in out
    assert '{"message": "Hello, Bob!", "visit": 2}' in out  # the same session's worker, twice
    assert "Hello, Carol!" in out  # streamed
    assert "Hello over a WebSocket, Dave!" in out
    assert "live sessions: 2" in out
