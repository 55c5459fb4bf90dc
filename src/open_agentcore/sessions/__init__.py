"""Sessions: the session table, worker routing, the warm pool and the idle reaper."""

from .manager import (
    LiveSession,
    SessionConfig,
    SessionLimitReached,
    SessionListener,
    SessionManager,
    SessionTarget,
)
from .worker_client import WorkerClient, WorkerReply, WorkerUnreachable

__all__ = [
    "LiveSession",
    "SessionConfig",
    "SessionLimitReached",
    "SessionListener",
    "SessionManager",
    "SessionTarget",
    "WorkerClient",
    "WorkerReply",
    "WorkerUnreachable",
]
