"""Resumable event streams on the data plane: every SSE answer recorded, and resumed on request.

An SSE answer carries its request id in `x-amzn-RequestId` and in every frame's `id:`
(`<request id>:<n>`). InvokeAgentRuntime with a `Last-Event-ID` header sends no payload to the
agent: it answers the frames after that one from the session's journal, then the live rest.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from open_agentcore.auth import Caller
from open_agentcore.sessions import SessionManager
from open_agentcore.streams import FramesDropped, Recording, StreamCut, StreamRecorder, parse_event_id

logger = logging.getLogger("open_agentcore.server.streams")

LAST_EVENT_ID = "last-event-id"
REQUEST_ID_HEADER = "x-amzn-RequestId"


def recorded(
    recorder: StreamRecorder, runtime_id: str, session_id: str, source: AsyncIterator[bytes],
    headers: Mapping[str, str], on_end: Callable[[], Awaitable[None]], request_id: str | None = None,
) -> StreamingResponse:  # fmt: skip
    """The answer to a streamed invocation: `source` is copied into the journal, the client reads
    from there. `on_end` runs when the worker's stream ends, not when the client leaves. The
    recording is named `request_id` (the invocation's), else a new id."""
    recording = recorder.record(runtime_id, session_id, source, on_end, request_id)
    return _answer(recording, 0, headers)


def resumed(
    recorder: StreamRecorder, sessions: SessionManager, runtime_id: str, session_id: str, caller: Caller,
    last_event_id: str, headers: Mapping[str, str],
) -> StreamingResponse:  # fmt: skip
    """The frames of a recorded stream after `last_event_id`, then its live rest.

    Refused before anything is sent (typed errors, mapped in `wire.py`): a malformed id, a caller
    who does not own the session, a request id this session never streamed, a frame never sent,
    or frames already dropped.
    """
    request_id, after = parse_event_id(last_event_id)
    sessions.check_owner(runtime_id, session_id, caller.owner, caller.admin)
    recording = recorder.journal.find(runtime_id, session_id, request_id)
    recording.check(after)
    return _answer(recording, after, headers)


class StreamAborted(Exception):
    """Ends a response that has started without its final chunk (the client sees it cut)."""


class _Frames(StreamingResponse):
    """A recorded stream's frames to one client; the reader detaches when the client leaves.

    Starlette cancels a response whose client disconnected without closing its body iterator;
    closed here at once, the reader stops holding the recording's writer back.
    """

    def __init__(self, recording: Recording, after: int, headers: Mapping[str, str]) -> None:
        self._frames = _frames(recording, after)
        super().__init__(self._frames, media_type=None, headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._frames.aclose()


def _answer(recording: Recording, after: int, headers: Mapping[str, str]) -> StreamingResponse:
    return _Frames(recording, after, {**headers, REQUEST_ID_HEADER: recording.request_id})


async def _frames(recording: Recording, after: int) -> AsyncGenerator[bytes, None]:
    try:
        async with contextlib.aclosing(recording.read(after)) as frames:
            async for batch in frames:
                yield batch
    except (StreamCut, FramesDropped) as error:
        # Raising is how an ASGI app ends a response abnormally: the client sees no final chunk.
        # Not as the typed error itself: the response has started, it can no longer be answered.
        logger.warning("Stream %s ended abnormally for a client: %s", recording.request_id, error)
        raise StreamAborted(str(error)) from None


__all__ = ["LAST_EVENT_ID", "REQUEST_ID_HEADER", "StreamAborted", "recorded", "resumed"]
