"""Session limits enforced with cgroups: what each worker's cgroup gets on v1 and on v2, entering
it before the worker runs, reading its usage and out-of-memory kills, and emptying it at the end."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import cgroups
from .base import SessionLimits
from .cgroups import CgroupUnusable, Hierarchy, Membership
from .limits import SHELL, LimitMode, LimitsUnavailable, check_worker_id, explain, format_cpus, format_size

logger = logging.getLogger("open_agentcore.backends.limits")

_CONTROLLERS = ("memory", "cpu", "pids")
_CFS_PERIOD_US = 100_000
_MIN_CFS_QUOTA_US = 1_000
_PID_MAX_LIMIT = 4 * 1024 * 1024  # the kernel's ceiling on pid_max: a larger pids.max means no limit
# sh moves itself ("0": the writer) into each cgroup, then execs the worker under the same pid, so
# the worker and all it starts are limited from its first instruction. A cgroup that cannot be
# entered stops the start with exit status 125.
_ENTER_CGROUPS = 'while [ "$1" != -- ]; do echo 0 > "$1" || exit 125; shift; done; shift; exec "$@"'
# On v1, sh enters through `tasks`: moving one thread (sh has only one) skips the kernel's global
# threadgroup lock, whose RCU grace period otherwise adds ~10 ms to every start. v2 has no such
# path between domain cgroups: `cgroup.procs` it is.
_ENTRY = {LimitMode.CGROUP_V1: "tasks", LimitMode.CGROUP_V2: "cgroup.procs"}


@dataclass(frozen=True)
class _Slot:
    """One hierarchy this server places workers in: what it is for, and what each worker gets."""

    hierarchy: Hierarchy
    instance_dir: Path
    roles: frozenset[str]  # which of memory, cpu, cpuacct, pids this slot serves
    settings: tuple[tuple[str, str], ...]  # (control file, value) written into each worker's cgroup
    cpus: float = 0.0  # the CPUs its quota allows, where it has one
    cpus_clamped: bool = False  # the server's own cgroup allows fewer CPUs than were asked for


def cgroup_v2_enforcer(
    limits: SessionLimits, cgroup_root: Path, memberships: Sequence[Membership], reason: str = ""
) -> CgroupEnforcer:
    """Workers limited in the unified hierarchy; `CgroupUnusable` or `OSError` when that cannot be."""
    hierarchy = cgroups.find_unified(cgroup_root, memberships)
    missing = [name for name in _CONTROLLERS if name not in hierarchy.controllers]
    if missing:
        offered = " ".join(sorted(hierarchy.controllers)) or "nothing"
        raise CgroupUnusable(f"{', '.join(missing)} not available in {hierarchy.own} (it offers: {offered})")
    cgroups.remove_leftovers(hierarchy.own / cgroups.PLACEMENT)
    instance_dir = cgroups.place(hierarchy, cgroups.instance_name(), _CONTROLLERS)
    quota = _cpu_quota(limits.cpus, None)
    settings = [("memory.max", str(limits.memory_bytes))]
    settings += [(name, value) for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1"))
                 if _offers(hierarchy, instance_dir, name)]  # fmt: skip
    settings += [("cpu.max", f"{quota} {_CFS_PERIOD_US}"), ("pids.max", _pids_max(limits.pids))]
    slot = _Slot(hierarchy, instance_dir, frozenset(_CONTROLLERS), tuple(settings), quota / _CFS_PERIOD_US)
    return CgroupEnforcer(LimitMode.CGROUP_V2, limits, [slot], reason)


def cgroup_v1_enforcer(
    limits: SessionLimits, cgroup_root: Path, memberships: Sequence[Membership], reason: str = ""
) -> CgroupEnforcer:
    """Workers limited in the v1 memory, cpu and pids hierarchies (and cpuacct, for usage figures,
    where it is mounted apart from cpu); `CgroupUnusable` or `OSError` when that cannot be."""
    by_mount: dict[Path, tuple[Hierarchy, set[str]]] = {}
    for role in (*_CONTROLLERS, "cpuacct"):
        try:
            hierarchy = cgroups.find_v1(cgroup_root, memberships, role)
        except CgroupUnusable:
            if role == "cpuacct":  # optional: only CPU usage figures need it
                continue
            raise
        by_mount.setdefault(hierarchy.mount, (hierarchy, set()))[1].add(role)
    instance = cgroups.instance_name()
    slots: list[_Slot] = []
    try:
        for hierarchy, roles in by_mount.values():
            cgroups.remove_leftovers(hierarchy.own / cgroups.PLACEMENT)
            instance_dir = cgroups.place(hierarchy, instance, ())
            slots.append(_v1_slot(limits, hierarchy, instance_dir, frozenset(roles)))
    except OSError:
        for slot in slots:
            if cgroups.remove(slot.instance_dir, timeout=0.5):
                cgroups.remove(slot.instance_dir.parent, timeout=0)
        raise
    return CgroupEnforcer(LimitMode.CGROUP_V1, limits, slots, reason)


def _v1_slot(limits: SessionLimits, hierarchy: Hierarchy, instance_dir: Path, roles: frozenset[str]) -> _Slot:
    settings: list[tuple[str, str]] = []
    cpus, clamped = 0.0, False
    if "memory" in roles:
        # memsw (memory + swap) must stay >= the memory limit, so it is set after it.
        settings.append(("memory.limit_in_bytes", str(limits.memory_bytes)))
        if _offers(hierarchy, instance_dir, "memory.memsw.limit_in_bytes"):
            settings.append(("memory.memsw.limit_in_bytes", str(limits.memory_bytes)))
    if "cpu" in roles:
        # v1 refuses (EINVAL) a quota above an ancestor's, so ask for no more than the server has.
        ceiling = _v1_cpu_ceiling(hierarchy)
        quota = _cpu_quota(limits.cpus, ceiling)
        cpus, clamped = quota / _CFS_PERIOD_US, quota < _cpu_quota(limits.cpus, None)
        settings += [("cpu.cfs_period_us", str(_CFS_PERIOD_US)), ("cpu.cfs_quota_us", str(quota))]
    if "pids" in roles:
        settings.append(("pids.max", _pids_max(limits.pids)))
    return _Slot(hierarchy, instance_dir, roles, tuple(settings), cpus, clamped)


def _offers(hierarchy: Hierarchy, instance_dir: Path, name: str) -> bool:
    return (instance_dir / name).exists() or (hierarchy.own / name).exists()


def _v1_cpu_ceiling(hierarchy: Hierarchy) -> float | None:
    """The fewest CPUs a quota on the server's cgroup or one of its ancestors allows (None: no quota)."""
    ceiling: float | None = None
    cgroup = hierarchy.own
    while True:
        try:
            quota = int((cgroup / "cpu.cfs_quota_us").read_text())
            period = int((cgroup / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            quota, period = -1, 0
        if quota > 0 and period > 0:
            ceiling = quota / period if ceiling is None else min(ceiling, quota / period)
        if cgroup == hierarchy.mount or cgroup == cgroup.parent:
            return ceiling
        cgroup = cgroup.parent


def _pids_max(pids: int) -> str:
    return "max" if pids >= _PID_MAX_LIMIT else str(pids)


def _cpu_quota(cpus: float, ceiling: float | None) -> int:
    quota = max(_MIN_CFS_QUOTA_US, round(cpus * _CFS_PERIOD_US))
    if ceiling is not None:
        quota = min(quota, math.floor(ceiling * _CFS_PERIOD_US))
    return quota


class CgroupEnforcer:
    """Session limits enforced with cgroups (v2, or v1 over several hierarchies)."""

    def __init__(
        self, mode: LimitMode, limits: SessionLimits, slots: Sequence[_Slot], reason: str = ""
    ) -> None:
        self._mode = mode
        self._limits = limits
        self._slots = tuple(slots)
        self._reason = reason  # why a better mode was not used

    @property
    def mode(self) -> LimitMode:
        return self._mode

    @property
    def limits(self) -> SessionLimits:
        return self._limits

    @property
    def instance_dirs(self) -> tuple[Path, ...]:
        """This server's dir in each hierarchy; each worker's cgroups are made inside them."""
        return tuple(slot.instance_dir for slot in self._slots)

    def describe(self, own_uid: bool = False) -> dict[str, str]:
        how = self._mode.value
        cpu_slot = next(slot for slot in self._slots if "cpu" in slot.roles)
        quota = "cpu.max" if self._mode is LimitMode.CGROUP_V2 else "CFS quota"
        cpu = f"{format_cpus(cpu_slot.cpus)} ({how} {quota}"
        if cpu_slot.cpus_clamped:
            cpu += f"; {format_cpus(self._limits.cpus)} asked, more than the server's own cgroup allows"
        described = {
            "memory": f"{format_size(self._limits.memory_bytes)} ({how})",
            "cpu": cpu + ")",
            "pids": f"{self._limits.pids} ({how})",
        }
        if self._reason:
            described["reason"] = self._reason
        return described

    def create(self, worker_id: str, own_uid: bool) -> CgroupWorker:
        check_worker_id(worker_id)
        made: list[Path] = []
        try:
            for slot in self._slots:
                if not slot.instance_dir.is_dir():
                    # Only a server that cannot see our pid (another pid namespace) removes our dir.
                    enable = _CONTROLLERS if slot.hierarchy.version == 2 else ()
                    cgroups.place(slot.hierarchy, slot.instance_dir.name, enable)
                cgroup = slot.instance_dir / worker_id
                cgroup.mkdir()
                made.append(cgroup)
                for name, value in slot.settings:
                    cgroups.write(cgroup / name, value)
        except (OSError, CgroupUnusable) as error:
            for cgroup in reversed(made):
                cgroups.remove(cgroup, timeout=0.5)
            raise LimitsUnavailable(f"cannot limit worker {worker_id}: {explain(error)}") from error
        return CgroupWorker(
            worker_id,
            self._mode,
            tuple(made),
            {role: made[index] for index, slot in enumerate(self._slots) for role in slot.roles},
        )

    def close(self) -> None:
        for slot in self._slots:
            if cgroups.remove(slot.instance_dir, timeout=0.5):
                cgroups.remove(slot.instance_dir.parent, timeout=0)  # only if no other server uses it


class CgroupWorker:
    """One worker's cgroups: one per hierarchy (v1) or one (v2)."""

    def __init__(
        self, worker_id: str, mode: LimitMode, cgroup_dirs: tuple[Path, ...], by_role: dict[str, Path]
    ) -> None:
        self._worker_id = worker_id
        self._v2 = mode is LimitMode.CGROUP_V2
        self._entry = _ENTRY[mode]
        self.cgroups = cgroup_dirs
        self._by_role = by_role

    @property
    def worker_id(self) -> str:
        return self._worker_id

    def command_prefix(self) -> list[str]:
        entries = [str(cgroup / self._entry) for cgroup in self.cgroups]
        return [str(SHELL), "-c", _ENTER_CGROUPS, "sh", *entries, "--"]

    def enter(self, pid: int) -> None:
        # A forked worker waits, single-threaded, until this is done: `tasks` moves all of it on v1.
        for cgroup in self.cgroups:
            (cgroup / self._entry).write_text(str(pid))

    def renamed(self, worker_id: str) -> CgroupWorker:
        check_worker_id(worker_id)
        # Renaming a cgroup moves no process: no RCU grace period, unlike `enter`.
        for index, cgroup in enumerate(self.cgroups):
            target = cgroup.with_name(worker_id)
            cgroup.rename(target)
            self.cgroups = (*self.cgroups[:index], target, *self.cgroups[index + 1 :])  # close() finds it
            self._by_role = {role: target if path == cgroup else path for role, path in self._by_role.items()}
        self._worker_id = worker_id
        return self

    def out_of_memory(self) -> bool:
        events = self._by_role["memory"] / ("memory.events" if self._v2 else "memory.oom_control")
        try:
            return cgroups.read_keyed(events).get("oom_kill", 0) > 0
        except FileNotFoundError:
            return False

    def usage(self) -> dict[str, int]:
        memory, cpu, pids = (self._by_role[role] for role in _CONTROLLERS)
        files = [("pids", pids / "pids.current"), ("pids_peak", pids / "pids.peak")]
        if self._v2:
            files += [
                ("memory_bytes", memory / "memory.current"),
                ("memory_peak_bytes", memory / "memory.peak"),
            ]
        else:
            files += [
                ("memory_bytes", memory / "memory.usage_in_bytes"),
                ("memory_peak_bytes", memory / "memory.max_usage_in_bytes"),
            ]
            if "cpuacct" in self._by_role:
                files.append(("cpu_ns", self._by_role["cpuacct"] / "cpuacct.usage"))
        usage = {}
        for key, path in files:
            try:
                usage[key] = int(path.read_text())
            except (OSError, ValueError):
                continue
        try:
            stat = cgroups.read_keyed(cpu / "cpu.stat")
        except OSError:
            stat = {}
        if "usage_usec" in stat:
            usage["cpu_ns"] = stat["usage_usec"] * 1000
        if "nr_throttled" in stat:
            usage["cpu_throttled_periods"] = stat["nr_throttled"]
        return usage

    def kill(self) -> None:
        if not cgroups.kill_all(self.cgroups, timeout=2.0):
            logger.warning("processes of worker %s survived SIGKILL for 2s", self._worker_id)

    def close(self) -> None:
        self.kill()
        for cgroup in self.cgroups:
            if not cgroups.remove(cgroup, timeout=1.0):
                logger.warning("could not remove %s; a later server removes it once it is empty", cgroup)


__all__ = ["CgroupEnforcer", "CgroupWorker", "cgroup_v1_enforcer", "cgroup_v2_enforcer"]
