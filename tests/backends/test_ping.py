"""The readiness probe (`backends/ping.py`) against real unix sockets."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from open_agentcore.backends.ping import ping

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def probe(answer: Answer) -> int:
    async def run() -> int:
        with tempfile.TemporaryDirectory(prefix="oacp-", dir="/tmp") as scratch:
            path = Path(scratch) / "worker.sock"
            server = await asyncio.start_unix_server(answer, str(path))
            try:
                return await asyncio.wait_for(ping(path), 10)
            finally:
                server.close()
                await server.wait_closed()

    return asyncio.run(run())


def replying(raw: bytes) -> Answer:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        assert request.startswith(b"GET /ping HTTP/1.1\r\n")
        writer.write(raw)
        await writer.drain()
        writer.close()

    return answer


def test_a_healthy_worker_answers_200() -> None:
    assert probe(replying(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")) == 200


def test_a_busy_or_failing_status_is_told_as_it_is() -> None:
    assert probe(replying(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")) == 503


def test_an_answer_that_is_no_http_is_status_0() -> None:
    assert probe(replying(b"hello there\r\n")) == 0


def test_a_worker_that_hangs_up_without_answering_is_an_error() -> None:
    with pytest.raises(ConnectionResetError):
        probe(replying(b""))


def test_no_socket_is_an_error() -> None:
    with pytest.raises(OSError):
        asyncio.run(ping(Path("/nonexistent-dir-of-oacp/worker.sock")))
