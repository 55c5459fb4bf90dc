"""Host uids for sandboxed workers when the server runs as root: one per live worker, none shared."""

from __future__ import annotations

import secrets

DEFAULT_UID_BASE = 2_000_000_000
UID_SPAN = 2**20
# The kernel takes uids up to 2**32 - 2, but bubblewrap writes uid maps as signed ints.
_LAST_UID = 2**31 - 1


class HostUidsExhausted(Exception):
    """Every uid of the range is held by a live worker."""


class HostUids:
    """Hands out uids from [base, base + 2**20) at random, never one that is still held.

    Random slots keep several servers on one host (each with its own pool) from colliding in
    practice; a separate `base` per server rules it out.
    """

    def __init__(self, base: int = DEFAULT_UID_BASE) -> None:
        if not 1 <= base <= _LAST_UID - UID_SPAN + 1:
            raise ValueError(
                f"the worker uid base must be between 1 and {_LAST_UID - UID_SPAN + 1}, not {base}"
            )
        self.base = base
        self._held: set[int] = set()

    def allocate(self) -> int:
        """A uid no live worker of this pool holds; hold it until `release`."""
        if len(self._held) >= UID_SPAN:
            raise HostUidsExhausted(f"all {UID_SPAN} worker uids from {self.base} are in use")
        while True:
            uid = self.base + secrets.randbelow(UID_SPAN)
            if uid not in self._held:
                self._held.add(uid)
                return uid

    def release(self, uid: int) -> None:
        """Give `uid` back; call only once no process runs with it."""
        self._held.discard(uid)

    def held(self) -> frozenset[int]:
        """The uids handed out and not released."""
        return frozenset(self._held)


__all__ = ["DEFAULT_UID_BASE", "UID_SPAN", "HostUids", "HostUidsExhausted"]
