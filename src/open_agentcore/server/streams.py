"""Resumable event streams on the data plane: every SSE answer recorded, and resumed on request.

An SSE answer carries its request id in `x-amzn-RequestId` and in every frame's `id:`
(`<request id>:<n>`). InvokeAgentRuntime with a `Last-Event-ID` header sends no payload to the
agent: it answers the frames after that one from the session's journal, then the live rest.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from starlette.responses import StreamingResponse

from open_agentcore.auth import Caller
from open_agentcore.sessions import SessionManager
from open_agentcore.streams import FramesDropped, Recording, StreamCut, StreamRecorder, parse_event_id

logger = logging.getLogger("open_agentcore.server.streams")

LAST_EVENT_ID = "last-event-id"
REQUEST_ID_HEADER = "x-amzn-RequestId"


def recorded(
    recorder: StreamRecorder, runtime_id: str, session_id: str, source: AsyncIterator[bytes],
    headers: Mapping[str, str], on_end: Callable[[], Awaitable[None]],
) -> StreamingResponse:  # fmt: skip
    """The answer to a streamed invocation: `source` is copied into the journal, the client reads
    from there. `on_end` runs when the worker's stream ends, not when the client leaves."""
    recording = recorder.record(runtime_id, session_id, source, on_end)
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


def _answer(recording: Recording, after: int, headers: Mapping[str, str]) -> StreamingResponse:
    return StreamingResponse(
        _frames(recording, after),
        media_type=None,
        headers={**headers, REQUEST_ID_HEADER: recording.request_id},
    )


async def _frames(recording: Recording, after: int) -> AsyncIterator[bytes]:
    try:
        async for batch in recording.read(after):
            yield batch
    except (StreamCut, FramesDropped) as error:
        # Raising is how an ASGI app ends a response abnormally: the client sees no final chunk.
        logger.warning("Stream %s ended abnormally for a client: %s", recording.request_id, error)
        raise


__all__ = ["LAST_EVENT_ID", "REQUEST_ID_HEADER", "recorded", "resumed"]
