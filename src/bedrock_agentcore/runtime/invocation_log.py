"""The line every invocation ends with: its ids, `outcome` and `durationMs`, on `bedrock_agentcore.app`.

It is written on the hot path of every request, so its common case is cheap: when INFO is off it
costs one level check; when the logger has only the SDK's own JSON handler (the default), the
line is built by hand in exactly the shape the handler's formatter would give it (no `LogRecord`,
stack walk or `json.dumps`), and the lines of one event-loop iteration go to the handler's stream
in one write, at the end of that iteration. Any other set-up (your own handler, a filter) gets an
ordinary record, with `outcome` and `durationMs` as attributes.
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import logging
import time
from json.encoder import encode_basestring
from typing import Any

from .context import BedrockAgentCoreContext
from .logs import APP_LOGGER, JSON_HANDLER

_logger = logging.getLogger(APP_LOGGER)


class Outcome(enum.Enum):
    """How an invocation ended, as its line's `outcome` says."""

    SUCCESS = "success"  # a value answered
    STREAMING = "streaming"  # a stream started (its frames follow; an error in it is logged apart)
    INVALID_REQUEST = "invalid_request"  # 4xx: bad JSON, or the handler raised a 4xx HTTPException
    ERROR = "error"  # 5xx: the handler raised, or there is no entrypoint


_MESSAGES = {Outcome.SUCCESS: "Invocation succeeded", Outcome.STREAMING: "Invocation streaming"}


def invocation_fields(outcome: Outcome, started: float) -> dict[str, Any]:
    """`extra=` for a log call that ends an invocation (`started`: its `time.perf_counter()`)."""
    return {"outcome": outcome.value, "durationMs": round((time.perf_counter() - started) * 1000, 3)}


def log_invocation(outcome: Outcome, started: float) -> None:
    """The INFO line of an invocation that answered (a value, or the start of a stream).

    Failures are logged where they are caught, with `logger.exception(..., extra=invocation_fields(...))`.
    """
    if not _logger.isEnabledFor(logging.INFO):
        return
    seconds = time.perf_counter() - started
    duration_ms = round(seconds * 1000, 3)
    message = f"{_MESSAGES[outcome]} ({seconds:.3f}s)"
    stream_handler = _sole_json_handler()
    if stream_handler is None:
        extra = {"outcome": outcome.value, "durationMs": duration_ms}
        record = _logger.makeRecord(
            APP_LOGGER, logging.INFO, __file__, 0, message, (), None, "invocation", extra
        )
        _logger.handle(record)
        return
    line = _line(message, outcome.value, duration_ms)
    if not _pending:
        try:
            asyncio.get_running_loop().call_soon(_write_pending, stream_handler)
        except RuntimeError:  # no loop here (not the server's): write it now
            _pending.append(line)
            _write_pending(stream_handler)
            return
    _pending.append(line)


# Lines waiting for the end of this loop iteration. Only the server's event loop writes here:
# the invocation endpoint runs on it, whatever thread the handler itself ran in.
_pending: list[str] = []


def _write_pending(handler: logging.StreamHandler[Any]) -> None:
    text = "".join(_pending)
    _pending.clear()
    handler.acquire()
    try:
        handler.stream.write(text)
        handler.stream.flush()
    except (OSError, ValueError):  # a closed or broken stderr: as logging does, never fail a request
        pass
    finally:
        handler.release()


def _sole_json_handler() -> logging.StreamHandler[Any] | None:
    """The SDK's JSON handler when it alone would see the record (no filters anywhere)."""
    handlers = _logger.handlers
    if len(handlers) != 1 or _logger.filters or _logger.propagate:
        return None
    handler = handlers[0]
    if handler.get_name() != JSON_HANDLER or handler.filters or handler.level > logging.INFO:
        return None
    return handler if isinstance(handler, logging.StreamHandler) else None


_second = -1
_second_text = ""


def _timestamp(now: float) -> str:
    """`RequestContextFormatter`'s timestamp, its seconds formatted once per second."""
    global _second, _second_text
    second = int(now)
    if second != _second:
        moment = datetime.datetime.fromtimestamp(second, tz=datetime.timezone.utc)
        _second, _second_text = second, moment.strftime("%Y-%m-%dT%H:%M:%S.")
    return f"{_second_text}{int((now - second) * 1000):03d}Z"


def _line(message: str, outcome: str, duration_ms: float) -> str:
    """The JSON line `RequestContextFormatter` writes for this record, built by hand."""
    stamp = _timestamp(time.time())
    parts = [
        f'{{"timestamp": "{stamp}", "level": "INFO", "message": {encode_basestring(message)}, '
        f'"logger": "{APP_LOGGER}"'
    ]
    request_id = BedrockAgentCoreContext.get_request_id()
    if request_id:
        parts.append(f', "requestId": {encode_basestring(request_id)}')
    session_id = BedrockAgentCoreContext.get_session_id()
    if session_id:
        parts.append(f', "sessionId": {encode_basestring(session_id)}')
    parts.append(f', "outcome": "{outcome}", "durationMs": {duration_ms!r}}}\n')
    return "".join(parts)


__all__ = ["Outcome", "invocation_fields", "log_invocation"]
