"""Bubblewrap sandboxes: the command that confines one worker, and the probe that proves it works here.

A sandboxed process sees a minimal root: read-only `/usr` (and the merged-/usr links), the few
`/etc` files the C library, Python, TLS and DNS read, a synthesised passwd and group, a new
`/proc`, a minimal `/dev`, private `/tmp` and `/dev/shm`, and the paths its `SandboxView` names:
nothing else of the host. It runs as uid 1000 in its own user namespace with no capabilities,
`no_new_privs` and the seccomp filter of `seccomp.py`, in new pid, IPC, UTS and cgroup
namespaces (and network, when asked).

As root, two bubblewraps nest. The outer one runs as root without a user namespace, because only
root can reach what must be bound (the server's data dir is 0700, the interpreter may live under
/root); after the mounts, `setpriv` drops to the worker's own host uid and the inner, unprivileged
bubblewrap makes the user namespace, drops every capability and installs the filter. Not as root,
one bubblewrap does all of it, and workers share the server's host uid.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import seccomp, system_root
from .system_root import Kind, group, outermost, passwd, within

SANDBOX_UID = 1000
# What a fork server's filter lets through of what a worker's refuses: what its children make their
# own sandboxes with, before they install the whole filter.
FORK_SERVER_ALLOWED = ("unshare", "mount")
NETWORKS = ("default", "none")

_PROBE = (
    "import json, os\n"
    "lines = open('/proc/self/status').read().splitlines()\n"
    "status = dict(line.split(':\\t', 1) for line in lines if ':\\t' in line)\n"
    "ns = {n: os.readlink('/proc/self/ns/' + n) for n in os.listdir('/proc/self/ns')}\n"
    "print(json.dumps({'status': status, 'ns': ns}))\n"
)
# /proc/self/ns names, and what protections() calls them.
_NAMESPACES = (("user", "user"), ("mnt", "mount"), ("pid", "pid"), ("ipc", "ipc"), ("uts", "uts"),
               ("cgroup", "cgroup"), ("net", "net"))  # fmt: skip


class SandboxUnavailable(Exception):
    """This machine cannot run the sandbox; the message says what is missing."""


@dataclass(frozen=True)
class SandboxView:
    """What one sandboxed process sees besides the system paths, each at its own path."""

    read_only: Sequence[Path]
    writable: Sequence[Path] = ()
    chdir: Path = Path("/")
    home: Path = Path("/")


@dataclass
class Launch:
    """A sandbox command and the file descriptors it reads (pass them to the child; close after)."""

    argv: list[str]
    fds: tuple[int, ...]

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)


@dataclass
class Bubblewrap:
    """Builds bubblewrap commands for one server: root (`setpriv` given) or not, with or without network."""

    bwrap: str
    setpriv: str | None
    architecture: seccomp.Architecture
    network: str = "default"
    _filter: bytes = field(init=False, repr=False)
    _fork_server_filter: bytes = field(init=False, repr=False)
    _system: list[str] = field(init=False, repr=False)
    _etc_sources: list[tuple[str, Path]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise ValueError(f"network must be one of {', '.join(NETWORKS)}, not {self.network!r}")
        self._filter = seccomp.encode(seccomp.filter_program(self.architecture))
        self._fork_server_filter = seccomp.encode(
            seccomp.filter_program(self.architecture, allowed=FORK_SERVER_ALLOWED)
        )
        tools = [tool for tool in (self.bwrap, self.setpriv) if tool is not None]
        self._system, self._etc_sources = _system_root(tools)

    @property
    def as_root(self) -> bool:
        """Whether workers get a host uid each (the server runs as root) or share the server's."""
        return self.setpriv is not None

    def namespaces(self) -> list[str]:
        """The namespaces a sandboxed process gets its own of (the cgroup one where supported)."""
        names = ["user", "mount", "pid", "ipc", "uts", "cgroup"]
        return [*names, "net"] if self.network == "none" else names

    def launch(self, view: SandboxView, command: Sequence[str], host_uid: int | None = None) -> Launch:
        """The command confining `command` to `view`; as root, `host_uid` is the uid it runs as."""
        if self.as_root and host_uid is None:
            raise ValueError("as root, every sandbox needs its own host uid")
        fds: list[int] = []
        try:
            root = [*self._system]
            users = [("/etc/passwd", passwd(SANDBOX_UID, view.home)), ("/etc/group", group(SANDBOX_UID))]
            copies = [*self._etc_files(), *users]
            for destination, data in copies:
                root += ["--perms", "0444", "--file", str(_data_fd(data, fds)), destination]
            root += [*_view_binds(view), "--chdir", str(view.chdir)]
            confine = [
                "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
                "--cap-drop", "ALL", "--disable-userns", "--seccomp", str(_data_fd(self._filter, fds)),
            ]  # fmt: skip
            namespaces = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
            if self.network == "none":
                namespaces.append("--unshare-net")
            lifetime = ["--die-with-parent", "--new-session"]
            if self.setpriv is None:
                argv = [self.bwrap, *confine, *namespaces, *lifetime, *root, "--", *command]
            else:
                uid = str(host_uid)
                drop = [
                    self.setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
                    "--inh-caps=-all", "--bounding-set=-all", "--",
                ]  # fmt: skip
                # The inner bubblewrap keeps the outer one's mounts (--dev-bind: /dev's devices work).
                inner = [self.bwrap, *confine, "--dev-bind", "/", "/", "--die-with-parent"]
                inner += ["--chdir", str(view.chdir), "--", *command]
                argv = [self.bwrap, *namespaces, *lifetime, *root, "--", *drop, *inner]
        except BaseException:
            Launch([], tuple(fds)).close()
            raise
        return Launch(argv, tuple(fds))

    def launch_fork_server(self, view: SandboxView, command: Sequence[str], host_uid: int) -> Launch:
        """The command confining a fork server (as root only) to `view`, with `--seccomp-fd N`
        (the filter its children install, `fork_sandbox.py`) and `--own-seccomp-fd N` (its own,
        installed before it imports the agent) appended to `command`.

        Like a worker's sandbox, with a filter that lets `unshare` and `mount` through and user
        namespaces allowed, since it must make each child's namespaces. The outer bubblewrap binds
        the host's /proc rather than mounting one, for the children's own /proc: bubblewrap covers
        parts of a /proc it mounts as root, and a covered /proc cannot be mounted again in a nested
        user namespace. Only setpriv and the inner bubblewrap see it, which mounts the fork
        server's own over it before anything else runs. And a `/home` to mount each child's home on.
        """
        if not self.as_root:
            raise SandboxUnavailable("a sandboxed fork server needs a server running as root")
        fds: list[int] = []
        try:
            system = [*self._system]
            at = system.index("--proc")
            system[at : at + 2] = ["--bind", "/proc", "/proc"]
            root = [*system, "--perms", "0755", "--dir", "/home"]
            users = [("/etc/passwd", passwd(SANDBOX_UID, view.home)), ("/etc/group", group(SANDBOX_UID))]
            for destination, data in [*self._etc_files(), *users]:
                root += ["--perms", "0444", "--file", str(_data_fd(data, fds)), destination]
            root += [*_view_binds(view), "--chdir", str(view.chdir)]
            namespaces = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
            if self.network == "none":
                namespaces.append("--unshare-net")
            uid = str(host_uid)
            drop = [
                str(self.setpriv), f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
                "--inh-caps=-all", "--bounding-set=-all", "--",
            ]  # fmt: skip
            inner = [
                self.bwrap, "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
                "--unshare-pid", "--cap-drop", "ALL", "--dev-bind", "/", "/", "--proc", "/proc",
                "--die-with-parent", "--chdir", str(view.chdir),
                "--", *command, "--seccomp-fd", str(_data_fd(self._filter, fds)),
                "--own-seccomp-fd", str(_data_fd(self._fork_server_filter, fds)),
            ]  # fmt: skip
            argv = [self.bwrap, *namespaces, "--die-with-parent", "--new-session", *root, "--", *drop, *inner]
        except BaseException:
            Launch([], tuple(fds)).close()
            raise
        return Launch(argv, tuple(fds))

    def _etc_files(self) -> list[tuple[str, bytes]]:
        """The /etc files to copy in, read now: resolv.conf and hosts may change while the server runs."""
        files = []
        for destination, source in self._etc_sources:
            try:
                files.append((destination, source.read_bytes()))
            except OSError:
                continue  # gone since start-up, or not readable: the sandbox goes without it
        return files

    def probe(self, host_uid: int | None = None, python: str = sys.executable) -> list[str]:
        """Run the sandbox once on `python`; the namespaces it got, or `SandboxUnavailable` saying why.

        It checks what the sandboxed process reports of itself, not only that it started: uid
        1000, no capabilities at all, `no_new_privs`, and the seccomp filter in force.
        """
        view = SandboxView(read_only=interpreter_paths(python))
        launch = self.launch(view, [python, "-I", "-S", "-c", _PROBE], host_uid)
        try:
            done = subprocess.run(  # noqa: S603 - arguments built here
                launch.argv,
                pass_fds=launch.fds,
                capture_output=True,
                text=True,
                timeout=30,
                env=_minimal_environment(),
                cwd="/",
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SandboxUnavailable(f"bubblewrap not working: {error}") from None
        finally:
            launch.close()
        if done.returncode != 0:
            raise SandboxUnavailable(_explain(done.stderr or done.stdout, self.bwrap))
        try:
            report = json.loads(done.stdout)
        except ValueError:
            raise SandboxUnavailable(f"the sandbox probe printed {done.stdout[:200]!r}") from None
        _check_confined(report["status"])
        own = {name: _own_namespace(name) for name, _ in _NAMESPACES}
        return [shown for name, shown in _NAMESPACES if report["ns"].get(name) not in (None, own[name])]


def find_bubblewrap(network: str = "default", machine: str | None = None) -> Bubblewrap:
    """The sandbox this machine offers (not yet probed); `SandboxUnavailable` naming what is missing."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap not found")
    setpriv = None
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise SandboxUnavailable("setpriv (util-linux) not found: as root it drops to the worker's uid")
    try:
        architecture = seccomp.architecture(machine)
    except seccomp.SeccompUnavailable as error:
        raise SandboxUnavailable(str(error)) from None
    return Bubblewrap(bwrap, setpriv, architecture, network)


@functools.lru_cache(maxsize=64)
def interpreter_paths(python: str) -> tuple[Path, ...]:
    """The directories an interpreter imports from (prefixes and sys.path), asked of it once.

    Asked in a minimal environment, like the worker's: the server's own PYTHONPATH is no guide.
    """
    probe = "import json, sys; print(json.dumps([sys.prefix, sys.base_prefix, *sys.path]))"
    try:
        done = subprocess.run(  # noqa: S603 - the worker's own interpreter, fixed arguments
            [python, "-c", probe],
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",
            env=_minimal_environment(),
        )
        found = json.loads(done.stdout) if done.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired, ValueError):
        found = []
    return tuple(sorted({Path(path) for path in found if path and os.path.isdir(path)}))


def _system_root(tools: Iterable[str]) -> tuple[list[str], list[tuple[str, Path]]]:
    """The fixed part of the minimal root (computed once per server), and the /etc files to copy in
    at each start, as (destination, source)."""
    args: list[str] = []
    made = {"/"}
    copies: list[tuple[str, Path]] = []
    for entry in system_root.entries():
        args += _directories(entry.path.parent, made)
        if entry.kind is Kind.BIND:
            args += ["--ro-bind", entry.source, str(entry.path)]
            made.add(str(entry.path))
        elif entry.kind is Kind.LINK:
            args += ["--symlink", entry.source, str(entry.path)]
        else:
            copies.append((str(entry.path), Path(entry.source)))
    for tool in tools:  # the inner bubblewrap and setpriv run inside the outer sandbox
        if not within(Path(os.path.realpath(tool)), Path("/usr")):
            args += [*_directories(Path(tool).parent, made), "--ro-bind", tool, tool]
    # The sandbox's own, empty /tmp and /dev/shm (multiprocessing's semaphores live there).
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm"]  # noqa: S108
    args += ["--perms", "1777", "--tmpfs", "/tmp"]  # noqa: S108
    return args, copies


def _view_binds(view: SandboxView) -> list[str]:
    read_only = outermost(view.read_only)
    writable = outermost(view.writable)
    made = {"/", "/usr", "/etc", "/tmp", "/dev", "/proc"}  # noqa: S108 - mount points in the sandbox
    args: list[str] = []
    for path in (*read_only, *writable):
        args += _directories(path.parent, made, covered=read_only)
    for path in read_only:
        args += ["--ro-bind", str(path), str(path)]
    for path in writable:
        args += ["--bind", str(path), str(path)]
    return args


def _directories(path: Path, made: set[str], covered: Sequence[Path] = ()) -> list[str]:
    """`--dir` for `path` and its ancestors not made yet, world-traversable: bubblewrap run as root
    would make them 0700, which the worker's uid cannot pass through."""
    args: list[str] = []
    for directory in [*reversed(path.parents), path]:
        if str(directory) in made or any(within(directory, tree) for tree in covered):
            continue
        made.add(str(directory))
        args += ["--perms", "0755", "--dir", str(directory)]
    return args


def unreadable_by_others(path: Path, executable: bool = False) -> str | None:
    """Why a worker running as a uid of nobody's could not read `path` (or run it), or None."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        return f"{path} cannot be read: {error.strerror}"
    needed = stat.S_IROTH | stat.S_IXOTH if stat.S_ISDIR(mode) or executable else stat.S_IROTH
    if mode & needed != needed:
        return (
            f"{path} (mode {stat.filemode(mode)}) is not readable by the worker's uid: sandboxed workers "
            "run as an unprivileged uid, so what they read must be readable by all"
        )
    return None


def _data_fd(data: bytes, opened: list[int]) -> int:
    """A file descriptor that reads `data` from its start (for bubblewrap); added to `opened`."""
    fd = os.memfd_create("sandbox-data", os.MFD_CLOEXEC)
    opened.append(fd)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _minimal_environment() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def _check_confined(status: dict[str, str]) -> None:
    problems = []
    if status.get("Uid", "").split() != [str(SANDBOX_UID)] * 4:
        problems.append(f"its uid is {status.get('Uid')!r}")
    for name in ("CapEff", "CapPrm", "CapBnd"):
        if int(status.get(name, "1"), 16) != 0:
            problems.append(f"it keeps capabilities ({name} {status.get(name)})")
    if status.get("NoNewPrivs") != "1":
        problems.append("no_new_privs is not set")
    if status.get("Seccomp") != "2":
        problems.append("the seccomp filter is not in force")
    if problems:
        raise SandboxUnavailable("the sandbox started, but " + "; ".join(problems))


def _own_namespace(name: str) -> str | None:
    try:
        return os.readlink(f"/proc/self/ns/{name}")
    except OSError:
        return None


def _explain(output: str, bwrap: str) -> str:
    """What a failed sandbox start means, in one line."""
    text = " ".join(output.split())[:300] or "(no output)"
    if "disable-userns" in text:
        return f"{bwrap} is too old for --disable-userns (bubblewrap 0.8.0 or later is needed): {text}"
    if "namespace" in text.lower() or "uid map" in text.lower() or "setting up uid" in text.lower():
        return f"user namespaces are not available to unprivileged users here: {text}"
    if "seccomp" in text.lower():
        return f"the seccomp filter could not be installed: {text}"
    return f"bubblewrap not working: {text}"


__all__ = [
    "NETWORKS",
    "SANDBOX_UID",
    "Bubblewrap",
    "Launch",
    "SandboxUnavailable",
    "SandboxView",
    "find_bubblewrap",
    "interpreter_paths",
    "unreadable_by_others",
]
