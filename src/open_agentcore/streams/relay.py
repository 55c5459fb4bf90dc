"""Recording a worker's event stream into the journal, independently of the client reading it.

The worker is read by a task of its own, so a client that leaves (or reads slowly) neither stops
the agent nor holds it back: the rest of the answer goes into the journal for a resume.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from .journal import Recording, StreamJournal
from .sse import EventSplitter

logger = logging.getLogger("open_agentcore.streams")

_Callback = Callable[[], Awaitable[None]]


class StreamRecorder:
    """Starts and owns the tasks that copy worker streams into a `StreamJournal`."""

    def __init__(self, journal: StreamJournal) -> None:
        self.journal = journal
        self._tasks: set[asyncio.Task[None]] = set()

    def record(
        self, runtime_id: str, session_id: str, source: AsyncIterator[bytes], on_end: _Callback,
        request_id: str | None = None,
    ) -> Recording:  # fmt: skip
        """Start copying `source` (the worker's SSE bytes) into a new recording; returns it at once.

        `on_end` runs when the source is exhausted or fails (it closes the worker's reply and
        releases the session), whether or not any client is still reading.
        """
        recording = self.journal.start(runtime_id, session_id, request_id)
        task = asyncio.get_running_loop().create_task(self._copy(recording, source, on_end))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return recording

    async def _copy(self, recording: Recording, source: AsyncIterator[bytes], on_end: _Callback) -> None:
        splitter = EventSplitter()
        try:
            async for chunk in source:
                recording.append_events(splitter.feed(chunk))
                await recording.room()
            if rest := splitter.rest():
                recording.append(rest)  # an event the worker never ended: kept, and ended here
            recording.finish()
        except asyncio.CancelledError:
            recording.finish(cut="the server is stopping")
            raise
        except Exception as error:  # a task boundary: whatever broke the source cuts the stream
            logger.info("Stream %s broke off: %s", recording.request_id, error)
            recording.finish(cut=str(error) or type(error).__name__)
        finally:
            await on_end()

    async def close(self) -> None:
        """Stop copying (server shutdown, after the sessions are stopped) and forget every stream."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.journal.close()


__all__ = ["StreamRecorder"]
