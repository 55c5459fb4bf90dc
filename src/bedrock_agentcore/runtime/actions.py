"""The `debug=True` task actions: a payload with `_agent_core_app_action` inspects or forces health."""

from __future__ import annotations

import logging
from typing import Any

from starlette.responses import JSONResponse

from .health import TaskTracker
from .models import (
    TASK_ACTION_CLEAR_FORCED_STATUS,
    TASK_ACTION_FORCE_BUSY,
    TASK_ACTION_FORCE_HEALTHY,
    TASK_ACTION_JOB_STATUS,
    TASK_ACTION_KEY,
    TASK_ACTION_PING_STATUS,
    PingStatus,
)

logger = logging.getLogger("bedrock_agentcore.app")

ACTIONS = (
    TASK_ACTION_PING_STATUS,
    TASK_ACTION_JOB_STATUS,
    TASK_ACTION_FORCE_HEALTHY,
    TASK_ACTION_FORCE_BUSY,
    TASK_ACTION_CLEAR_FORCED_STATUS,
)


def requested_action(payload: Any) -> Any:
    """The action a payload asks for, or None when it is an ordinary invocation."""
    if isinstance(payload, dict):
        return payload.get(TASK_ACTION_KEY)
    return None


def perform(action: Any, tracker: TaskTracker) -> JSONResponse:
    """Carry out one action; an unknown action is a 400 that lists the known ones."""
    if action == TASK_ACTION_PING_STATUS:
        status = tracker.status()
        return JSONResponse({"status": status.value, "time_of_last_update": int(tracker.last_status_change)})
    if action == TASK_ACTION_JOB_STATUS:
        return JSONResponse(tracker.info())
    if action == TASK_ACTION_FORCE_HEALTHY:
        tracker.forced_status = PingStatus.HEALTHY
        logger.info("Ping status forced to Healthy")
        return JSONResponse({"forced_status": PingStatus.HEALTHY.value})
    if action == TASK_ACTION_FORCE_BUSY:
        tracker.forced_status = PingStatus.HEALTHY_BUSY
        logger.info("Ping status forced to HealthyBusy")
        return JSONResponse({"forced_status": PingStatus.HEALTHY_BUSY.value})
    if action == TASK_ACTION_CLEAR_FORCED_STATUS:
        tracker.forced_status = None
        logger.info("Forced ping status cleared")
        return JSONResponse({"forced_status": "Cleared"})
    logger.warning("Unknown debug action requested: %r", action)
    return JSONResponse(
        {"error": f"Unknown action: {action}", "known_actions": list(ACTIONS)},
        status_code=400,
    )


__all__ = ["ACTIONS", "perform", "requested_action"]
