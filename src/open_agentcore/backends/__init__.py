"""Where workers run: the process backend, sandboxed with bubblewrap where it works."""

from .base import Backend, BackendUnavailable, SessionLimits, WorkerHandle, WorkerSpec, WorkerStartFailed
from .process import ProcessBackend, ProcessWorker, kill_orphan, probe_bwrap

__all__ = [
    "Backend",
    "BackendUnavailable",
    "ProcessBackend",
    "ProcessWorker",
    "SessionLimits",
    "WorkerHandle",
    "WorkerSpec",
    "WorkerStartFailed",
    "kill_orphan",
    "probe_bwrap",
]
