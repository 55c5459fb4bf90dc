"""Sessions: the session table, worker routing, the warm pool and the idle reaper."""

from .lease import SessionEnded, SessionLease
from .manager import (
    LiveSession,
    OwnerLookup,
    SessionConfig,
    SessionLimitReached,
    SessionListener,
    SessionManager,
    SessionOwnedByAnother,
    SessionTarget,
)
from .worker_client import WorkerClient, WorkerReply, WorkerUnreachable

__all__ = [
    "LiveSession",
    "OwnerLookup",
    "SessionConfig",
    "SessionEnded",
    "SessionLease",
    "SessionLimitReached",
    "SessionListener",
    "SessionManager",
    "SessionOwnedByAnother",
    "SessionTarget",
    "WorkerClient",
    "WorkerReply",
    "WorkerUnreachable",
]
