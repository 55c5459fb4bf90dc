"""Processes the CLI recorded in a project's state (`deploy --local`, `dev`): are they still ours?

A recorded pid may belong to something else by now, so a process counts only while its command line
still names our program and the recorded port.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def alive(pid: int) -> bool:
    """Running (a zombie is not); reaps it when it is our own child."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the command name in parentheses, which may itself hold spaces.
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def runs(pid: int, program: str, port: int | None) -> bool:
    """True when `pid` is alive and runs the file named `program` (serving `port`, if given)."""
    if not alive(pid):
        return False
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    if not any(Path(argument).name == program for argument in arguments):
        return False
    return port is None or any(
        arguments[index : index + 2] == ["--port", str(port)] for index in range(len(arguments))
    )


__all__ = ["alive", "runs"]
