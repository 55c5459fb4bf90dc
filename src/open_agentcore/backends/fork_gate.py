"""The gate a forked worker waits at: how the server learns the child's pid from the kernel.

The fork server forks in a pid namespace of its own when sandboxed, and runs code of the agent's
import: what it says a child's pid is, the server does not use. The child writes one byte on its
end of a unix socket; the server's end has `SO_PASSCRED`, so the kernel attaches the writer's real
pid, translated into the server's pid namespace (a process can claim another pid only with
`CAP_SYS_ADMIN` over the pid namespace, which nothing in a fork server has). The server then
checks that pid descends from the version's fork server, limits it, and answers.
"""

from __future__ import annotations

import socket
import struct

_UCRED = struct.Struct("iII")  # pid, uid, gid
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
    """`GateRefused` unless `pid` is a descendant of `ancestor` (the fork server's outer process)."""
    current: int | None = pid
    for _ in range(_MAX_DEPTH):
        current = parent(current) if current is not None else None
        if current is None or current <= 1:
            break
        if current == ancestor:
            return
    raise GateRefused(f"pid {pid} is not a child of its version's fork server")


__all__ = ["GateRefused", "check_descends", "child_pid", "parent"]
