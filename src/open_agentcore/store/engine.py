"""Opening the database: engine, SQLite pragmas, and numbered schema migrations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.orm import Session

from .errors import SchemaTooNew
from .tables import Base, SchemaVersion


def _migration_1(engine: Engine) -> None:
    Base.metadata.create_all(engine)


# Append only: migration N brings a database from version N-1 to N.
MIGRATIONS: list[Callable[[Engine], None]] = [_migration_1]


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=10000", "synchronous=NORMAL"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for `sqlite:///path` or `postgresql://...` (psycopg 3), schema brought up to date."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    migrate(engine)
    return engine


def migrate(engine: Engine) -> int:
    """Apply the migrations a database lacks; refuse one written by newer code. Returns the version."""
    SchemaVersion.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]
    with Session(engine) as session, session.begin():
        row = session.scalars(select(SchemaVersion)).first()
        current = row.version if row is not None else 0
        if current > len(MIGRATIONS):
            raise SchemaTooNew(
                f"the database is at schema version {current}, but this open-agentcore knows only "
                f"{len(MIGRATIONS)}: upgrade open-agentcore"
            )
        for number in range(current + 1, len(MIGRATIONS) + 1):
            MIGRATIONS[number - 1](engine)
        if row is None:
            session.add(SchemaVersion(version=len(MIGRATIONS)))
        else:
            row.version = len(MIGRATIONS)
    return len(MIGRATIONS)


__all__ = ["MIGRATIONS", "make_engine", "migrate"]
