"""Opening the database: `store/engine.py` (pragmas, migrations, concurrency, crash safety)."""

from __future__ import annotations

import concurrent.futures
import datetime
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, insert, text

from open_agentcore.store import (
    MIGRATIONS,
    DatabaseUnavailable,
    SchemaTooNew,
    SessionState,
    Store,
    UnsupportedDatabaseURL,
    open_store,
)
from open_agentcore.store import engine as engine_module
from open_agentcore.store.tables import SchemaMigration
from tests.conftest import free_port, wait_until
from tests.store.conftest import fresh_postgres_database
from tests.store.test_repository import ACCOUNT, CONFIG, create


def _schema_versions(store: Store) -> list[int]:
    with store.engine.connect() as connection:
        return list(connection.scalars(text("SELECT version FROM schema_version ORDER BY version")))


def test_a_new_database_is_at_the_newest_schema(store: Store) -> None:
    assert _schema_versions(store) == list(range(1, len(MIGRATIONS) + 1))


def test_postgresql_urls_use_psycopg_3(store: Store, store_url: str) -> None:
    if store_url.startswith("postgresql://"):
        assert (store.engine.dialect.name, store.engine.dialect.driver) == ("postgresql", "psycopg")
    else:
        assert store.engine.dialect.name == "sqlite"


def test_sqlite_connections_get_wal_foreign_keys_busy_timeout_and_normal_sync(sqlite_url: str) -> None:
    names = ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
    with open_store(sqlite_url) as store, store.engine.connect() as connection:
        values = [connection.exec_driver_sql(f"PRAGMA {name}").scalar() for name in names]
    assert values == ["wal", 1, 30000, 1]  # synchronous 1 is NORMAL


def test_the_sqlite_file_is_created_with_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "data" / "nested" / "state.db"
    with open_store(f"sqlite:///{path}"):
        assert path.is_file()


@pytest.mark.parametrize("url", ["mysql://u@localhost/db", "sqlite://", "sqlite:///:memory:", "nonsense"])
def test_other_databases_are_refused(url: str) -> None:
    with pytest.raises(UnsupportedDatabaseURL):
        open_store(url)


def test_an_unreachable_postgresql_is_database_unavailable() -> None:
    with pytest.raises(DatabaseUnavailable, match="cannot open"):
        open_store(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing?connect_timeout=5")


def test_losing_the_postgresql_database_is_database_unavailable(postgres_server: str) -> None:
    url, drop = fresh_postgres_database(postgres_server)
    with open_store(url) as store:
        create(store)
        drop()
        with pytest.raises(DatabaseUnavailable, match="unavailable"):
            store.list_runtimes()


def test_a_database_from_newer_code_is_refused_untouched(open_stores: Callable[[], Store]) -> None:
    store = open_stores()
    runtime_id = create(store)
    newer = len(MIGRATIONS) + 5
    with store.engine.begin() as connection:
        connection.execute(
            insert(SchemaMigration).values(
                version=newer, applied_at=datetime.datetime.now(datetime.timezone.utc)
            )
        )
    with pytest.raises(SchemaTooNew, match=f"version {newer}.*upgrade open-agentcore"):
        open_stores()
    assert _schema_versions(store)[-1] == newer
    assert store.get_runtime(runtime_id).id == runtime_id


def test_an_appended_migration_runs_once_on_an_old_database(
    open_stores: Callable[[], Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_stores()
    runtime_id = create(store)
    ran: list[int] = []

    def add_notes_column(connection: Connection) -> None:
        ran.append(1)
        connection.execute(text("ALTER TABLE runtimes ADD COLUMN notes VARCHAR"))

    monkeypatch.setattr(engine_module, "MIGRATIONS", (*MIGRATIONS, add_notes_column))
    upgraded = open_stores()
    open_stores()
    assert ran == [1]
    assert _schema_versions(upgraded) == list(range(1, len(MIGRATIONS) + 2))
    assert upgraded.get_runtime(runtime_id).id == runtime_id
    with upgraded.engine.connect() as connection:
        assert connection.execute(text("SELECT notes FROM runtimes")).all() == [(None,)]


def test_opening_one_new_database_from_many_threads_at_once(open_stores: Callable[[], Store]) -> None:
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        stores = list(pool.map(lambda _: open_stores(), range(6)))
    assert _schema_versions(stores[0]) == list(range(1, len(MIGRATIONS) + 1))


def test_8_threads_writing_at_once_all_succeed(store: Store) -> None:
    shared = create(store, "shared")
    barrier = threading.Barrier(8)

    def work(worker: int) -> None:
        barrier.wait(10)
        own = create(store, f"w{worker}")
        for step in range(6):
            version = store.add_version(shared, CONFIG)
            store.finish_version(shared, version.version)
            store.upsert_session(shared, f"s-{worker}-{step}", state=SessionState.ACTIVE, backend="process")
            store.touch_session(shared, f"s-{worker}-{step}")
            store.create_endpoint(own, f"e{step}", 1)
            store.list_runtimes(5)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(work, worker) for worker in range(8)]:
            future.result(timeout=50)  # re-raises any "database is locked"
    versions = [v.version for v in store.list_versions(shared, 100).items]
    assert versions == list(range(49, 0, -1))
    assert store.get_endpoint(shared, "DEFAULT").live_version == 49
    assert len(store.list_active_sessions(shared)) == 48
    assert len(store.list_runtimes(100).items) == 9


def test_committed_writes_survive_kill_9_mid_way(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    marker = tmp_path / "written"
    writer = textwrap.dedent(
        f"""
        import itertools, pathlib
        from open_agentcore.store import open_store
        store = open_store("sqlite:///{database}")
        runtime, _ = store.create_runtime("survivor", "us-east-1", "{ACCOUNT}", {{"a": 1}})
        store.add_version(runtime.id, {{"a": 2}})
        pathlib.Path({str(marker)!r}).write_text("done")
        for i in itertools.count():  # still writing when the kill comes
            store.create_runtime(f"r{{i}}", "us-east-1", "{ACCOUNT}", {{"i": i}})
        """
    )
    process = subprocess.Popen([sys.executable, "-c", writer], env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_until(marker.exists, timeout=30)
        wait_until(lambda: Path(f"{database}-wal").exists() and Path(f"{database}-wal").stat().st_size, 10)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(10) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    with open_store(f"sqlite:///{database}") as store:
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        runtimes = store.list_runtimes(1000).items
        survivor = next(r for r in runtimes if r.name == "survivor")
        assert (survivor.latest_version, survivor.version.config) == (2, {"a": 2})
        for runtime in runtimes:  # every create is whole or absent, never half-written
            assert store.get_endpoint(runtime.id, "DEFAULT").target_version == runtime.latest_version


def test_sessions_recorded_before_owners_existed_are_migrated(open_stores: Callable[[], Store]) -> None:
    store = open_stores()
    runtime_id = create(store)
    store.upsert_session(runtime_id, "old", state=SessionState.STOPPED, backend="process")
    with store.engine.begin() as connection:  # back to schema 1: no owner column, no tags
        connection.execute(text("ALTER TABLE sessions DROP COLUMN owner"))
        connection.execute(text("DROP TABLE resource_tags"))
        connection.execute(text("DELETE FROM schema_version WHERE version >= 2"))
    upgraded = open_stores()
    assert _schema_versions(upgraded) == list(range(1, len(MIGRATIONS) + 1))
    assert upgraded.get_session(runtime_id, "old").owner is None


def test_runtimes_from_before_tags_get_tags_after_migrating(open_stores: Callable[[], Store]) -> None:
    store = open_stores()
    runtime_id = create(store)
    with store.engine.begin() as connection:  # back to schema 2: no tags table
        connection.execute(text("DROP TABLE resource_tags"))
        connection.execute(text("DELETE FROM schema_version WHERE version >= 3"))
    upgraded = open_stores()
    assert _schema_versions(upgraded) == list(range(1, len(MIGRATIONS) + 1))
    assert upgraded.runtime_tags(runtime_id) == {}
    upgraded.tag_runtime(runtime_id, {"team": "blue"})
    assert upgraded.runtime_tags(runtime_id) == {"team": "blue"}
