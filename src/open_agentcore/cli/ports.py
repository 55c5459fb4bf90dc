"""Loopback ports for agents run on this machine: is one free, which is next, and who holds it.

Who holds a port is read from Linux's /proc (the listening socket's inode in /proc/net/tcp*, then
the process with that inode among its open files); elsewhere, or without permission, it is unknown.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from .errors import CliError

DEFAULT_PORT = 8080
SEARCH_LIMIT = 100
_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could listen on host:port now (as uvicorn binds: with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def next_free_port(start: int, host: str = "127.0.0.1") -> int:
    """`start` when it is free, else the first free port above it."""
    for port in range(start, min(start + SEARCH_LIMIT, 65536)):
        if port_free(port, host):
            return port
    raise CliError(f"no free port in {start}-{start + SEARCH_LIMIT - 1} on {host}: pass --port")


def describe_holder(port: int) -> str:
    """`pid 123 (python -m http.server 8080)` for the process listening on `port`, else `in use`."""
    pid = _listener_pid(port)
    if pid is None:
        return "in use"
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"in use by pid {pid}"
    command = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    if len(command) > 160:
        command = command[:157] + "..."
    return f"in use by pid {pid} ({command})" if command else f"in use by pid {pid}"


def _listener_pid(port: int) -> int | None:
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):  # processes come and go; others' fds need permission
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in wanted:
                        return int(entry.name)
    return None


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


__all__ = ["DEFAULT_PORT", "describe_holder", "next_free_port", "port_free"]
