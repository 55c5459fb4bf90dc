"""JSON log lines carrying the request and session ids, on `bedrock_agentcore.app` and, opt-in, yours.

Every record becomes one JSON object per line: `timestamp`, `level`, `message`, `logger`, plus
`requestId` / `sessionId` inside a request and `errorType` / `errorMessage` / `stackTrace` when an
exception is attached. Each invocation ends with one line of its own that also carries `outcome`
and `durationMs` (`invocation_log.py`). Give your own loggers the same format with
`configure_json_logging()`.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
import traceback
from collections.abc import Iterable
from typing import Any

from .context import BedrockAgentCoreContext

APP_LOGGER = "bedrock_agentcore.app"
JSON_HANDLER = "agentcore-json"


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
    handler.set_name(JSON_HANDLER)
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
            if existing.get_name() == JSON_HANDLER:
                logger.removeHandler(existing)
        logger.addHandler(_json_handler())
        logger.setLevel(level)


__all__ = [
    "APP_LOGGER",
    "JSON_HANDLER",
    "RequestContextFormatter",
    "configure_json_logging",
    "setup_app_logger",
]
