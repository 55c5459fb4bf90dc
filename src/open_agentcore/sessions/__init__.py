"""Sessions: the session table, worker routing, the warm pool and the idle reaper."""

from .cancel import InvocationNotCancellable, InvocationNotFound, cancel_invocation
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
from .pinned import PinnedSessionManager, SessionOnAnotherReplica
from .shared import (
    RecordedSession,
    ReportedActivity,
    SessionDirectory,
    SessionStartedElsewhereTimedOut,
    SharedBackend,
    SharedSessionManager,
)
from .worker_client import SECRET_HEADER, WorkerClient, WorkerReply, WorkerUnreachable

__all__ = [
    "SECRET_HEADER",
    "InvocationNotCancellable",
    "InvocationNotFound",
    "LiveSession",
    "OwnerLookup",
    "PinnedSessionManager",
    "RecordedSession",
    "ReportedActivity",
    "SessionConfig",
    "SessionDirectory",
    "SessionEnded",
    "SessionLease",
    "SessionLimitReached",
    "SessionListener",
    "SessionManager",
    "SessionOnAnotherReplica",
    "SessionOwnedByAnother",
    "SessionStartedElsewhereTimedOut",
    "SessionTarget",
    "SharedBackend",
    "SharedSessionManager",
    "WorkerClient",
    "WorkerReply",
    "WorkerUnreachable",
    "cancel_invocation",
]
