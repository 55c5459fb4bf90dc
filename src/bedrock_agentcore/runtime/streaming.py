"""Streaming handler results to the client as Server-Sent Events, frame by frame, as produced.

A generator never runs on the server's event loop: a sync generator is driven by one pool thread
for its whole life (`threads.py`), an async generator by a worker loop (`loops.py`). Frames cross
back through a `_Channel`, which wakes the server loop only when the response is waiting for more,
and the response sends everything that has piled up in one write. A producer runs only a bounded
lead ahead of the socket (`HIGH_WATER` frames for async generators; for sync generators their
share of the app's `StreamBudget`), so a slow reader slows the generator instead of growing
memory, and many busy streams cannot make the server loop's turns, and so a new request, wait
longer. A sync generator's first step runs in the thread job that called the handler (`prime`),
so its first frame leaves with the response head. When the client goes away the generator is
closed where it runs, so its `finally` blocks run.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .budget import StreamBudget
from .encoding import sse_frame
from .inbox import inbox_for
from .loops import LoopPool, WorkerLoop
from .threads import ThreadPool

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


@dataclass
class PrimedStream:
    """A sync iterator whose first step already ran in the thread that called the handler.

    `head` holds what that step produced (a frame; or an error frame and the end; or just the
    end), `context` the context the step left behind, in which the rest of the iteration runs so
    that context variables set by the generator carry on from step to step.
    """

    iterator: Iterator[Any]
    head: list[object]
    context: contextvars.Context

    @property
    def finished(self) -> bool:
        """True when the first step was also the last: nothing is left to drive."""
        return bool(self.head) and self.head[-1] is _END


def prime(iterator: Iterator[Any]) -> PrimedStream:
    """Take a sync iterator's first item now, in the calling pool thread.

    Under many busy streams every hop between the server loop and a pool thread waits behind the
    other streams' work; producing the first frame in the same thread job that called the handler
    lets the response send it with its headers, so a new stream's first frame costs one hop.
    """
    try:
        head: list[object] = [sse_frame(next(iterator))]
    except StopIteration:
        head = [_END]
    except Exception as exc:
        logger.exception("Streaming handler failed")
        head = [error_frame(exc), _END]
        _close(iterator)
    return PrimedStream(iterator, head, contextvars.copy_context())


def _close(iterator: Iterator[Any]) -> None:
    close = getattr(iterator, "close", None)
    try:
        if close is not None:
            close()
    except Exception:
        logger.exception("Closing the stream's generator failed")


class SyncProducer:
    """Drives a primed sync iterator in one pool thread, from its second item on.

    The producer runs at most its share of the app's `StreamBudget` ahead of the socket.
    """

    def __init__(self, primed: PrimedStream, threads: ThreadPool, budget: StreamBudget) -> None:
        self._primed = primed
        self._threads = threads
        self._budget = budget
        self._room = threading.Condition(threading.Lock())
        self._ahead = len(primed.head)  # already produced: it counts against the lead like any frame
        self._stopped = False
        self._resume_at = -1  # while the producer waits: the lead it waits to fall to

    def start(self, channel: _Channel) -> None:
        primed = self._primed
        for item in primed.head:
            channel.push(item)
        if primed.finished:
            return
        self._budget.opened()
        running = self._threads.submit(primed.context.run, self._run, channel)
        running.add_done_callback(self._ended)

    def _ended(self, running: asyncio.Future[None]) -> None:
        self._budget.closed()
        _retrieve(running)

    def _run(self, channel: _Channel) -> None:
        iterator = self._primed.iterator
        try:
            while self._wait_for_room():
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                frame = sse_frame(item)
                with self._room:
                    self._ahead += 1
                channel.push(frame)
        except Exception as exc:
            logger.exception("Streaming handler failed")
            channel.push(error_frame(exc))
        finally:
            try:
                _close(iterator)
            finally:
                channel.push(_END)

    def _wait_for_room(self) -> bool:
        """Once this stream holds its whole lead, block until half of it is sent: a refill is then
        one burst of frames, not one thread wake-up per write. False once the client is gone."""
        with self._room:
            lead = self._budget.lead()
            if self._ahead >= lead:
                self._resume_at = lead // 2
                while self._ahead > self._resume_at and not self._stopped:
                    self._room.wait()
                self._resume_at = -1
            return not self._stopped

    def credit(self, frames: int) -> None:
        with self._room:
            self._ahead -= frames
            if self._ahead <= self._resume_at:
                self._room.notify()

    def stop(self) -> None:
        with self._room:
            self._stopped = True
            self._room.notify()


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


__all__ = [
    "HIGH_WATER",
    "AsyncProducer",
    "EventStreamResponse",
    "PrimedStream",
    "SyncProducer",
    "error_frame",
    "prime",
]
