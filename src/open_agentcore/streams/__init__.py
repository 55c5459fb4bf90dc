"""Resumable streams: every relayed SSE frame numbered and kept for its session's life."""

from .journal import (
    FrameOutOfRange,
    FramesDropped,
    JournalLimits,
    Recording,
    StreamCut,
    StreamJournal,
    StreamNotFound,
)
from .relay import StreamRecorder
from .sse import EventSplitter, MalformedEventId, event_id, parse_event_id, with_id

__all__ = [
    "EventSplitter",
    "FrameOutOfRange",
    "FramesDropped",
    "JournalLimits",
    "MalformedEventId",
    "Recording",
    "StreamCut",
    "StreamJournal",
    "StreamNotFound",
    "StreamRecorder",
    "event_id",
    "parse_event_id",
    "with_id",
]
