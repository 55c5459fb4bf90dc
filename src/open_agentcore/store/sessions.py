"""Runtime sessions: which worker holds each session id, so any server replica can route to it."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Insert, and_, bindparam, case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from .errors import RuntimeNotFound, SessionNotFound
from .records import Page, SessionRecord, SessionState
from .tables import RuntimeSession, session_record
from .transactions import Repository, utcnow

_TABLE = RuntimeSession.__table__
_KEY = ["runtime_id", "session_id"]


def _upsert(insert: sqlite.Insert | postgresql.Insert) -> ReturningInsert[Any]:
    """INSERT ... ON CONFLICT DO UPDATE with `upsert_session`'s rules, returning the stored row."""
    new, old = insert.excluded, _TABLE.c
    restarted: ColumnElement[bool] = and_(
        old.state == SessionState.STOPPED, new.state != SessionState.STOPPED
    )
    kept = {"runtime_id", "session_id", "created_at", "owner"}
    updated: dict[str, Any] = {column.name: new[column.name] for column in old if column.name not in kept}
    updated["owner"] = func.coalesce(old.owner, new.owner)
    updated["created_at"] = case((restarted, new.created_at), else_=old.created_at)
    return insert.on_conflict_do_update(index_elements=_KEY, set_=updated).returning(*old)


# By dialect: [SQLite, PostgreSQL].
_UPSERTS = (_upsert(sqlite.insert(RuntimeSession)), _upsert(postgresql.insert(RuntimeSession)))
_OWNER = select(_TABLE.c.owner).where(
    _TABLE.c.runtime_id == bindparam("runtime_id"), _TABLE.c.session_id == bindparam("session_id")
)


class SessionRepository(Repository):
    """Record, look up, list and end runtime sessions."""

    def upsert_session(
        self,
        runtime_id: str,
        session_id: str,
        *,
        state: SessionState,
        backend: str,
        worker: Mapping[str, Any] | None = None,
        endpoint: str | None = None,
        version: int | None = None,
        owner: str | None = None,
    ) -> SessionRecord:
        """Create a session, or update the one with this id; returns it as stored.

        Reusing the id of a STOPPED session starts a fresh one (new `created_at`, end cleared).
        A session keeps the owner it was first recorded with; `owner` fills in a missing one.
        Safe against a concurrent upsert of the same id. Raises `RuntimeNotFound`.
        """
        now = utcnow()
        values = {
            "runtime_id": runtime_id,
            "session_id": session_id,
            "created_at": now,
            "owner": owner,
            "endpoint": endpoint,
            "version": version,
            "state": state,
            "backend": backend,
            "worker": dict(worker or {}),
            "last_activity_at": now,
            "ended_at": now if state is SessionState.STOPPED else None,
            "end_reason": None,
        }
        # One statement built once, without the ORM: each new session's first call waits for it.
        try:
            with self._write_connection() as connection:
                statement = _UPSERTS[connection.dialect.name == "postgresql"]
                row = connection.execute(statement, values).one()
        except IntegrityError:
            raise RuntimeNotFound(f"no agent runtime with id {runtime_id!r}") from None  # deleted meanwhile
        return session_record(row)

    def session_owner(self, runtime_id: str, session_id: str) -> str | None:
        """Who a session id was first recorded for: None when it was never used (or by no one)."""
        with self._read_connection() as connection:
            owner = connection.execute(_OWNER, {"runtime_id": runtime_id, "session_id": session_id}).scalar()
        return owner if isinstance(owner, str) else None

    @staticmethod
    def _insert_if_absent(session: Session, values: dict[str, Any]) -> Insert:
        keys = ["runtime_id", "session_id"]
        if session.get_bind().dialect.name == "postgresql":
            return (
                postgresql.insert(RuntimeSession).values(values).on_conflict_do_nothing(index_elements=keys)
            )
        return sqlite.insert(RuntimeSession).values(values).on_conflict_do_nothing(index_elements=keys)

    def touch_session(self, runtime_id: str, session_id: str, at: datetime.datetime | None = None) -> None:
        """Note activity on a session now (or at `at`). Raises `SessionNotFound`."""
        with self._write() as session:
            query = update(RuntimeSession).where(
                RuntimeSession.runtime_id == runtime_id, RuntimeSession.session_id == session_id
            )
            if session.connection().execute(query.values(last_activity_at=at or utcnow())).rowcount == 0:
                raise SessionNotFound(f"agent runtime {runtime_id!r} has no session {session_id!r}")

    def get_session(self, runtime_id: str, session_id: str) -> SessionRecord:
        """One session, in any state. Raises `SessionNotFound`."""
        with self._read() as session:
            return self._session_row(session, runtime_id, session_id).record()

    def list_sessions(
        self,
        runtime_id: str,
        max_results: int = 100,
        next_token: str | None = None,
        active_only: bool = False,
    ) -> Page[SessionRecord]:
        """A runtime's sessions by id; `active_only` leaves out STOPPED ones.

        Raises `RuntimeNotFound`, `InvalidPaginationToken`.
        """
        listing = f"sessions/{runtime_id}/{'active' if active_only else 'all'}"
        after = self._tokens.resume(listing, next_token)
        with self._read() as session:
            self._runtime_row(session, runtime_id)
            query = select(RuntimeSession).where(RuntimeSession.runtime_id == runtime_id)
            if active_only:
                query = query.where(RuntimeSession.state != SessionState.STOPPED)
            if after is not None:
                query = query.where(RuntimeSession.session_id > str(after))
            query = query.order_by(RuntimeSession.session_id).limit(self._limit(max_results) + 1)
            rows = session.scalars(query).all()
            return self._page(listing, rows, max_results, lambda row: row.session_id, RuntimeSession.record)

    def list_active_sessions(self, runtime_id: str | None = None) -> list[SessionRecord]:
        """Every session not STOPPED (of one runtime, or of all), for reapers and routing tables."""
        with self._read() as session:
            query = select(RuntimeSession).where(RuntimeSession.state != SessionState.STOPPED)
            if runtime_id is not None:
                query = query.where(RuntimeSession.runtime_id == runtime_id)
            query = query.order_by(RuntimeSession.runtime_id, RuntimeSession.session_id)
            return [row.record() for row in session.scalars(query)]

    def end_session(self, runtime_id: str, session_id: str, reason: str) -> SessionRecord:
        """Mark a session STOPPED with why; ending an ended session keeps the first reason.

        Raises `SessionNotFound`.
        """
        with self._write() as session:
            row = self._session_row(session, runtime_id, session_id, lock=True)
            if row.state is not SessionState.STOPPED or row.ended_at is None:
                row.state, row.ended_at, row.end_reason = SessionState.STOPPED, utcnow(), reason
            session.flush()
            return row.record()

    def delete_ended_sessions(self, ended_before: datetime.datetime) -> int:
        """Forget STOPPED sessions that ended before `ended_before`; returns how many."""
        with self._write() as session:
            query = delete(RuntimeSession).where(
                RuntimeSession.state == SessionState.STOPPED, RuntimeSession.ended_at < ended_before
            )
            return session.connection().execute(query).rowcount

    @staticmethod
    def _session_row(
        session: Session, runtime_id: str, session_id: str, lock: bool = False
    ) -> RuntimeSession:
        query = select(RuntimeSession).where(
            RuntimeSession.runtime_id == runtime_id, RuntimeSession.session_id == session_id
        )
        row = session.scalar(query.with_for_update() if lock else query)
        if row is None:
            raise SessionNotFound(f"agent runtime {runtime_id!r} has no session {session_id!r}")
        return row


__all__ = ["SessionRepository"]
