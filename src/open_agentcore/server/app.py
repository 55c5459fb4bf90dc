"""The runtime server: assembles routes, authentication, services and error mapping.

Services raise their own errors; `wire.wire_error` is the one place they become AWS error shapes,
so every failure reaches boto3 as a typed exception with a clear message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from open_agentcore.artifacts import ArtifactStore, EnvironmentBuilder
from open_agentcore.auth import load_admin_credential
from open_agentcore.backends import ProcessBackend, SessionLimits
from open_agentcore.metrics import ServerMetrics
from open_agentcore.runtimes import RuntimePaths, RuntimeService
from open_agentcore.sessions import LiveSession, SessionConfig
from open_agentcore.store import Store
from open_agentcore.streams import JournalLimits, StreamJournal, StreamRecorder

from .access import AccessDirectory
from .authentication import Authenticator
from .bodies import spool_dir
from .cluster import ray_backend
from .config import ServerConfig
from .console_auth import ConsoleAuthenticator
from .front import RuntimeApp
from .gateway import Gateway
from .heap import frozen_heap
from .journal import SessionJournal
from .metrics import MetricsListener
from .operations import unmatched
from .ratelimit import RateLimit
from .replicas import replica_id, session_table
from .request_metrics import RequestMetrics
from .routes import operation_table
from .tracing import OperationTracer
from .tracing_setup import telemetry_of
from .wire import KNOWN_FAILURES, wire_error

if TYPE_CHECKING:
    from open_agentcore.backends.ray import RayBackend

logger = logging.getLogger("open_agentcore.server")


async def _handle(request: Request, error: Exception) -> Response:
    return wire_error(error).response()


class _DeniedHandshakeNoise(logging.Filter):
    """Drops uvicorn's false alarm after a WebSocket handshake is refused with a response.

    uvicorn's websockets-sansio protocol sends the refusal but does not mark the handshake done,
    then logs this ERROR when the app returns (upstream Kludex/uvicorn#3138). Every refusal we
    send is deliberate, so the line is noise that would page someone.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing handshake."


def build_app(config: ServerConfig) -> Starlette:
    """The ASGI app of a runtime server; its services start and stop with its lifespan."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    config.data_dir.chmod(0o700)
    admin = load_admin_credential(config.data_dir, os.environ)
    directory = AccessDirectory(admin, config.account_id)
    console = ConsoleAuthenticator(directory)
    table = operation_table(config.region, config.account_id)
    # Built now, not in the lifespan: it proves the sandbox works here (or refuses, raising
    # BackendUnavailable, which `agentcore server run` reports in one line) before anything serves.
    limits = SessionLimits(config.session_memory, config.session_cpus, config.session_pids)
    replica = replica_id(config.data_dir)
    backend: ProcessBackend | RayBackend
    if config.backend == "ray":
        backend = ray_backend(config, limits, replica)
    else:
        backend = ProcessBackend(
            sandbox=config.sandbox,
            network=config.session_network,
            uid_base=config.worker_uid_base,
            limits=limits,
            state_dir=config.data_dir / "gvisor",
            session_start=config.session_start,
        )
    metrics = ServerMetrics() if config.metrics else None
    # Bound now, like the sandbox's check: a busy --metrics-port is reported before anything serves.
    listener_of_metrics = (
        MetricsListener(metrics, config.metrics_host, config.metrics_port)
        if metrics is not None and config.metrics_port is not None
        else None
    )
    telemetry = telemetry_of(config)
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(known, _DeniedHandshakeNoise) for known in uvicorn_log.filters):
        uvicorn_log.addFilter(_DeniedHandshakeNoise())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = await asyncio.to_thread(Store.open, config.database_url)
        directory.store = store
        app.state.access = directory
        journal = SessionJournal(store, backend.name, replica)
        limits = JournalLimits(config.stream_memory, config.stream_history)
        streams = StreamRecorder(StreamJournal(config.data_dir / "streams", limits))

        def listener(event: str, live: LiveSession, reason: str) -> asyncio.Future[None]:
            if event == "ended":
                streams.journal.end_session(live.target.runtime_id, live.session_id)
            elif metrics is not None:
                metrics.session_started(live)
            if telemetry is not None:
                telemetry.session_event(event, live.handle.worker_id, live.session_id)
            return journal(event, live, reason)

        if recovered := await asyncio.to_thread(journal.recover):
            logger.warning("%d sessions were left by a previous server; marked ended", recovered)
        sessions = session_table(
            backend,
            SessionConfig(
                work_root=config.data_dir / "w",
                log_root=config.data_dir / "logs" / "sessions",
                hidden_paths=(config.data_dir,),
                max_sessions=config.max_sessions,
                warm_pool=config.warm_pool,
                warm_pool_max=config.warm_pool_max,
                reap_interval=config.reap_interval,
                shared_sessions=config.shared_sessions,
                worker_environment=telemetry.worker_environment if telemetry is not None else None,
            ),
            listener=listener,
            recorded_owner=journal.recorded_owner,
            store=store,
            replica=replica,
            review_after=config.min_lifecycle_seconds,
        )
        artifacts = await asyncio.to_thread(ArtifactStore.for_store, config.data_dir / "artifacts", store)
        if telemetry is not None:
            telemetry.start(store)
        app.state.store = store
        app.state.sessions = sessions
        app.state.streams = streams
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
            allow_host_python=config.allow_host_python,
            on_build=metrics.build_finished if metrics is not None else None,
        )
        await app.state.runtimes.resume_builds()
        sessions.start_reaper()
        if metrics is not None:
            metrics.watch(sessions)
        if listener_of_metrics is not None:
            await listener_of_metrics.start()
        if backend.sandboxed:
            logger.info("runtime server ready; workers sandboxed: %s", backend.sandbox_mode())
            if backend.sandbox_mode() == "gvisor" and backend.network != "none":
                logger.warning(
                    "--sandbox gvisor with the host's network: gVisor's sentry runs as root in the host's "
                    "user namespace; --session-network none keeps it unprivileged"
                )
        else:
            logger.warning("workers are NOT sandboxed (%s): run trusted code only", backend.sandbox_mode())
        try:
            with frozen_heap():
                yield
        finally:
            if listener_of_metrics is not None:
                await listener_of_metrics.stop()
            await sessions.close()
            await streams.close()
            if telemetry is not None:
                await asyncio.to_thread(telemetry.close)
            await asyncio.to_thread(journal.close)

    app = RuntimeApp(
        routes=table.routes(),
        exception_handlers={**dict.fromkeys(KNOWN_FAILURES, _handle), Exception: _handle},
        lifespan=lifespan,
    )
    # Outermost: HTTP requests go from uvicorn straight to the gateway (see `front.py`).
    app.front = Gateway(
        app.stack,
        table=table,
        authenticator=Authenticator(
            table, directory, config.max_payload, spool_dir(config.data_dir), console
        ),
        directory=directory,
        rate_limit=RateLimit(config.rate_limit) if config.rate_limit else None,
        metrics=RequestMetrics(metrics) if metrics is not None else None,
        tracer=OperationTracer(telemetry.tracer) if telemetry is not None else None,
    )
    # AWS answers a path it does not serve with an error, never a redirect to another path the
    # client would have to sign again; Starlette would redirect `/x/` to `/x` and back.
    app.router.redirect_slashes = False
    app.router.default = unmatched
    app.state.operations = table
    app.state.replica = replica
    app.state.metrics = metrics
    app.state.console = console
    app.state.telemetry = telemetry
    return app


__all__ = ["build_app"]
