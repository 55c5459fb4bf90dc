"""The session table: which worker serves which session, starting, reusing and stopping them.

A session id maps to exactly one live worker for its whole life. A new id starts a worker (taken
from the warm pool when one is ready); a worker that exits ends its session, and the next call
with that id starts a fresh one. The reaper stops sessions that sat idle too long, or lived past
their maximum lifetime; so does a call that arrives for such a session, before it reaches the
worker, so no call is served past the session's lifecycle whatever the reaper's pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import secrets
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from open_agentcore.backends import Backend, ExplainsLoss, WorkerHandle, WorkerSpec

from .lease import SessionLease
from .warm_pool import WarmPoolPolicy, WarmPoolSizer
from .worker_client import WorkerClient

logger = logging.getLogger("open_agentcore.sessions")

# How long a worker that dropped a connection gets to exit before it is called unreachable.
_EXIT_WAIT = 1.0
# How long an agent past its maxLifetime gets to stop (SIGTERM) before it is killed: not the
# usual grace, which a request in flight would use up.
_LIFETIME_GRACE = 1.0


class SessionLimitReached(Exception):
    """The server already hosts as many live sessions (and warm workers) as it may."""


class SessionOwnedByAnother(Exception):
    """The session belongs to another principal; the message never names that principal."""


OwnerLookup = Callable[[str, str], Awaitable[str | None]]
"""The recorded owner of a session id of a runtime, if the id was ever used (read from the store).
It must see every start the listener was told of before it was asked, written or still queued."""


@dataclass(frozen=True)
class SessionTarget:
    """Everything needed to start a worker for one runtime version."""

    runtime_id: str
    runtime_arn: str
    version: int
    python: Path
    code_dir: Path
    entrypoint: str
    environment: Mapping[str, str]
    read_only_paths: Sequence[Path] = ()
    idle_timeout: float = 900.0
    max_lifetime: float = 28800.0

    @property
    def key(self) -> tuple[str, int]:
        return (self.runtime_id, self.version)


@dataclass(frozen=True)
class SessionConfig:
    """Limits and places for the session table, built once from the server's flags."""

    work_root: Path
    log_root: Path | None = None
    hidden_paths: Sequence[Path] = ()
    max_sessions: int = 200
    # Warm workers per version: at least `warm_pool` (0 turns the pool off), and up to
    # `warm_pool_max` while recent demand asks for them and memory allows (`warm_pool.py`).
    warm_pool: int = 1
    warm_pool_max: int = 16
    warm_pool_window: float = 60.0
    warm_memory_reserve: int = 1024**3
    start_timeout: float = 60.0
    stop_grace: float = 10.0
    reap_interval: float = 5.0
    # True: any caller may use any session id; False: only the principal that created it.
    shared_sessions: bool = False
    # Extra environment for a worker about to start, by its target and worker id (the server's
    # OpenTelemetry variables); the runtime's own environment variables take precedence.
    worker_environment: Callable[[SessionTarget, str], Mapping[str, str]] | None = None


@dataclass
class LiveSession:
    """A session with its worker; `in_flight` counts requests being served right now."""

    session_id: str
    target: SessionTarget
    handle: WorkerHandle
    client: WorkerClient
    started_at: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)
    in_flight: int = 0
    watcher: asyncio.Task[None] | None = None
    ended: bool = False
    end_reason: str = ""
    owner: str | None = None
    lifetime_timer: asyncio.TimerHandle | None = None
    # How its worker was had: "warm" (ready in the pool), "warming" (a pool worker already
    # starting when the session arrived) or "cold" (started for it).
    started_from: str = "cold"
    fresh: bool = True  # no call has been told yet that it started this session
    # The listener's write of the session's start (the journal's), while it is under way.
    recorded: asyncio.Future[None] | None = None

    @property
    def start(self) -> str:
        """ "warm" when its worker came from the pool (ready, or already starting when the session
        arrived), else "cold": as traces and metrics name it."""
        return "cold" if self.started_from == "cold" else "warm"

    async def on_record(self) -> None:
        """Wait until the session's start is recorded (the listener's "started" write): a call
        does before it relays the worker's first answer, so a restart after `kill -9` finds every
        session that ever answered. Being cancelled leaves the write going on."""
        recorded = self.recorded
        if recorded is not None and not recorded.done():
            await asyncio.wait((recorded,))

    def idle_seconds(self, now: float | None = None) -> float:
        return 0.0 if self.in_flight else (now or time.monotonic()) - self.last_activity

    def lived_out(self, now: float) -> bool:
        """Whether the session has reached its maximum lifetime."""
        return now - self.started_at >= self.target.max_lifetime


SessionListener = Callable[[str, LiveSession, str], "Awaitable[None] | None"]
"""Called with ("started" | "ended", session, reason) so the caller can record it. An awaitable
returned on "started" runs alongside the session's first call, which waits for it before relaying
the worker's answer (`LiveSession.on_record`): the record exists before any answer."""


def _record_failed(session_id: str, recorded: asyncio.Future[None]) -> None:
    if not recorded.cancelled() and (error := recorded.exception()) is not None:
        logger.error("Recording the start of session %s failed", session_id, exc_info=error)


class SessionManager:
    """Routes session ids to workers on a backend, and owns every worker it starts."""

    def __init__(
        self,
        backend: Backend,
        config: SessionConfig,
        listener: SessionListener | None = None,
        recorded_owner: OwnerLookup | None = None,
    ) -> None:
        self.backend = backend
        self.config = config
        self._listener = listener
        self._recorded_owner = recorded_owner
        self._sessions: dict[tuple[str, str], LiveSession] = {}
        self._starting: dict[tuple[str, str], asyncio.Lock] = {}
        self._launching = 0  # sessions whose worker is starting: not in `_sessions` yet, but counted
        self._warm: dict[tuple[str, int], list[WorkerHandle]] = {}
        self._warming: set[asyncio.Task[None]] = set()
        self._warming_counts: dict[tuple[str, int], int] = {}
        self._warming_tasks: dict[tuple[str, int], set[asyncio.Task[None]]] = {}
        self._claims: dict[tuple[str, int], int] = {}  # sessions waiting for a warming worker
        minimum = config.warm_pool
        self._pool = WarmPoolSizer(
            WarmPoolPolicy(
                minimum=minimum,
                maximum=max(minimum, config.warm_pool_max) if minimum > 0 else 0,
                window=config.warm_pool_window,
                memory_reserve=config.warm_memory_reserve,
            )
        )
        self._reaper: asyncio.Task[None] | None = None
        self._ending: set[asyncio.Task[None]] = set()
        # Lines for the log of the next session of a version to start (`note_next_start`).
        self._start_notes: dict[tuple[str, int], str] = {}

    # Routing ---------------------------------------------------------------------------------

    def lease(
        self, target: SessionTarget, session_id: str, owner: str | None = None, privileged: bool = False
    ) -> SessionLease:
        """A call's hold on the session's worker, as `async with`: the way routes reach workers.

        Ownership is checked as `acquire` says; the lease owns the retry rule and the release.
        """
        return SessionLease(self, target, session_id, owner, privileged)

    async def acquire(
        self, target: SessionTarget, session_id: str, owner: str | None = None, privileged: bool = False
    ) -> LiveSession:
        """The live session for this id (starting its worker if needed), marked busy; pair with
        `release`, or better, use `lease`.

        `owner` is the caller (`Caller.owner`): a session it starts is recorded as its own, and a
        session another principal started is refused with `SessionOwnedByAnother`, unless the
        caller is `privileged` (the admin key) or the server shares sessions. A session past its
        idle timeout or maximum lifetime is ended first, and the call starts a fresh worker.
        """
        key = (target.runtime_id, session_id)
        live = self._sessions.get(key)
        if live is not None:
            self._check_owner(live.owner, owner, privileged)
        if live is None or self._stale(live, target) or self._due(live, time.monotonic()):
            lock = self._starting.setdefault(key, asyncio.Lock())
            async with lock:
                live = self._sessions.get(key)
                if live is not None and await self._end_if_over(live, target):
                    owner_of_record: str | None = live.owner
                    live = None
                else:
                    owner_of_record = await self._owner_on_record(target.runtime_id, session_id, live)
                self._check_owner(owner_of_record, owner, privileged)
                if live is None:
                    live = await self._start(target, session_id, owner_of_record or owner)
            self._starting.pop(key, None)
        live.in_flight += 1
        return live

    @staticmethod
    def _stale(live: LiveSession, target: SessionTarget) -> bool:
        return live.target.version != target.version or not live.handle.alive()

    @staticmethod
    def _due(live: LiveSession, now: float) -> bool:
        """Past its maximum lifetime, or idle past its idle timeout (its `/ping` decides)."""
        return live.lived_out(now) or live.idle_seconds(now) >= live.target.idle_timeout

    async def _end_if_over(self, live: LiveSession, target: SessionTarget) -> bool:
        """End a session that must not take another call; True when it was ended."""
        now = time.monotonic()
        if self._stale(live, target):
            await self._end(live, "replaced")
        elif live.lived_out(now):
            await self._end(live, self._lifetime_reason(live))
        elif live.idle_seconds(now) >= live.target.idle_timeout and await self._idle(live):
            await self._end(live, "idle timeout")
        else:
            return False
        return True

    async def _idle(self, live: LiveSession) -> bool:
        return live.in_flight == 0 and await live.client.ping() != "HealthyBusy" and live.in_flight == 0

    def check_owner(
        self, runtime_id: str, session_id: str, owner: str | None, privileged: bool = False
    ) -> None:
        """Refuse with `SessionOwnedByAnother` a caller who may not use this live session (as `acquire`)."""
        live = self._sessions.get((runtime_id, session_id))
        if live is not None:
            self._check_owner(live.owner, owner, privileged)

    def _check_owner(self, recorded: str | None, caller: str | None, privileged: bool) -> None:
        if self.config.shared_sessions or privileged or recorded is None or recorded == caller:
            return
        raise SessionOwnedByAnother(
            "this session belongs to another principal; use another session id (sessions are owned by "
            "their creator unless the server runs with --shared-sessions)"
        )

    async def _owner_on_record(
        self, runtime_id: str, session_id: str, live: LiveSession | None
    ) -> str | None:
        if live is not None:
            return live.owner
        if self._recorded_owner is None or self.config.shared_sessions:
            return None
        return await self._recorded_owner(runtime_id, session_id)

    def release(self, live: LiveSession) -> None:
        """Mark one request of `live` as finished."""
        live.in_flight = max(0, live.in_flight - 1)
        live.last_activity = time.monotonic()

    def get(self, runtime_id: str, session_id: str) -> LiveSession | None:
        """The live session, if there is one."""
        return self._sessions.get((runtime_id, session_id))

    def get_owned(
        self, runtime_id: str, session_id: str, owner: str | None, privileged: bool = False
    ) -> LiveSession | None:
        """The live session, if there is one, once `owner` may use it (`SessionOwnedByAnother`)."""
        live = self._sessions.get((runtime_id, session_id))
        if live is not None:
            self._check_owner(live.owner, owner, privileged)
        return live

    def sessions(self, runtime_id: str | None = None) -> list[LiveSession]:
        """Live sessions, of one runtime or all."""
        return [s for (rid, _), s in self._sessions.items() if runtime_id is None or rid == runtime_id]

    def workers(self) -> int:
        """Workers this server holds or is starting: sessions, and warm ones (each costs a process)."""
        warm = sum(len(handles) for handles in self._warm.values())
        return len(self._sessions) + self._launching + warm + sum(self._warming_counts.values())

    def warm_workers(self) -> dict[tuple[str, int], int]:
        """Warm workers ready now, per (runtime id, version)."""
        return {key: len(handles) for key, handles in self._warm.items() if handles}

    async def _start(self, target: SessionTarget, session_id: str, owner: str | None) -> LiveSession:
        if (note := self._start_notes.pop(target.key, None)) is not None:
            await asyncio.to_thread(self._write_note, target.runtime_id, session_id, note)
        handle = self._take_warm(target)
        started_from = "warm"
        # A pool worker that began before this session arrived is a head start; one the refill
        # below begins for it is as cold as a worker started for it alone.
        head_start = self._warming_counts.get(target.key, 0) > self._claims.get(target.key, 0)
        # A burst refills the pool while it arrives, in parallel, sized by the burst so far.
        self._pool.arrived(target.key)
        self._refill(target, reserved=0 if handle is None else 1)
        if handle is None:
            handle = await self._wait_for_warming(target)
            started_from = "warming" if head_start else "cold"
        if handle is None and self._warming and self.workers() >= self.config.max_sessions:
            # The room is held by warm workers still starting: wait for them (a worker's start at
            # most), then take one of this version or evict one, rather than refuse the session.
            await asyncio.wait(set(self._warming))
            handle = self._take_warm(target)
        if handle is None:
            started_from = "cold"
            # Starting a worker takes a while: sessions still starting count against the limit, or
            # a burst of new ids would all pass the check before any of them is in the table. Warm
            # workers count too; one of another version gives way to a session that needs the room.
            if self.workers() >= self.config.max_sessions and not await self._evict_warm():
                raise SessionLimitReached(
                    f"this server already holds {self.workers()} workers (--max-sessions "
                    f"{self.config.max_sessions}, warm workers included); stop some sessions or raise "
                    "the limit"
                )
            self._launching += 1
            try:
                handle = await self.backend.start(self._spec(target, session_id))
            finally:
                self._launching -= 1
        live = LiveSession(
            session_id=session_id,
            target=target,
            handle=handle,
            client=WorkerClient.of(handle),
            owner=owner,
            started_from=started_from,
        )
        self._sessions[(target.runtime_id, session_id)] = live
        loop = asyncio.get_running_loop()
        live.watcher = loop.create_task(self._watch(live))
        live.lifetime_timer = loop.call_later(target.max_lifetime, self._lifetime_over, live)
        # Not awaited here: the session's first call goes to its worker while the start is written,
        # and waits for the record only before the worker's answer is relayed (`on_record`).
        if (recorded := self._notify("started", live, "")) is not None:
            live.recorded = asyncio.ensure_future(recorded)
            live.recorded.add_done_callback(functools.partial(_record_failed, session_id))
        self._refill(target)
        return live

    def _spec(self, target: SessionTarget, session_id: str | None) -> WorkerSpec:
        # Short: the worker's unix socket lives under its work dir, and socket paths max out at 107 bytes.
        worker_id = f"w{secrets.token_hex(6)}"
        extra = self.config.worker_environment
        environment = {
            **(extra(target, worker_id) if extra is not None else {}),
            **target.environment,
            "AGENTCORE_RUNTIME_ARN": target.runtime_arn,
            "AGENTCORE_SESSION_ID": session_id or "",
        }
        return WorkerSpec(
            worker_id=worker_id,
            python=target.python,
            code_dir=target.code_dir,
            entrypoint=target.entrypoint,
            work_dir=self.config.work_root / worker_id,
            environment=environment,
            read_only_paths=tuple(target.read_only_paths),
            hidden_paths=tuple(self.config.hidden_paths),
            start_timeout=self.config.start_timeout,
        )

    def _lifetime_over(self, live: LiveSession) -> None:
        """End a session at its maximum lifetime, calls in flight or not: they fail, saying so."""
        task = asyncio.get_running_loop().create_task(self._end_lifetime(live))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    async def _end_lifetime(self, live: LiveSession) -> None:
        await self._end(live, self._lifetime_reason(live), grace=min(self.config.stop_grace, _LIFETIME_GRACE))

    @staticmethod
    def _lifetime_reason(live: LiveSession) -> str:
        return f"maxLifetime reached: the session may live {live.target.max_lifetime:g} s"

    async def _watch(self, live: LiveSession) -> None:
        code = await live.handle.wait_exit()
        if self._sessions.get((live.target.runtime_id, live.session_id)) is live:
            reason = self.backend.exit_reason(live.handle, code)
            logger.warning("Session %s ended: %s", live.session_id, reason)
            await self._end(live, reason, stop=False)

    # Warm pool -----------------------------------------------------------------------------

    def _take_warm(self, target: SessionTarget) -> WorkerHandle | None:
        ready = self._warm.get(target.key, [])
        while ready:
            handle = ready.pop()
            if handle.alive():
                return handle
        return None

    async def _wait_for_warming(self, target: SessionTarget) -> WorkerHandle | None:
        """A warm worker of this version that was already starting when the session arrived (it is
        ready sooner than one started now); None when every starting one is claimed by an earlier
        session, or they failed."""
        key = target.key
        while self._warming_counts.get(key, 0) > self._claims.get(key, 0):
            self._claims[key] = self._claims.get(key, 0) + 1
            try:
                await asyncio.wait(set(self._warming_tasks[key]), return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._claims[key] -= 1
            handle = self._take_warm(target)
            if handle is not None:
                return handle
        return None

    async def _evict_warm(self) -> bool:
        """Stop one warm worker to make room for a session; False when there is none."""
        for key, handles in self._warm.items():
            if handles:
                handle = handles.pop()
                self._launching += 1  # its room is taken until the session's worker has started
                try:
                    await self._stop_warm(handle)
                finally:
                    self._launching -= 1
                logger.info("Stopped a warm worker of %s v%s to make room for a session", *key)
                return True
        return False

    def _refill(self, target: SessionTarget, reserved: int = 0) -> None:
        """Start warm workers in the background, all at once, until this version's pool is as large
        as its recent demand asks (`warm_pool.py`).

        Never past the server's capacity: warm workers are a head start, not extra sessions. Past
        the minimum pool, only while the host has the memory for them. `reserved`: workers taken
        from the pool for a session not yet in the table (they still hold their room).
        """
        key = target.key
        pool = self._warming_counts.get(key, 0) + len(self._warm.get(key, []))
        wanted = min(self._pool.target(key), pool + self.config.max_sessions - self.workers() - reserved)
        while pool < wanted:
            starting = sum(self._warming_counts.values())
            if pool >= self._pool.policy.minimum and not self._pool.room_past_minimum(starting + 1):
                logger.info("The warm pool of %s v%s stays at %d: too little memory available", *key, pool)
                break
            self._warming_counts[key] = self._warming_counts.get(key, 0) + 1
            task = asyncio.get_running_loop().create_task(self._warm_one(target))
            self._warming.add(task)
            self._warming_tasks.setdefault(key, set()).add(task)
            task.add_done_callback(self._warming.discard)
            task.add_done_callback(self._warming_tasks[key].discard)
            pool += 1

    def warm_counts(self, key: tuple[str, int]) -> tuple[int, int]:
        """(ready, starting) warm workers of a version."""
        return len(self._warm.get(key, [])), self._warming_counts.get(key, 0)

    async def _shrink_pools(self) -> None:
        """Stop ready warm workers a version's recent demand no longer asks for."""
        for key, handles in list(self._warm.items()):
            surplus = len(handles) + self._warming_counts.get(key, 0) - self._pool.target(key)
            while surplus > 0 and handles:
                await self._stop_warm(handles.pop(0))
                surplus -= 1

    async def _warm_one(self, target: SessionTarget) -> None:
        began = time.monotonic()
        try:
            handle = await self.backend.start(self._spec(target, None))
        except Exception:
            # A warm worker that fails to start is only a missed optimisation; the cold start
            # of the next session reports the real error to its caller.
            logger.warning("Warm worker for %s v%s failed to start", *target.key, exc_info=True)
            return
        finally:
            self._warming_counts[target.key] -= 1
        self._pool.started(target.key, time.monotonic() - began)
        self._warm.setdefault(target.key, []).append(handle)

    async def prepare(self, target: SessionTarget) -> None:
        """Fill the warm pool for a version that just became ready."""
        self._refill(target)

    # Stopping ------------------------------------------------------------------------------

    async def stop(
        self, runtime_id: str, session_id: str, reason: str = "stopped", owner: str | None = None,
        privileged: bool = True,
    ) -> bool:  # fmt: skip
        """Stop a session's worker now; False when there was no such live session.

        Only its owner (or a `privileged` caller) may: others get `SessionOwnedByAnother`.
        """
        live = self._sessions.get((runtime_id, session_id))
        if live is None:
            return False
        self._check_owner(live.owner, owner, privileged)
        await self._end(live, reason)
        return True

    async def stop_runtime(self, runtime_id: str, reason: str = "runtime deleted") -> None:
        """Stop every session and warm worker of a runtime."""
        for live in self.sessions(runtime_id):
            await self._end(live, reason)
        # Warm workers still starting land in the pool when they are ready: wait for them first.
        starting = [
            task for key, tasks in self._warming_tasks.items() if key[0] == runtime_id for task in tasks
        ]
        if starting:
            await asyncio.gather(*starting, return_exceptions=True)
        for key in [k for k in self._warm if k[0] == runtime_id]:
            for handle in self._warm.pop(key):
                await self._stop_warm(handle)

    async def lost(self, live: LiveSession, error: Exception) -> str:
        """End a session whose worker stopped answering; returns why, for the caller's error.

        A worker that dropped the connection has usually just died: give it a moment to be
        reaped so the reason says how it exited, else stop it as unreachable. A session the server
        ended itself (stopped, maxLifetime) keeps the reason it was ended for.
        """
        if live.ended:
            return live.end_reason
        try:
            code = await asyncio.wait_for(asyncio.shield(live.handle.wait_exit()), _EXIT_WAIT)
        except asyncio.TimeoutError:
            reason = await self._unreachable_reason(live, error)
            await self._end(live, reason)
            return reason
        reason = self.backend.exit_reason(live.handle, code)
        await self._end(live, reason, stop=False)
        return reason

    async def _unreachable_reason(self, live: LiveSession, error: Exception) -> str:
        if isinstance(self.backend, ExplainsLoss):
            known = await self.backend.unreachable_reason(live.handle)
            if known:
                return known
        return f"worker unreachable ({error})"

    async def _end(
        self, live: LiveSession, reason: str, stop: bool = True, grace: float | None = None
    ) -> None:
        if live.ended:
            return  # the watcher and a failed call may both see a worker die
        live.ended, live.end_reason = True, reason
        if live.lifetime_timer is not None:
            live.lifetime_timer.cancel()
        key = (live.target.runtime_id, live.session_id)
        if self._sessions.get(key) is live:
            del self._sessions[key]
        if live.watcher is not None and live.watcher is not asyncio.current_task():
            live.watcher.cancel()
        await live.client.close()
        if stop:
            await self.backend.stop(live.handle, self.config.stop_grace if grace is None else grace)
        await asyncio.to_thread(
            self._clear_work_dir, live.handle, live.target.runtime_id, live.session_id, reason
        )
        self._notify("ended", live, reason)

    def logs_of(self, runtime_id: str, session_id: str) -> list[Path]:
        """A session's worker output, oldest first: what earlier workers of this id printed, kept
        when they ended, then the live worker's log."""
        kept = self._kept_log(runtime_id, session_id)
        paths = [kept] if kept is not None and kept.exists() else []
        live = self._sessions.get((runtime_id, session_id))
        return [*paths, live.handle.log_path] if live is not None else paths

    def note_next_start(self, key: tuple[str, int], line: str) -> None:
        """Put `line` in the log of the next session of version `key` to start: why its start
        was slow (this server built the version on first use). Safe from any thread."""
        self._start_notes[key] = line

    def _write_note(self, runtime_id: str, session_id: str, line: str) -> None:
        kept = self._kept_log(runtime_id, session_id)
        if kept is None:
            return
        try:
            kept.parent.mkdir(parents=True, exist_ok=True)
            with kept.open("a") as log:
                log.write(f"[open-agentcore] {line}\n")
        except OSError as error:
            logger.warning("Could not write to the log of session %s: %s", session_id, error)

    def _kept_log(self, runtime_id: str, session_id: str) -> Path | None:
        if self.config.log_root is None:
            return None
        # Session ids may hold any character: the file is named by a digest of the id.
        name = hashlib.sha256(session_id.encode()).hexdigest()[:32]
        return self.config.log_root / runtime_id / f"{name}.log"

    def _clear_work_dir(
        self, handle: WorkerHandle, runtime_id: str | None, session_id: str | None, reason: str = ""
    ) -> None:
        """Keep the worker's log (appended to its session's, as a restarted session goes on) with a
        last line saying why it ended, then delete its home, tmp and socket so ended sessions take
        no disk."""
        kept = self._kept_log(runtime_id, session_id) if runtime_id and session_id else None
        if kept is not None:
            try:
                kept.parent.mkdir(parents=True, exist_ok=True)
                with handle.log_path.open("rb") as source, kept.open("ab") as target:
                    shutil.copyfileobj(source, target)
                    if reason:
                        target.write(f"[open-agentcore] session ended: {reason}\n".encode())
            except OSError as error:
                logger.warning("Could not keep the log of session %s: %s", session_id, error)
        work_dir = handle.log_path.parent
        if work_dir.parent == self.config.work_root:
            shutil.rmtree(work_dir, ignore_errors=True)

    def _notify(self, event: str, live: LiveSession, reason: str) -> Awaitable[None] | None:
        if self._listener is None:
            return None
        try:
            return self._listener(event, live, reason)
        except Exception:
            logger.exception("Session listener failed on %s", event)
            return None

    # Reaping -------------------------------------------------------------------------------

    def start_reaper(self) -> None:
        """Run `reap_once` every `reap_interval` seconds until `close()`."""
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.reap_interval)
            try:
                await self.reap_once()
            except Exception:
                logger.exception("Session reaper pass failed")

    async def reap_once(self) -> list[str]:
        """Stop sessions past their idle timeout (when `/ping` says Healthy) or max lifetime (even
        with calls in flight)."""
        now = time.monotonic()
        stopped: list[str] = []
        await self._shrink_pools()
        for live in list(self._sessions.values()):
            if live.lived_out(now):
                await self._end_lifetime(live)
                stopped.append(live.session_id)
            elif live.idle_seconds(now) >= live.target.idle_timeout and await self._idle(live):
                await self._end(live, "idle timeout")
                stopped.append(live.session_id)
        return stopped

    async def close(self) -> None:
        """Stop the reaper, every session and every warm worker (server shutdown)."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for task in list(self._warming):
            task.cancel()
        if self._ending:
            await asyncio.gather(*self._ending, return_exceptions=True)
        for live in list(self._sessions.values()):
            await self._end(live, "server stopping")
        for handles in self._warm.values():
            for handle in handles:
                await self._stop_warm(handle)
        self._warm.clear()
        await asyncio.to_thread(self.backend.close)

    async def _stop_warm(self, handle: WorkerHandle) -> None:
        await self.backend.stop(handle, self.config.stop_grace)
        await asyncio.to_thread(self._clear_work_dir, handle, None, None)


__all__ = [
    "LiveSession",
    "OwnerLookup",
    "SessionConfig",
    "SessionLimitReached",
    "SessionListener",
    "SessionManager",
    "SessionOwnedByAnother",
    "SessionTarget",
]
