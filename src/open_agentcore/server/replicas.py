"""Server replicas: each one's identity, and the store's session table as replicas share it.

A replica id names one server's data dir (made once, kept there), so a restarted replica knows
which workers it started. `StoreDirectory` is the session manager's view of the shared session
table (`sessions.SessionDirectory`): every call runs off the event loop.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import secrets
from collections.abc import Sequence
from pathlib import Path

from open_agentcore.backends import Backend
from open_agentcore.sessions import (
    OwnerLookup,
    PinnedSessionManager,
    RecordedSession,
    ReportedActivity,
    SessionConfig,
    SessionListener,
    SessionManager,
    SessionTarget,
    SharedBackend,
    SharedSessionManager,
)
from open_agentcore.store import Activity, SessionNotFound, SessionRecord, Store
from open_agentcore.store.transactions import utcnow

_REPLICA_FILE = "replica-id"
# How often a replica reports its sessions' last activity to the store: the most the store's
# view lags, and so how early another replica may judge a session idle.
_ACTIVITY_INTERVAL = 1.0


def replica_id(data_dir: Path) -> str:
    """This server's replica id, made on its first start and kept in its data dir."""
    path = data_dir / _REPLICA_FILE
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing.isalnum() and 0 < len(existing) <= 32:
        return existing
    made = f"r{secrets.token_hex(5)}"
    path.write_text(made + "\n")
    return made


class StoreDirectory:
    """The shared session table in the store, for `SharedSessionManager`."""

    def __init__(self, store: Store, replica: str, backend: str) -> None:
        self.store = store
        self.replica = replica
        self.backend = backend

    async def lookup(self, runtime_id: str, session_id: str) -> RecordedSession | None:
        try:
            record = await asyncio.to_thread(self.store.get_session, runtime_id, session_id)
        except SessionNotFound:
            return None
        return recorded(record)

    async def claim(
        self, target: SessionTarget, session_id: str, owner: str | None, replacing: str | None, ttl: float
    ) -> tuple[bool, RecordedSession]:
        # The claim's worker id ends the claim if its start fails; the started worker replaces it.
        claimant = {"workerId": f"claim-{secrets.token_hex(6)}", "replica": self.replica}
        claim = await asyncio.to_thread(
            functools.partial(
                self.store.claim_session_start, target.runtime_id, session_id, backend=self.backend,
                claimant=claimant, owner=owner, version=target.version, claim_ttl=ttl, replacing=replacing,
            )
        )  # fmt: skip
        return claim.won, recorded(claim.record)

    async def end(self, runtime_id: str, session_id: str, worker_id: str, reason: str) -> bool:
        end = self.store.end_worker_session
        return await asyncio.to_thread(end, runtime_id, session_id, worker_id, reason)

    async def report(self, activity: Sequence[ReportedActivity]) -> None:
        rows = [
            Activity(a.runtime_id, a.session_id, a.worker_id, _moment(a.at)) for a in activity
        ]  # fmt: skip
        if rows:
            await asyncio.to_thread(self.store.record_activity, rows)

    async def review(self, idle_for: float) -> list[RecordedSession]:
        before = utcnow() - datetime.timedelta(seconds=idle_for)
        records = await asyncio.to_thread(self.store.sessions_to_review, self.backend, before)
        return [recorded(record) for record in records]

    async def active_workers(self) -> set[str]:
        records = await asyncio.to_thread(self.store.list_active_sessions)
        return {str(r.worker["workerId"]) for r in records if isinstance(r.worker.get("workerId"), str)}


def recorded(record: SessionRecord) -> RecordedSession:
    """A store record in the session table's terms (ages measured now)."""
    now = utcnow()
    worker = record.worker
    worker_id, idle_timeout, max_lifetime = (
        worker.get("workerId"), worker.get("idleTimeout"), worker.get("maxLifetime")
    )  # fmt: skip
    return RecordedSession(
        runtime_id=record.runtime_id,
        session_id=record.session_id,
        state=record.state.value,
        worker_id=worker_id if isinstance(worker_id, str) else None,
        version=record.version,
        owner=record.owner,
        shared=worker,
        age=max(0.0, (now - record.created_at).total_seconds()),
        idle=max(0.0, (now - record.last_activity_at).total_seconds()),
        idle_timeout=float(idle_timeout) if isinstance(idle_timeout, (int, float)) else None,
        max_lifetime=float(max_lifetime) if isinstance(max_lifetime, (int, float)) else None,
    )


def session_table(
    backend: Backend,
    config: SessionConfig,
    *,
    listener: SessionListener,
    recorded_owner: OwnerLookup,
    store: Store,
    replica: str,
    review_after: float,
) -> SessionManager:
    """The session table for `backend`: shared through the store when any replica can reach its
    workers (Ray); else this server's own, refusing sessions other replicas hold when the store
    is shared (PostgreSQL)."""
    if not isinstance(backend, SharedBackend):
        if store.engine.dialect.name == "sqlite":  # a file on this machine: one server, as always
            return SessionManager(backend, config, listener=listener, recorded_owner=recorded_owner)
        directory = StoreDirectory(store, replica, backend.name)
        return PinnedSessionManager(backend, config, directory, listener, recorded_owner)
    return SharedSessionManager(
        backend, config, StoreDirectory(store, replica, backend.name), listener=listener,
        recorded_owner=recorded_owner, activity_interval=min(_ACTIVITY_INTERVAL, config.reap_interval),
        review_after=review_after,
    )  # fmt: skip


def _moment(at: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(at, datetime.timezone.utc)


__all__ = ["StoreDirectory", "recorded", "replica_id", "session_table"]
