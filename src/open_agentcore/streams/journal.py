"""Each invocation's relayed frames, kept for its session's life so a client can resume.

A session's frames are kept in memory up to `memory_bytes`; past that the oldest are spilled to
files in the session's own directory (mode 0600, under the server's data dir), and past
`session_bytes` in all the oldest are dropped. Asking for a dropped frame is an error, never a gap.
Everything here runs on the server's event loop: spilling is a small append to a file, reading a
spilled frame back a small read of one.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import os
import shutil
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .sse import with_id

# A reader gets at most about this much per send, so one replay never builds a huge buffer.
_BATCH_BYTES = 64 * 1024


@dataclass(frozen=True)
class JournalLimits:
    """How much of a session's streamed output is kept (`--stream-memory`, `--stream-history`)."""

    memory_bytes: int = 256 * 1024
    session_bytes: int = 64 * 1024 * 1024
    # Invocations remembered per session; past it the oldest finished one is forgotten.
    max_streams: int = 1000


class StreamNotFound(LookupError):
    """No such invocation in this session (never streamed here, forgotten, or the session ended)."""


class FramesDropped(LookupError):
    """The frames asked for were dropped to keep the session within its bound."""


class FrameOutOfRange(ValueError):
    """The client claims a frame the stream has not sent."""


class StreamCut(Exception):
    """The stream broke off before its end (the worker died, or the session ended)."""


class _Entry:
    """Consecutive frames as one piece (those one chunk of the worker's stream completed)."""

    __slots__ = ("count", "data", "end", "first", "offset", "segment", "size")

    def __init__(self, data: bytes, first: int, count: int, end: int) -> None:
        self.data: bytes | None = data  # None once spilled
        self.size = len(data)
        self.first = first
        self.count = count
        self.end = end  # bytes of the recording up to the end of this entry
        self.segment = 0
        self.offset = 0


class _Spill:
    """Append-only segment files; a segment is deleted once none of its entries is kept."""

    def __init__(self, directory: Path, segment_bytes: int) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._segment = -1
        self._fd = -1
        self._size = 0
        self._live: dict[int, int] = {}

    def write(self, entries: list[_Entry]) -> None:
        """Move the entries' data to disk, in as few writes as segments allow."""
        pending: list[bytes] = []
        for entry in entries:
            data = entry.data
            assert data is not None
            if self._fd < 0 or (self._size and self._size + len(data) > self.segment_bytes):
                self._flush(pending)
                self._next_segment()
            pending.append(data)
            entry.segment, entry.offset, entry.data = self._segment, self._size, None
            self._size += len(data)
            self._live[self._segment] = self._live.get(self._segment, 0) + 1
        self._flush(pending)

    def _flush(self, pending: list[bytes]) -> None:
        if pending:
            data = memoryview(b"".join(pending))
            while data:
                data = data[os.write(self._fd, data) :]
            pending.clear()

    def _next_segment(self) -> None:
        if self._fd < 0:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        else:
            os.close(self._fd)
            if not self._live.get(self._segment):
                self._unlink(self._segment)
        self._segment += 1
        self._size = 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        self._fd = os.open(self._path(self._segment), flags, 0o600)

    def read(self, entry: _Entry) -> bytes:
        with open(self._path(entry.segment), "rb") as file:
            file.seek(entry.offset)
            return file.read(entry.size)

    def release(self, entry: _Entry) -> None:
        left = self._live[entry.segment] - 1
        if left:
            self._live[entry.segment] = left
        else:
            del self._live[entry.segment]
            if entry.segment != self._segment:
                self._unlink(entry.segment)

    def _unlink(self, segment: int) -> None:
        self._path(segment).unlink(missing_ok=True)

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment}.frames"

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        shutil.rmtree(self.directory, ignore_errors=True)


class Recording:
    """The frames of one invocation: appended as the worker streams, read by any number of clients."""

    def __init__(self, session: _SessionStreams, request_id: str) -> None:
        self.request_id = request_id
        self._session = session
        self._prefix = f"{request_id}:".encode()
        self._entries: deque[_Entry] = deque()
        self._first = 1  # the number of the oldest frame kept; those before it were dropped
        self._next = 1
        self._in_memory = 0  # how many of the newest entries are still in memory
        self.done = False
        self.cut: str | None = None
        self._changed = asyncio.Event()
        self._written = 0
        # Where each attached reader has got to, in bytes: the writer waits for the slowest.
        self._readers: dict[object, int] = {}
        self._drained = asyncio.Event()

    @property
    def last(self) -> int:
        """The number of the last frame appended (0 before the first)."""
        return self._next - 1

    def append(self, event: bytes) -> None:
        """Add one event (`append_events`)."""
        self.append_events([event])

    def append_events(self, events: Sequence[bytes]) -> None:
        """Add events, each numbered and given its `id:` line; ignored once `finish`ed.

        Events never hold a blank line (`EventSplitter` cut them there), so in what is kept every
        frame ends at the first blank line after its start: that is how a resume finds frame n.
        """
        if self.done or not events:
            return
        first, prefix = self._next, self._prefix
        if len(events) == 1:
            data = with_id(events[0], b"%s%d" % (prefix, first))
        else:
            data = b"".join([with_id(event, b"%s%d" % (prefix, n)) for n, event in enumerate(events, first)])
        self._next += len(events)
        self._written += len(data)
        entry = _Entry(data, first, len(events), self._written)
        self._entries.append(entry)
        self._in_memory += 1
        self._session.added(self, entry.size)
        self._changed.set()
        self._changed.clear()

    async def room(self) -> None:
        """Wait while an attached reader is more than the session's memory cap behind.

        A client that reads slowly holds the agent back, as a direct relay would, instead of
        the server keeping its backlog; once it leaves, the writer goes on at the agent's pace.
        """
        window = max(self._session.limits.memory_bytes, _BATCH_BYTES)
        while self._readers and self._written - min(self._readers.values()) > window and not self.done:
            await self._drained.wait()

    def finish(self, cut: str | None = None) -> None:
        """No more frames: the stream ended, or (`cut` says why) broke off."""
        if not self.done:
            self.done, self.cut = True, cut
            for event in (self._changed, self._drained):
                event.set()
                event.clear()

    def check(self, after: int) -> None:
        """Raise now, before answering, if `read(after)` could not give every frame after `after`."""
        if after > self.last:
            raise FrameOutOfRange(
                f"frame {after} of {self.request_id} was never sent: the stream has sent {self.last}"
            )
        self._check_kept(after + 1)

    def _check_kept(self, number: int) -> None:
        if number < self._first:
            raise FramesDropped(
                f"frames {number} to {self._first - 1} of {self.request_id} are no longer kept (a session "
                f"keeps its last {self._session.limits.session_bytes} bytes of streamed output); "
                f"frames from {self._first} on are"
            )

    async def read(self, after: int = 0) -> AsyncGenerator[bytes, None]:
        """Every frame after number `after`, as relayed, then the live ones until the end.

        Ends normally when the stream did; raises `StreamCut` when it broke off, and
        `FramesDropped` when a reader fell so far behind that its next frame was dropped.
        """
        number = after + 1
        reader = object()
        self._readers[reader] = self._written
        try:
            while True:
                self._check_kept(number)
                if number < self._next:
                    batch, number, position = self._batch(number)
                    self._readers[reader] = position - len(batch)
                    yield batch
                    self._readers[reader] = position
                    self._drained.set()
                    self._drained.clear()
                elif self.done:
                    if self.cut is not None:
                        raise StreamCut(self.cut)
                    return
                else:
                    await self._changed.wait()
        finally:
            del self._readers[reader]
            self._drained.set()
            self._drained.clear()

    def _batch(self, number: int) -> tuple[bytes, int, int]:
        entries = self._entries
        index = len(entries) - 1
        if entries[index].first > number:  # a reader behind the live tail: find its entry
            index = bisect.bisect_right(entries, number, key=_first_of) - 1
        entry = entries[index]
        parts = [self._data(entry)]
        if number > entry.first:
            parts[0] = _from_frame(parts[0], number - entry.first)
        size = len(parts[0])
        number = entry.first + entry.count
        index += 1
        while index < len(entries) and size < _BATCH_BYTES:
            entry = entries[index]
            parts.append(self._data(entry))
            size += entry.size
            number += entry.count
            index += 1
        return (parts[0] if len(parts) == 1 else b"".join(parts)), number, entries[index - 1].end

    def _data(self, entry: _Entry) -> bytes:
        if entry.data is not None:
            return entry.data
        try:
            return self._session.read(entry)
        except OSError:
            # The session ended (its files are gone) while this reader was still replaying.
            raise StreamCut(self.cut or "the session ended") from None

    # Called by the session's accounting ------------------------------------------------------

    def _drop_oldest(self) -> _Entry | None:
        if not self._entries:
            return None
        entry = self._entries.popleft()
        self._first = entry.first + entry.count
        self._in_memory = min(self._in_memory, len(self._entries))
        return entry

    def _oldest_in_memory(self) -> _Entry | None:
        if not self._in_memory:
            return None
        entry = self._entries[len(self._entries) - self._in_memory]
        self._in_memory -= 1
        return entry

    def _forget(self) -> None:
        while (entry := self._drop_oldest()) is not None:
            self._session.dropped(entry)
        self.finish(cut="forgotten: the session has streamed too many invocations since")


def _first_of(entry: _Entry) -> int:
    return entry.first


def _from_frame(data: bytes, skip: int) -> bytes:
    """`data` without its first `skip` frames (each ends at its first blank line)."""
    start = 0
    for _ in range(skip):
        start = data.index(b"\n\n", start) + 2
    return data[start:]


class _SessionStreams:
    """One session's recordings and the bytes they hold."""

    def __init__(self, directory: Path, limits: JournalLimits) -> None:
        self.directory = directory
        self.limits = limits
        self.recordings: OrderedDict[str, Recording] = OrderedDict()
        self.memory = 0
        self.total = 0
        self._holding: dict[Recording, None] = {}  # recordings with frames in memory, oldest first
        self._spill: _Spill | None = None

    def new(self, request_id: str | None = None) -> Recording:
        recording = Recording(self, request_id or str(uuid.uuid4()))
        if (earlier := self.recordings.pop(recording.request_id, None)) is not None:
            earlier._forget()
            self._holding.pop(earlier, None)
        self.recordings[recording.request_id] = recording
        if len(self.recordings) > self.limits.max_streams:
            oldest = next((r for r in self.recordings.values() if r.done), None)
            if oldest is not None:
                oldest._forget()
                del self.recordings[oldest.request_id]
                self._holding.pop(oldest, None)
        return recording

    def added(self, recording: Recording, size: int) -> None:
        self.memory += size
        self.total += size
        self._holding.setdefault(recording, None)
        if self.total > self.limits.session_bytes:
            self._drop()
        if self.memory > self.limits.memory_bytes:
            self._spill_oldest()

    def _drop(self) -> None:
        for recording in self.recordings.values():
            while self.total > self.limits.session_bytes:
                entry = recording._drop_oldest()
                if entry is None:
                    break
                self.dropped(entry)
            if self.total <= self.limits.session_bytes:
                return

    def dropped(self, entry: _Entry) -> None:
        self.total -= entry.size
        if entry.data is not None:
            self.memory -= entry.size
        elif self._spill is not None:
            self._spill.release(entry)

    def _spill_oldest(self) -> None:
        if self._spill is None:
            self._spill = _Spill(self.directory, max(64 * 1024, self.limits.session_bytes // 8))
        # Down to half the cap, so a long stream spills in a few large writes, not one per chunk.
        moving: list[_Entry] = []
        while self.memory > self.limits.memory_bytes // 2 and self._holding:
            recording = next(iter(self._holding))
            entry = recording._oldest_in_memory()
            if entry is None:
                del self._holding[recording]
                continue
            moving.append(entry)
            self.memory -= entry.size
        self._spill.write(moving)

    def read(self, entry: _Entry) -> bytes:
        assert self._spill is not None
        return self._spill.read(entry)

    def close(self, reason: str) -> None:
        for recording in self.recordings.values():
            recording.finish(cut=reason)
        self.recordings.clear()
        self._holding.clear()
        if self._spill is not None:
            self._spill.close()


class StreamJournal:
    """The frames of every session's streamed invocations on this server, until each session ends."""

    def __init__(self, root: Path, limits: JournalLimits | None = None) -> None:
        self.root = root
        self.limits = limits or JournalLimits()
        self._sessions: dict[tuple[str, str], _SessionStreams] = {}

    def start(self, runtime_id: str, session_id: str, request_id: str | None = None) -> Recording:
        """A new recording for an invocation of this session, named `request_id` (else a new id).

        A caller that names a second invocation of the session as an earlier one replaces that
        earlier recording: the id then means the newer stream.
        """
        key = (runtime_id, session_id)
        session = self._sessions.get(key)
        if session is None:
            directory = self._directory(runtime_id, session_id)
            session = self._sessions[key] = _SessionStreams(directory, self.limits)
        return session.new(request_id)

    def find(self, runtime_id: str, session_id: str, request_id: str) -> Recording:
        """The recording of `request_id` in this session; `StreamNotFound` when there is none."""
        session = self._sessions.get((runtime_id, session_id))
        recording = session.recordings.get(request_id) if session is not None else None
        if recording is None:
            raise StreamNotFound(
                f"session {session_id!r} has no stream {request_id!r} (streams are kept while their "
                "session lives, and only for the session that made them)"
            )
        return recording

    def end_session(self, runtime_id: str, session_id: str, reason: str = "the session ended") -> None:
        """Forget the session's streams and delete their files; readers still attached are cut."""
        session = self._sessions.pop((runtime_id, session_id), None)
        if session is not None:
            session.close(reason)

    def close(self) -> None:
        """End every session's streams (server shutdown)."""
        for key in list(self._sessions):
            self.end_session(*key, reason="the server is stopping")

    def _directory(self, runtime_id: str, session_id: str) -> Path:
        # Session ids may hold any character: the directory is named by a digest of the id.
        return self.root / runtime_id / hashlib.sha256(session_id.encode()).hexdigest()[:32]


__all__ = [
    "FrameOutOfRange",
    "FramesDropped",
    "JournalLimits",
    "Recording",
    "StreamCut",
    "StreamJournal",
    "StreamNotFound",
]
