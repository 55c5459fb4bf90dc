"""The runtime server: assembles routes, authentication, services and error mapping.

Services raise their own errors; `_wire_error` below is the one place they become AWS error
shapes, so every failure reaches boto3 as a typed exception with a clear message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from open_agentcore.artifacts import (
    ArtifactError,
    ArtifactNotFound,
    ArtifactStore,
    ArtifactTooLarge,
    EnvironmentBuilder,
)
from open_agentcore.auth import Credential, KeyLookup, load_admin_credential
from open_agentcore.backends import ProcessBackend, WorkerStartFailed
from open_agentcore.runtimes import InvalidRequest, RuntimeNotReady, RuntimePaths, RuntimeService
from open_agentcore.sessions import SessionConfig, SessionLimitReached, SessionManager
from open_agentcore.store import (
    ConflictError,
    DatabaseUnavailable,
    DefaultEndpointProtected,
    InvalidPaginationToken,
    NotFoundError,
    Store,
)

from . import control, data, extensions
from .authentication import SigV4Authentication
from .config import ServerConfig
from .errors import (
    Conflict,
    InternalError,
    NotFound,
    QuotaExceeded,
    RuntimeClientError,
    ServiceError,
    ValidationError,
)

logger = logging.getLogger("open_agentcore.server")


def _wire_error(error: Exception) -> ServiceError:
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
    if isinstance(error, SessionLimitReached):
        return QuotaExceeded(str(error))
    if isinstance(error, (RuntimeNotReady, WorkerStartFailed)):
        return RuntimeClientError(str(error))
    logger.error("Unhandled error", exc_info=error)
    return InternalError("the server failed to handle the request; see its log")


async def _handle(request: Request, error: Exception) -> Response:
    return _wire_error(error).response()


def _lookup(admin: Credential) -> KeyLookup:
    def lookup(access_key_id: str) -> Credential | None:
        return admin if access_key_id == admin.access_key_id else None

    return lookup


def build_app(config: ServerConfig) -> Starlette:
    """The ASGI app of a runtime server; its services start and stop with its lifespan."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    config.data_dir.chmod(0o700)
    admin = load_admin_credential(config.data_dir, os.environ)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = await asyncio.to_thread(Store.open, config.database_url)
        backend = ProcessBackend(sandbox=config.sandbox)
        work_root = config.data_dir / "w"
        sessions = SessionManager(
            backend,
            SessionConfig(
                work_root=work_root,
                hidden_paths=(config.data_dir,),
                max_sessions=config.max_sessions,
                warm_pool=config.warm_pool,
                reap_interval=config.reap_interval,
            ),
        )
        artifacts = ArtifactStore(config.data_dir / "artifacts")
        app.state.store = store
        app.state.sessions = sessions
        app.state.artifacts = artifacts
        app.state.runtimes = RuntimeService(
            store,
            artifacts,
            EnvironmentBuilder(config.data_dir / "cache"),
            sessions,
            RuntimePaths(config.data_dir / "code", config.data_dir / "logs" / "builds", Path(sys.executable)),
            config.region,
            config.account_id,
            config.min_lifecycle_seconds,
        )
        sessions.start_reaper()
        logger.info("runtime server ready; workers sandboxed: %s", backend.sandbox_mode())
        try:
            yield
        finally:
            await sessions.close()

    def max_body(path: str) -> int:
        return 250 * 1024 * 1024 if path == "/_agentcore/artifacts" else config.max_payload

    return Starlette(
        routes=[*extensions.ROUTES, *control.ROUTES, *data.ROUTES],
        middleware=[Middleware(SigV4Authentication, lookup=_lookup(admin), max_body=max_body)],
        exception_handlers={Exception: _handle},
        lifespan=lifespan,
    )


__all__ = ["build_app"]
