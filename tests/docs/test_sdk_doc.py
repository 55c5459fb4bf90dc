"""Every `# example:` block of docs/sdk.md runs as a real agent process and answers as documented."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import REPO, AgentProcess, wait_until

DOC = REPO / "docs" / "sdk.md"
_BLOCK = re.compile(r"```python\n# example: (\w+)\n(.*?)```", re.S)
SESSION = {"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "doc-session"}


def examples() -> dict[str, str]:
    return {name: code for name, code in _BLOCK.findall(DOC.read_text())}


def _frames(text: str) -> list[Any]:
    return [json.loads(chunk.removeprefix("data: ")) for chunk in text.split("\n\n") if chunk]


def check_hello(agent: AgentProcess) -> None:
    reply = httpx.post(agent.url + "/invocations", json={"name": "Alice"})
    assert reply.json() == {"message": "Hello, Alice!"}


def check_context(agent: AgentProcess) -> None:
    reply = httpx.post(agent.url + "/invocations", json={"q": 1}, headers=SESSION)
    assert reply.json() == {"session": "doc-session", "you_said": {"q": 1}}


def check_results(agent: AgentProcess) -> None:
    reply = httpx.post(agent.url + "/invocations", json={})
    assert reply.json() == {"order": {"id": 7, "placed": "2026-01-31", "total": 19.9}, "tags": ["new"]}


def check_errors(agent: AgentProcess) -> None:
    missing = httpx.post(agent.url + "/invocations", json={})
    assert (missing.status_code, missing.json()) == (422, {"error": "name is required"})
    assert httpx.post(agent.url + "/invocations", content=b"{oops").status_code == 400
    assert httpx.post(agent.url + "/invocations", json={"name": "Bo"}).json() == {"message": "Hello, Bo!"}


def check_streaming(agent: AgentProcess) -> None:
    reply = httpx.post(agent.url + "/invocations", json={"prompt": "hi there"})
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert _frames(reply.text) == [{"token": "hi"}, {"token": "there"}]


def check_websocket(agent: AgentProcess) -> None:
    async def talk() -> Any:
        url = agent.url.replace("http://", "ws://") + "/ws"
        async with websockets.connect(url, additional_headers=SESSION) as ws:
            await ws.send("hello")
            return json.loads(await ws.recv())

    assert asyncio.run(talk()) == {"echo": "hello", "session": "doc-session"}


def check_context_anywhere(agent: AgentProcess) -> None:
    reply = httpx.post(agent.url + "/invocations", json={}, headers=SESSION)
    assert reply.json() == {"handler": "doc-session", "thread": "doc-session"}


def check_background(agent: AgentProcess) -> None:
    reply = httpx.post(agent.url + "/invocations", json={"count": 5})
    assert reply.json() == {"started": True, "status": "HealthyBusy"}
    assert httpx.get(agent.url + "/ping").json()["status"] == "HealthyBusy"
    wait_until(lambda: httpx.get(agent.url + "/ping").json()["status"] == "Healthy", timeout=10)


def check_middleware(agent: AgentProcess) -> None:
    reply = httpx.post(agent.url + "/invocations", json={})
    assert reply.json() == {"model": "loaded once at start-up"}
    assert float(reply.headers["x-elapsed-ms"]) >= 0


def check_logging(agent: AgentProcess) -> None:
    assert httpx.post(agent.url + "/invocations", json={"goal": "tea"}, headers=SESSION).json() == "ok"

    def logged() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in agent.log().splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("logger") == "my_agent"]

    line = wait_until(logged, timeout=5)[0]
    assert line["message"] == "planning for tea" and line["sessionId"] == "doc-session"


CHECKS: dict[str, Callable[[AgentProcess], None]] = {
    name.removeprefix("check_"): check for name, check in globals().items() if name.startswith("check_")
}


def test_every_example_has_a_check() -> None:
    assert set(examples()) == set(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_doc_example_runs_as_documented(name: str, tmp_path: Path, agent_process: Any) -> None:
    code = examples()[name]
    if "app.run()" not in code:
        code += '\n\nif __name__ == "__main__":\n    app.run()\n'
    script = tmp_path / "agent.py"
    script.write_text(code)
    CHECKS[name](agent_process(script))
