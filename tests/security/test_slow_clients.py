"""Slow and silent clients against a real runtime server: each attack is dropped or refused, and the
health check keeps answering. Timeouts are 1 s here, the connection cap small."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from open_agentcore.server import ServerConfig
from tests.conftest import free_port, wait_until
from tests.server.conftest import sign
from tests.server.uvicorn_harness import serving
from tests.tls_certificates import issue

BOUND = 10.0  # how long a test waits for the server to drop a client: ten times the timeout
HEAD = b"GET /_agentcore/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@contextlib.contextmanager
def _server(**overrides: Any) -> Iterator[ServerConfig]:
    # Short: worker sockets live under the data dir, and unix socket paths max out at 107 bytes.
    data_dir = Path(tempfile.mkdtemp(prefix="oacs-", dir="/tmp"))
    options: dict[str, Any] = {"warm_pool": 0, "header_timeout": 1.0, "body_timeout": 1.0}
    config = ServerConfig(data_dir=data_dir, port=free_port(), **{**options, **overrides})
    try:
        with serving(config):
            yield config
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def impatient() -> Iterator[ServerConfig]:
    """A server with 1 s header and body timeouts."""
    with _server() as config:
        yield config


@pytest.fixture(scope="module")
def capped() -> Iterator[ServerConfig]:
    """A server taking at most 8 connections, patient enough that silent ones hold their place."""
    with _server(max_connections=8, header_timeout=60.0) as config:
        yield config


@pytest.fixture(scope="module")
def tls() -> Iterator[tuple[ServerConfig, ssl.SSLContext]]:
    """An impatient server over TLS, and a client context that trusts its certificate."""
    directory = Path(tempfile.mkdtemp(prefix="oacc-"))
    try:
        certificates = issue(directory)
        with _server(tls_cert=certificates.cert, tls_key=certificates.key) as config:
            yield config, ssl.create_default_context(cafile=str(certificates.ca))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def connection(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=BOUND)


def until_closed(sock: socket.socket, then: Callable[[], None] | None = None, every: float = 0.2) -> bytes:
    """Everything the server sends on `sock` until it closes it; `then` runs each `every` seconds of
    silence meanwhile. Fails if the server keeps the connection open for `BOUND` seconds."""
    received = b""
    silent = 0.0
    sock.settimeout(every if then else BOUND)
    while silent < BOUND:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            silent += every
            if then is not None:
                with contextlib.suppress(OSError):  # the server may close it meanwhile
                    then()
            continue
        except (ConnectionResetError, ssl.SSLError):
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the server still holds the connection after {BOUND} s: {received!r}")


def trickle(sock: socket.socket) -> Callable[[], None]:
    """One more header line each call: a slowloris client."""
    lines = iter(range(1_000_000))
    return lambda: sock.sendall(f"X-Slow-{next(lines)}: 1\r\n".encode())


def signed_list_request(config: ServerConfig, body: bytes) -> bytes:
    """The head of a signed ListAgentRuntimes whose body is `body`: the server reads it whole."""
    url = f"http://127.0.0.1:{config.port}/runtimes/"
    headers = {"Host": f"127.0.0.1:{config.port}", "Content-Length": str(len(body))}
    headers.update(sign("POST", url, body))
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"POST /runtimes/ HTTP/1.1\r\n{lines}\r\n".encode()


def health_status(port: int) -> int:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/_agentcore/health", timeout=BOUND).status_code
    except httpx.HTTPError:
        return 0


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def next_response(sock: socket.socket) -> bytes:
    """The next whole response on `sock` (one with a content-length), and nothing past it."""
    sock.settimeout(BOUND)
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)  # one at a time: whatever follows the response is not read here
        assert byte, f"the server closed without a full response: {head!r}"
        head += byte
    length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
    body = b""
    while len(body) < length:
        body += sock.recv(length - len(body))
    return head + body


def test_a_slowloris_head_is_closed(impatient: ServerConfig) -> None:
    with connection(impatient.port) as sock:
        sock.sendall(HEAD)
        answered = until_closed(sock, then=trickle(sock))
    # A line arriving as the server closes turns its close into a reset that may lose the 408.
    assert answered == b"" or status(answered) == 408


def test_an_unfinished_head_gets_408_and_is_closed(impatient: ServerConfig) -> None:
    with connection(impatient.port) as sock:
        sock.sendall(HEAD + b"X-Never: ")
        answered = until_closed(sock)
    assert status(answered) == 408
    assert b"connection: close" in answered


def test_a_connection_that_never_sends_a_byte_is_closed(impatient: ServerConfig) -> None:
    with connection(impatient.port) as sock:
        assert until_closed(sock) == b""


def test_a_kept_alive_connection_that_stalls_in_its_next_head_is_closed(impatient: ServerConfig) -> None:
    # uvicorn's keep-alive timer stops at the first byte of the next request.
    with connection(impatient.port) as sock:
        sock.sendall(HEAD + b"\r\n")
        first = next_response(sock)
        sock.sendall(HEAD)
        answered = until_closed(sock)
    assert status(first) == 200
    assert status(answered) == 408


def test_half_a_body_then_silence_gets_408_and_is_closed(impatient: ServerConfig) -> None:
    body = b'{"maxResults": 10}'
    with connection(impatient.port) as sock:
        sock.sendall(signed_list_request(impatient, body) + body[:9])
        answered = until_closed(sock)
    assert status(answered) == 408


def test_a_body_that_stalls_after_an_early_answer_is_closed(impatient: ServerConfig) -> None:
    # The answer re-arms uvicorn's keep-alive timer; the next byte of body stops it for good.
    with connection(impatient.port) as sock:
        sock.sendall(HEAD + b"Content-Length: 100\r\n\r\n" + b"b")
        early = next_response(sock)
        sock.sendall(b"b")
        until_closed(sock)
    assert status(early) == 200


def test_past_the_connection_cap_requests_get_503_until_connections_close(capped: ServerConfig) -> None:
    holders = [connection(capped.port) for _ in range(capped.max_connections)]
    try:
        with connection(capped.port) as sock:
            sock.sendall(HEAD + b"\r\n")
            refused = until_closed(sock)
    finally:
        for holder in holders:
            holder.close()
    assert status(refused) == 503
    wait_until(lambda: health_status(capped.port) == 200, timeout=BOUND)


def test_a_websocket_upgrade_past_the_connection_cap_gets_503(capped: ServerConfig) -> None:
    upgrade = b"GET /runtimes/r/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    upgrade += b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    upgrade += b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    holders = [connection(capped.port) for _ in range(capped.max_connections)]
    try:
        with connection(capped.port) as sock:
            sock.sendall(upgrade)
            refused = until_closed(sock)
    finally:
        for holder in holders:
            holder.close()
    assert status(refused) == 503


def test_a_slowloris_over_tls_is_closed(tls: tuple[ServerConfig, ssl.SSLContext]) -> None:
    config, trusting = tls
    with trusting.wrap_socket(connection(config.port), server_hostname="127.0.0.1") as sock:
        sock.sendall(HEAD)
        answered = until_closed(sock, then=trickle(sock))
    assert answered == b"" or status(answered) == 408


class Slowloris:
    """`count` connections each sending a request head one header line every 0.2 s, until stopped."""

    def __init__(self, port: int, count: int) -> None:
        self._sockets = [connection(port) for _ in range(count)]
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self) -> Slowloris:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        self._thread.join(BOUND)
        for sock in self._sockets:
            sock.close()

    def _trickle(self) -> None:
        sending = {sock: trickle(sock) for sock in self._sockets}
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.sendall(HEAD)
        while sending and not self._stopped.wait(0.2):
            for sock, send_line in list(sending.items()):
                try:
                    send_line()
                except OSError:  # dropped by the server
                    del sending[sock]


@contextlib.contextmanager
def server_process(**options: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`agentcore server run` in its own process (so its descriptor limit can be lowered); yields
    its port and process."""
    home = Path(tempfile.mkdtemp(prefix="oacs-", dir="/tmp"))
    port = free_port()
    command = [
        sys.executable, "-m", "open_agentcore.cli", "server", "run", "--port", str(port),
        "--data-dir", str(home / "server"), "--warm-pool", "0", "--log-level", "warning",
    ]  # fmt: skip
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}", value]
    environment = {**os.environ, "AGENTCORE_HOME": str(home)}
    with (home / "server.log").open("wb") as log:
        process = subprocess.Popen(command, env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        wait_until(lambda: process.poll() is not None or health_status(port) == 200, timeout=60, interval=0.1)
        assert process.poll() is None, (home / "server.log").read_text()
        yield port, process
    finally:
        process.kill()
        process.wait(30)
        shutil.rmtree(home, ignore_errors=True)


def test_a_hundred_slowloris_clients_cannot_keep_the_health_check_out() -> None:
    with server_process(header_timeout="1", body_timeout="1") as (port, process):
        # Room for 30 more connections: the slowloris clients alone would take every descriptor.
        in_use = len(os.listdir(f"/proc/{process.pid}/fd"))
        _, hard = resource.prlimit(process.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(process.pid, resource.RLIMIT_NOFILE, (in_use + 30, hard))
        with Slowloris(port, 100):
            wait_until(lambda: health_status(port) == 200, timeout=2 * BOUND, interval=0.1)
