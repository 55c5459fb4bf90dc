"""What the host's /proc says about a worker's processes: its descendants, and who runs as a uid."""

from __future__ import annotations

import contextlib
import os
import signal
import time


def children(pid: int) -> list[int]:
    """The children of `pid`, oldest first (empty when it is gone)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return [int(child) for child in listing.read().split()]
    except (OSError, ValueError):
        return []


def cmdline(pid: int) -> list[bytes]:
    """The arguments `pid` runs with (empty when it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as arguments:
            return arguments.read().split(b"\0")
    except OSError:
        return []


def first_descendant(pid: int, program: str, depth: int = 8) -> int | None:
    """Following each process's oldest child down from `pid`, the first that runs `program` (its
    argv[0]): in a sandbox, the command that bubblewrap (through setpriv and its init) started."""
    wanted = program.encode()
    current: int | None = pid
    for _ in range(depth):
        if current is None:
            return None
        if cmdline(current)[:1] == [wanted]:
            return current
        current = next(iter(children(current)), None)
    return None


def processes_of(uid: int) -> list[int]:
    """Every live process of the host with `uid` as its real, effective, saved or filesystem uid."""
    wanted = str(uid)
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as status:
                text = status.read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if wanted in fields.get("Uid", "").split() and fields.get("State", "").split()[:1] != ["Z"]:
            found.append(int(name))
    return found


def kill_uid(uid: int, timeout: float = 5.0) -> bool:
    """SIGKILL every process of `uid` until none is left; False if some survived `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while pids := processes_of(uid):
        if time.monotonic() > deadline:
            return False
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)  # the kernel tears them down asynchronously
    return True


__all__ = ["children", "cmdline", "first_descendant", "kill_uid", "processes_of"]
