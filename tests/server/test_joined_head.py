"""The server's protocol writes a response head together with the first piece of its body, but a
head never waits for a body that is slow to come, and nothing held is lost when the answer ends."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
from starlette.types import Receive, Scope, Send

from open_agentcore.server.protocol import ConnectionLimits, http_protocol
from tests.conftest import serve_in_thread

released = threading.Event()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow-stream":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        # The first chunk comes only once the client has seen the head (bounded: the test ends anyway).
        await asyncio.to_thread(released.wait, 30)
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    body = b"whole answer"
    headers = [(b"content-length", str(len(body)).encode())]
    if scope["path"] == "/closing":
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with serve_in_thread(app, http=http_protocol(ConnectionLimits())) as url:
        yield int(url.rsplit(":", 1)[1])


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_a_streamed_head_arrives_before_a_first_chunk_that_waits_for_it(port: int) -> None:
    released.clear()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /slow-stream HTTP/1.1\r\nhost: x\r\n\r\n")
        head = _read_until(sock, b"\r\n\r\n")  # times out (fails) if the head waited for the chunk
        assert head.startswith(b"HTTP/1.1 200")
        released.set()
        assert b"first" in _read_until(sock, b"first")


def test_small_answers_on_a_kept_alive_connection_arrive_whole_one_after_another(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for _ in range(3):
            sock.sendall(b"GET /small HTTP/1.1\r\nhost: x\r\n\r\n")
            answer = _read_until(sock, b"whole answer")
            assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n\r\nwhole answer")


def test_an_answer_that_closes_the_connection_arrives_whole_before_the_close(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /closing HTTP/1.1\r\nhost: x\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200") and received.endswith(b"whole answer")
