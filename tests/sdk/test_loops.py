"""The worker loops async handlers run on: `runtime/loops.py`."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from typing import Any

import pytest

from bedrock_agentcore.runtime.loops import LoopPool, WorkerLoop

request_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="unset")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_coroutine_that_never_suspends_returns_its_value() -> None:
    async def immediate() -> str:
        return threading.current_thread().name

    async def scenario() -> Any:
        pool = LoopPool()
        try:
            return await pool.run(immediate(), contextvars.copy_context())
        finally:
            pool.close()

    name, worker = run(scenario())
    assert name == "agentcore-loop-0" and worker.index == 0


def test_a_suspending_coroutine_sees_futures_errors_timeouts_and_its_context() -> None:
    async def busy() -> list[Any]:
        seen: list[Any] = [request_var.get()]
        await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        loop.call_later(0.01, future.set_result, 7)
        seen.append(await future)
        failing: asyncio.Future[int] = loop.create_future()
        loop.call_soon(failing.set_exception, KeyError("inner"))
        try:
            await failing
        except KeyError as error:
            seen.append(str(error))
        try:
            await asyncio.wait_for(asyncio.sleep(5), 0.01)
        except asyncio.TimeoutError:
            seen.append("timed out")
        seen.append(request_var.get())
        return seen

    async def scenario() -> Any:
        pool = LoopPool()
        request_var.set("request-1")
        try:
            return (await pool.run(busy(), contextvars.copy_context()))[0]
        finally:
            pool.close()

    assert run(scenario()) == ["request-1", 7, "'inner'", "timed out", "request-1"]


def test_an_exception_after_suspending_reaches_the_caller() -> None:
    async def fails() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("late failure")

    async def scenario() -> None:
        pool = LoopPool()
        try:
            await pool.run(fails(), contextvars.copy_context())
        finally:
            pool.close()

    with pytest.raises(ValueError, match="late failure"):
        run(scenario())


def test_cancelling_the_caller_cancels_the_coroutine_where_it_runs() -> None:
    cleaned = threading.Event()
    started = threading.Event()

    async def long_running() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        finally:
            cleaned.set()

    async def scenario() -> None:
        pool = LoopPool()
        try:
            call = asyncio.ensure_future(pool.run(long_running(), contextvars.copy_context()))
            while not started.is_set():
                await asyncio.sleep(0.005)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        finally:
            await asyncio.to_thread(cleaned.wait, 5)
            pool.close()

    run(scenario())
    assert cleaned.is_set()


def test_a_job_queued_behind_a_blocked_loop_moves_to_another() -> None:
    release = threading.Event()
    blocking = threading.Event()

    async def blocker() -> str:
        blocking.set()
        release.wait(10)  # blocks its loop's thread
        return threading.current_thread().name

    async def quick() -> str:
        return threading.current_thread().name

    async def scenario() -> tuple[str, str]:
        pool = LoopPool(stall_after=0.02)
        try:
            blocked = asyncio.ensure_future(pool.run(blocker(), contextvars.copy_context()))
            assert await asyncio.to_thread(blocking.wait, 5)
            moved, _ = await pool.run(quick(), contextvars.copy_context())
            release.set()
            first, _ = await blocked
            return first, moved
        finally:
            release.set()
            pool.close()

    first, moved = run(scenario())
    assert first == "agentcore-loop-0" and moved == "agentcore-loop-1"


def test_a_loop_counts_as_stuck_only_inside_a_job_step_begun_stall_after_ago() -> None:
    """A loop that is merely late (its thread not scheduled, or held by a task a handler left
    behind) is not stuck: only a job's own step running for `stall_after` makes it so."""
    release, blocking = threading.Event(), threading.Event()

    async def blocker() -> None:
        blocking.set()
        release.wait(10)  # inside its job's first step

    async def scenario() -> tuple[bool, bool, bool]:
        pool = LoopPool(stall_after=0.02)
        try:
            worker = pool._lively()
            idle = pool._stuck(worker, time.monotonic() + 60)
            blocked = asyncio.ensure_future(pool.run(blocker(), contextvars.copy_context()))
            assert await asyncio.to_thread(blocking.wait, 5)
            stepping = worker.busy_since
            assert stepping is not None
            early = pool._stuck(worker, stepping + 0.01)
            # Past the bound by a margin: (stepping + 0.02) - stepping can round below 0.02.
            late = pool._stuck(worker, stepping + 0.03)
            release.set()
            await blocked
            return idle, early, late
        finally:
            release.set()
            pool.close()

    idle, early, late = run(scenario())
    assert (idle, early, late) == (False, False, True)


def test_a_job_behind_a_loop_held_outside_any_step_moves_once_overdue() -> None:
    """A handler's leftover task that blocks the loop is no job step; the job queued behind it still
    moves, once it has waited `OVERDUE`, instead of waiting for the task to let go."""
    release, blocking = threading.Event(), threading.Event()

    def hold() -> None:
        blocking.set()
        release.wait(10)

    async def leaves_a_blocking_task() -> str:
        asyncio.get_running_loop().call_soon(hold)  # runs after this job's step, outside any step
        return threading.current_thread().name

    async def quick() -> str:
        return threading.current_thread().name

    async def scenario() -> tuple[str, str, WorkerLoop]:
        pool = LoopPool(stall_after=0.02)
        try:
            first, worker = await pool.run(leaves_a_blocking_task(), contextvars.copy_context())
            assert await asyncio.to_thread(blocking.wait, 5)
            moved, _ = await pool.run(quick(), contextvars.copy_context())
            release.set()
            return first, moved, worker
        finally:
            release.set()
            pool.close()

    first, moved, worker = run(scenario())
    assert first == "agentcore-loop-0" and moved == "agentcore-loop-1"
    assert worker.busy_since is None


def test_stall_hand_off_works_for_every_calling_loop_in_turn() -> None:
    """An app served by one event loop after another (tests, reloads) keeps its stall watchdog."""
    pool = LoopPool(stall_after=0.02)

    async def scenario() -> str:
        release, blocking = threading.Event(), threading.Event()

        async def blocker() -> None:
            blocking.set()
            release.wait(10)

        async def quick() -> str:
            return threading.current_thread().name

        blocked = asyncio.ensure_future(pool.run(blocker(), contextvars.copy_context()))
        assert await asyncio.to_thread(blocking.wait, 5)
        moved, _ = await pool.run(quick(), contextvars.copy_context())
        release.set()
        await blocked
        return str(moved)

    try:
        first = run(scenario())
        second = run(scenario())  # a new event loop, the same pool
    finally:
        pool.close()
    assert first != "agentcore-loop-0" and second != "agentcore-loop-0"
