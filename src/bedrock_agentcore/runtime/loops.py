"""Event loops in background threads where async handlers run, off the server's own loop.

Async handlers share one worker loop, as they would on any asyncio server, so module-level async
clients and locks keep working across requests. But an async handler that blocks its thread (a
sync SDK call inside `async def` is common) would stall every request queued behind it. So a job
that has not started within `stall_after` seconds, while its loop has been inside one step of
another job for at least that long, is taken back before it runs and handed to the next loop,
started on demand; the stalled loop is skipped until it shows life again. Blocking handlers
therefore run side by side, and `/ping`, on the server loop, never waits for any of them.

A loop that is late for another reason (its thread not scheduled on a loaded machine, or blocked by
a task a handler left behind) is not in a step: its jobs move only once they have waited
`OVERDUE` seconds, so a busy machine does not scatter well-behaved handlers over several loops.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Coroutine
from typing import Any, Generic, TypeVar

from .inbox import inbox_for

_T = TypeVar("_T")

DEFAULT_MAX_LOOPS = 16
DEFAULT_STALL_AFTER = 0.02
OVERDUE = 0.25  # seconds a job waits for a loop that is late outside any job's step


class WorkerLoop:
    """One event loop running forever in its own daemon thread."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.stalled = False
        # When the step of a job this loop is running began (monotonic seconds), None between steps.
        self.busy_since: float | None = None
        self.loop = asyncio.new_event_loop()
        self.inbox = inbox_for(self.loop)
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


def _settle(result: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if result.done():
        return
    if ok:
        result.set_result(value)
    elif isinstance(value, asyncio.CancelledError):
        result.cancel()
    else:
        result.set_exception(value)


class _Job(Generic[_T]):
    """One coroutine on its way to a worker loop; whoever claims it first (a loop or the caller) wins."""

    def __init__(self, coro: Coroutine[Any, Any, _T], context: contextvars.Context) -> None:
        self.coro = coro
        self.context = context
        self.caller = asyncio.get_running_loop()
        self.inbox = inbox_for(self.caller)
        self.result: asyncio.Future[_T] = self.caller.create_future()
        self.lock = threading.Lock()
        self.attempt = 0
        self.started = False
        self.abandoned = False
        self.worker: WorkerLoop | None = None
        self.task: asyncio.Task[Any] | None = None

    def start(self, worker: WorkerLoop, attempt: int) -> None:
        """Runs on `worker`'s loop: run the coroutine's first step now, the rest as a task.

        Most handlers either finish without ever suspending (no task is needed at all) or are
        about to wait for I/O anyway, so starting eagerly saves a task and a loop iteration.
        """
        if not self._claim(worker, attempt):
            return
        try:
            yielded = self._step(self.coro.send, None)
        except StopIteration as done:
            self._report(True, done.value)
            return
        except BaseException as error:  # handed to the awaiting caller, not swallowed
            self._report(False, error)
            return
        self.task = worker.loop.create_task(self._resume(yielded))

    def _claim(self, worker: WorkerLoop, attempt: int) -> bool:
        # Claimed when the loop gets to it, not when it is posted: a job queued behind a handler
        # that blocks this loop has not started, and may still be moved elsewhere.
        with self.lock:
            worker.stalled = False
            if self.started or self.abandoned or attempt != self.attempt:
                return False
            self.started = True
            self.worker = worker
            return True

    async def _resume(self, yielded: Any) -> None:
        """Drive the rest of a coroutine that suspended in its eager first step (as a Task would)."""
        coro = self.coro
        try:
            while True:
                if yielded is None:
                    await asyncio.sleep(0)  # a bare yield: give the loop one turn
                elif asyncio.isfuture(yielded):
                    yielded._asyncio_future_blocking = False
                    try:
                        await asyncio.wait([yielded])  # the coroutine reads the outcome itself
                    except asyncio.CancelledError:
                        yielded.cancel()
                        yielded = self._step(coro.throw, asyncio.CancelledError())
                        continue
                else:
                    error = RuntimeError(f"a coroutine yielded {yielded!r}, not a future")
                    yielded = self._step(coro.throw, error)
                    continue
                # Every step in the one context the first ran in: a ContextVar set before an
                # await is still set after it, and its reset token stays valid.
                yielded = self._step(coro.send, None)
        except StopIteration as done:
            self._report(True, done.value)
        except BaseException as error:  # handed to the awaiting caller, not swallowed
            self._report(False, error)

    def _step(self, advance: Any, value: Any) -> Any:
        """One step of the coroutine in its context, marked on the loop as busy while it runs."""
        worker = self.worker
        assert worker is not None
        worker.busy_since = time.monotonic()
        try:
            return self.context.run(advance, value)
        finally:
            worker.busy_since = None

    def _report(self, ok: bool, value: Any) -> None:
        # Settles the caller's future the moment the coroutine ends, in the same loop iteration.
        self.inbox.post(_settle, self.result, ok, value)

    def cancel(self) -> None:
        """Runs on the caller's loop when the caller gives up."""
        with self.lock:
            started = self.started
            self.abandoned = True
        if started and self.worker is not None:
            self.worker.loop.call_soon_threadsafe(self._cancel_task)
        else:
            self.coro.close()

    def _cancel_task(self) -> None:
        if self.task is not None:
            self.task.cancel()


class LoopPool:
    """Runs coroutines on background event loops and hands their results back to the caller's loop."""

    def __init__(self, max_loops: int = DEFAULT_MAX_LOOPS, stall_after: float = DEFAULT_STALL_AFTER) -> None:
        self.max_loops = max(1, max_loops)
        self.stall_after = stall_after
        self._loops: list[WorkerLoop] = []
        self._lock = threading.Lock()
        self._watched: dict[_Job[Any], tuple[WorkerLoop, float]] = {}
        # One watchdog timer per calling loop (normally just the server's).
        self._watchdogs: dict[asyncio.AbstractEventLoop, asyncio.TimerHandle] = {}

    @property
    def size(self) -> int:
        """How many worker loops are running."""
        return len(self._loops)

    def prestart(self) -> None:
        """Start the first worker loop now, if there is none, so the first call need not make one
        (a loop and a thread). Blocks until it runs: call it off the server's loop."""
        self._lively()

    def _lively(self, after: WorkerLoop | None = None) -> WorkerLoop:
        """The first loop not known to be stalled (after `after`), starting one when there is none."""
        with self._lock:
            start = 0 if after is None else after.index + 1
            for worker in self._loops[start:] + self._loops[:start]:
                if not worker.stalled and worker is not after:
                    return worker
            if len(self._loops) < self.max_loops:
                worker = WorkerLoop(len(self._loops))
                self._loops.append(worker)
                return worker
            return self._loops[start % len(self._loops)]

    async def run(
        self, coro: Coroutine[Any, Any, _T], context: contextvars.Context, pinned: WorkerLoop | None = None
    ) -> tuple[_T, WorkerLoop]:
        """Await `coro` on a worker loop inside `context`; returns its result and the loop it ran on.

        With `pinned`, the coroutine runs on that loop however long it takes to get there (for
        work tied to objects that loop created). Cancelling the caller cancels the coroutine.
        """
        job = _Job(coro, context)
        worker = pinned or self._lively()
        if pinned is None:
            self._watch(job, worker)
        worker.inbox.post_batched(job.start, worker, 0)
        try:
            value = await job.result
        except asyncio.CancelledError:
            job.cancel()
            raise
        finally:
            self._watched.pop(job, None)
        assert job.worker is not None
        return value, job.worker

    def _watch(self, job: _Job[Any], worker: WorkerLoop) -> None:
        # One watchdog timer for all jobs in flight, not a timer per job: this is the hot path.
        self._watched[job] = (worker, time.monotonic() + self.stall_after)
        if job.caller not in self._watchdogs:
            self._watchdogs[job.caller] = job.caller.call_later(
                self.stall_after, self._check_stalls, job.caller
            )

    def _check_stalls(self, caller: asyncio.AbstractEventLoop) -> None:
        """Caller's loop: move every job whose loop has not started it within `stall_after` because it
        is stuck in a step of another job (or, for any reason, within `OVERDUE`)."""
        del self._watchdogs[caller]
        now = time.monotonic()
        pending = False
        for job, (worker, deadline) in list(self._watched.items()):
            if job.caller is not caller:
                continue
            if job.started or job.abandoned:
                del self._watched[job]
                continue
            if deadline <= now and (self._stuck(worker, now) or now - deadline >= OVERDUE):
                self._move(job, worker)
            pending = True
        if pending:
            self._watchdogs[caller] = caller.call_later(self.stall_after / 2, self._check_stalls, caller)

    def _stuck(self, worker: WorkerLoop, now: float) -> bool:
        """Whether `worker` has been inside one job's step for `stall_after` or more."""
        busy_since = worker.busy_since  # written by the worker's thread: read once
        return busy_since is not None and now - busy_since >= self.stall_after

    def _move(self, job: _Job[Any], worker: WorkerLoop) -> None:
        with job.lock:
            if job.started or job.abandoned:
                return
            worker.stalled = True
            job.attempt += 1
            attempt = job.attempt
        successor = self._lively(after=worker)
        self._watched[job] = (successor, time.monotonic() + self.stall_after)
        successor.inbox.post_batched(job.start, successor, attempt)

    def close(self) -> None:
        """Stop every worker loop (their threads are daemons; work still running is abandoned)."""
        with self._lock:
            loops, self._loops = self._loops, []
        for worker in loops:
            worker.stop()


__all__ = ["DEFAULT_MAX_LOOPS", "DEFAULT_STALL_AFTER", "OVERDUE", "LoopPool", "WorkerLoop"]
