"""Sync producers taking turns at the interpreter: `runtime/turns.py`, with real threads and loops."""

from __future__ import annotations

import asyncio
import threading
import time

from bedrock_agentcore.runtime.turns import Turns


async def _until(condition: object, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.005)


def test_turns_pass_in_the_order_they_were_asked_for() -> None:
    async def order_of_turns() -> list[str]:
        turns = Turns(asyncio.get_running_loop())  # no producer attached: no beat passes a turn on
        got: list[str] = []

        def producer(name: str) -> None:
            turns.take(name)
            got.append(name)
            turns.give(name)

        turns.take("first")
        threads = []
        for name in ("second", "third", "fourth"):
            thread = threading.Thread(target=producer, args=(name,))
            thread.start()
            threads.append(thread)
            await _until(lambda: len(turns._waiting) == len(threads), f"{name} never asked for a turn")
        turns.give("first")
        for thread in threads:
            thread.join(10)
        return got

    assert asyncio.run(order_of_turns()) == ["second", "third", "fourth"]


def test_the_loop_passes_on_the_turn_of_a_producer_blocked_in_its_step() -> None:
    async def holder_after_a_blocked_step() -> object:
        turns = Turns(asyncio.get_running_loop())
        turns.attach()
        blocked = threading.Event()
        release = threading.Event()

        def stuck() -> None:
            turns.take("stuck")
            turns.stepping("stuck")
            blocked.set()
            release.wait(30)  # a step waiting on the network, say

        taken = threading.Event()
        holders: list[object] = []

        def waiting() -> None:
            turns.take("waiting")
            holders.append(turns._holder)
            taken.set()

        first = threading.Thread(target=stuck)
        first.start()
        await _until(blocked.is_set, "the first producer never began its step")
        second = threading.Thread(target=waiting)
        second.start()
        try:
            await _until(taken.is_set, "the waiting producer never got a turn")
            return holders[0]
        finally:
            release.set()
            first.join(10)
            second.join(10)
            turns.detach()

    # Without the loop passing it on, the waiter would go on after its longest wait, turnless.
    assert asyncio.run(holder_after_a_blocked_step()) == "waiting"


def test_the_heartbeat_runs_only_while_producers_step() -> None:
    """Streams whose generators wait (on a model, say) cost the loop no wake-ups: the beat stops
    when no producer stepped since the last one, or none is attached, and a step starts it again."""

    async def beating() -> list[bool]:
        turns = Turns(asyncio.get_running_loop())
        seen = []
        turns.attach()
        seen.append(turns._timer is not None)
        await _until(lambda: turns._timer is None, "the beat never stopped while nothing stepped")
        stopped_at = turns._beat
        turns.stepping("producer")  # from the loop's thread here; a producer's thread in use
        await _until(lambda: turns._beat != stopped_at, "a step never started the beat again")
        seen.append(True)
        turns.stepping("producer")
        turns.detach()
        await _until(lambda: turns._timer is None, "the beat never stopped with the last producer")
        seen.append(False)
        return seen

    assert asyncio.run(beating()) == [True, True, False]


def test_the_loop_runs_between_two_producers_slices() -> None:
    """A slice's end hands the turn to the loop, which passes it on in its next iteration: a
    producer that would win the interpreter lock from the loop cannot start its slice before."""

    async def holders() -> tuple[object, object]:
        turns = Turns(asyncio.get_running_loop())
        turns.take("first")
        got = threading.Event()

        def second() -> None:
            turns.take("second")
            got.set()

        thread = threading.Thread(target=second)
        thread.start()
        await _until(lambda: len(turns._waiting) == 1, "the second producer never asked for a turn")
        turns.pause("first")  # on the loop's thread, which cannot run anything until this returns
        between = turns._holder
        await _until(got.is_set, "the loop never passed the turn on")
        thread.join(10)
        return between, turns._holder

    between, after = asyncio.run(holders())
    assert between not in ("first", "second")
    assert after == "second"
