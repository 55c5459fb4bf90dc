"""What every backend offers: start a worker from a spec, watch it, stop it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class WorkerSpec:
    """One worker to start: which code, which interpreter, where it may write, what it sees.

    A sandboxed worker sees `code_dir` and `read_only_paths` read-only and `work_dir`'s home and
    tmp read-write, and nothing else of the host but system paths; `hidden_paths` (the server's
    data dir) is what none of the paths shown may contain.
    """

    worker_id: str
    python: Path
    code_dir: Path
    entrypoint: str
    work_dir: Path
    environment: Mapping[str, str] = field(default_factory=dict)
    read_only_paths: Sequence[Path] = ()
    hidden_paths: Sequence[Path] = ()
    start_timeout: float = 60.0

    @property
    def pooled(self) -> bool:
        """Started for the warm pool: no session yet (the session manager leaves the worker's
        `AGENTCORE_SESSION_ID` empty), so nobody is waiting for it."""
        return not self.environment.get("AGENTCORE_SESSION_ID")


@dataclass(frozen=True)
class SessionLimits:
    """What one session's worker may use at most: memory in bytes, CPUs (fractions allowed), and
    processes plus threads. Defaults are the managed service's: 8 GiB and 2 vCPU."""

    memory_bytes: int = 8 * 1024**3
    cpus: float = 2.0
    pids: int = 1024


@dataclass(frozen=True)
class WorkerAddress:
    """Where a worker that serves on TCP listens, and the secret each request to it must carry.

    Plain values, so a session table in a shared store can hold it and another server replica can
    reach the worker. `secret` is a credential: never log it (`repr` leaves it out).
    """

    host: str
    port: int
    secret: str = field(repr=False)


class NoRoomForSession(Exception):
    """No place to run the session's worker: nothing in the cluster can ever hold its limits, or
    nothing had room for it in time. The message says which and what to change."""


class WorkerHandle(Protocol):
    """A started worker."""

    @property
    def worker_id(self) -> str: ...

    @property
    def pid(self) -> int: ...

    @property
    def socket_path(self) -> Path: ...

    @property
    def log_path(self) -> Path: ...

    @property
    def sandboxed(self) -> bool: ...

    def alive(self) -> bool: ...

    async def wait_exit(self) -> int: ...


class WorkerStartFailed(Exception):
    """The worker exited before it was ready, or never became ready; `reason` says which and why."""

    def __init__(self, worker_id: str, reason: str, log_tail: str = "") -> None:
        super().__init__(f"worker {worker_id} failed to start: {reason}")
        self.worker_id = worker_id
        self.reason = reason
        self.log_tail = log_tail


class BackendUnavailable(Exception):
    """The backend cannot run workers on this machine (the message says what is missing)."""


class Backend(Protocol):
    """Where workers run."""

    name: str

    def sandbox_mode(self) -> str: ...

    def protections(self) -> dict[str, object]:
        """What confines a worker, for `server status` and health (JSON-able)."""
        ...

    async def start(self, spec: WorkerSpec) -> WorkerHandle: ...

    async def stop(self, handle: WorkerHandle, grace: float = 10.0) -> None: ...

    def exit_reason(self, handle: WorkerHandle, code: int) -> str:
        """Why a worker that exited by itself ended (out of memory, a signal, its exit code)."""
        ...

    def close(self) -> None:
        """Release what the backend holds for all workers (at shutdown, after every stop)."""
        ...


@runtime_checkable
class ExplainsLoss(Protocol):
    """A backend that can tell why a worker stopped answering before its exit is seen (Ray: the
    cluster's head is gone, and every worker with it)."""

    async def unreachable_reason(self, handle: WorkerHandle) -> str | None:
        """Why `handle` cannot be reached, when the backend knows; else None."""
        ...


__all__ = [
    "Backend",
    "BackendUnavailable",
    "ExplainsLoss",
    "NoRoomForSession",
    "SessionLimits",
    "WorkerAddress",
    "WorkerHandle",
    "WorkerSpec",
    "WorkerStartFailed",
]
