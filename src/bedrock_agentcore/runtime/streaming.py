"""Streaming handler results to the client as Server-Sent Events, frame by frame, as produced.

A generator never runs on the server's event loop: a sync generator is driven by one pool thread
for its whole life (`threads.py`), stepping it only in its turn (`turns.py`), an async generator
by a worker loop (`loops.py`). Frames cross back through a `_Channel`, which wakes the server loop
only when the response is waiting for more, and the response sends everything that has piled up
in one write. The producer may run at most `HIGH_WATER` frames ahead of the socket, so a slow
reader slows the generator instead of growing memory. When the client goes away the generator is
closed where it runs, so its `finally` blocks run.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .encoding import sse_frame
from .inbox import inbox_for
from .loops import LoopPool, WorkerLoop
from .threads import ThreadPool
from .turns import FAST_RUN, SLOW_STEP, Turns, turns_of

logger = logging.getLogger("bedrock_agentcore.app")

HIGH_WATER = 64
_END = object()
_DISCONNECTED = object()


def error_frame(exc: BaseException) -> bytes:
    """The final frame of a stream whose generator raised."""
    return sse_frame(
        {
            "error": str(exc),
            "error_type": type(exc).__name__,
            "message": "The agent raised an exception while streaming; the stream ends here.",
        }
    )


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Channel:
    """Frames handed from a producer (any thread) to the response on the server loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: collections.deque[object] = collections.deque()
        self._lock = threading.Lock()
        self._waiter: asyncio.Future[None] | None = None

    def push(self, item: object) -> None:
        with self._lock:
            self._items.append(item)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._loop.call_soon_threadsafe(_wake, waiter)

    async def take(self) -> list[object]:
        while True:
            with self._lock:
                if self._items:
                    items = list(self._items)
                    self._items.clear()
                    return items
                waiter = self._waiter = self._loop.create_future()
            await waiter


class _Producer(Protocol):
    def start(self, channel: _Channel) -> None: ...
    def credit(self, frames: int) -> None: ...
    def stop(self) -> None: ...


class SyncProducer:
    """Drives a sync iterator in one pool thread, up to `HIGH_WATER` frames ahead of its socket.

    A thread whose generator computes its frames steps it only in its turn (`turns.py`), so many
    streams can each run far ahead of their sockets (few hand-offs per frame) without keeping the
    event loop, or a new stream's first frame, waiting for the interpreter lock.
    """

    def __init__(self, iterator: Iterator[Any], threads: ThreadPool) -> None:
        self._iterator = iterator
        self._threads = threads
        self._credited = threading.Condition(threading.Lock())
        self._sent = 0  # frames the response has sent; written under `_credited`
        self._stopped = False

    def start(self, channel: _Channel) -> None:
        turns = turns_of(asyncio.get_running_loop())
        turns.attach()
        # The pool thread runs in a copy of this context, so handler code sees its request's ids.
        running = asyncio.ensure_future(self._threads.run(self._run, channel, turns))
        running.add_done_callback(_retrieve)
        running.add_done_callback(lambda _: turns.detach())

    def _run(self, channel: _Channel, turns: Turns) -> None:
        pushed = 0
        fast = 0  # steps in a row quicker than SLOW_STEP: only a computing producer takes turns
        began = time.monotonic()
        try:
            for item in self._iterator:
                fast = fast + 1 if time.monotonic() - began < SLOW_STEP else 0
                channel.push(sse_frame(item))
                pushed += 1
                if pushed - self._sent >= HIGH_WATER:
                    turns.give(self)
                    self._wait_for_credit(pushed)
                elif fast < FAST_RUN:
                    turns.give(self)  # its step waited: it steps on its own from now on
                    if turns.loop_is_late():
                        turns.pause(self)
                elif turns.should_pause(self):
                    turns.pause(self)
                if fast >= FAST_RUN:
                    turns.take(self)
                if self._stopped:
                    break
                began = turns.stepping(self)
        except Exception as exc:
            logger.exception("Streaming handler failed")
            channel.push(error_frame(exc))
        finally:
            turns.give(self)
            close = getattr(self._iterator, "close", None)
            try:
                if close is not None:
                    close()
            except Exception:
                logger.exception("Closing the stream's generator failed")
            finally:
                channel.push(_END)

    def _wait_for_credit(self, pushed: int) -> None:
        with self._credited:
            while pushed - self._sent >= HIGH_WATER and not self._stopped:
                self._credited.wait()

    def credit(self, frames: int) -> None:
        with self._credited:
            self._sent += frames
            self._credited.notify()

    def stop(self) -> None:
        with self._credited:
            self._stopped = True
            self._credited.notify()


class AsyncProducer:
    """Drives an async iterator on a worker loop (`pinned` when it must stay where it was made)."""

    def __init__(
        self, iterator: AsyncIterator[Any], pool: LoopPool, pinned: WorkerLoop | None = None
    ) -> None:
        self._iterator = iterator
        self._pool = pool
        self._pinned = pinned
        self._loop: asyncio.AbstractEventLoop | None = None
        self._credits: asyncio.Semaphore | None = None
        self._running: asyncio.Future[Any] | None = None

    def start(self, channel: _Channel) -> None:
        running = asyncio.ensure_future(
            self._pool.run(self._run(channel), contextvars.copy_context(), self._pinned)
        )
        running.add_done_callback(_retrieve)
        self._running = running

    async def _run(self, channel: _Channel) -> None:
        self._loop = asyncio.get_running_loop()
        self._credits = credits = asyncio.Semaphore(HIGH_WATER)
        try:
            async for item in self._iterator:
                channel.push(sse_frame(item))
                await credits.acquire()
        except Exception as exc:
            logger.exception("Streaming handler failed")
            channel.push(error_frame(exc))
        finally:
            aclose = getattr(self._iterator, "aclose", None)
            try:
                if aclose is not None:
                    await aclose()
            except Exception:
                logger.exception("Closing the stream's generator failed")
            finally:
                channel.push(_END)

    def credit(self, frames: int) -> None:
        if self._loop is not None:
            inbox_for(self._loop).post_batched(self._add_credits, frames)

    def _add_credits(self, frames: int) -> None:
        if self._credits is not None:
            for _ in range(frames):
                self._credits.release()

    def stop(self) -> None:
        if self._running is not None:
            self._running.cancel()


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class EventStreamResponse(Response):
    """A `text/event-stream` response fed by a producer; ends early when the client disconnects."""

    media_type = "text/event-stream"

    def __init__(self, producer: _Producer) -> None:
        # No Content-Length: the body is open-ended, sent chunked as frames arrive.
        self.status_code = 200
        self.background = None
        self.body = b""
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        self.producer = producer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        channel = _Channel(asyncio.get_running_loop())
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        self.producer.start(channel)
        watcher = asyncio.get_running_loop().create_task(_watch_disconnect(receive, channel))
        finished = False
        try:
            finished = await self._pump(channel, send)
        finally:
            watcher.cancel()
            if not finished:
                self.producer.stop()
        if finished:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(self, channel: _Channel, send: Send) -> bool:
        """Send frames until the producer ends (True) or the client goes away (False)."""
        while True:
            items = await channel.take()
            frames: list[bytes] = []
            outcome: bool | None = None
            for item in items:
                if item is _END:
                    outcome = True
                    break
                if item is _DISCONNECTED:
                    outcome = False
                    break
                frames.append(item)  # type: ignore[arg-type]
            if frames:
                try:
                    await send({"type": "http.response.body", "body": b"".join(frames), "more_body": True})
                except OSError:
                    return False
                self.producer.credit(len(frames))
            if outcome is not None:
                return outcome


async def _watch_disconnect(receive: Receive, channel: _Channel) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            channel.push(_DISCONNECTED)
            return


__all__ = ["HIGH_WATER", "AsyncProducer", "EventStreamResponse", "SyncProducer", "error_frame"]
