"""A worker's work dir: the server's own, holding the worker's home and tmp, its socket and its log.

The directory stays the server's: were it the worker's, the agent could replace its log or socket
with a link, and the server, reading the log or connecting as root, would follow it. Under gVisor
the worker must create its listening socket itself, in a directory of its own: the server then
takes that socket only if it is a real socket of the worker's uid, and connects to it through a
hard link of its own, made in the work dir, which the agent cannot touch.
"""

from __future__ import annotations

import ctypes
import os
import socket
import stat
from collections.abc import Sequence
from pathlib import Path

_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_libc = ctypes.CDLL(None, use_errno=True)


class UnsafeSocket(Exception):
    """What the worker left where its socket should be is not a socket it made; the message says what."""


class ForeignSocket(UnsafeSocket):
    """A socket is there but not (yet) the worker's: gVisor's gofer binds it as root, then gives it
    to the worker's uid, so the caller may look again until its deadline."""


def prepare(work_dir: Path, host_uid: int | None, own: Sequence[str] = ("home", "tmp")) -> None:
    """Make the work dir, with the dirs named in `own` owned by `host_uid` (as root) and nothing else its."""
    work_dir.mkdir(parents=True, exist_ok=True)
    if host_uid is not None:
        work_dir.chmod(0o700)
    for sub in own:
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


def adopt_socket(made: Path, link: Path, owner: int) -> bool:
    """Hard-link the socket the worker made at `made` to `link`, a path the worker cannot reach;
    False while there is nothing at `made` yet.

    Only a real socket owned by `owner` is taken, never what a link at `made` points to
    (`UnsafeSocket` otherwise). The server then connects to `link`: a unix socket is found by its
    inode, so whatever the agent later puts at `made`, `link` stays the socket it made first.
    """
    try:
        descriptor = os.open(made, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError as error:
        raise UnsafeSocket(f"{made} cannot be opened: {error.strerror}") from None
    try:
        found = os.fstat(descriptor)  # of what was opened: a link itself, if one was put there
        if not stat.S_ISSOCK(found.st_mode):
            raise UnsafeSocket(f"{made} is not a socket (mode {stat.filemode(found.st_mode)})")
        if found.st_uid != owner:
            raise ForeignSocket(f"{made} belongs to uid {found.st_uid}, not to the worker's ({owner})")
        link.unlink(missing_ok=True)
        # linkat(fd, "", AT_EMPTY_PATH) links the inode opened, whatever happens to `made` meanwhile.
        if _libc.linkat(descriptor, b"", _AT_FDCWD, os.fsencode(link), _AT_EMPTY_PATH) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(link))
    finally:
        os.close(descriptor)
    return True


def open_log(path: Path) -> int:
    """The worker's log, opened for appending (a file descriptor to give it as stdout and stderr)."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


__all__ = ["ForeignSocket", "UnsafeSocket", "adopt_socket", "listen", "open_log", "prepare"]
