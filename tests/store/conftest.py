"""Store fixtures: every store test runs on SQLite and on a real, throwaway PostgreSQL server.

The PostgreSQL server is started once per test session by scripts/postgres-test-server.sh; each
test gets a database of its own. Set AGENTCORE_TEST_NO_POSTGRES=1 to skip the PostgreSQL half;
otherwise a server that cannot start is an error, never a silent skip.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from open_agentcore.store import Store
from tests.conftest import REPO

POSTGRES_SCRIPT = REPO / "scripts" / "postgres-test-server.sh"
StoreFactory = Callable[[], Store]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server's maintenance database, for the whole test session."""
    if os.environ.get("AGENTCORE_TEST_NO_POSTGRES") == "1":
        pytest.skip("AGENTCORE_TEST_NO_POSTGRES=1")
    # Under /tmp, not pytest's tmp dir: the server runs as another OS user, who must reach it.
    directory = Path(tempfile.mkdtemp(prefix="agentcore-store-pg-"))
    started = subprocess.run(
        [str(POSTGRES_SCRIPT), "start", str(directory)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if started.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start:\n{started.stderr}")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(POSTGRES_SCRIPT), "stop", str(directory)], capture_output=True, timeout=90)


def fresh_postgres_database(server_url: str) -> tuple[str, Callable[[], None]]:
    """A new, empty database on the server: its URL, and the function that drops it."""
    name = f"store_{secrets.token_hex(6)}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop() -> None:
        with psycopg.connect(server_url, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    return server_url.rsplit("/", 1)[0] + f"/{name}", drop


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database, on each backend in turn."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'state.db'}"
        return
    url, drop = fresh_postgres_database(request.getfixturevalue("postgres_server"))
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def open_stores(store_url: str) -> Iterator[StoreFactory]:
    """`open_stores()` opens another `Store` on the test's database; all are closed afterwards."""
    opened: list[Store] = []

    def open_one() -> Store:
        opened.append(Store.open(store_url))
        return opened[-1]

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(open_stores: StoreFactory) -> Store:
    """A store on an empty database (SQLite, then PostgreSQL)."""
    return open_stores()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An empty SQLite database, for the tests about SQLite itself."""
    return f"sqlite:///{tmp_path / 'state.db'}"
