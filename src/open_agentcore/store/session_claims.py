"""Sessions shared by server replicas: claiming a session's start, ending one worker's session,
and keeping last activity current, each safe when several replicas race on the same row.

The session row is the truth: its `worker` JSON names the worker that holds the session
(`workerId`, and for workers any replica can reach, their address and secret). Every change here
is conditional on what the caller saw, so of two replicas racing, exactly one wins.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from .errors import RuntimeNotFound, SessionNotFound
from .records import SessionRecord, SessionState
from .sessions import SessionRepository
from .tables import RuntimeSession
from .transactions import utcnow


@dataclass(frozen=True)
class StartClaim:
    """The outcome of `claim_session_start`: `won` means the caller starts the worker; otherwise
    `record` is the session as another replica holds (or is starting) it."""

    won: bool
    record: SessionRecord


@dataclass(frozen=True)
class Activity:
    """A session's last activity as one replica saw it, for `record_activity`."""

    runtime_id: str
    session_id: str
    worker_id: str
    at: datetime.datetime


class SessionClaimRepository(SessionRepository):
    """Start claims, conditional ends and batched activity for sessions shared by replicas."""

    def claim_session_start(
        self,
        runtime_id: str,
        session_id: str,
        *,
        backend: str,
        claimant: Mapping[str, Any],
        owner: str | None,
        version: int,
        claim_ttl: float,
        replacing: str | None = None,
    ) -> StartClaim:
        """Claim the start of this session's worker, or learn who holds it.

        Won when there is no row, the session is STOPPED, another claim is older than
        `claim_ttl` seconds (its replica died while starting), or the row still names the worker
        `replacing` (which the caller found dead or of an older version). The row is then
        STARTING with `claimant` as its worker JSON. A session keeps its first owner.
        Raises `RuntimeNotFound`.
        """
        now = utcnow()
        fields: dict[str, Any] = {
            "state": SessionState.STARTING,
            "backend": backend,
            "worker": dict(claimant),
            "version": version,
            "created_at": now,
            "last_activity_at": now,
            "ended_at": None,
            "end_reason": None,
        }
        try:
            with self._write() as session:
                self._runtime_row(session, runtime_id)
                keys = {"runtime_id": runtime_id, "session_id": session_id}
                insert = self._insert_if_absent(session, {**keys, **fields, "endpoint": None, "owner": owner})
                # RETURNING, not rowcount: psycopg does not count a row ON CONFLICT DO NOTHING inserted.
                inserted = session.connection().execute(insert.returning(RuntimeSession.session_id))
                if inserted.scalar() is not None:
                    return StartClaim(True, self._claim_row(session, runtime_id, session_id).record())
                row = self._claim_row(session, runtime_id, session_id)
                expired = now - datetime.timedelta(seconds=claim_ttl)
                free = (
                    row.state is SessionState.STOPPED
                    or (row.state is SessionState.STARTING and row.last_activity_at < expired)
                    or (replacing is not None and row.worker.get("workerId") == replacing)
                )
                if not free:
                    return StartClaim(False, row.record())
                row.owner = row.owner or owner
                for name, value in fields.items():
                    setattr(row, name, value)
                session.flush()
                return StartClaim(True, row.record())
        except IntegrityError:
            raise RuntimeNotFound(f"no agent runtime with id {runtime_id!r}") from None  # deleted meanwhile

    def end_worker_session(self, runtime_id: str, session_id: str, worker_id: str, reason: str) -> bool:
        """Mark the session STOPPED with `reason` if its row still names `worker_id` and is not
        ended; True when this call ended it (of several replicas ending it, one gets True)."""
        with self._write() as session:
            try:
                row = self._claim_row(session, runtime_id, session_id)
            except SessionNotFound:
                return False
            if row.state is SessionState.STOPPED or row.worker.get("workerId") != worker_id:
                return False
            row.state, row.ended_at, row.end_reason = SessionState.STOPPED, utcnow(), reason
            return True

    def record_activity(self, activity: Sequence[Activity]) -> None:
        """Move each session's last activity forward to `at` (never back), in one transaction:
        replicas report their sessions' activity in batches, not one write per call."""
        if not activity:
            return
        query = (
            update(RuntimeSession)
            .where(
                RuntimeSession.runtime_id == bindparam("rid"),
                RuntimeSession.session_id == bindparam("sid"),
                RuntimeSession.state == SessionState.ACTIVE,
                RuntimeSession.last_activity_at < bindparam("at"),
            )
            .values(last_activity_at=bindparam("at"))
        )
        rows = [{"rid": a.runtime_id, "sid": a.session_id, "at": a.at} for a in activity]
        with self._write() as session:
            session.connection().execute(query, rows)

    def sessions_to_review(self, backend: str, idle_before: datetime.datetime) -> list[SessionRecord]:
        """ACTIVE sessions of `backend` with no activity since `idle_before`: the only ones that
        can be due for reaping when no idle timeout is shorter than that. (A session past its
        lifetime but called all along is held by the replica serving it, whose timer ends it.)"""
        table = RuntimeSession.__table__
        query = select(table).where(
            table.c.state == SessionState.ACTIVE.value,
            table.c.backend == backend,
            table.c.last_activity_at < idle_before,
        )
        # Rows, not ORM objects: at thousands of idle sessions per reaper pass that is several
        # times cheaper, and each record gets its own JSON from the driver anyway.
        with self._read() as session:
            return [SessionRecord(**row._mapping) for row in session.execute(query)]

    @staticmethod
    def _claim_row(session: Any, runtime_id: str, session_id: str) -> RuntimeSession:
        query = select(RuntimeSession).where(
            RuntimeSession.runtime_id == runtime_id, RuntimeSession.session_id == session_id
        )
        row: RuntimeSession | None = session.scalar(query.with_for_update())
        if row is None:
            raise SessionNotFound(f"agent runtime {runtime_id!r} has no session {session_id!r}")
        return row


__all__ = ["Activity", "SessionClaimRepository", "StartClaim"]
