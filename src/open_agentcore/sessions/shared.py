"""Sessions shared by server replicas: the store's session table is the truth, this replica's
table a cache of it.

For workers any replica can reach (the Ray backend's), a session's record names its worker: where
it listens, its secret, its actor. A replica that has no entry for a session looks the record up
and adopts the worker; a session nobody holds is started by the one replica that wins the claim
on its row, while the others wait for the winner's worker. Idle timeouts and maximum lifetimes are
judged from the store's last activity, which each replica reports in batches, and a session is
ended by a conditional write that only one replica can win; that one stops the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from open_agentcore.backends import Backend, WorkerHandle

from .manager import LiveSession, OwnerLookup, SessionConfig, SessionListener, SessionManager, SessionTarget
from .worker_client import WorkerClient

logger = logging.getLogger("open_agentcore.sessions.shared")

_CLAIM_POLL = 0.05  # how often a replica waiting for another's start looks at the record
# Past the start timeout (placement and a cold build on the node come on top), how long a claim
# holds before other replicas may take it over.
_CLAIM_SLACK = 30.0
ENDED_ELSEWHERE = "ended through another server replica"
IDLE_TIMEOUT = "idle timeout"


class SessionStartedElsewhereTimedOut(Exception):
    """Another replica claimed this session's start and did not finish it in time."""


@dataclass(frozen=True)
class RecordedSession:
    """A session's row as the store holds it, in the terms the session table needs.

    `shared`: what the worker's backend recorded to reach it (`RayWorker.shared`); `age` and `idle`:
    seconds since it was created and since its last activity reported by any replica.
    """

    runtime_id: str
    session_id: str
    state: str  # STARTING, ACTIVE or STOPPED
    worker_id: str | None
    version: int | None
    owner: str | None
    shared: Mapping[str, object] = field(repr=False)
    age: float
    idle: float
    idle_timeout: float | None = None
    max_lifetime: float | None = None

    def due(self) -> str | None:
        """Why the session must end now, as far as the record can tell; None when it may go on."""
        if self.max_lifetime is not None and self.age >= self.max_lifetime:
            return f"maxLifetime reached: the session may live {self.max_lifetime:g} s"
        if self.idle_timeout is not None and self.idle >= self.idle_timeout:
            return IDLE_TIMEOUT
        return None


@dataclass(frozen=True)
class ReportedActivity:
    """When a session this replica holds was last active (wall-clock seconds)."""

    runtime_id: str
    session_id: str
    worker_id: str
    at: float


class SessionDirectory(Protocol):
    """The session table in the shared store, as the session manager uses it (`server.replicas`)."""

    replica: str

    async def lookup(self, runtime_id: str, session_id: str) -> RecordedSession | None:
        """The session's record, in any state; None when the id was never used."""
        ...

    async def claim(
        self, target: SessionTarget, session_id: str, owner: str | None, replacing: str | None, ttl: float
    ) -> tuple[bool, RecordedSession]:
        """Claim the start of the session's worker: (True, the claim) or (False, who holds it)."""
        ...

    async def end(self, runtime_id: str, session_id: str, worker_id: str, reason: str) -> bool:
        """End the session if its record still names `worker_id`; True for the one caller that did."""
        ...

    async def report(self, activity: Sequence[ReportedActivity]) -> None:
        """Move the sessions' last activity forward (one write for all of them)."""
        ...

    async def review(self, idle_for: float) -> list[RecordedSession]:
        """ACTIVE sessions with no activity reported for at least `idle_for` seconds."""
        ...

    async def active_workers(self) -> set[str]:
        """The worker ids every session not ended names (of every replica)."""
        ...


@runtime_checkable
class SharedBackend(Backend, Protocol):
    """A backend whose workers any replica can reach (`backends.ray.RayBackend`)."""

    @property
    def private_cluster(self) -> bool: ...

    async def adopt(
        self, worker_id: str, shared: Mapping[str, object], work_dir: Path
    ) -> WorkerHandle | None: ...

    async def stop_leftovers(self, keep: Collection[str]) -> int: ...


class SharedSessionManager(SessionManager):
    """A `SessionManager` whose table is a cache of the store's (see the module docstring).

    `activity_interval`: how often this replica reports its sessions' last activity (the most
    another replica's view of it lags). `review_after`: the shortest idle timeout any session may
    have: reapers look only at sessions idle that long in the store. A session past its lifetime
    is ended by the timer of each replica holding it, or, when no replica called it lately, by the
    reaper that finds it idle.
    """

    def __init__(
        self,
        backend: SharedBackend,
        config: SessionConfig,
        directory: SessionDirectory,
        listener: SessionListener | None = None,
        recorded_owner: OwnerLookup | None = None,
        activity_interval: float = 1.0,
        review_after: float = 60.0,
    ) -> None:
        super().__init__(backend, config, listener, recorded_owner)
        self._shared = backend
        self._directory = directory
        self._activity_interval = activity_interval
        self._review_after = review_after
        self._touched: set[tuple[str, str]] = set()
        self._tasks: list[asyncio.Task[None]] = []

    # Routing -----------------------------------------------------------------------------------

    async def _start(self, target: SessionTarget, session_id: str, owner: str | None) -> LiveSession:
        """Adopt the worker the store names for this session, or start one if this replica wins
        the session's claim; wait (bounded) while another replica is starting it."""
        loop = asyncio.get_running_loop()
        ttl = self.config.start_timeout + _CLAIM_SLACK
        deadline = loop.time() + ttl
        replacing: RecordedSession | None = None
        while True:
            gone = replacing.worker_id if replacing is not None else None
            won, record = await self._directory.claim(target, session_id, owner, gone, ttl)
            if won:
                if replacing is not None:
                    await self._stop_recorded(replacing, "replaced")
                return await self._start_claimed(target, session_id, record)
            if record.state == "ACTIVE":
                if record.version == target.version:
                    live = await self._adopt(target, record)
                    if live is not None and await self._usable(live, record):
                        return live
                    if live is not None:
                        replacing = None  # ended just now: the next claim is for a fresh worker
                        continue
                replacing = record  # its worker is gone, or runs an older version
                continue
            if loop.time() > deadline:
                raise SessionStartedElsewhereTimedOut(
                    f"another server replica is starting session {session_id!r} and did not finish within "
                    f"{ttl:g}s; try again"
                )
            await self._wait_for_start(target.runtime_id, session_id, deadline)

    async def _wait_for_start(self, runtime_id: str, session_id: str, deadline: float) -> None:
        """Until another replica's start of the session ends (well or not) or `deadline`:
        reads only, so the waiting replicas do not queue on the row the starter must write."""
        loop = asyncio.get_running_loop()
        while loop.time() <= deadline:
            await asyncio.sleep(_CLAIM_POLL)
            record = await self._directory.lookup(runtime_id, session_id)
            if record is None or record.state != "STARTING":
                return

    async def _start_claimed(
        self, target: SessionTarget, session_id: str, claim: RecordedSession
    ) -> LiveSession:
        try:
            return await super()._start(target, session_id, claim.owner)
        except BaseException as error:
            # Free the claim at once: the replicas waiting for it try for themselves.
            if claim.worker_id is not None:
                with contextlib.suppress(Exception):
                    reason = f"its worker failed to start: {error}"
                    await self._directory.end(target.runtime_id, session_id, claim.worker_id, reason)
            raise

    async def _adopt(self, target: SessionTarget, record: RecordedSession) -> LiveSession | None:
        """This replica's entry for a worker another replica started; None when it is gone."""
        if record.worker_id is None:
            return None
        handle = await self._handle_of(record)
        if handle is None:
            return None
        now = time.monotonic()
        live = LiveSession(
            session_id=record.session_id,
            target=target,
            handle=handle,
            client=WorkerClient.of(handle),
            started_at=now - record.age,
            last_activity=now - record.idle,
            owner=record.owner,
            started_from="adopted",
            fresh=False,  # started by another replica, which told its caller
        )
        self._sessions[(target.runtime_id, record.session_id)] = live
        loop = asyncio.get_running_loop()
        live.watcher = loop.create_task(self._watch(live))
        live.lifetime_timer = loop.call_later(
            max(0.0, target.max_lifetime - record.age), self._lifetime_over, live
        )
        logger.info(
            "Session %s: adopted worker %s started by replica %s",
            record.session_id, record.worker_id, record.shared.get("replica"),
        )  # fmt: skip
        return live

    async def _usable(self, live: LiveSession, record: RecordedSession) -> bool:
        """Whether an adopted session may take a call; one past its lifetime, or idle past its
        timeout (its `/ping` agreeing), is ended first, as a replica holding it would have."""
        reason = record.due()
        if reason is None or (reason == IDLE_TIMEOUT and not await self._idle(live)):
            return True
        if await self._end_record(record, reason):
            await self._end(live, reason)
        else:
            await self._end(live, ENDED_ELSEWHERE, stop=False)
        return False

    async def _end_if_over(self, live: LiveSession, target: SessionTarget) -> bool:
        """As the base, but idleness is the store's: another replica may have served the session."""
        now = time.monotonic()
        if self._stale(live, target) or live.lived_out(now):
            return await super()._end_if_over(live, target)
        if live.idle_seconds(now) < live.target.idle_timeout:
            return False
        record = await self._directory.lookup(target.runtime_id, live.session_id)
        if record is None or record.state != "ACTIVE" or record.worker_id != live.handle.worker_id:
            await self._end(live, ENDED_ELSEWHERE, stop=False)
            return True
        live.last_activity = max(live.last_activity, time.monotonic() - record.idle)
        if live.idle_seconds() < live.target.idle_timeout or not await self._idle(live):
            return False
        if await self._end_record(record, IDLE_TIMEOUT):
            await self._end(live, IDLE_TIMEOUT)
        else:
            await self._end(live, ENDED_ELSEWHERE, stop=False)
        return True

    async def _handle_of(self, record: RecordedSession) -> WorkerHandle | None:
        """A handle on the worker `record` names, adopted from its backend; None when it is gone."""
        assert record.worker_id is not None
        work_dir = self.config.work_root / record.worker_id
        return await self._shared.adopt(record.worker_id, record.shared, work_dir)

    async def _end_record(self, record: RecordedSession, reason: str) -> bool:
        """End the session in the store if it still names `record`'s worker (one caller wins)."""
        assert record.worker_id is not None
        return await self._directory.end(record.runtime_id, record.session_id, record.worker_id, reason)

    def release(self, live: LiveSession) -> None:
        super().release(live)
        self._touched.add((live.target.runtime_id, live.session_id))

    # Stopping ----------------------------------------------------------------------------------

    async def stop(
        self, runtime_id: str, session_id: str, reason: str = "stopped", owner: str | None = None,
        privileged: bool = True,
    ) -> bool:  # fmt: skip
        """Stop the session's worker wherever it runs, whichever replica started it."""
        record = await self._directory.lookup(runtime_id, session_id)
        live = self._sessions.get((runtime_id, session_id))
        if live is not None:
            if record is not None and record.worker_id == live.handle.worker_id:
                return await super().stop(runtime_id, session_id, reason, owner, privileged)
            await self._end(live, ENDED_ELSEWHERE, stop=False)  # a stale entry: its worker was replaced
        if record is None or record.state != "ACTIVE" or record.worker_id is None:
            return False
        self._check_owner(record.owner, owner, privileged)
        return await self._stop_recorded(record, reason)

    async def _stop_recorded(self, record: RecordedSession, reason: str) -> bool:
        """End a session this replica holds no entry for, and stop its worker (if still there)."""
        assert record.worker_id is not None
        ended = await self._end_record(record, reason)
        handle = await self._handle_of(record)
        if handle is not None:
            await self.backend.stop(handle, self.config.stop_grace)
            await self._forget(handle, record, reason)
        return ended or handle is not None

    # Reaping -----------------------------------------------------------------------------------

    def start_reaper(self) -> None:
        """Sweep this replica's leftover actors, then reap (`reap_once`) and report activity
        periodically until `close()`."""
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._reap_forever()), loop.create_task(self._report_forever())]

    async def _reap_forever(self) -> None:
        try:
            if killed := await self._shared.stop_leftovers(await self._directory.active_workers()):
                logger.warning("Stopped %d workers an earlier run of this replica left unused", killed)
        except Exception:
            logger.exception("Sweeping leftover workers failed")
        await super()._reap_forever()

    async def _report_forever(self) -> None:
        while True:
            await asyncio.sleep(self._activity_interval)
            try:
                await self.report_activity()
            except Exception:
                logger.exception("Reporting session activity failed")

    async def report_activity(self) -> None:
        """Tell the store when this replica's sessions were last active (busy ones: now)."""
        wall, now = time.time(), time.monotonic()
        touched, self._touched = self._touched, set()
        activity = [
            ReportedActivity(rid, live.session_id, live.handle.worker_id, wall - live.idle_seconds(now))
            for (rid, sid), live in list(self._sessions.items())
            if live.in_flight or (rid, sid) in touched
        ]
        await self._directory.report(activity)

    async def reap_once(self) -> list[str]:
        """End sessions the store says are past their idle timeout (when their `/ping` says
        Healthy) or maximum lifetime, whichever replica holds them: one replica wins each."""
        await self._shrink_pools()
        await self.report_activity()
        stopped: list[str] = []
        for record in await self._directory.review(self._review_after):
            reason = record.due()
            if reason is not None and await self._reap(record, reason):
                stopped.append(record.session_id)
        return stopped

    async def _reap(self, record: RecordedSession, reason: str) -> bool:
        assert record.worker_id is not None
        idle = reason == IDLE_TIMEOUT
        live = self._sessions.get((record.runtime_id, record.session_id))
        if live is not None and live.handle.worker_id == record.worker_id:
            if idle and not await self._idle(live):
                return False
            if not await self._end_record(record, reason):
                return False
            await self._end(live, reason)
            return True
        handle = await self._handle_of(record)
        if handle is None:
            # Gone with its node or its actor, and no replica noticed: the record says so now.
            await self._end_record(record, "its worker is gone")
            return False
        client = WorkerClient.of(handle)
        try:
            if idle and await client.ping() == "HealthyBusy":
                return False
            if not await self._end_record(record, reason):
                return False
        finally:
            await client.close()
        await self.backend.stop(handle, self.config.stop_grace)
        await self._forget(handle, record, reason)
        return True

    async def _forget(self, handle: WorkerHandle, record: RecordedSession, reason: str) -> None:
        """Keep the stopped worker's log with its session's, and drop its dir here."""
        await asyncio.to_thread(self._clear_work_dir, handle, record.runtime_id, record.session_id, reason)

    async def close(self) -> None:
        """Leave the sessions running for the other replicas (their workers are not this replica's
        alone); only a private cluster, which stops with this server, ends them as the base does."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        with contextlib.suppress(Exception):
            await self.report_activity()
        if self._shared.private_cluster:
            await super().close()
            return
        for live in list(self._sessions.values()):
            live.ended = True
            if live.lifetime_timer is not None:
                live.lifetime_timer.cancel()
            if live.watcher is not None:
                live.watcher.cancel()
            await live.client.close()
        self._sessions.clear()
        await super().close()


__all__ = [
    "ENDED_ELSEWHERE",
    "RecordedSession",
    "ReportedActivity",
    "SessionDirectory",
    "SessionStartedElsewhereTimedOut",
    "SharedBackend",
    "SharedSessionManager",
]
