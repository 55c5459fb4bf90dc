"""JSON log lines carrying the request and session ids, on `bedrock_agentcore.app` and, opt-in, yours.

Every record becomes one JSON object per line: `timestamp`, `level`, `message`, `logger`, plus
`requestId` / `sessionId` inside a request and `errorType` / `errorMessage` / `stackTrace` when an
exception is attached. Each invocation ends with one line of its own that also carries `outcome`
and `durationMs` (`log_invocation`). Give your own loggers the same format with
`configure_json_logging()`.
"""

from __future__ import annotations

import datetime
import enum
import json
import logging
import sys
import time
import traceback
from collections.abc import Iterable
from typing import Any

from .context import BedrockAgentCoreContext

APP_LOGGER = "bedrock_agentcore.app"


class Outcome(enum.Enum):
    """How an invocation ended, as its log line's `outcome` says."""

    SUCCESS = "success"  # a value answered
    STREAMING = "streaming"  # a stream started (its frames follow; an error in it is logged apart)
    INVALID_REQUEST = "invalid_request"  # 4xx: bad JSON, or the handler raised a 4xx HTTPException
    ERROR = "error"  # 5xx: the handler raised, or there is no entrypoint


_MESSAGES = {
    Outcome.SUCCESS: "Invocation succeeded (%.3fs)",
    Outcome.STREAMING: "Invocation streaming (%.3fs)",
}
_app_logger = logging.getLogger(APP_LOGGER)


def log_invocation(outcome: Outcome, started: float) -> None:
    """The line of an invocation that answered (`started`: its `time.perf_counter()`).

    Nearly free when INFO is off for `bedrock_agentcore.app`; when on, the record is made
    directly, skipping `Logger.info`'s search of the stack for the caller, which this line,
    written from one place, does not need. Failures log through `logger.exception`, with
    `invocation_fields` as `extra`.
    """
    if not _app_logger.isEnabledFor(logging.INFO):
        return
    seconds = time.perf_counter() - started
    record = _app_logger.makeRecord(
        APP_LOGGER, logging.INFO, __file__, 0, _MESSAGES[outcome], (seconds,), None, "invocation",
        {"outcome": outcome.value, "durationMs": round(seconds * 1000, 3)},
    )  # fmt: skip
    _app_logger.handle(record)


def invocation_fields(outcome: Outcome, started: float) -> dict[str, Any]:
    """`extra=` for a log call that ends an invocation: its outcome and duration."""
    return {"outcome": outcome.value, "durationMs": round((time.perf_counter() - started) * 1000, 3)}


class RequestContextFormatter(logging.Formatter):
    """Formats a record as one JSON line with the current request's ids."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.datetime.fromtimestamp(record.created, tz=datetime.timezone.utc)
        entry: dict[str, Any] = {
            "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        request_id = BedrockAgentCoreContext.get_request_id()
        if request_id:
            entry["requestId"] = request_id
        session_id = BedrockAgentCoreContext.get_session_id()
        if session_id:
            entry["sessionId"] = session_id
        outcome = record.__dict__.get("outcome")
        if outcome is not None:
            entry["outcome"] = outcome
            entry["durationMs"] = record.__dict__.get("durationMs")
        if record.exc_info and record.exc_info[0] is not None:
            kind, error, tb = record.exc_info
            entry["errorType"] = kind.__name__
            entry["errorMessage"] = str(error)
            entry["stackTrace"] = traceback.format_exception(kind, error, tb)
            entry["location"] = f"{record.pathname}:{record.funcName}:{record.lineno}"
        elif record.stack_info:
            entry["stackTrace"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


def _json_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RequestContextFormatter())
    handler.set_name("agentcore-json")
    return handler


def setup_app_logger(debug: bool) -> logging.Logger:
    """Give `bedrock_agentcore.app` a JSON handler unless the application configured one already."""
    logger = logging.getLogger(APP_LOGGER)
    if not logger.handlers:
        logger.addHandler(_json_handler())
        logger.setLevel(logging.DEBUG if debug else logging.INFO)
        logger.propagate = False
    return logger


def configure_json_logging(level: int | str = logging.INFO, loggers: Iterable[str] = ("",)) -> None:
    """Make your own loggers write the same JSON lines (with request and session ids).

    By default the root logger gets the JSON handler, so `logging.getLogger(__name__).info(...)`
    anywhere in agent code is formatted like the SDK's own lines. Pass logger names to limit it.
    Calling it again replaces the handler instead of adding a second one.
    """
    for name in loggers:
        logger = logging.getLogger(name)
        for existing in list(logger.handlers):
            if existing.get_name() == "agentcore-json":
                logger.removeHandler(existing)
        logger.addHandler(_json_handler())
        logger.setLevel(level)


__all__ = [
    "APP_LOGGER",
    "Outcome",
    "RequestContextFormatter",
    "configure_json_logging",
    "invocation_fields",
    "log_invocation",
    "setup_app_logger",
]
