"""The request path's cache of store reads: `store/read_cache.py`."""

from __future__ import annotations

import asyncio
import threading

import pytest

from open_agentcore.store import ReadCache


class Reads:
    """A blocking read that counts its calls and, when `gate` is set up, waits until it opens."""

    def __init__(self, value: str = "v", gated: bool = False) -> None:
        self.value = value
        self.calls = 0
        self.started = threading.Event()
        self.gate = threading.Event()
        if not gated:
            self.gate.set()

    def __call__(self) -> str:
        self.calls += 1
        self.started.set()
        assert self.gate.wait(10), "the test never opened the gate"
        return self.value


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _started(reads: Reads) -> None:
    assert await asyncio.to_thread(reads.started.wait, 10)


def test_concurrent_misses_of_one_key_share_one_read() -> None:
    async def scenario() -> list[str]:
        cache: ReadCache[str, str] = ReadCache(5.0)
        reads = Reads(gated=True)
        waiting = [asyncio.ensure_future(cache.get("key", reads)) for _ in range(20)]
        await _started(reads)
        reads.gate.set()
        values = await asyncio.gather(*waiting)
        assert reads.calls == 1
        return values

    assert asyncio.run(scenario()) == ["v"] * 20


def test_a_hit_does_not_read_again_until_the_ttl_has_passed() -> None:
    async def scenario() -> None:
        clock = Clock()
        cache: ReadCache[str, str] = ReadCache(5.0, clock=clock)
        reads = Reads()
        await cache.get("key", reads)
        clock.now += 4.9
        await cache.get("key", reads)
        assert reads.calls == 1
        clock.now += 0.2  # 5.1 s after the read began: past the bound
        await cache.get("key", reads)
        assert reads.calls == 2

    asyncio.run(scenario())


def test_forget_takes_effect_at_once() -> None:
    async def scenario() -> None:
        cache: ReadCache[str, str] = ReadCache(60.0)
        before = Reads("old")
        assert await cache.get("key", before) == "old"
        cache.forget(lambda key: key == "key")
        assert await cache.get("key", Reads("new")) == "new"

    asyncio.run(scenario())


def test_forget_drops_only_matching_keys() -> None:
    async def scenario() -> None:
        cache: ReadCache[tuple[str, str], str] = ReadCache(60.0)
        await cache.get(("rt-1", "DEFAULT"), Reads("a"))
        await cache.get(("rt-2", "DEFAULT"), Reads("b"))
        cache.forget(lambda key: key[0] == "rt-1")
        kept = Reads("changed")
        assert await cache.get(("rt-2", "DEFAULT"), kept) == "b"
        assert kept.calls == 0
        assert await cache.get(("rt-1", "DEFAULT"), Reads("changed")) == "changed"

    asyncio.run(scenario())


def test_a_read_in_flight_when_forgotten_is_not_kept() -> None:
    """The write that called `forget` may have changed what that read returns: never cache it."""

    async def scenario() -> None:
        cache: ReadCache[str, str] = ReadCache(60.0)
        stale = Reads("before the write", gated=True)
        waiting = asyncio.ensure_future(cache.get("key", stale))
        await _started(stale)
        cache.forget()
        # A caller arriving after the forget does not join the stale read either.
        fresh = Reads("after the write")
        assert await cache.get("key", fresh) == "after the write"
        stale.gate.set()
        assert await waiting == "before the write"  # its own caller asked before the write
        assert await cache.get("key", Reads("another read")) == "after the write"

    asyncio.run(scenario())


def test_a_failed_read_reaches_every_waiter_and_is_not_cached() -> None:
    class Broken(Exception):
        pass

    calls = 0

    def broken() -> str:
        nonlocal calls
        calls += 1
        raise Broken("the database is away")

    async def scenario() -> None:
        cache: ReadCache[str, str] = ReadCache(60.0)
        results = await asyncio.gather(
            cache.get("key", broken), cache.get("key", broken), return_exceptions=True
        )
        assert [type(result) for result in results] == [Broken, Broken]
        assert calls == 1
        with pytest.raises(Broken):
            await cache.get("key", broken)
        assert calls == 2

    asyncio.run(scenario())


def test_a_caller_giving_up_does_not_cancel_the_read_for_the_others() -> None:
    async def scenario() -> None:
        cache: ReadCache[str, str] = ReadCache(60.0)
        reads = Reads(gated=True)
        impatient = asyncio.ensure_future(cache.get("key", reads))
        patient = asyncio.ensure_future(cache.get("key", reads))
        await _started(reads)
        impatient.cancel()
        reads.gate.set()
        assert await patient == "v"
        assert impatient.cancelled()

    asyncio.run(scenario())


def test_memory_is_bounded_whatever_keys_callers_send() -> None:
    async def scenario() -> None:
        cache: ReadCache[str, str] = ReadCache(60.0, max_entries=8)
        for number in range(100):
            await cache.get(f"AKIA{number:016d}", Reads())
            assert len(cache) <= 8

    asyncio.run(scenario())
