"""Our own routes under `/_agentcore/`: health, artifact upload, build logs, sessions and their logs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

import open_agentcore
from open_agentcore.artifacts import ArtifactStore
from open_agentcore.runtimes import RuntimeService
from open_agentcore.sessions import SessionManager

from .errors import NotFound
from .requests import version_param


async def health(request: Request) -> Response:
    sessions: SessionManager = request.app.state.sessions
    return JSONResponse(
        {
            "status": "ok",
            "version": open_agentcore.__version__,
            "backend": sessions.backend.name,
            "sandbox": sessions.backend.sandbox_mode(),
            "sessions": len(sessions.sessions()),
        }
    )


async def upload_artifact(request: Request) -> Response:
    artifacts: ArtifactStore = request.app.state.artifacts

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            yield chunk

    ref = await artifacts.put(chunks())
    return JSONResponse({"bucket": ref.bucket, "key": ref.key, "size": ref.size})


async def build_log(request: Request) -> Response:
    service: RuntimeService = request.app.state.runtimes
    runtime_id = request.path_params["runtime_id"]
    version = version_param(request.path_params["version"], "version") or 1
    await asyncio.to_thread(service.store.get_version, runtime_id, version)
    path = service.build_log(runtime_id, version)
    if not path.exists():
        raise NotFound(f"version {version} of {runtime_id} has no build log yet")
    return FileResponse(path, media_type="text/plain; charset=utf-8")


async def list_sessions(request: Request) -> Response:
    service: RuntimeService = request.app.state.runtimes
    sessions: SessionManager = request.app.state.sessions
    runtime_id = request.path_params["runtime_id"]
    await asyncio.to_thread(service.store.get_runtime, runtime_id)
    now = time.monotonic()
    return JSONResponse(
        {
            "sessions": [
                {
                    "sessionId": live.session_id,
                    "version": str(live.target.version),
                    "state": "BUSY" if live.in_flight else "IDLE",
                    "idleSeconds": round(live.idle_seconds(now), 3),
                    "ageSeconds": round(now - live.started_at, 3),
                    "pid": live.handle.pid,
                    "sandboxed": live.handle.sandboxed,
                }
                for live in sessions.sessions(runtime_id)
            ]
        }
    )


async def session_logs(request: Request) -> Response:
    sessions: SessionManager = request.app.state.sessions
    live = sessions.get(request.path_params["runtime_id"], request.path_params["session_id"])
    if live is None:
        raise NotFound(f"no active session {request.path_params['session_id']!r}")
    return FileResponse(live.handle.log_path, media_type="text/plain; charset=utf-8")


ROUTES = [
    Route("/_agentcore/health", health, methods=["GET"]),
    Route("/_agentcore/artifacts", upload_artifact, methods=["PUT"]),
    Route("/_agentcore/runtimes/{runtime_id}/versions/{version}/build-log", build_log, methods=["GET"]),
    Route("/_agentcore/runtimes/{runtime_id}/sessions", list_sessions, methods=["GET"]),
    Route("/_agentcore/runtimes/{runtime_id}/sessions/{session_id}/logs", session_logs, methods=["GET"]),
]

__all__ = ["ROUTES"]
