"""How far the app's sync streams may run ahead of their sockets, shared out among them.

Every frame a producer thread makes ahead of the socket is CPU the server loop waits for: the
loop relays all streams in turn, so each of its turns lasts as long as the producers take to
refill their leads. With a fixed lead per stream, that turn grows with the number of streams,
and a new request (accepted, parsed, dispatched and answered over several turns) waits behind
it. One total lead shared by all live streams keeps a turn about the same length however many
streams there are, while a lone stream still gets a lead long enough to send in big batches.
"""

from __future__ import annotations

TOTAL_LEAD = 1024
"""Frames all sync streams together may hold ahead of their sockets (before the floor)."""

MAX_LEAD = 64
"""The most one stream may run ahead: a lone stream's batch size."""

MIN_LEAD = 8
"""The least: below this the per-write costs eat the throughput, whatever the stream count."""


class StreamBudget:
    """The lead each live sync stream may hold now: the total split evenly, within bounds.

    Counted without a lock on the read side: a share computed from a count one stream stale is
    still a fair share, and producers read it once per frame.
    """

    def __init__(self, total: int = TOTAL_LEAD, most: int = MAX_LEAD, least: int = MIN_LEAD) -> None:
        if not 1 <= least <= most:
            raise ValueError(f"need 1 <= least ({least}) <= most ({most})")
        self.total = total
        self.most = most
        self.least = least
        self._streams = 0

    @property
    def streams(self) -> int:
        """How many sync streams are live."""
        return self._streams

    def lead(self) -> int:
        """Frames one stream may now hold ahead of its socket."""
        share = self.total // max(1, self._streams)
        return max(self.least, min(self.most, share))

    def opened(self) -> None:
        """A stream started producing (call on the server loop)."""
        self._streams += 1

    def closed(self) -> None:
        """A stream stopped producing (call on the server loop)."""
        self._streams -= 1


__all__ = ["MAX_LEAD", "MIN_LEAD", "TOTAL_LEAD", "StreamBudget"]
