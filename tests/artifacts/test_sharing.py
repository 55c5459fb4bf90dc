"""Artifacts kept in a shared store: `artifacts/sharing.py` and `ArtifactStore` with blobs,
on SQLite and PostgreSQL (each server here has its own directory, as replicas on two machines)."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import os
from pathlib import Path

import pytest
from sqlalchemy import update

from open_agentcore.artifacts import (
    ArtifactNotFound,
    ArtifactStore,
    ArtifactTooLarge,
    CorruptArtifact,
    InvalidArtifact,
)
from open_agentcore.store import BlobStore, Store
from open_agentcore.store.blobs import CHUNK_SIZE
from open_agentcore.store.tables import Blob, BlobChunk
from tests.artifacts.test_artifacts import _chunks, make_zip
from tests.store.conftest import (  # noqa: F401 - fixtures
    open_stores,
    postgres_server,
    sqlite_url,
    store,
    store_url,
)


def put(artifacts: ArtifactStore, data: bytes, limit: int = 64 << 20) -> str:
    return asyncio.run(artifacts.put(_chunks(data, 256 * 1024), max_bytes=limit)).key


def two_servers(store: Store, tmp_path: Path) -> tuple[ArtifactStore, ArtifactStore]:  # noqa: F811
    blobs = BlobStore(store.engine)
    return ArtifactStore(tmp_path / "one", blobs), ArtifactStore(tmp_path / "two", blobs)


def test_an_upload_through_one_server_is_fetched_by_another(store: Store, tmp_path: Path) -> None:  # noqa: F811
    one, two = two_servers(store, tmp_path)
    data = make_zip({"agent.py": b"print(1)", "blob.bin": os.urandom(3 * CHUNK_SIZE)})
    key = put(one, data)
    assert key == f"{hashlib.sha256(data).hexdigest()}.zip"
    assert (tmp_path / "one" / key).read_bytes() == data  # the uploading server caches it
    assert not two.has_local(key)
    fetched = two.path(key)
    assert fetched == tmp_path / "two" / key and fetched.read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [key]  # no partial file left


def test_uploading_the_same_zip_through_two_servers_stores_it_once(
    store: Store,  # noqa: F811
    tmp_path: Path,
) -> None:
    one, two = two_servers(store, tmp_path)
    data = make_zip({"agent.py": os.urandom(CHUNK_SIZE + 5)})
    assert put(one, data) == put(two, data)
    assert BlobStore(store.engine).chunk_rows() == 2


def test_keys_that_are_malformed_or_stored_nowhere_are_not_found(store: Store, tmp_path: Path) -> None:  # noqa: F811
    _, two = two_servers(store, tmp_path)
    with pytest.raises(ArtifactNotFound, match="not an artifact key"):
        two.path("../state.db")
    with pytest.raises(ArtifactNotFound, match="upload it first"):
        two.path("0" * 64 + ".zip")


def test_a_refused_upload_leaves_nothing_in_the_store(store: Store, tmp_path: Path) -> None:  # noqa: F811
    one, _ = two_servers(store, tmp_path)
    with pytest.raises(ArtifactTooLarge):
        put(one, make_zip({"big": os.urandom(3 * CHUNK_SIZE)}), limit=2 * CHUNK_SIZE)
    with pytest.raises(InvalidArtifact):
        put(one, os.urandom(2 * CHUNK_SIZE))
    assert BlobStore(store.engine).chunk_rows() == 0
    assert list((tmp_path / "one").iterdir()) == []


def test_corrupt_bytes_are_refused_never_cached_and_can_be_uploaded_again(
    store: Store,  # noqa: F811
    tmp_path: Path,
) -> None:
    one, two = two_servers(store, tmp_path)
    data = make_zip({"agent.py": b"print('real')", "pad": os.urandom(CHUNK_SIZE)})
    key = put(one, data)
    with store.engine.begin() as connection:
        connection.execute(update(BlobChunk).where(BlobChunk.seq == 0).values(data=b"PK" + b"\0" * 100))
    with pytest.raises(CorruptArtifact, match=r"corrupt in the store.*upload the zip again"):
        two.path(key)
    assert list((tmp_path / "two").iterdir()) == []  # nothing that could be unpacked or run
    assert put(two, data) == key  # stored afresh, not taken for the corrupt copy
    assert ArtifactStore(tmp_path / "three", BlobStore(store.engine)).path(key).read_bytes() == data


def test_a_server_on_sqlite_keeps_artifacts_in_its_directory_alone(sqlite_url: str, tmp_path: Path) -> None:  # noqa: F811
    with Store.open(sqlite_url) as local:
        artifacts = ArtifactStore.for_store(tmp_path / "artifacts", local)
        assert artifacts.blobs is None
        key = put(artifacts, make_zip({"agent.py": b"print(1)"}))
        assert artifacts.path(key).exists()
        assert BlobStore(local.engine).chunk_rows() == 0  # not doubled into the database


def test_a_server_on_postgresql_shares_its_artifacts(postgres_server: str, tmp_path: Path) -> None:  # noqa: F811
    from tests.store.conftest import fresh_postgres_database

    url, drop = fresh_postgres_database(postgres_server)
    try:
        with Store.open(url) as shared:
            artifacts = ArtifactStore.for_store(tmp_path / "artifacts", shared)
            assert artifacts.blobs is not None
            key = put(artifacts, make_zip({"agent.py": b"print(1)"}))
            assert artifacts.blobs.has(key.removesuffix(".zip"))
    finally:
        drop()


def make_old(store: Store, key: str) -> None:  # noqa: F811
    long_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
    with store.engine.begin() as connection:
        connection.execute(
            update(Blob).where(Blob.sha256 == key.removesuffix(".zip")).values(last_used_at=long_ago)
        )


def test_a_sweep_deletes_long_unused_artifacts_from_the_store_and_its_own_cache(
    store: Store,  # noqa: F811
    tmp_path: Path,
) -> None:
    one, two = two_servers(store, tmp_path)
    key = put(one, make_zip({"agent.py": b"unused"}))
    assert two.path(key).exists()  # cached by the second server too
    make_old(store, key)
    two.sweep()
    assert not BlobStore(store.engine).has(key.removesuffix(".zip"))
    assert not two.has_local(key)
    assert one.has_local(key)  # another server's cache is its own; `claim` below puts it to use


def test_a_version_naming_an_artifact_keeps_it_or_stores_it_again_from_a_cache(
    store: Store,  # noqa: F811
    tmp_path: Path,
) -> None:
    one, two = two_servers(store, tmp_path)
    blobs = BlobStore(store.engine)
    kept = put(one, make_zip({"agent.py": b"named by a version now"}))
    make_old(store, kept)
    one.claim(kept)  # a version being created names it: the next sweep spares it
    two.sweep()
    assert blobs.has(kept.removesuffix(".zip"))

    lost = put(one, make_zip({"agent.py": b"swept, then named by a version"}))
    make_old(store, lost)
    two.sweep()
    assert not blobs.has(lost.removesuffix(".zip"))
    one.claim(lost)  # the server that has it cached stores it again for the others
    assert (
        ArtifactStore(tmp_path / "three", blobs).path(lost).read_bytes()
        == (tmp_path / "one" / lost).read_bytes()
    )
