"""A worker's work dir: the server's own, holding the worker's home and tmp, its socket and its log.

The directory stays the server's: were it the worker's, the agent could replace its log or socket
with a link, and the server, reading the log or connecting as root, would follow it.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def prepare(work_dir: Path, host_uid: int | None) -> None:
    """Make the work dir, with home and tmp owned by `host_uid` (as root) and nothing else its."""
    work_dir.mkdir(parents=True, exist_ok=True)
    if host_uid is not None:
        work_dir.chmod(0o700)
    for sub in ("home", "tmp"):
        path = work_dir / sub
        path.mkdir(exist_ok=True)
        if host_uid is not None:
            os.chown(path, host_uid, host_uid)
            path.chmod(0o700)


def listen(socket_path: Path) -> int:
    """A listening unix socket at `socket_path`, as a file descriptor to hand to the worker."""
    socket_path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(socket_path))
        os.chmod(socket_path, 0o600)
        listener.listen(128)
    except BaseException:
        listener.close()
        raise
    return listener.detach()


def open_log(path: Path) -> int:
    """The worker's log, opened for appending (a file descriptor to give it as stdout and stderr)."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


__all__ = ["listen", "open_log", "prepare"]
