"""Bounded request heads: uvicorn's httptools parser has no bound of its own, ours answers 431."""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from open_agentcore.server import ServerConfig
from open_agentcore.server.protocol import DEFAULT_MAX_HEAD
from tests.conftest import free_port
from tests.server.uvicorn_harness import serving

SMALL = 1024


def _server(max_header_bytes: int = DEFAULT_MAX_HEAD) -> Iterator[int]:
    # Short: worker sockets live under the data dir, and unix socket paths max out at 107 bytes.
    data_dir = Path(tempfile.mkdtemp(prefix="oacp-", dir="/tmp"))
    config = ServerConfig(data_dir=data_dir, port=free_port(), warm_pool=0, max_header_bytes=max_header_bytes)
    try:
        with serving(config):
            yield config.port
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def default_port() -> Iterator[int]:
    yield from _server()


@pytest.fixture(scope="module")
def small_port() -> Iterator[int]:
    """A server whose request heads may be at most 1 KiB."""
    yield from _server(max_header_bytes=SMALL)


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
