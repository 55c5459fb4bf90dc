"""A worker the process backend started: its process, and the clean-up once it has exited (its
limits, its gVisor sandbox, its uid)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from . import gvisor, process_tree
from .limits import WorkerLimits

logger = logging.getLogger("open_agentcore.backends.process")


class WorkerProcess(Protocol):
    """The worker's outermost process as the backend sees it: one it started (`asyncio`'s), or one
    its version's fork server forked (`fork_server.ForkedProcess`)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...


@dataclass
class ProcessWorker:
    """A worker process this backend started and owns (`pid`: the outermost process, bubblewrap's)."""

    worker_id: str
    process: WorkerProcess
    socket_path: Path
    log_path: Path
    sandboxed: bool
    host_uid: int | None = None
    started_at: float = field(default_factory=time.monotonic)
    # The agent's own interpreter, which a graceful stop signals (bubblewrap forwards no signal).
    agent_pid: int | None = None
    limits: WorkerLimits | None = field(default=None, repr=False)
    # Set once it has exited: whether the kernel killed it for going past its memory limit, and
    # (gVisor) the most processes and threads it had: a sandbox that reaches its pids limit ends.
    out_of_memory: bool = False
    peak_pids: int | None = None
    # Its gVisor sandbox, when it runs in one (`pid` is then `runsc run`'s).
    gvisor: gvisor.Sandbox | None = field(default=None, repr=False)
    # "fresh" (a process of its own from the interpreter up) or "fork" (forked by its version's fork server).
    started_by: str = "fresh"
    _after_exit: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)
    _release_uid: Callable[[int], None] | None = field(default=None, repr=False)
    _finishing: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.returncode is None

    async def wait_exit(self) -> int:
        code = await self.process.wait()
        await self.finish()
        return code

    async def finish(self) -> None:
        """Once the worker has exited: note whether it ran out of memory, kill what is left in its
        cgroups and running as its host uid, remove the cgroups, give the uid back. Idempotent;
        concurrent callers share one clean-up."""
        if self._finishing is None:
            self._finishing = asyncio.get_running_loop().create_task(self._clean_up())
        await asyncio.shield(self._finishing)

    async def _clean_up(self) -> None:
        try:
            await self._release()
        finally:
            if self._after_exit is not None:
                await self._after_exit()

    async def _release(self) -> None:
        if self.limits is not None:
            self.out_of_memory = await asyncio.to_thread(self.limits.out_of_memory)
            if self.gvisor is not None:
                usage = await asyncio.to_thread(self.limits.usage)
                self.peak_pids = usage.get("pids_peak")
        if self.gvisor is not None and not await asyncio.to_thread(self.gvisor.destroy):
            logger.error("The gVisor sentry or gofer of worker %s survived SIGKILL", self.worker_id)
        if self.limits is not None:
            await asyncio.to_thread(self.limits.close)
        if self.host_uid is None or self._release_uid is None:
            return
        if self.gvisor is not None:
            # The uid exists only inside the sandbox: no host process runs as it.
            self._release_uid(self.host_uid)
            return
        # Its pid namespace is gone with its init; this also covers anything that got out of it.
        if await asyncio.to_thread(process_tree.kill_all_of, self.host_uid):
            self._release_uid(self.host_uid)
        else:
            logger.error("Could not end the processes of uid %d (worker %s); uid not reused",
                         self.host_uid, self.worker_id)  # fmt: skip


__all__ = ["ProcessWorker", "WorkerProcess"]
