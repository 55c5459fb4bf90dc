"""The stream journal (`streams/journal.py`): numbering, replay then live frames, the memory cap
and spill to disk, the per-session bound, and cleanup when the session ends."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from open_agentcore.streams import (
    FrameOutOfRange,
    FramesDropped,
    JournalLimits,
    Recording,
    StreamCut,
    StreamJournal,
    StreamNotFound,
    StreamRecorder,
)

T = TypeVar("T")


def run(test: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(test(), 10))


def frame(recording: Recording, number: int, text: str) -> bytes:
    return f"data: {text}\nid: {recording.request_id}:{number}\n\n".encode()


async def collect(recording: Recording, after: int = 0) -> bytes:
    return b"".join([batch async for batch in recording.read(after)])


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def test_frames_are_numbered_from_one_and_carry_their_id(tmp_path: Path) -> None:
    async def test() -> None:
        recording = StreamJournal(tmp_path).start("rt", "s")
        for text in "abc":
            recording.append(f"data: {text}".encode())
        recording.finish()
        assert recording.last == 3
        assert await collect(recording) == b"".join(frame(recording, n + 1, t) for n, t in enumerate("abc"))
        assert await collect(recording, 2) == frame(recording, 3, "c")
        assert await collect(recording, 3) == b""

    run(test)


def test_a_reader_gets_the_missed_frames_then_the_live_ones(tmp_path: Path) -> None:
    async def test() -> None:
        recording = StreamJournal(tmp_path).start("rt", "s")
        recording.append(b"data: 1")
        recording.append(b"data: 2")
        reader = recording.read(1)
        assert await reader.__anext__() == frame(recording, 2, "2")
        waiting = asyncio.ensure_future(reader.__anext__())
        await asyncio.sleep(0)
        assert not waiting.done()  # nothing new yet: the reader waits for the worker
        recording.append(b"data: 3")
        assert await waiting == frame(recording, 3, "3")
        recording.finish()
        with pytest.raises(StopAsyncIteration):
            await reader.__anext__()

    run(test)


def test_every_reader_of_a_live_stream_gets_every_frame(tmp_path: Path) -> None:
    async def test() -> None:
        recording = StreamJournal(tmp_path).start("rt", "s")
        readers = [asyncio.ensure_future(collect(recording)) for _ in range(3)]
        for n in range(50):
            recording.append(f"data: {n}".encode())
            if n % 7 == 0:
                await asyncio.sleep(0)
        recording.finish()
        expected = b"".join(frame(recording, n + 1, str(n)) for n in range(50))
        assert await asyncio.gather(*readers) == [expected] * 3

    run(test)


def test_a_cut_stream_ends_its_readers_with_the_reason(tmp_path: Path) -> None:
    async def test() -> None:
        recording = StreamJournal(tmp_path).start("rt", "s")
        recording.append(b"data: 1")
        recording.finish(cut="the worker died")
        got: list[bytes] = []
        with pytest.raises(StreamCut, match="the worker died"):
            async for batch in recording.read(0):
                got.append(batch)
        assert got == [frame(recording, 1, "1")]

    run(test)


def test_a_frame_never_sent_is_out_of_range(tmp_path: Path) -> None:
    recording = StreamJournal(tmp_path).start("rt", "s")
    recording.append(b"data: 1")
    recording.check(1)
    with pytest.raises(FrameOutOfRange, match="has sent 1"):
        recording.check(2)


def test_past_the_memory_cap_frames_spill_to_a_private_file_and_replay_from_it(tmp_path: Path) -> None:
    async def test() -> None:
        journal = StreamJournal(tmp_path, JournalLimits(memory_bytes=100, session_bytes=10**6))
        recording = journal.start("rt", "s")
        texts = [f"{n:04d}" * 10 for n in range(20)]
        for text in texts:
            recording.append(f"data: {text}".encode())
        recording.finish()
        spilled = files_under(tmp_path)
        assert spilled, "nothing was spilled to disk"
        assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in spilled)
        assert all(stat.S_IMODE(path.stat().st_mode) == 0o700 for path in [spilled[0].parent])
        assert texts[0].encode() in spilled[0].read_bytes()
        expected = b"".join(frame(recording, n + 1, t) for n, t in enumerate(texts))
        assert await collect(recording) == expected
        assert await collect(recording, 5) == b"".join(
            frame(recording, n + 1, t) for n, t in enumerate(texts) if n >= 5
        )

    run(test)


def test_past_the_session_bound_the_oldest_frames_are_dropped_and_asking_for_them_fails(
    tmp_path: Path,
) -> None:
    async def test() -> None:
        journal = StreamJournal(tmp_path, JournalLimits(memory_bytes=10**6, session_bytes=400))
        recording = journal.start("rt", "s")
        for n in range(40):
            recording.append(f"data: {n:03d}".encode())
        recording.finish()
        kept = await collect(recording, recording.last - 3)
        assert kept == b"".join(frame(recording, n + 1, f"{n:03d}") for n in range(37, 40))
        with pytest.raises(FramesDropped, match="frames 1 to"):
            recording.check(0)
        with pytest.raises(FramesDropped):
            await collect(recording, 0)

    run(test)


def test_dropping_spilled_frames_deletes_their_files(tmp_path: Path) -> None:
    journal = StreamJournal(tmp_path, JournalLimits(memory_bytes=0, session_bytes=200 * 1024))
    recording = journal.start("rt", "s")
    for _ in range(200):
        recording.append(b"data: " + b"x" * 4000)
    size = sum(path.stat().st_size for path in files_under(tmp_path))
    # At most the bound plus the segment being written (an eighth of the bound, at least 64 KiB).
    assert 0 < size <= 200 * 1024 + 64 * 1024


def test_the_bound_is_per_session(tmp_path: Path) -> None:
    journal = StreamJournal(tmp_path, JournalLimits(memory_bytes=10**6, session_bytes=400))
    first = journal.start("rt", "a")
    for n in range(40):
        journal.start("rt", "b").append(f"data: {n:03d}".encode())
    first.append(b"data: kept")
    first.check(0)


def test_a_stream_is_found_only_in_its_own_session(tmp_path: Path) -> None:
    journal = StreamJournal(tmp_path)
    recording = journal.start("rt", "s")
    assert journal.find("rt", "s", recording.request_id) is recording
    elsewhere = [("rt", "other", recording.request_id), ("rt2", "s", recording.request_id)]
    for runtime, session, request in [*elsewhere, ("rt", "s", "no-such-request")]:
        with pytest.raises(StreamNotFound):
            journal.find(runtime, session, request)


def test_ending_the_session_cuts_its_readers_and_deletes_its_files(tmp_path: Path) -> None:
    async def test() -> None:
        journal = StreamJournal(tmp_path, JournalLimits(memory_bytes=0))
        recording = journal.start("rt", "s")
        other = journal.start("rt", "kept")
        for target in (recording, other):
            target.append(b"data: 1")
        reader = asyncio.ensure_future(collect(recording, 1))
        await asyncio.sleep(0)
        journal.end_session("rt", "s")
        with pytest.raises(StreamCut, match="session ended"):
            await reader
        with pytest.raises(StreamNotFound):
            journal.find("rt", "s", recording.request_id)
        assert [path.parent.parent.name for path in files_under(tmp_path)] == ["rt"]
        assert journal.find("rt", "kept", other.request_id) is other
        journal.close()
        assert files_under(tmp_path) == []

    run(test)


def test_the_oldest_finished_stream_is_forgotten_past_the_limit(tmp_path: Path) -> None:
    journal = StreamJournal(tmp_path, JournalLimits(max_streams=2))
    streams = [journal.start("rt", "s") for _ in range(3)]
    streams[0].finish()
    streams.append(journal.start("rt", "s"))
    with pytest.raises(StreamNotFound):
        journal.find("rt", "s", streams[0].request_id)
    assert journal.find("rt", "s", streams[1].request_id) is streams[1]


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def test_the_recorder_reads_the_source_to_its_end_with_no_reader_and_then_runs_on_end(tmp_path: Path) -> None:
    async def test() -> None:
        recorder = StreamRecorder(StreamJournal(tmp_path))
        ended = asyncio.Event()

        async def on_end() -> None:
            ended.set()

        recording = recorder.record("rt", "s", chunks(b"data: a\n\nda", b"ta: b\n\n", b"data: c"), on_end)
        await ended.wait()
        assert recording.done and recording.cut is None
        assert await collect(recording) == frame(recording, 1, "a") + frame(recording, 2, "b") + frame(
            recording, 3, "c"
        )
        await recorder.close()

    run(test)


def test_a_failing_source_cuts_the_recording(tmp_path: Path) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"data: a\n\n"
        raise ConnectionError("the worker went away")

    async def test() -> None:
        recorder = StreamRecorder(StreamJournal(tmp_path))
        ended = asyncio.Event()

        async def on_end() -> None:
            ended.set()

        recording = recorder.record("rt", "s", broken(), on_end)
        await ended.wait()
        assert recording.cut == "the worker went away"
        with pytest.raises(StreamCut):
            await collect(recording)

    run(test)


def test_a_resume_inside_a_chunk_of_frames_starts_at_the_next_frame(tmp_path: Path) -> None:
    async def test() -> None:
        journal = StreamJournal(tmp_path, JournalLimits(memory_bytes=0))  # read back from disk too
        recording = journal.start("rt", "s")
        recording.append_events([b"data: a", b"data: b\ndata: b2", b": comment"])
        recording.append_events([b"data: d"])
        recording.finish()
        texts = ["a", "b\ndata: b2", "d"]
        assert await collect(recording, 1) == (
            frame(recording, 2, texts[1]) + f": comment\nid: {recording.request_id}:3\n\n".encode()
            + frame(recording, 4, "d")
        )  # fmt: skip
        assert await collect(recording, 3) == frame(recording, 4, "d")
        assert await collect(recording, 0) == frame(recording, 1, "a") + await collect(recording, 1)

    run(test)


def test_a_reader_replaying_from_disk_when_the_session_ends_is_cut(tmp_path: Path) -> None:
    async def test() -> None:
        journal = StreamJournal(tmp_path, JournalLimits(memory_bytes=0))
        recording = journal.start("rt", "s")
        for n in range(3):
            recording.append_events([b"data: " + b"x" * 70_000])  # one batch each
            assert n == recording.last - 1
        recording.finish()
        reader = recording.read(0)
        assert (await reader.__anext__()).startswith(b"data: x")
        journal.end_session("rt", "s")
        with pytest.raises(StreamCut, match="session ended"):
            await reader.__anext__()

    run(test)


def test_an_attached_reader_that_falls_behind_holds_the_writer_back_until_it_reads_or_leaves(
    tmp_path: Path,
) -> None:
    async def test() -> None:
        journal = StreamJournal(tmp_path, JournalLimits(memory_bytes=100_000))
        recording = journal.start("rt", "s")
        reader = recording.read(0)
        recording.append(b"data: " + b"x" * 70_000)
        assert len(await reader.__anext__()) > 70_000  # the reader is attached, and caught up
        await asyncio.wait_for(recording.room(), 5)  # within the window: no wait
        recording.append(b"data: " + b"y" * 70_000)
        recording.append(b"data: " + b"z" * 70_000)
        held = asyncio.ensure_future(recording.room())
        await asyncio.sleep(0)
        assert not held.done()  # 140 KB behind a 100 KB window
        await reader.__anext__()  # reads the next batch, then asks for more
        await reader.__anext__()
        await asyncio.wait_for(held, 5)
        for _ in range(3):
            recording.append(b"data: " + b"w" * 70_000)
        held = asyncio.ensure_future(recording.room())
        await asyncio.sleep(0)
        assert not held.done()
        await reader.aclose()  # the client left: the writer goes on at once
        await asyncio.wait_for(held, 5)

    run(test)
