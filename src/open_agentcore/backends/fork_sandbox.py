"""Inside a sandboxed fork server: the sandbox each forked session enters before its agent runs.

Run in the fork server's children (`fork_main.py`), so only the standard library is used. A child
makes its own user, mount, pid, IPC, UTS and cgroup namespaces (and network, when sessions have
none), forks once more so that the session is pid 1 of its new pid namespace, and there mounts its
own `/proc`, its own empty `/tmp`, `/home` (its `HOME` is `/home/agent`) and `/dev/shm` over the
fork server's, drops every capability (bounding set too), and installs the seccomp filter the
runtime server built (`seccomp.py`), which refuses namespaces, mounts, ptrace and the rest from
then on. `no_new_privs` is already set: the fork server runs with it.
"""

from __future__ import annotations

import ctypes
import os
import re

HOME = "/home/agent"
TMPDIR = "/tmp"  # noqa: S108 - the session's own tmpfs

_CLONE_NEWNS = 0x00020000
_CLONE_NEWCGROUP = 0x02000000
_CLONE_NEWUTS = 0x04000000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x8, 0x1000, 0x4000, 0x40000
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_SANDBOX_UID = 1000

_libc = ctypes.CDLL(None, use_errno=True)


class SandboxSetupFailed(Exception):
    """A step of entering the session's sandbox failed; the session must not run."""


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise SandboxSetupFailed(f"{what}: {os.strerror(code)}")


def enter_namespaces(network: bool) -> None:
    """Make the calling process's own user (uid 1000 mapped to the fork server's), mount, IPC, UTS
    and pid namespaces; the pid one holds only the children made after this call. (The cgroup one
    is made by `become_pid_one`, once the server has put it in the session's cgroups.)"""
    uid, gid = os.getuid(), os.getgid()
    flags = _CLONE_NEWUSER | _CLONE_NEWNS | _CLONE_NEWIPC | _CLONE_NEWUTS | _CLONE_NEWPID
    if not network:
        flags |= _CLONE_NEWNET
    _check(_libc.unshare(flags), "unshare")
    for name, data in (("setgroups", "deny"), ("uid_map", f"{_SANDBOX_UID} {uid} 1"),
                       ("gid_map", f"{_SANDBOX_UID} {gid} 1")):  # fmt: skip
        _write_file(f"/proc/self/{name}", data.encode())


def become_subreaper() -> None:
    """Make the calling process (the fork server) the parent of its grandchildren once their
    parent has exited: each session's pid 1 is then its child, to reap and report."""
    _check(_libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "PR_SET_CHILD_SUBREAPER")


def become_pid_one() -> None:
    """In the child that is pid 1 of the new pid namespace, once it is in the session's cgroups:
    make its cgroup namespace (its cgroup is the root it sees), and mount this namespace's own
    /proc and private /tmp, /home and /dev/shm (for every process of the mount namespace, those
    forked before too)."""
    enter_cgroup_namespace()
    _check(_libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "making mounts private")
    # What the fork server sees under them (the version's code, say, when the data dir is in /tmp)
    # stays: held open before the cover, bound again on top of it.
    for target, mode in (("/tmp", "1777"), ("/dev/shm", "1777"), ("/home", "0755")):  # noqa: S108
        kept = [(path, os.open(path, os.O_PATH | os.O_CLOEXEC)) for path in _mounts_below(target)]
        _mount(b"tmpfs", target.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, f"mode={mode}".encode())
        for path, fd in kept:
            os.makedirs(path, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}".encode(), path.encode(), None, _MS_BIND | _MS_REC, None)
            os.close(fd)
    os.mkdir(HOME, 0o700)
    _mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None)


def enter_cgroup_namespace() -> None:
    """Make the calling process's own cgroup namespace (once in the session's cgroups: they are the
    root it sees). Per process: each of the session's must make it before it is confined."""
    _check(_libc.unshare(_CLONE_NEWCGROUP), "unshare(CLONE_NEWCGROUP)")


def _mounts_below(directory: str) -> list[str]:
    """The outermost mount points strictly below `directory`, from this mount namespace's table."""
    below: list[str] = []
    with open("/proc/self/mountinfo") as table:
        for line in table:
            point = _unescape(line.split()[4])
            if point.startswith(directory + "/") and not any(point.startswith(p + "/") for p in below):
                below = [p for p in below if not p.startswith(point + "/")] + [point]
    return below


def _unescape(field: str) -> str:
    """A mountinfo field with its octal escapes (space, tab, newline, backslash) undone."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def _mount(source: bytes, target: bytes, kind: bytes | None, flags: int, data: bytes | None) -> None:
    _check(_libc.mount(source, target, kind, flags, data), f"mounting {target.decode()}")


def drop_privileges() -> None:
    """Drop every capability (effective, permitted, inheritable, ambient and bounding); set
    `no_new_privs` (the fork server has it already: this is a belt for the braces)."""
    _drop_privileges(int(_read_file("/proc/sys/kernel/cap_last_cap")))


def _drop_privileges(last_capability: int) -> None:
    for capability in range(last_capability + 1):
        _check(_libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0), "dropping the bounding set")
    _check(_libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clearing ambient capabilities")
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(_libc.capset(header, data), "capset")
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def not_dumpable() -> None:
    """Make the calling process undumpable: no process of its uid may open its memory or trace it."""
    _check(_libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0), "PR_SET_DUMPABLE")


def install_filter(program: bytes) -> None:
    """Install the runtime server's seccomp filter (`seccomp.encode`d: 8 bytes per instruction)."""
    Confinement(program).install_filter()


def confine(program: bytes) -> None:
    """Everything after the mounts: no capability left, then the filter."""
    Confinement(program).apply()


class Confinement:
    """`confine` made ready once, in the fork server, for each session to apply.

    Building the filter's ctypes objects and reading the capability count runs ctypes' and io's
    Python code, which in every session would unshare about 0.5 MiB of the pages it shares with
    its siblings; made before the fork, each session only makes the system calls."""

    def __init__(self, program: bytes) -> None:
        if not program or len(program) % 8:
            raise SandboxSetupFailed("the seccomp filter is malformed")
        self._buffer = ctypes.create_string_buffer(program, len(program))  # kept: the filter points in it
        self._filter = _SockFprog(len(program) // 8, ctypes.cast(self._buffer, ctypes.c_char_p))
        self._last_capability = int(_read_file("/proc/sys/kernel/cap_last_cap"))

    def install_filter(self) -> None:
        """Install the seccomp filter in the calling process."""
        _check(
            _libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(self._filter), 0, 0), "seccomp"
        )

    def apply(self) -> None:
        """Drop every capability, then install the filter."""
        _drop_privileges(self._last_capability)
        self.install_filter()


def _write_file(path: str, data: bytes) -> None:
    """Write a small file in one `write` (as /proc's id maps require), by descriptor (see below)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        if os.write(fd, data) != len(data):
            raise SandboxSetupFailed(f"writing {path}: short write")
    finally:
        os.close(fd)


def _read_file(path: str) -> bytes:
    """A small file's bytes, by descriptor: `open()` runs io's and codecs' Python code, which a
    session's process would unshare its pages for."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


__all__ = [
    "HOME",
    "TMPDIR",
    "Confinement",
    "SandboxSetupFailed",
    "become_pid_one",
    "become_subreaper",
    "confine",
    "drop_privileges",
    "enter_cgroup_namespace",
    "enter_namespaces",
    "install_filter",
    "not_dumpable",
]
