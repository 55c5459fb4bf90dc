"""Sandboxed workers on TCP behind a per-worker secret (`backends/tcp_worker.py`), without Ray:
the worker the Ray backend starts on each node."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets.exceptions
import websockets.sync.client

from open_agentcore.backends import ProcessWorker, SessionLimits, WorkerAddress, WorkerSpec
from open_agentcore.backends.process import LAUNCHER
from open_agentcore.backends.tcp_worker import SECRET_HEADER, TcpProcessBackend
from open_agentcore.sessions import WorkerClient

AGENT = """
import os
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()

@app.entrypoint
def invoke(payload, context):
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    headers = dict(context.request_headers or {})
    return {"fds": fds, "headers": [name.lower() for name in headers]}
"""


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProcessWorker, WorkerAddress]]:
    """One sandboxed (where bubblewrap works) worker listening on 127.0.0.1."""
    root = tmp_path_factory.mktemp("tcp")
    root.chmod(0o755)
    code = root / "code"
    code.mkdir(mode=0o755)
    (code / "agent.py").write_text(AGENT)
    (code / "agent.py").chmod(0o644)
    backend = TcpProcessBackend("127.0.0.1", "auto", limits=SessionLimits(512 * 1024**2, 1, 256))
    spec = WorkerSpec("wtcp1", Path(sys.executable), code, "agent.py", root / "w" / "wtcp1")
    loop = asyncio.new_event_loop()
    started, address = loop.run_until_complete(backend.start_tcp(spec))
    try:
        yield started, address
    finally:
        loop.run_until_complete(backend.stop(started, grace=1))
        backend.close()
        loop.close()


def _processes_of(root: int) -> list[int]:
    found, frontier = [root], [root]
    while frontier:
        parent = frontier.pop()
        for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
            found.append(int(child))
            frontier.append(int(child))
    return found


def test_every_request_without_the_secret_is_refused(worker: tuple[ProcessWorker, WorkerAddress]) -> None:
    _, address = worker
    url = f"http://{address.host}:{address.port}"
    wrong = {"none": [], "forged": [(SECRET_HEADER, "x" * len(address.secret))], "prefix": [
        (SECRET_HEADER, address.secret[:-1])], "doubled": [(SECRET_HEADER, address.secret)] * 2}  # fmt: skip
    for name, headers in wrong.items():
        for method, path in (("GET", "/ping"), ("POST", "/invocations"), ("GET", "/no-such-path")):
            reply = httpx.request(method, url + path, headers=headers, json={}, timeout=10)
            assert reply.status_code == 403, (name, path)
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        websockets.sync.client.connect(f"ws://{address.host}:{address.port}/ws", open_timeout=10)
    assert refused.value.response.status_code == 403
    assert httpx.get(url + "/ping", headers={SECRET_HEADER: address.secret}, timeout=10).status_code == 200


def test_the_secret_is_in_no_command_line_environment_or_open_descriptor(
    worker: tuple[ProcessWorker, WorkerAddress],
) -> None:
    started, address = worker
    secret = address.secret.encode()
    pids = _processes_of(started.pid)
    assert any(str(LAUNCHER).encode() in Path(f"/proc/{pid}/cmdline").read_bytes() for pid in pids)
    for pid in pids:
        assert secret not in Path(f"/proc/{pid}/cmdline").read_bytes()
        assert secret not in Path(f"/proc/{pid}/environ").read_bytes()
    answer = asyncio.run(_invoke(address))
    # The secret's pipe had its writer closed before the worker started: once read and closed, the
    # pipes left to the agent are its own (event loop wake-ups), each held at both ends.
    pipes = [target for target in answer["fds"].values() if target.startswith("pipe:")]
    assert all(pipes.count(pipe) == 2 for pipe in pipes), pipes
    assert SECRET_HEADER not in answer["headers"]


def test_the_server_s_client_adds_the_secret_and_drops_a_callers(
    worker: tuple[ProcessWorker, WorkerAddress],
) -> None:
    _, address = worker
    answer = asyncio.run(_invoke(address, [(SECRET_HEADER, "a caller's guess")]))
    assert "fds" in answer  # reached the agent: the caller's header did not replace the secret


async def _invoke(address: WorkerAddress, headers: list[tuple[str, str]] | None = None) -> dict[str, object]:
    client = WorkerClient(Path("/nonexistent"), address)
    try:
        reply = await client.send("POST", "/invocations", [("content-type", "application/json"),
                                                           *(headers or [])], b"{}")  # fmt: skip
        assert reply.status == 200
        answer: dict[str, object] = json.loads(await reply.read())
        return answer
    finally:
        await client.close()
