"""A short-lived cache of store reads for the request path: one read per key at a time, bounded.

The store may be shared by several server replicas (PostgreSQL), so nothing here can learn of
another replica's writes: an entry is trusted for `ttl` seconds counted from when its read began,
which bounds how stale a hit can be. This server's own writes call `forget`, which takes effect
at once, also against reads already in flight: a read that began before a `forget` hands its
value to the callers that were waiting for it, but is never kept for later ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

DEFAULT_MAX_ENTRIES = 10_000


class ReadCache(Generic[K, V]):
    """Values read from the store by a blocking function, kept `ttl` seconds per key.

    Every read runs on a worker thread, so the event loop never waits on the database. Concurrent
    misses of one key share one read instead of each taking a thread and a query. Memory is
    bounded by `max_entries` (keys may come from callers, e.g. access key ids anyone can send):
    past it the cache starts over. A read that raises is not cached; each waiter gets the error.
    """

    def __init__(
        self, ttl: float, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._reads: dict[K, asyncio.Future[V]] = {}
        self._generation = 0  # moved by every `forget`: reads begun before it are not kept

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: K, read: Callable[[], V]) -> V:
        """The cached value of `key`, else what `read()` returns: run on a thread, and shared by
        concurrent misses of the same key."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        pending = self._reads.get(key)
        if pending is None:
            pending = self._reads[key] = self._read(key, read)
        # Shielded: one caller giving up must not cancel the read the others are waiting for.
        return await asyncio.shield(pending)

    def _read(self, key: K, read: Callable[[], V]) -> asyncio.Future[V]:
        generation, began = self._generation, self._clock()
        future = asyncio.ensure_future(asyncio.to_thread(read))

        def settled(done: asyncio.Future[V]) -> None:
            if self._reads.get(key) is done:
                del self._reads[key]
            if done.cancelled() or done.exception() is not None or generation != self._generation:
                return
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (began + self.ttl, done.result())

        future.add_done_callback(settled)
        return future

    def forget(self, matches: Callable[[K], bool] | None = None) -> None:
        """Drop the entries whose key `matches` (all keys, without it); reads in flight fill none."""
        self._generation += 1
        for table in (self._entries, self._reads):
            for key in [key for key in table if matches is None or matches(key)]:
                del table[key]


__all__ = ["DEFAULT_MAX_ENTRIES", "ReadCache"]
