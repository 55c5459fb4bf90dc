"""Event loops in background threads where async handlers run, off the server's own loop.

An async handler that blocks (a sync SDK call inside `async def` is common) would freeze whatever
loop it runs on. Running handlers on worker loops keeps the server loop free for `/ping`, and
spreading them over several loops lets blocking handlers run side by side instead of queueing
behind each other. Loops are started on demand: a new one only when every existing loop already
has work in flight, up to `max_loops`.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")

DEFAULT_MAX_LOOPS = 16


class WorkerLoop:
    """One event loop running forever in its own daemon thread."""

    def __init__(self, index: int) -> None:
        self.in_flight = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name=f"agentcore-loop-{index}", daemon=True
        )
        # Started from an empty context so the thread never inherits a request's identifiers.
        contextvars.Context().run(self._thread.start)
        ready.wait(5)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        self.loop.run_forever()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


async def run_on(worker: WorkerLoop, coro: Coroutine[Any, Any, _T], context: contextvars.Context) -> _T:
    """Await `coro` on `worker`'s loop, inside `context`; cancelling the caller cancels it there."""
    caller = asyncio.get_running_loop()
    result: asyncio.Future[_T] = caller.create_future()
    task_box: list[asyncio.Task[_T]] = []

    def settle(task: asyncio.Task[_T]) -> None:
        if result.done():
            return
        if task.cancelled():
            result.cancel()
        elif (error := task.exception()) is not None:
            result.set_exception(error)
        else:
            result.set_result(task.result())

    def start() -> None:
        task = context.run(worker.loop.create_task, coro)
        task_box.append(task)
        task.add_done_callback(lambda t: caller.call_soon_threadsafe(settle, t))

    worker.loop.call_soon_threadsafe(start)
    try:
        return await result
    except asyncio.CancelledError:
        worker.loop.call_soon_threadsafe(lambda: task_box and task_box[0].cancel())
        raise


class LoopPool:
    """Runs coroutines on background event loops and hands their results back to the caller's loop."""

    def __init__(self, max_loops: int = DEFAULT_MAX_LOOPS) -> None:
        self.max_loops = max(1, max_loops)
        self._loops: list[WorkerLoop] = []
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """How many worker loops are running."""
        return len(self._loops)

    def acquire(self) -> WorkerLoop:
        """Reserve the least busy loop (starting a new one when all are busy); pair with `release`."""
        with self._lock:
            best = min(self._loops, key=lambda w: w.in_flight, default=None)
            if best is None or (best.in_flight > 0 and len(self._loops) < self.max_loops):
                best = WorkerLoop(len(self._loops))
                self._loops.append(best)
            best.in_flight += 1
            return best

    def release(self, worker: WorkerLoop) -> None:
        """Give back a loop reserved with `acquire`; safe from any thread."""
        with self._lock:
            worker.in_flight -= 1

    async def run(self, coro: Coroutine[Any, Any, _T], context: contextvars.Context) -> _T:
        """Await `coro` on the least busy worker loop, inside `context`."""
        worker = self.acquire()
        try:
            return await run_on(worker, coro, context)
        finally:
            self.release(worker)

    def close(self) -> None:
        """Stop every worker loop (their threads are daemons; work still running is abandoned)."""
        with self._lock:
            loops, self._loops = self._loops, []
        for worker in loops:
            worker.stop()


__all__ = ["DEFAULT_MAX_LOOPS", "LoopPool", "WorkerLoop", "run_on"]
