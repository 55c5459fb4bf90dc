"""The thread pool where sync handlers run: lean, because every sync invocation crosses it.

Each job carries the caller's context and its loop's inbox (`inbox.py`), through which the worker
settles the caller's future. A thread is started whenever queued jobs outnumber idle threads, up
to `max_threads`; threads then stay. Jobs beyond that wait in order.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .inbox import LoopInbox, inbox_for

_T = TypeVar("_T")

DEFAULT_MAX_THREADS = 40

_Job = tuple[contextvars.Context, Callable[..., Any], tuple[Any, ...], LoopInbox, "asyncio.Future[Any]"]


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class ThreadPool:
    """Runs blocking callables in worker threads and awaits them from an event loop."""

    def __init__(self, max_threads: int = DEFAULT_MAX_THREADS) -> None:
        self.max_threads = max(1, max_threads)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._queued = 0

    @property
    def size(self) -> int:
        """How many worker threads exist."""
        return self._threads

    def prestart(self) -> None:
        """Start one worker thread now, if there is none, so the first call need not wait for one
        to be scheduled. Blocks until it runs: call it off the server's loop."""
        with self._lock:
            if self._threads > 0:
                return
            self._threads += 1
        thread = threading.Thread(target=self._work, name=f"agentcore-thread-{self._threads}", daemon=True)
        contextvars.Context().run(thread.start)

    async def run(self, func: Callable[..., _T], *args: Any) -> _T:
        """Call `func(*args)` in a worker thread, inside a copy of the current context."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._jobs.put((contextvars.copy_context(), func, args, inbox_for(loop), future))
        with self._lock:
            self._queued += 1
            spawn = self._queued > self._idle and self._threads < self.max_threads
            if spawn:
                self._threads += 1
        if spawn:
            thread = threading.Thread(
                target=self._work, name=f"agentcore-thread-{self._threads}", daemon=True
            )
            contextvars.Context().run(thread.start)
        return await future

    def _work(self) -> None:
        jobs = self._jobs
        lock = self._lock
        while True:
            with lock:
                self._idle += 1
            job = jobs.get()
            with lock:
                self._idle -= 1
                self._queued -= 1
            if job is None:
                return
            context, func, args, inbox, future = job
            try:
                outcome = (True, context.run(func, *args))
            except BaseException as error:  # handed to the awaiting coroutine, not swallowed
                outcome = (False, error)
            del job, context, func, args
            inbox.post(_settle, future, *outcome)
            del future, outcome

    def close(self) -> None:
        """Let every worker thread finish its current job and exit."""
        for _ in range(self._threads):
            with self._lock:
                self._queued += 1
            self._jobs.put(None)


__all__ = ["DEFAULT_MAX_THREADS", "ThreadPool"]
