"""Our own routes under `/_agentcore/`: health, artifact upload, build logs, sessions and their logs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse

import open_agentcore
from open_agentcore.artifacts import ArtifactStore
from open_agentcore.backends import WorkerHandle
from open_agentcore.backends.memory import memory_bytes as worker_memory
from open_agentcore.backends.ray_head import ReportsCluster
from open_agentcore.runtimes import RuntimeService
from open_agentcore.sessions import SessionManager
from open_agentcore.store import SessionRecord, SessionState

from .errors import NotFound, ValidationError
from .requests import version_param


async def health(request: Request) -> Response:
    """Always 200 while the server serves; `status` is `degraded` while its Ray head is lost
    (the control plane still answers: a load balancer must not take the replica out for that)."""
    sessions: SessionManager = request.app.state.sessions
    backend = sessions.backend
    cluster = backend.cluster_status() if isinstance(backend, ReportsCluster) else None
    return JSONResponse(
        {
            "status": "ok" if cluster is None or cluster.reachable else "degraded",
            "version": open_agentcore.__version__,
            "backend": backend.name,
            "sandbox": backend.sandbox_mode(),
            "protections": backend.protections(),
            "sessions": len(sessions.sessions()),
            **({"cluster": cluster.describe()} if cluster is not None else {}),
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
    """The version's build log; `?offset=N` answers only the bytes from N on (empty when there are
    none yet), so a client following a build reads each line once."""
    service: RuntimeService = request.app.state.runtimes
    runtime_id = request.path_params["runtime_id"]
    version = version_param(request.path_params["version"], "version") or 1
    offset = _offset(request.query_params.get("offset"))
    await asyncio.to_thread(service.store.get_version, runtime_id, version)
    path = service.build_log(runtime_id, version)
    if not path.exists():
        raise NotFound(f"version {version} of {runtime_id} has no build log yet")
    if offset is None:
        return FileResponse(path, media_type="text/plain; charset=utf-8")
    return Response(await asyncio.to_thread(_read_from, path, offset), media_type="text/plain; charset=utf-8")


_MAX_LOG_READ = 1024 * 1024


def _offset(text: str | None) -> int | None:
    """`?offset=N` of the log routes: None when absent."""
    if text is None:
        return None
    if not text.isdigit() or len(text) > 18:
        raise ValidationError(f"offset must be a number of bytes, 0 or more, not {text!r}", field="offset")
    return int(text)


def _read_from(path: Path, offset: int) -> bytes:
    # Bounded: a client far behind catches up over several reads.
    with path.open("rb") as log:
        log.seek(offset)
        return log.read(_MAX_LOG_READ)


async def list_sessions(request: Request) -> Response:
    """Live sessions with state, idle time, owner and memory; `?state=all` adds ended ones and why."""
    service: RuntimeService = request.app.state.runtimes
    sessions: SessionManager = request.app.state.sessions
    runtime_id = request.path_params["runtime_id"]
    which = request.query_params.get("state", "live")
    if which not in ("live", "all"):
        raise ValidationError(f"state must be live or all, not {which!r}", field="state")
    await asyncio.to_thread(service.store.get_runtime, runtime_id)
    now = time.monotonic()
    live_sessions = sessions.sessions(runtime_id)
    # /proc and /sys reads, one pair per worker: off the event loop.
    memory = await asyncio.to_thread(_memory_of, [live.handle for live in live_sessions])
    listed: list[dict[str, Any]] = [
        {
            "sessionId": live.session_id,
            "version": str(live.target.version),
            "state": "BUSY" if live.in_flight else "IDLE",
            "idleSeconds": round(live.idle_seconds(now), 3),
            "ageSeconds": round(now - live.started_at, 3),
            "pid": live.handle.pid,
            "sandboxed": live.handle.sandboxed,
            "owner": live.owner,
            "memoryBytes": memory_bytes,
            # From the warm pool or not, forked by its version's fork server or a fresh process.
            "startedFrom": live.started_from,
            "startedBy": getattr(live.handle, "started_by", "fresh"),
            # The server replica that started its worker (this one, unless it was adopted).
            "replica": getattr(live.handle, "replica", None) or request.app.state.replica,
        }
        for live, memory_bytes in zip(live_sessions, memory, strict=True)
    ]
    if which == "all":
        live_ids = {entry["sessionId"] for entry in listed}
        records = await asyncio.to_thread(_all_sessions, service, runtime_id)
        listed += [
            {
                "sessionId": record.session_id,
                "version": str(record.version) if record.version is not None else None,
                "state": "ENDED",
                "endedAt": record.ended_at.isoformat() if record.ended_at else None,
                "endReason": record.end_reason,
            }
            for record in records
            if record.state is SessionState.STOPPED and record.session_id not in live_ids
        ]
    return JSONResponse({"sessions": listed})


def _memory_of(handles: list[WorkerHandle]) -> list[int | None]:
    return [worker_memory(getattr(handle, "agent_pid", None) or handle.pid) for handle in handles]


def _all_sessions(service: RuntimeService, runtime_id: str) -> list[SessionRecord]:
    records: list[SessionRecord] = []
    token: str | None = None
    while True:
        page = service.store.list_sessions(runtime_id, max_results=100, next_token=token)
        records += page.items
        if not (token := page.next_token):
            return records


LOG_OFFSET_HEADER = "x-agentcore-log-offset"


async def session_logs(request: Request) -> Response:
    """What a session's worker printed: live, or kept after the session ended.

    `?offset=N` skips the first N bytes (a client following the log asks for what is new). The
    body starts at the offset named in the `x-agentcore-log-offset` header: 0 when the log is now
    shorter than N (a restarted session whose earlier output was not kept), so nothing is skipped.
    """
    sessions: SessionManager = request.app.state.sessions
    runtime_id, session_id = request.path_params["runtime_id"], request.path_params["session_id"]
    offset = _offset(request.query_params.get("offset")) or 0
    paths = sessions.logs_of(runtime_id, session_id)
    if not paths:
        raise NotFound(f"no session {session_id!r} on agent runtime {runtime_id} has a log")
    if offset > sum(_size(path) for path in paths):
        offset = 0
    return StreamingResponse(
        _read_all(paths, offset),
        media_type="text/plain; charset=utf-8",
        headers={LOG_OFFSET_HEADER: str(offset)},
    )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_all(paths: list[Path], offset: int = 0) -> Iterator[bytes]:
    # A plain iterator: Starlette runs it in a thread, so file reads never block the event loop.
    skip = offset
    for path in paths:
        with contextlib.suppress(FileNotFoundError), path.open("rb") as log:
            if skip:
                size = log.seek(0, 2)
                log.seek(min(skip, size))
                skip -= min(skip, size)
            while chunk := log.read(64 * 1024):
                yield chunk


__all__ = ["LOG_OFFSET_HEADER", "build_log", "health", "list_sessions", "session_logs", "upload_artifact"]
