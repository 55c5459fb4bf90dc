"""A worker's processes on the host: finding them in /proc, and ending all that run as its uid."""

from __future__ import annotations

import os
import subprocess


def children(pid: int) -> list[int]:
    """The children of `pid`, oldest first (empty when it is gone)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return [int(child) for child in listing.read().split()]
    except (OSError, ValueError):
        return []


def children_of_all_threads(pid: int) -> list[int]:
    """The children of every thread of `pid` (a Go program such as runsc forks from any of them)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as listing:
                found += [int(child) for child in listing.read().split()]
        except (OSError, ValueError):
            continue
    return found


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


def kill_all_of(uid: int) -> bool:
    """SIGKILL every process of the host that runs as `uid`, at once (kill(-1) made as that uid:
    no process can fork past it); False if that could not be done."""
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", "kill -9 -1"],
            user=uid,
            group=uid,
            extra_groups=[],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
            cwd="/",
            env={},
        )
    except (OSError, subprocess.SubprocessError):
        return False
    # Exit 1 with nothing to kill is fine; the shell itself is the one process kill(-1) spares.
    return done.returncode in (0, 1)


__all__ = ["children", "children_of_all_threads", "cmdline", "first_descendant", "kill_all_of"]
