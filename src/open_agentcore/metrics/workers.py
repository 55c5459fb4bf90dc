"""What a worker uses, read at scrape time: from its session's cgroups where the server limits
sessions with cgroups, else summed over its processes in /proc."""

from __future__ import annotations

import os
from dataclasses import dataclass

from open_agentcore.backends import WorkerHandle, WorkerLimits
from open_agentcore.backends.process_tree import children

CGROUP = "cgroup"
PROC = "proc"
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_TICKS = os.sysconf("SC_CLK_TCK")
_MAX_PROCESSES = 4096  # a fork bomb's tree is not walked to its end at every scrape


@dataclass(frozen=True)
class WorkerUsage:
    """One worker's memory in use and CPU time used so far, and where they were read."""

    memory_bytes: int
    cpu_seconds: float
    source: str  # CGROUP or PROC


def worker_usage(handle: WorkerHandle) -> WorkerUsage | None:
    """The worker's usage now; None when it is gone. Blocking (file reads): call it off the loop."""
    limits: WorkerLimits | None = getattr(handle, "limits", None)
    if limits is not None:
        usage = limits.usage()  # empty with rlimits: no cgroup knows the worker
        if "memory_bytes" in usage and "cpu_ns" in usage:
            return WorkerUsage(usage["memory_bytes"], usage["cpu_ns"] / 1e9, CGROUP)
    return _from_proc(handle.pid)


def _from_proc(root: int) -> WorkerUsage | None:
    """Resident memory and user + system CPU time of `root` and its descendants.

    Resident sets are summed, so pages shared between the worker's processes count once per
    process: an upper bound. CPU time of descendants that already exited is counted only once
    their parent waited for them (the kernel adds it to the parent's `cutime`).
    """
    memory = 0
    ticks = 0
    seen = 0
    pending = [root]
    while pending and seen < _MAX_PROCESSES:
        pid = pending.pop()
        sample = _process(pid)
        if sample is None:
            if pid == root:
                return None
            continue
        seen += 1
        memory += sample[0]
        ticks += sample[1]
        pending.extend(children(pid))
    return WorkerUsage(memory, ticks / _TICKS, PROC)


def _process(pid: int) -> tuple[int, int] | None:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            resident_pages = int(statm.read().split()[1])
        with open(f"/proc/{pid}/stat") as stat:
            # The command may hold spaces and parentheses: fields are counted after its last ")".
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    # After the command: state is field 3, utime 14, stime 15, cutime 16, cstime 17 (proc(5)).
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return resident_pages * _PAGE_BYTES, utime + stime + cutime + cstime


__all__ = ["CGROUP", "PROC", "WorkerUsage", "worker_usage"]
