"""Closed sets and wire names of the agent contract: ping statuses, header names, debug actions."""

from __future__ import annotations

import enum


class PingStatus(str, enum.Enum):
    """Health reported by `GET /ping`; `HealthyBusy` keeps a hosted session alive while work runs."""

    HEALTHY = "Healthy"
    HEALTHY_BUSY = "HealthyBusy"


SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
REQUEST_ID_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Request-Id"
AUTHORIZATION_HEADER = "Authorization"
CUSTOM_HEADER_PREFIX = "X-Amzn-Bedrock-AgentCore-Runtime-Custom-"
ACCESS_TOKEN_HEADER = "WorkloadAccessToken"  # noqa: S105 - a header name, not a secret
OAUTH2_CALLBACK_URL_HEADER = "OAuth2CallbackUrl"

TASK_ACTION_KEY = "_agent_core_app_action"
TASK_ACTION_PING_STATUS = "ping_status"
TASK_ACTION_JOB_STATUS = "job_status"
TASK_ACTION_FORCE_HEALTHY = "force_healthy"
TASK_ACTION_FORCE_BUSY = "force_busy"
TASK_ACTION_CLEAR_FORCED_STATUS = "clear_forced_status"

__all__ = [
    "ACCESS_TOKEN_HEADER",
    "AUTHORIZATION_HEADER",
    "CUSTOM_HEADER_PREFIX",
    "OAUTH2_CALLBACK_URL_HEADER",
    "REQUEST_ID_HEADER",
    "SESSION_HEADER",
    "TASK_ACTION_CLEAR_FORCED_STATUS",
    "TASK_ACTION_FORCE_BUSY",
    "TASK_ACTION_FORCE_HEALTHY",
    "TASK_ACTION_JOB_STATUS",
    "TASK_ACTION_KEY",
    "TASK_ACTION_PING_STATUS",
    "PingStatus",
]
