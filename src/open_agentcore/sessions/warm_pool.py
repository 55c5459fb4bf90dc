"""How many warm workers each version keeps ready: sized by recent demand, within bounds.

A fixed pool of one warm worker per version is used up by the second new session of a burst; the
third then waits for a whole cold start. Here a version keeps as many warm workers as the most new
sessions that arrived within one worker start of each other in the last `window` seconds (never
fewer than `minimum`, never more than `maximum`): after a burst the pool is as large as the burst
was, while a steady trickle that a pool of one keeps up with (each arrival finds the last one's
replacement ready) leaves it at one, rather than starting a worker per arrival of the last minute.
Growing past `minimum` also needs memory: the host's available memory must stay above
`memory_reserve` with each extra warm worker counted at `worker_memory`. The server's
`--max-sessions` bounds all of it (the session table checks that, since warm workers and sessions
share it).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

MEMINFO = "/proc/meminfo"


def available_memory(meminfo: str = MEMINFO) -> int | None:
    """The host's available memory in bytes (`MemAvailable`), None where the kernel does not say."""
    try:
        with open(meminfo, encoding="ascii") as lines:
            for line in lines:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass(frozen=True)
class WarmPoolPolicy:
    """The bounds of each version's warm pool (`--warm-pool`, `--warm-pool-max`)."""

    minimum: int = 1
    maximum: int = 16
    window: float = 60.0
    # Arrivals this close together count as one burst until a worker start of the version has been
    # timed; then its recent start time (an average) is used.
    start_seconds: float = 1.0
    memory_reserve: int = 1024**3
    # What one more idle warm worker is assumed to take; the pool grows only while it fits.
    worker_memory: int = 64 * 1024**2

    def __post_init__(self) -> None:
        if self.minimum < 0 or self.maximum < self.minimum:
            bounds = f"{self.minimum}..{self.maximum}"
            raise ValueError(f"warm pool bounds must be 0 <= minimum <= maximum, not {bounds}")


class WarmPoolSizer:
    """Counts new sessions per version and says how large each version's pool should be now."""

    def __init__(
        self,
        policy: WarmPoolPolicy,
        clock: Callable[[], float] = time.monotonic,
        memory: Callable[[], int | None] = available_memory,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._memory = memory
        self._arrivals: dict[Hashable, collections.deque[float]] = {}
        self._start_seconds: dict[Hashable, float] = {}

    def arrived(self, key: Hashable) -> None:
        """Note a new session of version `key` (warm or cold: both are demand)."""
        self._arrivals.setdefault(key, collections.deque()).append(self._clock())

    def started(self, key: Hashable, seconds: float) -> None:
        """Note how long a worker of version `key` took to start (an average of recent starts)."""
        before = self._start_seconds.get(key)
        self._start_seconds[key] = seconds if before is None else 0.7 * before + 0.3 * seconds

    def demand(self, key: Hashable) -> int:
        """The most new sessions of `key` that arrived within one worker start of each other, over
        the window: how many a pool must hold ready for none of them to wait for a start."""
        arrivals = self._arrivals.get(key)
        if arrivals is None:
            return 0
        horizon = self._clock() - self.policy.window
        while arrivals and arrivals[0] < horizon:
            arrivals.popleft()
        if not arrivals:
            del self._arrivals[key]
            return 0
        span = self._start_seconds.get(key, self.policy.start_seconds)
        most, first = 0, 0
        for last, at in enumerate(arrivals):
            while at - arrivals[first] > span:
                first += 1
            most = max(most, last - first + 1)
        return most

    def target(self, key: Hashable) -> int:
        """How many warm workers `key` should have (ready and starting): its recent demand, within
        the policy's bounds."""
        policy = self.policy
        return max(policy.minimum, min(self.demand(key), policy.maximum))

    def room_past_minimum(self, extra_workers: int) -> bool:
        """Whether the host has the memory for `extra_workers` more warm workers beyond the minimum
        pools (unknown memory: yes; the session limit still bounds them)."""
        available = self._memory()
        if available is None:
            return True
        return available - extra_workers * self.policy.worker_memory >= self.policy.memory_reserve


__all__ = ["MEMINFO", "WarmPoolPolicy", "WarmPoolSizer", "available_memory"]
