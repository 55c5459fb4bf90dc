"""Per-session limits on memory, CPU and processes: what callers use, and how the mode is chosen.

`detect_limits` decides how, once, at start-up: cgroup v2, cgroup v1 (`cgroup_limits.py`), or
rlimits as the fallback (`rlimits.py`). The enforcer it returns makes one `WorkerLimits` per
worker, whose `command_prefix()` goes in front of the worker's command so that the process is
limited before it runs anything else: there is no window in which an agent runs unlimited, and
nothing to do after the start but read usage, check for an out-of-memory kill, and clean up.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import Protocol

from . import cgroups
from .base import SessionLimits
from .cgroups import CgroupUnusable

SHELL = Path("/bin/sh")
_WORKER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class LimitMode(str, enum.Enum):
    """How session limits are enforced on this host."""

    CGROUP_V2 = "cgroup v2"
    CGROUP_V1 = "cgroup v1"
    RLIMIT = "rlimit"

    def __str__(self) -> str:
        return self.value


class LimitsUnavailable(Exception):
    """A worker's cgroups could not be created or configured; the message says which and why."""


class WorkerLimits(Protocol):
    """The limits of one worker, from before its start until after its end."""

    @property
    def worker_id(self) -> str: ...

    def command_prefix(self) -> list[str]:
        """argv to put in front of the worker's command; the process is limited before it execs it."""
        ...

    def renamed(self, worker_id: str) -> WorkerLimits:
        """These limits, named after `worker_id` from now on (a spare's, forked before its worker
        had an id: `fork_spares.py`); `OSError` when they cannot be."""
        ...

    def enter(self, pid: int) -> None:
        """Put a running process under these limits (a forked worker, before its agent runs);
        `OSError` when it cannot be."""
        ...

    def out_of_memory(self) -> bool:
        """Whether the kernel killed a process of this worker for exceeding its memory limit (ask
        before `close()`; always False with rlimits, where an allocation fails instead)."""
        ...

    def usage(self) -> dict[str, int]:
        """What the worker uses now, as far as the host tells: `memory_bytes`, `memory_peak_bytes`,
        `cpu_ns`, `cpu_throttled_periods`, `pids`, `pids_peak` (empty with rlimits)."""
        ...

    def kill(self) -> None:
        """SIGKILL every process still in the worker's cgroups, however it detached (with rlimits,
        nothing: the worker's process group is all there is to kill). Idempotent."""
        ...

    def close(self) -> None:
        """Kill what is left, then remove the worker's cgroups. Idempotent. Usually under a
        millisecond, but bounded at a few seconds when processes are slow to die or the kernel slow
        to free a cgroup: call it (and `kill`) off the event loop."""
        ...


class LimitEnforcer(Protocol):
    """Makes the limits for each worker of one server, all in one mode."""

    @property
    def mode(self) -> LimitMode: ...

    @property
    def limits(self) -> SessionLimits: ...

    def describe(self, own_uid: bool = False) -> dict[str, str]:
        """What is limited and how, per resource, for `agentcore server status` (`own_uid`: workers
        run as host uids of their own, which is what makes the rlimit process cap per session)."""
        ...

    def create(self, worker_id: str, own_uid: bool) -> WorkerLimits:
        """The limits for a new worker (`own_uid`: it runs as a host uid of its own);
        `LimitsUnavailable` when its cgroups cannot be made, ValueError for an unusable id."""
        ...

    def close(self) -> None:
        """Remove this server's (by then empty) cgroup dirs; at shutdown, after every worker's close."""
        ...


def detect_limits(
    limits: SessionLimits,
    cgroup_root: Path = Path("/sys/fs/cgroup"),
    self_cgroup: Path = Path("/proc/self/cgroup"),
) -> LimitEnforcer:
    """The best enforcer this host allows: cgroup v2 when the unified hierarchy offers memory, cpu
    and pids and lets us use them, else cgroup v1 with writable memory, cpu and pids hierarchies,
    else rlimits. Never raises for a host without cgroups: `describe()` says why.

    A cgroup mode makes this server's dirs at once (`<own>/open-agentcore/<instance>` in each
    hierarchy) and removes the empty ones that dead servers left there. On cgroup v2, unless the
    server runs in the root cgroup, it moves itself into a leaf beside its workers' dirs (v2 keeps
    processes out of cgroups whose controllers are enabled for children).
    """
    # Imported here: both build on the names above.
    from .cgroup_limits import cgroup_v1_enforcer, cgroup_v2_enforcer
    from .rlimits import RlimitEnforcer

    try:
        memberships = cgroups.read_memberships(self_cgroup)
    except OSError as error:
        return RlimitEnforcer(limits, f"cannot read {self_cgroup}: {error.strerror}")
    if not SHELL.exists():
        return RlimitEnforcer(limits, f"no {SHELL} to enter cgroups with")
    reasons: list[str] = []
    for mode, build in ((LimitMode.CGROUP_V2, cgroup_v2_enforcer), (LimitMode.CGROUP_V1, cgroup_v1_enforcer)):
        try:
            return build(limits, cgroup_root, memberships, "; ".join(reasons))
        except (CgroupUnusable, OSError) as error:
            reasons.append(f"{mode.value}: {explain(error)}")
    return RlimitEnforcer(limits, "; ".join(reasons))


def check_worker_id(worker_id: str) -> None:
    """ValueError unless `worker_id` can name a cgroup dir: 1-128 letters, digits, `_`, `.` or `-`."""
    if not _WORKER_ID.fullmatch(worker_id):
        raise ValueError(f"a worker id is 1-128 letters, digits, '_', '.' or '-', not {worker_id!r}")


def format_size(size: int) -> str:
    """`8 GiB`, `512 MiB`, `1.5 GiB`: for limits in messages such as "ran out of memory (limit 512 MiB)"."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


def format_cpus(cpus: float) -> str:
    """`2 CPUs`, `0.5 CPU`."""
    return f"{cpus:g} CPU" + ("s" if cpus > 1 else "")


def explain(error: Exception) -> str:
    """An error as a reason in a message: `Read-only file system: /sys/fs/cgroup/...`."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return str(error)


__all__ = [
    "LimitEnforcer",
    "LimitMode",
    "LimitsUnavailable",
    "WorkerLimits",
    "detect_limits",
    "format_size",
]
