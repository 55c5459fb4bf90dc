"""Server-Sent Events from generators: `runtime/streaming.py`, through a real server and socket."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
from hypothesis import given
from hypothesis import strategies as st

from bedrock_agentcore import BedrockAgentCoreApp, BedrockAgentCoreContext
from bedrock_agentcore.runtime.encoding import sse_frame
from tests.conftest import wait_until


def _frames(body: str) -> list[Any]:
    assert body.endswith("\n\n")
    return [json.loads(chunk.removeprefix("data: ")) for chunk in body.split("\n\n") if chunk]


def _open_stream(url: str, payload: dict[str, Any], headers: dict[str, str] | None = None) -> socket.socket:
    """POST /invocations over a raw socket so the test reads bytes exactly as they arrive."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    body = json.dumps(payload).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    sock.sendall(
        (
            f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n"
        ).encode()
        + body
    )
    return sock


def _read_until(sock: socket.socket, marker: bytes, buffer: bytearray) -> bytes:
    while marker not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before {marker!r}; got {bytes(buffer)!r}")
        buffer.extend(chunk)
    return bytes(buffer)


def test_sync_generator_streams_each_item_as_a_json_frame(serve: Any) -> None:
    app = BedrockAgentCoreApp()

    @app.entrypoint
    def handler(payload: Any) -> Iterator[Any]:
        yield "text"
        yield {"n": 1}
        yield [1, 2]

    with serve(app) as url:
        reply = httpx.post(url + "/invocations", json={})
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert _frames(reply.text) == ["text", {"n": 1}, [1, 2]]


def test_async_generator_and_coroutine_returning_one_both_stream(serve: Any) -> None:
    app = BedrockAgentCoreApp()

    async def numbers(count: int) -> AsyncIterator[int]:
        for i in range(count):
            await asyncio.sleep(0)
            yield i

    @app.entrypoint
    async def handler(payload: Any) -> Any:
        return numbers(payload["n"])

    direct = BedrockAgentCoreApp()

    @direct.entrypoint
    async def generator(payload: Any) -> AsyncIterator[int]:
        async for i in numbers(payload["n"]):
            yield i

    with serve(app) as url:
        assert _frames(httpx.post(url + "/invocations", json={"n": 5}).text) == [0, 1, 2, 3, 4]
    with serve(direct) as url:
        assert _frames(httpx.post(url + "/invocations", json={"n": 2000}).text) == list(range(2000))


def test_frames_are_flushed_as_produced_not_when_the_generator_ends(serve: Any) -> None:
    app = BedrockAgentCoreApp()
    first_frame_seen = threading.Event()

    @app.entrypoint
    def handler(payload: Any) -> Iterator[str]:
        yield "first"
        # The generator only continues once the client has the first frame in hand.
        assert first_frame_seen.wait(10)
        yield "second"

    with serve(app) as url:
        sock = _open_stream(url, {})
        buffer = bytearray()
        try:
            _read_until(sock, b'data: "first"\n\n', buffer)
            first_frame_seen.set()
            _read_until(sock, b'data: "second"\n\n', buffer)
        finally:
            sock.close()


def test_async_generator_error_ends_with_error_frame(serve: Any) -> None:
    app = BedrockAgentCoreApp()

    @app.entrypoint
    async def handler(payload: Any) -> AsyncIterator[str]:
        yield "before"
        raise KeyError("boom")

    with serve(app) as url:
        frames = _frames(httpx.post(url + "/invocations", json={}).text)
    assert frames[0] == "before"
    assert frames[1]["error_type"] == "KeyError"
    assert frames[1]["error"] == "'boom'"
    assert set(frames[1]) == {"error", "error_type", "message"}


def test_sync_generator_error_ends_with_error_frame(serve: Any) -> None:
    app = BedrockAgentCoreApp()

    @app.entrypoint
    def handler(payload: Any) -> Iterator[int]:
        yield 1
        raise ValueError("bad value")

    with serve(app) as url:
        frames = _frames(httpx.post(url + "/invocations", json={}).text)
    assert frames == [1, {"error": "bad value", "error_type": "ValueError", "message": frames[1]["message"]}]


def _disconnect_test(app: BedrockAgentCoreApp, closed: threading.Event, serve: Any) -> None:
    with serve(app) as url:
        sock = _open_stream(url, {})
        _read_until(sock, b"data: 0\n\n", bytearray())
        sock.close()
        disconnected_at = time.monotonic()
        assert closed.wait(5), "the generator's finally never ran after the client went away"
        assert time.monotonic() - disconnected_at < 1.0


def test_client_disconnect_closes_a_sync_generator_promptly(serve: Any) -> None:
    app = BedrockAgentCoreApp()
    closed = threading.Event()

    @app.entrypoint
    def handler(payload: Any) -> Iterator[int]:
        try:
            for i in range(100_000):
                yield i
                time.sleep(0.02)
        finally:
            closed.set()

    _disconnect_test(app, closed, serve)


def test_client_disconnect_closes_an_async_generator_promptly(serve: Any) -> None:
    app = BedrockAgentCoreApp()
    closed = threading.Event()

    @app.entrypoint
    async def handler(payload: Any) -> AsyncIterator[int]:
        try:
            for i in range(100_000):
                yield i
                await asyncio.sleep(0.5)
        finally:
            closed.set()

    _disconnect_test(app, closed, serve)


def test_slow_reader_holds_the_producer_back(serve: Any) -> None:
    """A reader that stops reading must stall the generator, not let frames pile up in memory."""
    app = BedrockAgentCoreApp()
    produced = [0]

    @app.entrypoint
    def handler(payload: Any) -> Iterator[str]:
        for i in range(1_000_000):
            produced[0] = i
            yield "x" * 1024

    with serve(app) as url:
        sock = _open_stream(url, {})
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            _read_until(sock, b"data: ", bytearray())

            def settled() -> bool:
                before = produced[0]
                time.sleep(0.2)
                return produced[0] == before

            wait_until(settled, timeout=10)
            # Socket buffers hold a few MB at most; 1 KiB frames beyond that were never made.
            assert produced[0] < 20_000
        finally:
            sock.close()


def test_stream_handlers_see_their_request_context(serve: Any) -> None:
    app = BedrockAgentCoreApp()

    @app.entrypoint
    async def handler(payload: Any) -> AsyncIterator[Any]:
        yield BedrockAgentCoreContext.get_session_id()
        await asyncio.sleep(0)
        yield BedrockAgentCoreContext.get_request_id()

    with serve(app) as url:
        reply = httpx.post(
            url + "/invocations",
            json={},
            headers={
                "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "stream-session",
                "X-Amzn-Bedrock-AgentCore-Runtime-Request-Id": "req-7",
            },
        )
    assert _frames(reply.text) == ["stream-session", "req-7"]


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_sse_frame_is_one_data_line_that_round_trips(value: Any) -> None:
    frame = sse_frame(value)
    assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
    line = frame[len(b"data: ") : -2]
    assert b"\n" not in line and b"\r" not in line
    assert json.loads(line) == value


def test_concurrent_sync_streams_share_the_lead_over_their_sockets() -> None:
    """Each sync generator may run `HIGH_WATER / streams` frames ahead (at least MIN_LEAD), so many
    streams together do not hold the interpreter lock away from the event loop."""
    from bedrock_agentcore.runtime import streaming
    from bedrock_agentcore.runtime.threads import ThreadPool

    async def until(condition: Any) -> None:
        deadline = time.monotonic() + 20
        while not condition():
            assert time.monotonic() < deadline, "the producers never settled"
            await asyncio.sleep(0.01)

    async def frames_made_after_a_full_send(streams: int) -> list[int]:
        loop = asyncio.get_running_loop()
        pool = ThreadPool(max_threads=streams)
        channels = [streaming._Channel(loop) for _ in range(streams)]
        producers = [streaming.SyncProducer(iter(range(1_000_000)), pool) for _ in range(streams)]
        for producer, channel in zip(producers, channels, strict=True):
            producer.start(channel)

        def all_waiting() -> bool:  # every producer as far ahead as it may go
            lead = streaming._producing.lead()
            return streaming._producing.count == streams and all(p._ahead >= lead for p in producers)

        try:
            await until(all_waiting)
            for producer, channel in zip(producers, channels, strict=True):
                producer.credit(len(await channel.take()))  # all sent, as the response would
            await until(all_waiting)
            return [len(await channel.take()) for channel in channels]
        finally:
            for producer in producers:
                producer.stop()
            pool.close()

    assert asyncio.run(frames_made_after_a_full_send(1)) == [streaming.HIGH_WATER]
    shared = max(streaming.MIN_LEAD, streaming.HIGH_WATER // 16)
    assert asyncio.run(frames_made_after_a_full_send(16)) == [shared] * 16
