"""How much memory a worker uses now: its cgroup's charge when it has its own, else its resident set.

Two small reads per worker from /proc and /sys: cheap enough for a listing of every live session.
"""

from __future__ import annotations

import os
from pathlib import Path

from .cgroups import PLACEMENT

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def memory_bytes(pid: int, proc: Path = Path("/proc"), cgroup_root: Path = _CGROUP_ROOT) -> int | None:
    """Bytes of memory the worker `pid` uses, or None when it is gone or cannot be read.

    A worker in its own cgroup (cgroup v2, under this server's placement) is charged for every
    process of its sandbox and its page cache; otherwise the process's resident set is what is known.
    """
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::") and f"/{PLACEMENT}/" in line:
            try:
                return int((cgroup_root / line[3:].lstrip("/") / "memory.current").read_text())
            except (OSError, ValueError):
                break
    try:
        resident = int((proc / str(pid) / "statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return resident * _PAGE


__all__ = ["memory_bytes"]
