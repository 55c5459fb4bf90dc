"""Server-sent events as the server relays them: cut into events, each given an `id:` that names
its invocation, and the `Last-Event-ID` a client sends back read into (request id, frame number)."""

from __future__ import annotations

import re

# Two line ends in a row end an event; a line end is CRLF, LF or CR (the SSE grammar). A lone CR
# at the end of what has arrived may be the first half of a CRLF, so it never ends the first line.
_BOUNDARY = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r|\n)")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._~:-]{1,128}")  # as the server accepts a caller-chosen one
MAX_EVENT_ID = 200


class MalformedEventId(ValueError):
    """A `Last-Event-ID` that is not `<request id>:<frame number>` (nor a bare request id)."""


class EventSplitter:
    """Cuts a byte stream into SSE events wherever the worker's chunks happen to break.

    Each event is returned without its terminating blank line, so the caller can add an `id:`
    line before ending it. Blank lines between events are dropped.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._after_cr = False  # the last event ended with a CR that may be half of a CRLF

    def feed(self, chunk: bytes) -> list[bytes]:
        """The events `chunk` completes, in order."""
        if self._after_cr and chunk:
            self._after_cr = False
            chunk = chunk[1:] if chunk[:1] == b"\n" else chunk
        data = self._buffer + chunk if self._buffer else chunk
        if data.endswith(b"\n\n") and b"\r" not in data and b"\n\n\n" not in data:
            # The common case (whole `data: ...\n\n` events, as our SDK writes them): split in C.
            self._buffer = b""
            events = data.split(b"\n\n")
            events.pop()
            return [event for event in events if event] if events and not events[0] else events
        events = []
        start = 0
        for match in _BOUNDARY.finditer(data):
            if match.start() > start:
                events.append(data[start : match.start()])
            start = match.end()
        self._buffer = data[start:]
        self._after_cr = start == len(data) and data.endswith(b"\r")
        return events

    def rest(self) -> bytes:
        """What came after the last complete event (an event the worker never ended)."""
        rest, self._buffer = self._buffer, b""
        return rest


def with_id(event: bytes, event_id: bytes) -> bytes:
    """The event as relayed: its lines, then its `id:` (the last `id:` of an event is the one a
    client keeps, so any the worker wrote are overridden), then the blank line that ends it."""
    return b"".join((event, b"\nid: ", event_id, b"\n\n"))


def event_id(request_id: str, number: int) -> str:
    """`<request id>:<n>`: frames of one invocation are numbered from 1."""
    return f"{request_id}:{number}"


def parse_event_id(text: str) -> tuple[str, int]:
    """(request id, number of the last frame the client has) from a `Last-Event-ID`.

    A bare request id means the client has none of its frames yet (as `<request id>:0`).
    """
    text = text.strip()
    if len(text) > MAX_EVENT_ID:
        raise MalformedEventId(f"Last-Event-ID is longer than {MAX_EVENT_ID} characters")
    request_id, colon, number = text.rpartition(":")
    if not colon:
        request_id, number = text, "0"
    if not _REQUEST_ID.fullmatch(request_id) or not number.isascii() or not number.isdigit():
        raise MalformedEventId(
            f"Last-Event-ID must be <request id>:<frame number> as the stream's `id:` lines give it, "
            f"not {text[:80]!r}"
        )
    return request_id, int(number)


__all__ = ["EventSplitter", "MalformedEventId", "event_id", "parse_event_id", "with_id"]
