"""Session limits enforced with rlimits, the fallback where no cgroup can be used: RLIMIT_AS caps
each process's address space, and RLIMIT_NPROC caps processes per uid (per session only where each
worker runs as a uid of its own). CPU cannot be limited this way."""

from __future__ import annotations

import dataclasses
import resource
import shutil
import sys
from dataclasses import dataclass

from .base import SessionLimits
from .limits import LimitMode, check_worker_id, format_size

# Where prlimit is missing (busybox images): the server's own interpreter sets the rlimits.
_SET_RLIMITS = (
    "import os, resource, sys\n"
    "for name, value in zip(('RLIMIT_AS', 'RLIMIT_NPROC'), sys.argv[1:3]):\n"
    "    if value != '-':\n"
    "        resource.setrlimit(getattr(resource, name), (int(value), int(value)))\n"
    "os.execvp(sys.argv[3], sys.argv[3:])\n"
)


class RlimitEnforcer:
    """The fallback without a usable cgroup: RLIMIT_AS caps each process's address space, and
    RLIMIT_NPROC caps processes per uid, which is per session only where each worker has its own."""

    mode = LimitMode.RLIMIT

    def __init__(self, limits: SessionLimits, reason: str) -> None:
        self._limits = limits
        self._reason = reason
        self._prlimit = shutil.which("prlimit")

    @property
    def limits(self) -> SessionLimits:
        return self._limits

    def describe(self, own_uid: bool = False) -> dict[str, str]:
        return {
            "memory": f"{format_size(self._limits.memory_bytes)} of address space (rlimit)",
            "cpu": "not limited: no writable cgroup",
            "pids": f"{self._limits.pids} (rlimit, per worker uid)"
            if own_uid
            else "not limited: workers share the server's uid",
            "reason": self._reason,
        }

    def create(self, worker_id: str, own_uid: bool) -> RlimitWorker:
        check_worker_id(worker_id)
        memory = str(self._limits.memory_bytes)
        nproc = str(self._limits.pids) if own_uid else None
        if self._prlimit is not None:
            prefix = [self._prlimit, f"--as={memory}", *([f"--nproc={nproc}"] if nproc else []), "--"]
        else:
            prefix = [sys.executable, "-I", "-S", "-c", _SET_RLIMITS, memory, nproc or "-"]
        return RlimitWorker(
            worker_id, tuple(prefix), self._limits.memory_bytes, self._limits.pids if own_uid else None
        )

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class RlimitWorker:
    """One worker's rlimits: all in the command prefix, nothing to watch or clean up afterwards."""

    worker_id: str
    prefix: tuple[str, ...]
    memory_bytes: int = 0
    nproc: int | None = None

    def command_prefix(self) -> list[str]:
        return list(self.prefix)

    def renamed(self, worker_id: str) -> RlimitWorker:
        return dataclasses.replace(self, worker_id=worker_id)

    def enter(self, pid: int) -> None:
        resource.prlimit(pid, resource.RLIMIT_AS, (self.memory_bytes, self.memory_bytes))
        if self.nproc is not None:
            resource.prlimit(pid, resource.RLIMIT_NPROC, (self.nproc, self.nproc))

    def out_of_memory(self) -> bool:
        return False

    def usage(self) -> dict[str, int]:
        return {}

    def kill(self) -> None:
        return None

    def close(self) -> None:
        return None


__all__ = ["RlimitEnforcer", "RlimitWorker"]
