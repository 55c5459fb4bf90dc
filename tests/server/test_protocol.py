"""The runtime server's HTTP protocol: bounded request heads (uvicorn's httptools parser has no
bound of its own, ours answers 431), and header and body timeouts that cut only clients that stall,
never a slow app, a long stream or a WebSocket. The attacks themselves are in tests/security."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from websockets.sync.client import connect

from bedrock_agentcore.runtime import AgentCoreRuntimeClient
from open_agentcore.server import ServerConfig
from open_agentcore.server.protocol import DEFAULT_MAX_HEAD, ConnectionLimits, http_protocol
from tests.conftest import free_port, serve_in_thread
from tests.server.conftest import KEY_ID, SECRET, Server, clients, sign
from tests.server.uvicorn_harness import serving

SMALL = 1024


TIMEOUT = 1.0  # the header and body timeouts of the `impatient` server
SLOWER = 1.5  # how long its agent or its clients stay quiet: longer than either timeout
LATE = 1.9  # how long the late reader waits before it reads a body: nearly two timeouts

AGENT = f"""
import asyncio
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


async def frames():
    for number in range(3):
        if number:
            await asyncio.sleep({SLOWER})
        yield {{"frame": number}}


@app.entrypoint
async def invoke(payload, context):
    if payload.get("stream"):
        return frames()
    await asyncio.sleep({SLOWER})
    return {{"slept": {SLOWER}}}


@app.websocket
async def talk(websocket, context):
    await websocket.accept()
    text = await websocket.receive_text()
    await asyncio.sleep({SLOWER})
    await websocket.send_text(text)
    await websocket.close()
"""


def _server(max_header_bytes: int = DEFAULT_MAX_HEAD, **options: Any) -> Iterator[ServerConfig]:
    # Short: worker sockets live under the data dir, and unix socket paths max out at 107 bytes.
    data_dir = Path(tempfile.mkdtemp(prefix="oacp-", dir="/tmp"))
    config = ServerConfig(
        data_dir=data_dir, port=free_port(), warm_pool=0, max_header_bytes=max_header_bytes, **options
    )
    try:
        with serving(config):
            yield config
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def default_port() -> Iterator[int]:
    for config in _server():
        yield config.port


@pytest.fixture(scope="module")
def small_port() -> Iterator[int]:
    """A server whose request heads may be at most 1 KiB."""
    for config in _server(max_header_bytes=SMALL):
        yield config.port


@pytest.fixture(scope="module")
def impatient() -> Iterator[ServerConfig]:
    """A server with header and body timeouts of `TIMEOUT` seconds."""
    yield from _server(header_timeout=TIMEOUT, body_timeout=TIMEOUT)


@pytest.fixture(scope="module")
def impatient_port(impatient: ServerConfig) -> int:
    return impatient.port


@pytest.fixture(scope="module")
def slow_agent(impatient: ServerConfig) -> tuple[Server, str]:
    """The `impatient` server and the ARN of an agent that takes `SLOWER` seconds over everything."""
    server = Server(impatient.url, impatient.data_dir, *clients(impatient.url))
    return server, str(server.deploy({"agent.py": AGENT}, "slowagent")["agentRuntimeArn"])


@pytest.fixture(scope="module")
def capped_port() -> Iterator[int]:
    """A server taking 4 connections, patient enough that silent ones hold their place."""
    for config in _server(max_connections=4, header_timeout=60.0):
        yield config.port


async def _read_late(request: Request) -> PlainTextResponse:
    await asyncio.sleep(LATE)
    return PlainTextResponse(str(len(await request.body())))


@pytest.fixture(scope="module")
def late_reader_port() -> Iterator[int]:
    """The protocol with `TIMEOUT`s serving an app that starts reading a body `LATE` seconds late.

    The runtime server reads every body at once; only an app like this one shows that time the
    server spends not reading is not held against the client.
    """
    app = Starlette(routes=[Route("/late", _read_late, methods=["POST"])])
    protocol = http_protocol(ConnectionLimits(header_timeout=TIMEOUT, body_timeout=TIMEOUT))
    with serve_in_thread(app, http=protocol) as url:
        yield int(url.rsplit(":", 1)[1])


def connection(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30)


def response(sock: socket.socket) -> tuple[int, bytes]:
    """The status and body of the next response on `sock` (bodies with a content-length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"the server closed without a full response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(headers.get("content-length", 0)):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), body


def healthy(port: int) -> bool:
    return httpx.get(f"http://127.0.0.1:{port}/_agentcore/health", timeout=30).status_code == 200


def head(size: int, end: bool = True, extra: str = "") -> bytes:
    """A GET of the health check whose head is about `size` bytes (one long header)."""
    start = f"GET /_agentcore/health HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}X-Padding: ".encode()
    return start + b"p" * max(0, size - len(start)) + (b"\r\n\r\n" if end else b"")


def test_a_request_with_a_200_kib_header_is_refused_with_431_and_the_server_stays_up(
    default_port: int,
) -> None:
    with connection(default_port) as sock:

        def send() -> None:
            # The server may refuse and close before all of it is sent.
            with contextlib.suppress(OSError):
                sock.sendall(head(200 * 1024))

        sender = threading.Thread(target=send)
        sender.start()
        status, _ = response(sock)
        sender.join(30)
    assert status == 431
    assert healthy(default_port)


def test_headers_within_the_default_bound_are_served(default_port: int) -> None:
    with connection(default_port) as sock:
        sock.sendall(head(32 * 1024))
        assert response(sock)[0] == 200


def test_a_head_still_arriving_is_refused_once_past_the_bound(small_port: int) -> None:
    with connection(small_port) as sock:
        # The head never ends: only counting its bytes as they come can answer this.
        sock.sendall(head(SMALL // 2, end=False))
        sock.sendall(b"p" * SMALL)
        status, body = response(sock)
        assert (status, body) == (431, b"request header fields too large")
        assert sock.recv(1) == b"", "the connection should be closed"
    assert healthy(small_port)


def test_a_whole_head_over_the_bound_is_refused_before_it_reaches_the_app(small_port: int) -> None:
    with connection(small_port) as sock:
        sock.sendall(head(2 * SMALL))
        assert response(sock) == (431, b"request header fields too large")


def test_a_websocket_upgrade_with_a_head_over_the_bound_is_refused(small_port: int) -> None:
    upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    upgrade += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    with connection(small_port) as sock:
        sock.sendall(head(2 * SMALL, extra=upgrade).replace(b"/_agentcore/health", b"/runtimes/r/ws"))
        assert response(sock)[0] == 431


def test_each_request_on_a_kept_alive_connection_gets_the_whole_bound(small_port: int) -> None:
    with connection(small_port) as sock:
        for _ in range(3):
            sock.sendall(head(SMALL - 100))
            assert response(sock)[0] == 200
        sock.sendall(head(SMALL // 2, end=False) + b"p" * SMALL)
        assert response(sock)[0] == 431


def test_a_body_does_not_count_toward_the_bound(small_port: int) -> None:
    body = b"b" * (64 * SMALL)
    request = b"POST /_agentcore/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    request += f"Content-Length: {len(body)}\r\n\r\n".encode()
    with connection(small_port) as sock:
        sock.sendall(request + body)
        status, _ = response(sock)
    assert status not in (400, 431)


def signed_list_head(port: int, body: bytes) -> bytes:
    """The head of a signed ListAgentRuntimes whose body is `body`: the server reads it whole."""
    url = f"http://127.0.0.1:{port}/runtimes/"
    headers = {"Host": f"127.0.0.1:{port}", "Content-Length": str(len(body)), **sign("POST", url, body)}
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"POST /runtimes/ HTTP/1.1\r\n{lines}\r\n".encode()


def test_a_body_sent_slowly_but_steadily_is_read_to_the_end_and_answered(impatient_port: int) -> None:
    body = b"{" + b" " * 18 + b"}"
    with connection(impatient_port) as sock:
        sock.sendall(signed_list_head(impatient_port, body))
        # Twice the body timeout in all, a tenth of it between bytes.
        for byte in range(len(body)):
            time.sleep(TIMEOUT / 10)
            sock.sendall(body[byte : byte + 1])
        status, answer = response(sock)
    assert (status, json.loads(answer)) == (200, {"agentRuntimes": []})


def test_a_kept_alive_connection_idle_past_the_header_timeout_is_still_served(impatient_port: int) -> None:
    # Between requests, uvicorn's keep-alive timeout (5 s) applies, not the header timeout.
    with connection(impatient_port) as sock:
        sock.sendall(head(0))
        assert response(sock)[0] == 200
        time.sleep(SLOWER)
        sock.sendall(head(0))
        assert response(sock)[0] == 200


def test_an_agent_slower_than_the_body_timeout_still_answers(slow_agent: tuple[Server, str]) -> None:
    server, arn = slow_agent
    reply = server.data.invoke_agent_runtime(agentRuntimeArn=arn, payload=b"{}", runtimeSessionId="s" * 40)
    assert json.loads(reply["response"].read()) == {"slept": SLOWER}


def test_a_stream_with_pauses_longer_than_the_timeouts_arrives_whole(slow_agent: tuple[Server, str]) -> None:
    server, arn = slow_agent
    reply = server.data.invoke_agent_runtime(
        agentRuntimeArn=arn, payload=b'{"stream": true}', runtimeSessionId="t" * 40
    )
    lines = reply["response"].read().decode().splitlines()
    frames = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    assert frames == [{"frame": 0}, {"frame": 1}, {"frame": 2}]


def test_a_websocket_quiet_for_longer_than_the_timeouts_stays_open(
    slow_agent: tuple[Server, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, arn = slow_agent
    # AWS itself cannot exist here: the admin key of the local server stands in for IAM credentials.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    client = AgentCoreRuntimeClient(region="us-east-1", endpoint_url=server.url)
    url, headers = client.generate_ws_connection(arn, session_id="w" * 40)
    upgrade = {"upgrade", "connection", "sec-websocket-version", "sec-websocket-key", "host"}
    kept = {name: value for name, value in headers.items() if name.lower() not in upgrade}
    with connect(url, additional_headers=kept, open_timeout=60) as websocket:
        websocket.send("still there?")
        assert websocket.recv(timeout=30) == "still there?"


def test_a_client_waiting_for_100_continue_gets_the_whole_body_timeout_once_it_may_go_on(
    late_reader_port: int,
) -> None:
    with connection(late_reader_port) as sock:
        sock.sendall(b"POST /late HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        # Well within the body timeout of the 100 Continue, but not of the request's head.
        time.sleep(TIMEOUT / 2)
        sock.sendall(b"body")
        assert response(sock) == (200, b"4")


def test_a_body_the_app_has_not_read_yet_is_not_held_against_the_client(late_reader_port: int) -> None:
    # Past 64 KiB unread, uvicorn stops reading: the client cannot send, through no fault of its own.
    body = b"b" * (4 * 1024 * 1024)
    request = b"POST /late HTTP/1.1\r\nHost: x\r\n" + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    with connection(late_reader_port) as sock:
        sender = threading.Thread(target=sock.sendall, args=(request,))
        sender.start()
        answer = response(sock)
        sender.join(30)
    assert answer == (200, str(len(body)).encode())


def test_the_connection_that_reaches_the_cap_is_served(capped_port: int) -> None:
    # uvicorn's `limit_concurrency` counts the connection asking too, and refuses this one.
    holders = [connection(capped_port) for _ in range(3)]
    try:
        with connection(capped_port) as sock:
            sock.sendall(head(0))
            assert response(sock)[0] == 200
    finally:
        for holder in holders:
            holder.close()
