"""Spares: for each version being forked, one child forked before its session exists, already
checked, under limits of its own and (sandboxed) in its own namespaces, mounted and confined,
waiting at its gate (`fork_gate.py`) for a session.

A new session takes its version's spare and sends it the session (environment, working dir,
listening socket, log) straight over the gate: the fork, the check of the child's pid, its move into
cgroups (on cgroup v1 the first move waits for an RCU grace period, 10-20 ms) and its sandbox are
then off the session's path. The next spare is forked once that session serves, so it does not
compete with it. A spare costs one small process (no agent runs in it) per version, and goes with
its version's last session.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import fork_gate
from .fork_server import ForkedProcess, ForkFailed, ForkServers, Image, Unforkable
from .limits import LimitEnforcer, LimitsUnavailable, WorkerLimits

logger = logging.getLogger("open_agentcore.backends.fork_spares")


@dataclass
class Spare:
    """A forked child waiting at its gate for a session, under its limits."""

    name: str  # its cgroups' name (a worker's id is not known before its session)
    process: ForkedProcess
    gate: socket.socket
    limits: WorkerLimits | None

    def alive(self) -> bool:
        """Running, and its fork server too (a spare of a crashed one is not used: the next
        session starts a new fork server, as it would without spares)."""
        return self.process.returncode is None and self.process.forked_by_live_server

    def hand_over(
        self, worker_id: str, environment: Mapping[str, str], cwd: Path, listener: int, log: int
    ) -> None:
        """Send it its session: from here on it is worker `worker_id` (its cgroups renamed so), of
        that session (blocking; `OSError` when it is gone). The descriptors stay the caller's."""
        if self.limits is not None:
            self.limits = self.limits.renamed(worker_id)
        self.name = worker_id
        fork_gate.send_session(self.gate, environment, str(cwd), listener, log)
        self.gate.close()

    def discard(self) -> None:
        """End it (blocking): it exits when its gate closes; its cgroups, removed, kill it anyway."""
        self.gate.close()
        if self.limits is not None:
            self.limits.close()


@dataclass(frozen=True)
class _Order:
    """How to fork a version's children: where its fork server lives, and for how long to wait."""

    work_root: Path
    timeout: float
    base_environment: Mapping[str, str]


class Spares:
    """One spare per version (ready, or being forked), for `ProcessBackend`'s forked sessions."""

    def __init__(self, forks: ForkServers, limits: LimitEnforcer | None, linger: float = 0.0) -> None:
        """`linger`: seconds a version's fork server and spare outlive its last session (a session
        that comes meanwhile starts in milliseconds; one after, waits for a new fork server)."""
        self._forks = forks
        self._limits = limits
        self._linger = linger
        self._spares: dict[Image, asyncio.Task[Spare]] = {}
        self._lingering: dict[Image, asyncio.TimerHandle] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    def ready(self) -> list[int]:
        """The pids (in the server's namespace) of the spares waiting now."""
        done = [task for task in self._spares.values() if task.done() and not task.cancelled()]
        spares = [task.result() for task in done if task.exception() is None]
        return [spare.process.pid for spare in spares if spare.alive()]

    async def take(
        self, image: Image, work_root: Path, timeout: float, base_environment: Mapping[str, str]
    ) -> Spare:
        """The version's spare, or a child forked now when there is none (`Unforkable`, `ForkFailed`,
        `LimitsUnavailable`, `fork_gate.GateRefused`, `OSError`)."""
        task = self._spares.pop(image, None)
        if task is not None:
            try:
                spare = await asyncio.wait_for(asyncio.shield(task), timeout)
            except Unforkable:
                raise
            except (ForkFailed, LimitsUnavailable, fork_gate.GateRefused, OSError, asyncio.TimeoutError) as e:
                logger.info("The spare of %s failed (%s); forking one now", image.code_dir, e)
                task.cancel()
            else:
                if spare.alive():
                    return spare
                await asyncio.to_thread(spare.discard)
        return await self._fork(image, _Order(work_root, timeout, base_environment))

    def refill(
        self, image: Image, work_root: Path, timeout: float, base_environment: Mapping[str, str]
    ) -> None:
        """Start forking the version's next spare, unless one is there or coming."""
        if image not in self._spares:
            task = asyncio.get_running_loop().create_task(
                self._fork(image, _Order(work_root, timeout, base_environment))
            )
            task.add_done_callback(_quietly)
            self._spares[image] = task

    async def stop_idle(self, image: Image) -> None:
        """Discard the version's spare and stop its fork server once no session of it is left (after
        the linger, if any session is still gone by then)."""
        if self._linger <= 0:
            await self._stop_idle(image)
            return
        if (timer := self._lingering.pop(image, None)) is not None:
            timer.cancel()
        self._lingering[image] = asyncio.get_running_loop().call_later(self._linger, self._lingered, image)

    def _lingered(self, image: Image) -> None:
        self._lingering.pop(image, None)
        task = asyncio.get_running_loop().create_task(self._stop_idle(image))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _stop_idle(self, image: Image) -> None:
        task = self._spares.get(image)
        spare: Spare | None = None
        if task is not None:
            await asyncio.wait({task})  # bounded: forking waits at most its timeout
            if self._spares.get(image) is not task:
                return  # a new session took it meanwhile
            spare = None if task.cancelled() or task.exception() is not None else task.result()
        besides = {spare.process.ns_pid} if spare is not None else set()
        if not self._forks.idle(image, besides):
            return
        self._spares.pop(image, None)
        if spare is not None:
            await asyncio.to_thread(spare.discard)
        await self._forks.stop_idle(image, besides)

    def close_now(self) -> None:
        """Discard every spare (at shutdown, before the fork servers go)."""
        for timer in self._lingering.values():
            timer.cancel()
        self._lingering.clear()
        for task in self._spares.values():
            if task.done() and not task.cancelled() and task.exception() is None:
                task.result().discard()
            else:
                task.cancel()  # its cleanup closes what it made
        self._spares.clear()

    async def _fork(self, image: Image, order: _Order) -> Spare:
        """Fork a child of `image`, learn its pid from the kernel, check it descends from the
        version's fork server, and put it under limits of its own."""
        name = f"s{secrets.token_hex(6)}"
        limits: WorkerLimits | None = None
        gate, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # The child's pid reaches us as the kernel translates it, never as the fork server says.
            gate.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            if self._limits is not None:
                limits = await asyncio.to_thread(self._limits.create, name, False)
            try:
                process = await self._forks.fork(
                    image, name, order.work_root, theirs.fileno(), order.timeout, order.base_environment
                )
            finally:
                theirs.close()
            pid = await asyncio.to_thread(fork_gate.child_pid, gate, order.timeout)
            fork_gate.check_descends(pid, self._forks.server_pid(image))
            process.attach(pid)
            if limits is not None:
                await asyncio.to_thread(limits.enter, pid)
            gate.sendall(b"1")  # under its limits: it may build its sandbox and wait for a session
            gate.settimeout(order.timeout)  # bounds the hand-over
            return Spare(name, process, gate, limits)
        except BaseException:
            gate.close()  # a child still waiting at its gate exits
            if limits is not None:
                await asyncio.shield(asyncio.to_thread(limits.close))  # kills a child already in them
            raise


def _quietly(task: asyncio.Task[Spare]) -> None:
    """A spare forked ahead of time that failed: said once; the next session forks its own."""
    if not task.cancelled() and (error := task.exception()) is not None:
        logger.warning("Forking a spare worker failed: %s", error)


__all__ = ["Spare", "Spares"]
