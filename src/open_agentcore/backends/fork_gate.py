"""The gate a forked worker waits at: how the server learns the child's pid from the kernel, and
how the child, once under its limits, is given its session.

The fork server forks in a pid namespace of its own when sandboxed, and runs code of the agent's
import: what it says a child's pid is, the server does not use. The child writes one byte on its
end of a unix socket; the server's end has `SO_PASSCRED`, so the kernel attaches the writer's real
pid, translated into the server's pid namespace (a process can claim another pid only with
`CAP_SYS_ADMIN` over the pid namespace, which nothing in a fork server has). The server then
checks that pid descends from the version's fork server, limits it, and answers one byte.

A child can be forked before its session exists (a spare, `fork_spares.py`): it then waits on the
same gate for its session, which the server sends straight to it, never through the fork server:
the session's environment and working dir (JSON, after its length) with its listening socket and
log as file descriptors. Both sides use only the standard library (this file is imported by path in
the fork server too).
"""

from __future__ import annotations

import json
import os
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass

_UCRED = struct.Struct("iII")  # pid, uid, gid
_LENGTH = struct.Struct("!I")
MAX_SESSION = 256 * 1024  # the session's environment and working dir, as JSON
_WALKS = 3  # each walk may meet a parent that exits meanwhile, and its child is then reparented
_MAX_DEPTH = 8  # outer bubblewrap, setpriv (exec), inner bubblewrap, its pid 1, the fork server


class GateRefused(Exception):
    """What came through the gate is not a child of the fork server saying it is ready."""


def child_pid(gate: socket.socket, timeout: float) -> int:
    """The pid (in our namespace) of the process that wrote to the other end (blocking, bounded)."""
    gate.settimeout(timeout)
    try:
        data, ancillary, _, _ = gate.recvmsg(1, socket.CMSG_SPACE(_UCRED.size))
    except TimeoutError:
        raise GateRefused(f"the forked child did not reach its gate within {timeout:g}s") from None
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(payload) >= _UCRED.size:
            pid, _, _ = _UCRED.unpack_from(payload)
            if data and pid > 0:
                return int(pid)
    raise GateRefused("the forked child closed its gate without its credentials")


def parent(pid: int) -> int | None:
    """`pid`'s parent as /proc tells it, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def check_descends(pid: int, ancestor: int | None) -> None:
    """`GateRefused` unless `pid` is a descendant of `ancestor` (the fork server's outer process).

    A sandboxed child's parent is a process that exits as soon as it has forked it: when that
    parent is gone in the middle of the walk, the child hangs from the fork server (a subreaper)
    by then, and the walk starts again from the child.
    """
    for _ in range(_WALKS):
        current: int | None = pid
        for _ in range(_MAX_DEPTH):
            above = parent(current) if current is not None else None
            if above == ancestor and ancestor is not None:
                return
            if above is None:
                break  # `current` is gone: walk again, unless it is `pid` itself
            if above <= 1:
                raise GateRefused(f"pid {pid} is not a child of its version's fork server")
            current = above
        if current == pid:
            break
    raise GateRefused(f"pid {pid} is not a child of its version's fork server")


@dataclass
class Session:
    """What a forked child is given to become a session's worker."""

    environment: dict[str, str]
    cwd: str
    listener: int  # a listening unix socket
    log: int  # its stdout and stderr


def send_session(
    gate: socket.socket, environment: Mapping[str, str], cwd: str, listener: int, log: int
) -> None:
    """Give the child waiting at `gate` its session (blocking; the descriptors stay ours to close)."""
    body = json.dumps({"environment": dict(environment), "cwd": cwd}).encode()
    if len(body) > MAX_SESSION:
        raise ValueError(f"the session's environment is {len(body)} bytes, over {MAX_SESSION}")
    socket.send_fds(gate, [_LENGTH.pack(len(body)), body], [listener, log])


def receive_session(gate: int) -> Session | None:
    """In the child: wait for its session on `gate` (None when the server closed it instead)."""
    with socket.socket(fileno=os.dup(gate)) as channel:
        head, fds, _, _ = socket.recv_fds(channel, _LENGTH.size, 2)
        if len(head) < _LENGTH.size or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            return None
        (length,) = _LENGTH.unpack(head)
        body = b""
        while len(body) < min(length, MAX_SESSION):
            chunk = channel.recv(length - len(body))
            if not chunk:
                break
            body += chunk
    if len(body) != length:
        for fd in fds:
            os.close(fd)
        return None
    message = json.loads(body)
    return Session(dict(message["environment"]), str(message["cwd"]), fds[0], fds[1])


__all__ = [
    "MAX_SESSION",
    "GateRefused",
    "Session",
    "check_descends",
    "child_pid",
    "parent",
    "receive_session",
    "send_session",
]
