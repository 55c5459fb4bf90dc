"""Identifiers the server makes up per request (session ids for callers who sent none, request ids).

They are random version-4 UUIDs in text form, as `str(uuid.uuid4())` makes them, with the same
122 random bits from the operating system's CSPRNG, but cheaper: the random bytes are fetched in
blocks rather than by one system call per id, and the text is cut from their hex form directly.
Unguessable matters: a made-up session id names a session its caller owns.
"""

from __future__ import annotations

import os
import threading

_IDS_PER_FETCH = 256
_VARIANT = "89ab89ab89ab89ab"  # RFC 4122 variant: the 17th hex digit is 8, 9, a or b


class _RandomIds:
    def __init__(self) -> None:
        self._hex = ""
        self._at = 0
        self._pid = os.getpid()
        self._lock = threading.Lock()  # two threads must never take the same bytes

    def next(self) -> str:
        with self._lock:
            return self._next()

    def _next(self) -> str:
        if self._at >= len(self._hex) or self._pid != os.getpid():
            # A forked child must not hand out its parent's remaining ids.
            self._pid = os.getpid()
            self._hex, self._at = os.urandom(16 * _IDS_PER_FETCH).hex(), 0
        h = self._hex[self._at : self._at + 32]
        self._at += 32
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16)]}{h[17:20]}-{h[20:]}"


_ids = _RandomIds()


def random_id() -> str:
    """A new random UUID (version 4) as text, e.g. `1b4e28ba-2fa1-4d2b-883f-0016d3cca427`."""
    return _ids.next()


__all__ = ["random_id"]
