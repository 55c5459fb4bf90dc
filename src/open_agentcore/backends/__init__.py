"""Where workers run: the process backend, sandboxed with bubblewrap where it works, and the limits
each worker runs under (cgroups, or rlimits where no cgroup can be used)."""

from .base import (
    Backend,
    BackendUnavailable,
    ExplainsLoss,
    NoRoomForSession,
    SessionLimits,
    WorkerAddress,
    WorkerHandle,
    WorkerSpec,
    WorkerStartFailed,
)
from .limits import (
    LimitEnforcer,
    LimitMode,
    LimitsUnavailable,
    WorkerLimits,
    detect_limits,
    format_size,
)
from .process import ProcessBackend, ProcessWorker, kill_orphan, probe_bwrap

__all__ = [
    "Backend",
    "BackendUnavailable",
    "ExplainsLoss",
    "LimitEnforcer",
    "LimitMode",
    "LimitsUnavailable",
    "NoRoomForSession",
    "ProcessBackend",
    "ProcessWorker",
    "SessionLimits",
    "WorkerAddress",
    "WorkerHandle",
    "WorkerLimits",
    "WorkerSpec",
    "WorkerStartFailed",
    "detect_limits",
    "format_size",
    "kill_orphan",
    "probe_bwrap",
]
