"""The warm pool sized by recent demand, with real worker processes: `sessions/warm_pool.py` and
its use in `sessions/manager.py`."""

from __future__ import annotations

import asyncio
from pathlib import Path

from open_agentcore.sessions import SessionManager
from open_agentcore.sessions.warm_pool import WarmPoolPolicy, WarmPoolSizer, available_memory

from .test_manager import call, scenario, target, until


async def burst(sessions: SessionManager, session_target: object, ids: list[str]) -> list[str]:
    """Start these sessions at once; how each one's worker was had."""
    assert hasattr(session_target, "key")
    await asyncio.gather(*(call(sessions, session_target, session_id) for session_id in ids))  # type: ignore[arg-type]
    return [sessions.get(session_target.key[0], session_id).started_from for session_id in ids]  # type: ignore[union-attr]


def test_a_burst_grows_the_pool_and_the_next_burst_finds_it_ready(tmp_path: Path) -> None:
    session_target = target(tmp_path)
    key = session_target.key

    async def body(sessions: SessionManager) -> tuple[list[str], list[str]]:
        await sessions.prepare(session_target)
        await until(lambda: sessions.warm_counts(key) == (1, 0))
        first = await burst(sessions, session_target, [f"a{n}" for n in range(4)])
        # Four new sessions within the window: the pool refills to four, in parallel.
        await until(lambda: sessions.warm_counts(key) == (4, 0), timeout=60)
        second = await burst(sessions, session_target, [f"b{n}" for n in range(4)])
        return first, second

    first, second = scenario(tmp_path, body, warm_pool=1, warm_pool_max=8, max_sessions=20)
    # The first burst never waits for a start of its own: each later session takes a pool worker
    # that was already starting when it arrived.
    assert sorted(first) == ["warm", "warming", "warming", "warming"]
    assert second == ["warm"] * 4


def test_the_pool_never_grows_past_the_session_limit(tmp_path: Path) -> None:
    session_target = target(tmp_path)
    key = session_target.key

    async def body(sessions: SessionManager) -> tuple[int, int]:
        await sessions.prepare(session_target)
        await until(lambda: sessions.warm_counts(key) == (1, 0))
        await burst(sessions, session_target, ["a", "b", "c", "d"])
        await until(lambda: not sessions._warming)
        return sessions.workers(), sessions.warm_counts(key)[0]

    workers, ready = scenario(tmp_path, body, warm_pool=1, warm_pool_max=8, max_sessions=5)
    assert (workers, ready) == (5, 1)


def test_without_memory_to_spare_the_pool_keeps_its_minimum(tmp_path: Path) -> None:
    session_target = target(tmp_path)
    key = session_target.key

    async def body(sessions: SessionManager) -> tuple[list[str], tuple[int, int]]:
        await sessions.prepare(session_target)
        await until(lambda: sessions.warm_counts(key) == (1, 0))
        started = await burst(sessions, session_target, ["a", "b", "c"])
        await until(lambda: not sessions._warming)
        return started, sessions.warm_counts(key)

    # No host has an exabyte free: growing past the minimum never fits.
    started, counts = scenario(tmp_path, body, warm_pool=1, warm_pool_max=8, warm_memory_reserve=2**60)
    # One took the ready worker, one the minimum pool's refill, and the third had to start its own.
    assert sorted(started) == ["cold", "warm", "warming"]
    assert counts == (1, 0)


def test_the_reaper_shrinks_a_pool_its_demand_no_longer_asks_for(tmp_path: Path) -> None:
    session_target = target(tmp_path)
    key = session_target.key
    now = [0.0]

    async def body(sessions: SessionManager) -> tuple[int, int]:
        # The pool's own clock, so the minute can pass without waiting for it.
        sessions._pool = WarmPoolSizer(sessions._pool.policy, clock=lambda: now[0])
        await burst(sessions, session_target, ["a", "b", "c"])
        await until(lambda: sessions.warm_counts(key) == (3, 0), timeout=60)
        await sessions.reap_once()
        kept = sessions.warm_counts(key)[0]
        now[0] += 61
        await sessions.reap_once()
        return kept, sessions.warm_counts(key)[0]

    assert scenario(tmp_path, body, warm_pool=1, warm_pool_max=8) == (3, 1)


def test_a_pool_of_zero_stays_off_whatever_the_demand(tmp_path: Path) -> None:
    session_target = target(tmp_path)

    async def body(sessions: SessionManager) -> tuple[list[str], int]:
        started = await burst(sessions, session_target, ["a", "b"])
        return started, sessions.workers()

    assert scenario(tmp_path, body, warm_pool=0) == (["cold", "cold"], 2)


def test_demand_counts_arrivals_within_the_window_and_is_bounded() -> None:
    now = [100.0]
    sizer = WarmPoolSizer(WarmPoolPolicy(minimum=1, maximum=3, window=60), clock=lambda: now[0])
    assert sizer.target("v1") == 1
    for _ in range(5):
        sizer.arrived("v1")
    assert (sizer.demand("v1"), sizer.target("v1"), sizer.target("v2")) == (5, 3, 1)
    now[0] += 61
    assert (sizer.demand("v1"), sizer.target("v1")) == (0, 1)


def test_memory_bounds_growth_past_the_minimum(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       4000000 kB\nMemAvailable:    2097152 kB\n")
    assert available_memory(str(meminfo)) == 2 * 1024**3
    policy = WarmPoolPolicy(memory_reserve=1024**3, worker_memory=256 * 1024**2)
    sizer = WarmPoolSizer(policy, memory=lambda: available_memory(str(meminfo)))
    assert [sizer.room_past_minimum(extra) for extra in (1, 4, 5)] == [True, True, False]
    assert available_memory(str(tmp_path / "missing")) is None
    assert WarmPoolSizer(policy, memory=lambda: None).room_past_minimum(1000)


def test_bad_bounds_are_refused() -> None:
    for minimum, maximum in ((-1, 4), (5, 4)):
        try:
            WarmPoolPolicy(minimum=minimum, maximum=maximum)
        except ValueError as error:
            assert "0 <= minimum <= maximum" in str(error)
        else:
            raise AssertionError(f"{minimum}..{maximum} was accepted")


def test_deleting_a_runtime_mid_refill_leaves_no_warm_worker_behind(tmp_path: Path) -> None:
    session_target = target(tmp_path)
    key = session_target.key

    async def body(sessions: SessionManager) -> tuple[int, int, int]:
        for _ in range(3):  # a minute's demand of three, and no session left of it
            sessions._pool.arrived(key)
        await sessions.prepare(session_target)
        starting = sessions.warm_counts(key)[1]
        await sessions.stop_runtime(session_target.runtime_id)
        return starting, sessions.workers(), len(sessions._warming)

    starting, workers, still_warming = scenario(tmp_path, body, warm_pool=1, warm_pool_max=8)
    assert (starting, workers, still_warming) == (3, 0, 0)


def test_a_trickle_the_pool_keeps_up_with_leaves_it_at_its_minimum() -> None:
    now = [0.0]
    sizer = WarmPoolSizer(WarmPoolPolicy(minimum=1, maximum=16, window=60), clock=lambda: now[0])
    sizer.started("v1", 0.4)  # a worker of v1 takes 0.4 s to start
    for _ in range(30):  # one new session every half second for 15 s
        sizer.arrived("v1")
        now[0] += 0.5
    assert (sizer.demand("v1"), sizer.target("v1")) == (1, 1)
    for _ in range(3):  # then three within one start of each other
        sizer.arrived("v1")
        now[0] += 0.1
    assert (sizer.demand("v1"), sizer.target("v1")) == (3, 3)
    # Starts that get slower widen what counts as one burst.
    for _ in range(10):
        sizer.started("v1", 2.0)
    assert sizer.demand("v1") >= 4
