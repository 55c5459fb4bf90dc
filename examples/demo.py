"""`make demo`: start the example agents, invoke them (plain, streaming, WebSocket), print what came back.

Uses only the standard library and the `websockets` package our SDK depends on.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import websockets

EXAMPLES = Path(__file__).resolve().parent
SESSION = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(agent: str) -> Iterator[str]:
    """Run examples/<agent> on a free port until the block ends; yields its base URL."""
    port = _free_port()
    script = EXAMPLES / agent
    process = subprocess.Popen(
        [sys.executable, script.name],
        cwd=script.parent,
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(url + "/ping", timeout=1) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None:
                raise RuntimeError(f"{agent} exited: {process.stderr.read().decode().strip()[-500:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{agent} did not answer /ping within 20 s")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(15)


def invoke(url: str, payload: object, session: str | None = None) -> http.client.HTTPResponse:
    headers = {"Content-Type": "application/json"}
    if session:
        headers[SESSION] = session
    request = urllib.request.Request(url + "/invocations", json.dumps(payload).encode(), headers)
    reply: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=30)
    return reply


def show(label: str, sent: object, got: str) -> None:
    print(f"  {label}\n    sent: {json.dumps(sent)}\n    got:  {got}")


async def _ws_round_trip(url: str, messages: list[str]) -> list[str]:
    async with websockets.connect(url.replace("http://", "ws://") + "/ws") as ws:
        replies = []
        for message in messages:
            await ws.send(message)
            replies.append(str(await ws.recv()))
        return replies


def main() -> int:
    print("open-agentcore demo: three example agents, each a real process on a free port\n")
    with running("hello/agent.py") as url:
        print(f"hello agent at {url}")
        payload = {"name": "Alice"}
        with invoke(url, payload) as reply:
            show("plain invocation", payload, reply.read().decode())
    with running("session_aware/agent.py") as url:
        print(f"\nsession-aware agent at {url}")
        for _ in range(2):
            with invoke(url, {}, session="demo-session") as reply:
                show("invocation in session demo-session", {}, reply.read().decode())
    with running("streaming/agent.py") as url:
        print(f"\nstreaming agent at {url}")
        payload = {"prompt": "frames arrive as they are made", "delay": 0.05}
        print(f"  streaming invocation\n    sent: {json.dumps(payload)}")
        with invoke(url, payload) as reply:
            for line in reply:
                if line.strip():
                    print(f"    got:  {line.decode().strip()}", flush=True)
    with running("websocket_echo/agent.py") as url:
        print(f"\nWebSocket echo agent at {url.replace('http://', 'ws://')}/ws")
        messages = ["hello", "over a WebSocket"]
        for sent, got in zip(messages, asyncio.run(_ws_round_trip(url, messages)), strict=True):
            show("message", sent, got)
    print("\nEach example runs the same way by hand: cd examples/hello && python agent.py (see docs/sdk.md)")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except (RuntimeError, OSError, urllib.error.URLError, websockets.WebSocketException) as error:
        print(f"demo failed: {error}", file=sys.stderr)
        raise SystemExit(1) from None
