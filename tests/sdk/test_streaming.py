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


async def _until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


async def _lead_of(channel: Any) -> int:
    """How many frames a producer makes before it waits for its socket (at most `HIGH_WATER`;
    fewer when no more come within a few seconds)."""
    from bedrock_agentcore.runtime.streaming import HIGH_WATER

    frames = 0
    while frames < HIGH_WATER:
        try:
            frames += len(await asyncio.wait_for(channel.take(), 3))
        except TimeoutError:
            break
    return frames


def test_many_concurrent_sync_streams_each_run_the_full_lead_ahead() -> None:
    """Turns, not a shared lead, keep producers from crowding the loop out: with sixteen streams
    each still makes `HIGH_WATER` frames between two sends, so frames cross in large batches."""
    from bedrock_agentcore.runtime import streaming
    from bedrock_agentcore.runtime.threads import ThreadPool

    async def frames_made_after_a_full_send(streams: int) -> list[int]:
        loop = asyncio.get_running_loop()
        pool = ThreadPool(max_threads=streams)
        channels = [streaming._Channel(loop) for _ in range(streams)]
        producers = [streaming.SyncProducer(iter(range(1_000_000)), pool) for _ in range(streams)]
        for producer, channel in zip(producers, channels, strict=True):
            producer.start(channel)
        try:
            # Every producer stops only at its lead, so the first batch of each is HIGH_WATER.
            for producer, channel in zip(producers, channels, strict=True):
                producer.credit(await _lead_of(channel))  # all sent, as the response would
            return [await _lead_of(channel) for channel in channels]
        finally:
            for producer in producers:
                producer.stop()
            pool.close()

    assert asyncio.run(frames_made_after_a_full_send(16)) == [streaming.HIGH_WATER] * 16


def test_a_sync_producer_pauses_while_the_event_loop_does_not_run() -> None:
    """A loop that misses its heartbeat gets the interpreter: the producer waits for it instead of
    running to its lead (here the loop is blocked outright, the extreme of being crowded out)."""
    from bedrock_agentcore.runtime import streaming
    from bedrock_agentcore.runtime.threads import ThreadPool

    def slow_steps() -> Iterator[int]:
        for i in range(1_000_000):
            time.sleep(0.001)
            yield i

    async def frames_made_while_blocked() -> int:
        loop = asyncio.get_running_loop()
        pool = ThreadPool(max_threads=1)
        channel = streaming._Channel(loop)
        producer = streaming.SyncProducer(slow_steps(), pool)
        producer.start(channel)
        try:
            producer.credit(len(await channel.take()))
            time.sleep(0.5)  # the scenario, not synchronisation: the loop runs nothing for 0.5 s
            return len(await channel.take())
        finally:
            producer.stop()
            pool.close()

    # Without the pause the producer makes HIGH_WATER frames (one per millisecond) meanwhile.
    assert asyncio.run(frames_made_while_blocked()) < streaming.HIGH_WATER // 2


def test_a_blocked_sync_generator_does_not_hold_back_other_streams(serve: Any) -> None:
    """A generator that computed its frames, then blocks in a step (a model call, say), holds its
    turn for milliseconds at most: the other streams run on."""
    app = BedrockAgentCoreApp()
    release = threading.Event()

    @app.entrypoint
    def handler(payload: Any) -> Iterator[int]:
        yield from range(payload["n"])  # fast steps: this producer takes turns
        if payload.get("block"):
            assert release.wait(60)
            yield -1

    with serve(app) as url:
        blocked = _open_stream(url, {"block": True, "n": 100})
        try:
            _read_until(blocked, b"data: 99\n\n", bytearray())
            # Far longer than the stream takes, far shorter than the block.
            reply = httpx.post(url + "/invocations", json={"n": 20_000}, timeout=15)
            assert _frames(reply.text) == list(range(20_000))
            assert not release.is_set()
        finally:
            release.set()
            blocked.close()


def test_a_new_stream_gets_its_first_frame_while_sixteen_busy_streams_run(serve: Any) -> None:
    """Sixteen generators stepping as fast as they can do not keep a new stream's first frame (or
    the busy streams' own frames) from the client; the bound only catches a hang."""
    app = BedrockAgentCoreApp()
    stop = threading.Event()

    @app.entrypoint
    def handler(payload: Any) -> Iterator[int]:
        if payload.get("busy"):
            i = 0
            while not stop.is_set():
                i += 1
                yield i
        else:
            yield -1

    with serve(app) as url:
        busy = [_open_stream(url, {"busy": True}) for _ in range(16)]
        try:
            for sock in busy:
                _read_until(sock, b"data: 1\n\n", bytearray())
            started = time.monotonic()
            reply = httpx.post(url + "/invocations", json={}, timeout=30)
            assert _frames(reply.text) == [-1]
            assert time.monotonic() - started < 10
            for sock in busy:  # still streaming: each busy stream has frames waiting to be read
                _read_until(sock, b"data: ", bytearray())
        finally:
            stop.set()
            for sock in busy:
                sock.close()
