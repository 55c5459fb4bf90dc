"""What every part of the `Store` shares: the engine, one transaction per call, and row lookups."""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from .engine import PAGINATION_KEY, WRITE, read_setting
from .errors import ClientTokenConflict, DatabaseUnavailable, RuntimeNotFound, VersionNotFound
from .pagination import Key, PageTokens
from .records import Page
from .tables import ClientToken, Runtime, RuntimeVersion

Row = TypeVar("Row")
Item = TypeVar("Item")

MAX_PAGE_SIZE = 1000


def utcnow() -> datetime.datetime:
    """Now, zone-aware, in UTC: the only clock the store reads."""
    return datetime.datetime.now(datetime.timezone.utc)


def fingerprint(*parts: Any) -> str:
    """A digest of a request's parameters, to tell a retry from a different request reusing a token."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@contextmanager
def _unavailable_as_store_error() -> Iterator[None]:
    # IntegrityError passes through: each operation maps it to its own conflict.
    try:
        yield
    except (OperationalError, InterfaceError, PoolTimeout) as error:
        reason = getattr(error, "orig", None) or error
        raise DatabaseUnavailable(f"the store database is unavailable: {reason}") from error


class Repository:
    """The base of the `Store`: transactions, pagination and the lookups every operation needs."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = engine.execution_options(**{WRITE: True})
        self._tokens = PageTokens(read_setting(engine, PAGINATION_KEY))

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with _unavailable_as_store_error(), Session(self.engine) as session, session.begin():
            yield session

    @contextmanager
    def _read_connection(self) -> Iterator[Connection]:
        """A Core connection for one read, without the ORM's per-call cost."""
        with _unavailable_as_store_error(), self.engine.connect() as connection:
            yield connection

    @contextmanager
    def _write_connection(self) -> Iterator[Connection]:
        """A Core connection in one write transaction, without the ORM's per-call cost."""
        with _unavailable_as_store_error(), self._writer.begin() as connection:
            yield connection

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with (
            _unavailable_as_store_error(),
            Session(self._writer, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    @staticmethod
    def _runtime_row(session: Session, runtime_id: str, lock: bool = False) -> Runtime:
        """The runtime's row; `lock` holds it until commit, serialising writers of one runtime.

        On PostgreSQL the lock is FOR NO KEY UPDATE, so inserts that only reference the runtime
        (sessions) are not held up by it; SQLite has one writer at a time anyway.
        """
        query = select(Runtime).where(Runtime.id == runtime_id)
        row = session.scalar(query.with_for_update(key_share=True) if lock else query)
        if row is None:
            raise RuntimeNotFound(f"no agent runtime with id {runtime_id!r}")
        return row

    @staticmethod
    def _version_row(session: Session, runtime_id: str, version: int) -> RuntimeVersion:
        row = session.get(RuntimeVersion, (runtime_id, version))
        if row is None:
            raise VersionNotFound(f"agent runtime {runtime_id!r} has no version {version}")
        return row

    @staticmethod
    def _claimed(session: Session, operation: str, token: str, digest: str) -> str | None:
        """The resource an earlier request with this client token made, if any.

        The same token with different parameters is a `ClientTokenConflict`, never a silent replay.
        """
        row = session.get(ClientToken, (operation, token))
        if row is None:
            return None
        if row.fingerprint and digest and row.fingerprint != digest:
            raise ClientTokenConflict(
                f"clientToken {token!r} was already used for a different {operation} request"
            )
        return row.resource_id

    @staticmethod
    def _claim(session: Session, operation: str, token: str, digest: str, resource_id: str) -> None:
        # merge: a token whose resource has since been deleted is claimed afresh.
        session.merge(
            ClientToken(
                operation=operation,
                token=token,
                resource_id=resource_id,
                fingerprint=digest,
                created_at=utcnow(),
            )
        )

    def _page(
        self,
        listing: str,
        rows: Sequence[Row],
        max_results: int,
        key: Callable[[Row], Key],
        record: Callable[[Row], Item],
    ) -> Page[Item]:
        """A page from up to `max_results + 1` rows fetched in key order (the extra one says "more")."""
        shown = rows[:max_results]
        more = len(rows) > max_results
        return Page(
            [record(row) for row in shown], self._tokens.issue(listing, key(shown[-1])) if more else None
        )

    @staticmethod
    def _limit(max_results: int) -> int:
        if not 1 <= max_results <= MAX_PAGE_SIZE:
            raise ValueError(f"max_results must be between 1 and {MAX_PAGE_SIZE}, not {max_results}")
        return max_results

    def close(self) -> None:
        """Close every pooled connection; the store is unusable afterwards."""
        self.engine.dispose()


__all__ = ["MAX_PAGE_SIZE", "Repository", "fingerprint", "utcnow"]
