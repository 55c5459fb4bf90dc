"""Health: background work tracking and the health status it implies (`Healthy` / `HealthyBusy`).

Precedence: a forced status beats a custom ping handler, which beats the automatic status
(busy while any task is registered).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from starlette.types import Receive, Scope, Send

from .models import PingStatus

logger = logging.getLogger("bedrock_agentcore.app")

PingHandler = Callable[[], "PingStatus | str"]


class TaskTracker:
    """Registered background tasks, forced status and the custom ping handler of one app."""

    def __init__(self) -> None:
        self._tasks: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.forced_status: PingStatus | None = None
        self.ping_handler: PingHandler | None = None
        self._last_status = PingStatus.HEALTHY
        self.last_status_change = time.time()

    def add(self, name: str, metadata: dict[str, Any] | None = None) -> int:
        """Register a running task; the app reports `HealthyBusy` until it is completed."""
        info: dict[str, Any] = {"name": name, "start_time": time.time()}
        if metadata:
            info["metadata"] = metadata
        with self._lock:
            task_id = next(self._ids)
            self._tasks[task_id] = info
        logger.info("Async task started: %s (ID: %s)", name, task_id)
        return task_id

    def complete(self, task_id: int) -> bool:
        """Forget a task; False (and a warning) when the id is unknown or already completed."""
        with self._lock:
            info = self._tasks.pop(task_id, None)
        if info is None:
            logger.warning("Attempted to complete unknown task ID: %s", task_id)
            return False
        logger.info(
            "Async task completed: %s (ID: %s, Duration: %.2fs)",
            info["name"],
            task_id,
            time.time() - info["start_time"],
        )
        return True

    def info(self) -> dict[str, Any]:
        """`{"active_count": n, "running_jobs": [{"name", "duration"}...]}` for monitoring."""
        now = time.time()
        with self._lock:
            jobs = [{"name": t["name"], "duration": now - t["start_time"]} for t in self._tasks.values()]
        return {"active_count": len(jobs), "running_jobs": jobs}

    def status(self) -> PingStatus:
        """The current status (forced > custom handler > automatic), noting when it last changed."""
        custom = None if self.forced_status is not None else self.custom_status()
        return self.resolve(custom)

    def resolve(self, custom: PingStatus | None) -> PingStatus:
        """Apply the precedence to an already evaluated custom status."""
        status = self.forced_status or custom
        if status is None:
            status = PingStatus.HEALTHY_BUSY if self._tasks else PingStatus.HEALTHY
        if status is not self._last_status:
            self._last_status = status
            self.last_status_change = time.time()
        return status

    def custom_status(self) -> PingStatus | None:
        """The custom ping handler's answer, or None when there is none or it failed."""
        if self.ping_handler is None:
            return None
        try:
            return PingStatus(self.ping_handler())
        except Exception:
            # A broken ping handler must not take the health check down with it.
            logger.warning("Custom ping handler failed; using the automatic status", exc_info=True)
            return None

    def body(self, status: PingStatus) -> bytes:
        """The `/ping` response body for a resolved status."""
        return b'{"status":"%s","time_of_last_update":%d}' % (
            status.value.encode(),
            int(self.last_status_change),
        )


class PingEndpoint:
    """`GET /ping`: answered on the server loop unless a custom handler has to run in a thread."""

    def __init__(self, tracker: TaskTracker) -> None:
        self.tracker = tracker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracker = self.tracker
        if tracker.forced_status is None and tracker.ping_handler is not None:
            status = tracker.resolve(await anyio.to_thread.run_sync(tracker.custom_status))
        else:
            status = tracker.status()
        body = tracker.body(status)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})


__all__ = ["PingEndpoint", "PingHandler", "TaskTracker"]
