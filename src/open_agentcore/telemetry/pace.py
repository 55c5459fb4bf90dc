"""Background span work in short slices, so a request never waits long for the interpreter.

The threads that read workers' exports and write spans share the interpreter lock with the event
loop. A thread that wants the lock while another computes gets it only when the holder lets go on
its own or after the switch interval (5 ms): a burst of span work, however cheap in total, is then
paid in full by whichever invocation arrived during it (the overhead's p99). Work paced here lets go
after every `SLICE` of computing and sleeps `PAUSE`, long enough for a waiting thread to be
scheduled and take the lock: a request waits at most about one slice behind span work.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TypeVar

_T = TypeVar("_T")

SLICE = 0.0002  # seconds of computing between two pauses
PAUSE = 0.00005  # seconds slept: a real sleep, so the waiting thread runs (`sleep(0)` may not yield)


class Pace:
    """`step()` between two pieces of background work; it pauses once a slice has been used up."""

    __slots__ = ("_began",)

    def __init__(self) -> None:
        self._began = time.perf_counter()

    def step(self) -> None:
        if time.perf_counter() - self._began >= SLICE:
            time.sleep(PAUSE)
            self._began = time.perf_counter()


def paced(items: Iterable[_T], pace: Pace | None) -> list[_T]:
    """`list(items)`, with `pace.step()` after each item when a pace is given."""
    if pace is None:
        return list(items)
    taken = []
    for item in items:
        taken.append(item)
        pace.step()
    return taken


__all__ = ["PAUSE", "SLICE", "Pace", "paced"]
