"""The one place service failures become AWS error shapes, for HTTP routes and WebSockets alike."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException

from open_agentcore.artifacts import ArtifactError, ArtifactNotFound, ArtifactTooLarge
from open_agentcore.auth import AuthorizerError, IssuerUnreachable
from open_agentcore.backends import NoRoomForSession, WorkerStartFailed
from open_agentcore.runtimes import InvalidRequest, RuntimeNotReady
from open_agentcore.sessions import (
    InvocationNotCancellable,
    InvocationNotFound,
    SessionEnded,
    SessionLimitReached,
    SessionOnAnotherReplica,
    SessionOwnedByAnother,
    SessionStartedElsewhereTimedOut,
)
from open_agentcore.store import (
    ConflictError,
    DatabaseUnavailable,
    DefaultEndpointProtected,
    InvalidPaginationToken,
    NotFoundError,
    TooManyTags,
)
from open_agentcore.streams import FrameOutOfRange, FramesDropped, MalformedEventId, StreamNotFound

from .errors import (
    AccessDenied,
    Conflict,
    InternalError,
    NotFound,
    QuotaExceeded,
    RuntimeClientError,
    ServiceError,
    UnknownOperation,
    ValidationError,
)

logger = logging.getLogger("open_agentcore.server")


def wire_error(error: Exception) -> ServiceError:
    """The AWS error a service failure is reported as."""
    if isinstance(error, ServiceError):
        return error
    if isinstance(error, InvalidRequest):
        return ValidationError(str(error), field=error.field)
    if isinstance(error, ConflictError):
        return Conflict(str(error))
    if isinstance(error, InvalidPaginationToken):
        return ValidationError(str(error), field="nextToken")
    if isinstance(error, DefaultEndpointProtected):
        return ValidationError(str(error), field="endpointName")
    if isinstance(error, NotFoundError):
        return NotFound(str(error))
    if isinstance(error, DatabaseUnavailable):
        logger.error("Database unavailable: %s", error)
        return InternalError("the server's database is unavailable; try again")
    if isinstance(error, (ArtifactNotFound, ArtifactTooLarge, ArtifactError)):
        return ValidationError(str(error))
    if isinstance(error, (SessionLimitReached, TooManyTags, NoRoomForSession)):
        return QuotaExceeded(str(error))
    if isinstance(error, SessionOwnedByAnother):
        return AccessDenied(str(error))
    if isinstance(error, InvocationNotFound):
        return NotFound(str(error))
    if isinstance(error, (InvocationNotCancellable, SessionStartedElsewhereTimedOut)):
        return Conflict(str(error))
    if isinstance(error, SessionOnAnotherReplica):
        return Conflict(str(error))
    if isinstance(error, SessionEnded):
        return RuntimeClientError(f"the agent's session ended: {error.reason}")
    if isinstance(error, (MalformedEventId, FrameOutOfRange)):
        return ValidationError(str(error), field="Last-Event-ID")
    if isinstance(error, (StreamNotFound, FramesDropped)):
        return NotFound(str(error))
    if isinstance(error, (RuntimeNotReady, WorkerStartFailed)):
        return RuntimeClientError(str(error))
    if isinstance(error, AuthorizerError):
        refusal = ServiceError(str(error))
        refusal.code, refusal.status = error.wire_name, error.status
        if isinstance(error, IssuerUnreachable):
            logger.warning("JWT issuer unreachable: %s", error)
        return refusal
    if isinstance(error, HTTPException) and error.status_code < 500:
        # Starlette's router: no route for the path (404), or none for the method (405).
        wired: ServiceError = (
            UnknownOperation(f"no operation is served here: {error.detail}")
            if error.status_code in (404, 405)
            else ValidationError(str(error.detail))
        )
        wired.status = error.status_code
        return wired
    logger.error("Unhandled error", exc_info=error)
    return InternalError("the server failed to handle the request; see its log")


# Failures with a known AWS shape. Starlette hands these to its exception middleware, which
# answers and moves on; a handler for bare `Exception` also logs the error as unhandled.
KNOWN_FAILURES: tuple[type[Exception], ...] = (
    ServiceError,
    InvalidRequest,
    ConflictError,
    InvalidPaginationToken,
    DefaultEndpointProtected,
    NotFoundError,
    TooManyTags,
    DatabaseUnavailable,
    ArtifactError,
    SessionLimitReached,
    TooManyTags,
    SessionOwnedByAnother,
    SessionEnded,
    InvocationNotFound,
    InvocationNotCancellable,
    SessionStartedElsewhereTimedOut,
    SessionOnAnotherReplica,
    MalformedEventId,
    FrameOutOfRange,
    StreamNotFound,
    FramesDropped,
    RuntimeNotReady,
    WorkerStartFailed,
    HTTPException,
    AuthorizerError,
)

__all__ = ["KNOWN_FAILURES", "wire_error"]
