"""The cgroup filesystem: which cgroups this process is in, and making, emptying and removing cgroups.

Workers are placed at `<own>/open-agentcore/<instance>/<worker_id>` in each hierarchy, where `<own>`
is this server's cgroup (so a limit on the server's container also covers its workers) and
`<instance>` names one running server: `<pid>-<start time>-<random>`, which lets a later server
tell a dead server's leftovers from a live one's.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

PLACEMENT = "open-agentcore"
SERVER_LEAF_SUFFIX = ".server"
_INSTANCE = re.compile(r"(\d+)-(\d+)-[0-9a-f]+")


class CgroupUnusable(Exception):
    """A hierarchy cannot hold workers here; the message says why."""


@dataclass(frozen=True)
class Membership:
    """One line of /proc/<pid>/cgroup: the hierarchy's controllers (empty for cgroup v2) and the path."""

    controllers: frozenset[str]
    path: str
    unified: bool


@dataclass(frozen=True)
class Hierarchy:
    """A mounted hierarchy this process is in: its controllers, its mount and this process's cgroup."""

    version: int
    controllers: frozenset[str]
    mount: Path
    own: Path


def read_memberships(self_cgroup: Path) -> list[Membership]:
    """Parse /proc/self/cgroup (`id:controllers:path` lines; id 0 with no controllers is cgroup v2)."""
    found = []
    for line in self_cgroup.read_text().splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy_id, controllers, path = parts
        names = frozenset(name for name in controllers.split(",") if name and not name.startswith("name="))
        found.append(Membership(names, path, unified=hierarchy_id == "0" and not controllers))
    return found


def find_unified(cgroup_root: Path, memberships: Sequence[Membership]) -> Hierarchy:
    """The cgroup v2 hierarchy: mounted at `cgroup_root` (a v2-only host) or `cgroup_root/unified`."""
    membership = next((m for m in memberships if m.unified), None)
    if membership is None:
        raise CgroupUnusable("this process is in no cgroup v2 hierarchy")
    for mount in (cgroup_root, cgroup_root / "unified"):
        if (mount / "cgroup.controllers").is_file():
            own = _own_dir(mount, membership.path)
            controllers = frozenset((own / "cgroup.controllers").read_text().split())
            return Hierarchy(2, controllers, mount, own)
    raise CgroupUnusable(f"no cgroup v2 hierarchy is mounted at {cgroup_root} or {cgroup_root / 'unified'}")


def find_v1(cgroup_root: Path, memberships: Sequence[Membership], controller: str) -> Hierarchy:
    """The cgroup v1 hierarchy holding `controller`, mounted as `cgroup_root/<its controllers>`
    (e.g. `cpu,cpuacct`) or as `cgroup_root/<controller>` (a separate mount or a symlink)."""
    membership = next((m for m in memberships if controller in m.controllers), None)
    if membership is None:
        raise CgroupUnusable(f"this process is in no cgroup v1 {controller} hierarchy")
    names = [",".join(sorted(membership.controllers)), *sorted(membership.controllers)]
    for name in dict.fromkeys(names):
        mount = cgroup_root / name
        if (mount / "cgroup.procs").is_file() and not (mount / "cgroup.controllers").exists():
            return Hierarchy(
                1, membership.controllers, mount.resolve(), _own_dir(mount.resolve(), membership.path)
            )
    raise CgroupUnusable(f"the cgroup v1 {controller} hierarchy is not mounted under {cgroup_root}")


def _own_dir(mount: Path, path: str) -> Path:
    """This process's cgroup dir. A container may mount only its own subtree (the mount's root is
    then a suffix of `path`): strip leading components until a dir that really holds us is found."""
    parts = PurePosixPath(path).parts[1:]
    exact = mount.joinpath(*parts)
    if exact.is_dir():
        return exact
    for start in range(1, len(parts) + 1):
        candidate = mount.joinpath(*parts[start:])
        if candidate.is_dir() and os.getpid() in procs(candidate):
            return candidate
    raise CgroupUnusable(f"this process's cgroup {path} is not visible under {mount}")


def procs(cgroup: Path) -> list[int]:
    """The processes in `cgroup` itself (not its children); none when it does not exist."""
    try:
        return [int(line) for line in (cgroup / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def read_keyed(path: Path) -> dict[str, int]:
    """A `key value` per line control file (`memory.events`, `cpu.stat`, `memory.oom_control`)."""
    values = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            values[key] = int(value)
    return values


def write(path: Path, value: str) -> None:
    """Write one control file in a single write, as cgroupfs requires."""
    path.write_text(value)


def is_root(cgroup: Path) -> bool:
    """Whether `cgroup` is its hierarchy's root (only non-root cgroups have `cgroup.type`)."""
    return not (cgroup / "cgroup.type").exists()


def enable_controllers(cgroup: Path, controllers: Iterable[str]) -> None:
    """Make `controllers` available to the children of the cgroup v2 dir `cgroup`."""
    missing = [name for name in controllers if name not in _subtree_control(cgroup)]
    if missing:
        write(cgroup / "cgroup.subtree_control", " ".join(f"+{name}" for name in missing))


def _subtree_control(cgroup: Path) -> set[str]:
    # A missing file reads as nothing enabled: the write that follows then fails and says where.
    try:
        text = (cgroup / "cgroup.subtree_control").read_text()
    except FileNotFoundError:
        return set()
    return {word.lstrip("+") for word in text.split()}


def place(hierarchy: Hierarchy, instance: str, controllers: Sequence[str]) -> Path:
    """Make this server's dir `<own>/open-agentcore/<instance>` and return it (idempotent).

    On cgroup v2 the `controllers` are enabled down to it. v2 lets processes live only in leaves
    once controllers are enabled below a cgroup, and this server lives in `<own>`: unless `<own>` is
    the root, the server first moves itself into the leaf `<own>/open-agentcore/<instance>.server`,
    which is refused (`CgroupUnusable`) when `<own>` holds other processes as well.
    """
    placement = hierarchy.own / PLACEMENT
    instance_dir = placement / instance
    if hierarchy.version == 1:
        instance_dir.mkdir(parents=True, exist_ok=True)
        return instance_dir
    own = hierarchy.own
    if not is_root(own) and not _enabled(own, controllers):
        others = [pid for pid in procs(own) if pid != os.getpid()]
        if others:
            raise CgroupUnusable(
                f"{own} holds {len(others)} process(es) besides this server, and cgroup v2 keeps "
                "processes out of cgroups whose controllers are enabled for children"
            )
        leaf = placement / f"{instance}{SERVER_LEAF_SUFFIX}"
        leaf.mkdir(parents=True, exist_ok=True)
        write(leaf / "cgroup.procs", str(os.getpid()))
    enable_controllers(own, controllers)
    placement.mkdir(exist_ok=True)
    enable_controllers(placement, controllers)
    instance_dir.mkdir(exist_ok=True)
    enable_controllers(instance_dir, controllers)
    return instance_dir


def _enabled(cgroup: Path, controllers: Iterable[str]) -> bool:
    return _subtree_control(cgroup).issuperset(controllers)


def instance_name() -> str:
    """A name for this server's dirs that is unique and says which process owns them."""
    return f"{os.getpid()}-{_start_time(os.getpid())}-{secrets.token_hex(4)}"


def _start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22, counted after the command name, which may itself hold spaces and parentheses.
    return int(stat.rpartition(")")[2].split()[19])


def _owner_alive(name: str) -> bool:
    """Whether the server that made the dir `name` still runs; an unknown name counts as alive."""
    match = _INSTANCE.fullmatch(name.removesuffix(SERVER_LEAF_SUFFIX))
    if match is None:
        return True
    # The start time tells a dead server from a new process that reuses its pid (pid 1 in containers).
    return _start_time(int(match.group(1))) == int(match.group(2))


def remove_leftovers(placement: Path) -> list[Path]:
    """Remove the empty dirs of dead servers under `placement` (`<own>/open-agentcore`); a cgroup
    that still holds a process is left alone, and so is everything of a live server."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in sorted(placement.iterdir()):
            if not entry.is_dir() or _owner_alive(entry.name):
                continue
            leaves = [child for child in entry.iterdir() if child.is_dir()]
            removed += [leaf for leaf in leaves if _remove_if_empty(leaf)]
            if _remove_if_empty(entry):
                removed.append(entry)
    return removed


def _remove_if_empty(cgroup: Path) -> bool:
    if procs(cgroup):
        return False
    try:
        cgroup.rmdir()
    except OSError:  # children, processes that just arrived, or a plain non-empty dir
        return False
    return True


def kill_all(cgroups: Sequence[Path], timeout: float) -> bool:
    """SIGKILL every process in `cgroups` until they are empty or `timeout` passes; True when empty.

    Forks are refused first (`pids.max` 0, or `cgroup.kill` where the kernel has it), so a process
    cannot escape by forking faster than it is killed, nor by leaving its session or process group.
    """
    for cgroup in cgroups:
        for name, value in (("pids.max", "0"), ("cgroup.kill", "1")):
            if (cgroup / name).exists():
                with contextlib.suppress(OSError):
                    write(cgroup / name, value)
    deadline = time.monotonic() + timeout
    while True:
        remaining = {pid for cgroup in cgroups for pid in procs(cgroup)}
        if not remaining:
            return True
        for pid in remaining:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)


def remove(cgroup: Path, timeout: float) -> bool:
    """rmdir `cgroup`, retrying while the kernel still frees it (EBUSY just after its last process
    was reaped); True when it is gone."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            cgroup.rmdir()
        except FileNotFoundError:
            return True
        except OSError as error:
            if error.errno != errno.EBUSY or time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        else:
            return True


__all__ = [
    "PLACEMENT",
    "SERVER_LEAF_SUFFIX",
    "CgroupUnusable",
    "Hierarchy",
    "Membership",
    "enable_controllers",
    "find_unified",
    "find_v1",
    "instance_name",
    "is_root",
    "kill_all",
    "place",
    "procs",
    "read_keyed",
    "read_memberships",
    "remove",
    "remove_leftovers",
    "write",
]
