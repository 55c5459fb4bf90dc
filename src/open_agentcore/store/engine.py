"""Opening the database: the engine, SQLite's per-connection settings, and numbered migrations."""

from __future__ import annotations

import datetime
import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from .errors import DatabaseUnavailable, SchemaTooNew, UnsupportedDatabaseURL
from .tables import Base, Blob, BlobChunk, ResourceTag, SchemaMigration, Setting, SpanRow

# Execution option marking an engine whose transactions write: on SQLite they take the write lock
# at BEGIN, so two writers queue on busy_timeout instead of one failing with "database is locked"
# when it tries to upgrade a read lock.
WRITE = "open_agentcore_write"
PAGINATION_KEY = "pagination_key"

# busy_timeout first: switching to WAL itself may have to wait for another connection.
_SQLITE_PRAGMAS = ("busy_timeout=30000", "journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL")
_MIGRATION_LOCK = 0x6F61635F73746F72  # any constant: serialises migrations across PostgreSQL clients

Migration = Callable[[Connection], None]


def _create_everything(connection: Connection) -> None:
    Base.metadata.create_all(connection)
    connection.execute(insert(Setting).values(name=PAGINATION_KEY, value=secrets.token_hex(32)))


def _session_owners(connection: Connection) -> None:
    # Sessions belong to the principal that created them; those recorded before had no owner.
    connection.execute(text("ALTER TABLE sessions ADD COLUMN owner VARCHAR"))


def _resource_tags(connection: Connection) -> None:
    # Tags given to CreateAgentRuntime and TagResource; before this, they were not kept.
    Base.metadata.create_all(connection, tables=[Base.metadata.tables[ResourceTag.__tablename__]])


def _spans(connection: Connection) -> None:
    # Traces: the server's own spans and those agents export to it over OTLP.
    Base.metadata.create_all(connection, tables=[Base.metadata.tables[SpanRow.__tablename__]])


def _blobs(connection: Connection) -> None:
    # Uploaded artifacts kept in the store, so every replica sharing it can use them.
    tables = [Base.metadata.tables[model.__tablename__] for model in (Blob, BlobChunk)]
    Base.metadata.create_all(connection, tables=tables)


# Append only: migration N brings a database from schema version N-1 to N, inside one transaction.
# A new database runs migration 1 alone, because the models in tables.py always describe the newest
# schema, and is recorded as having every migration.
MIGRATIONS: tuple[Migration, ...] = (_create_everything, _session_owners, _resource_tags, _spans, _blobs)


def open_engine(url: str) -> Engine:
    """An engine for `sqlite:///<path>` or `postgresql://...` (psycopg 3), its schema brought up to date.

    Raises `UnsupportedDatabaseURL`, `DatabaseUnavailable`, or `SchemaTooNew` when the database was
    written by a newer open-agentcore.
    """
    engine = _create_engine(url)
    try:
        migrate(engine)
    except OperationalError as error:
        engine.dispose()
        raise DatabaseUnavailable(f"cannot open the store database: {error.orig or error}") from None
    except BaseException:
        engine.dispose()
        raise
    return engine


def _create_engine(url: str) -> Engine:
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UnsupportedDatabaseURL(f"not a database URL: {url!r}") from None
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "psycopg":
        # 40 connections: as many as the server's worker threads; several replicas stay under
        # PostgreSQL's default max_connections of 100.
        return create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=30)
    if parsed.drivername != "sqlite":
        raise UnsupportedDatabaseURL(
            f"the store speaks sqlite:///<path> and postgresql://..., not {parsed.drivername!r}"
        )
    if parsed.database in (None, "", ":memory:"):
        raise UnsupportedDatabaseURL("the store needs a file: sqlite:///<path>, not an in-memory database")
    Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # Pooled connections move between threads, one thread at a time.
    engine = create_engine(
        parsed, connect_args={"check_same_thread": False}, pool_size=10, max_overflow=54, pool_timeout=60
    )
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver must not issue BEGIN by itself; _on_sqlite_begin does, with the right lock mode.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in _SQLITE_PRAGMAS:
        _pragma(cursor, pragma)
    cursor.close()


def _pragma(cursor: Any, pragma: str, patience: float = 30.0) -> None:
    # Switching a new database to WAL needs a moment alone with it, and SQLite reports "locked" at
    # once instead of waiting on busy_timeout when other connections are opening it too.
    deadline = time.monotonic() + patience
    while True:
        try:
            cursor.execute(f"PRAGMA {pragma}")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _on_sqlite_begin(connection: Connection) -> None:
    mode = "IMMEDIATE" if connection.get_execution_options().get(WRITE) else "DEFERRED"
    connection.exec_driver_sql(f"BEGIN {mode}")


def migrate(engine: Engine) -> int:
    """Apply the migrations the database lacks, in order; returns its schema version.

    Refuses (`SchemaTooNew`) a database whose version is newer than this code knows, touching nothing.
    """
    newest = len(MIGRATIONS)
    with engine.execution_options(**{WRITE: True}).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        Base.metadata.create_all(connection, tables=[Base.metadata.tables[SchemaMigration.__tablename__]])
        current = connection.scalar(select(func.max(SchemaMigration.version))) or 0
        if current > newest:
            raise SchemaTooNew(
                f"the store database is at schema version {current}, but this open-agentcore knows only "
                f"up to {newest}: upgrade open-agentcore, or point it at another database"
            )
        if current == 0:
            MIGRATIONS[0](connection)
        else:
            for number in range(current + 1, newest + 1):
                MIGRATIONS[number - 1](connection)
        now = datetime.datetime.now(datetime.timezone.utc)
        for number in range(current + 1, newest + 1):
            connection.execute(insert(SchemaMigration).values(version=number, applied_at=now))
    return newest


def read_setting(engine: Engine, name: str) -> str:
    """A value the store keeps for itself (written by a migration)."""
    with engine.connect() as connection:
        value = connection.scalar(select(Setting.value).where(Setting.name == name))
    if value is None:
        raise LookupError(f"the store database lacks its {name!r} setting")
    return value


__all__ = ["MIGRATIONS", "PAGINATION_KEY", "WRITE", "Migration", "migrate", "open_engine", "read_setting"]
