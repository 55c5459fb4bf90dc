"""Content-addressed blobs in chunk rows: `store/blobs.py`, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import datetime
import hashlib
import io
import os
import threading

import pytest
from sqlalchemy import delete, func, inspect, select, text, update

from open_agentcore.store import MIGRATIONS, BlobCorrupt, BlobNotFound, BlobStore, Store
from open_agentcore.store import engine as engine_module
from open_agentcore.store.blobs import CHUNK_SIZE
from open_agentcore.store.tables import Blob, BlobChunk, SchemaMigration
from tests.store.conftest import StoreFactory
from tests.store.test_repository import ACCOUNT, CONFIG


def write(blobs: BlobStore, data: bytes, chunk: int = CHUNK_SIZE) -> tuple[str, bool]:
    upload = blobs.begin()
    for start in range(0, len(data), chunk):
        upload.write(data[start : start + chunk])
    return upload.sha256, upload.commit()


def read(blobs: BlobStore, sha256: str) -> bytes:
    out = io.BytesIO()
    blobs.copy_to(sha256, out)
    return out.getvalue()


def chunk_rows_of(store: Store, sha256: str) -> int:
    with store.engine.connect() as connection:
        upload_id = connection.scalar(select(Blob.upload_id).where(Blob.sha256 == sha256))
        return int(connection.scalar(select(func.count()).where(BlobChunk.upload_id == upload_id)) or 0)


def test_a_blob_is_kept_in_chunk_rows_and_read_back_whole(store: Store) -> None:
    blobs = BlobStore(store.engine)
    data = os.urandom(3 * CHUNK_SIZE + 12345)
    sha256, new = write(blobs, data)
    assert new and sha256 == hashlib.sha256(data).hexdigest()
    assert chunk_rows_of(store, sha256) == 4
    assert blobs.size_of(sha256) == len(data)
    assert read(blobs, sha256) == data


def test_a_blob_is_invisible_until_committed(store: Store) -> None:
    blobs = BlobStore(store.engine)
    data = os.urandom(1000)
    upload = blobs.begin()
    upload.write(data)
    sha256 = hashlib.sha256(data).hexdigest()
    assert not blobs.has(sha256)
    with pytest.raises(BlobNotFound):
        read(blobs, sha256)
    assert upload.commit()
    assert blobs.has(sha256)


def test_the_same_bytes_twice_are_stored_once(store: Store) -> None:
    blobs = BlobStore(store.engine)
    data = os.urandom(2 * CHUNK_SIZE)
    first, first_new = write(blobs, data)
    second, second_new = write(blobs, data, chunk=CHUNK_SIZE // 2)  # cut differently, same bytes
    assert first == second and (first_new, second_new) == (True, False)
    # The second upload's chunks were dropped: only the first's two remain.
    assert blobs.chunk_rows() == 2
    assert read(blobs, first) == data


def test_an_aborted_upload_leaves_nothing(store: Store) -> None:
    blobs = BlobStore(store.engine)
    upload = blobs.begin()
    upload.write(os.urandom(5000))
    upload.abort()
    assert blobs.chunk_rows() == 0 and not blobs.has(upload.sha256)


def test_a_changed_chunk_is_refused_as_corrupt(store: Store) -> None:
    blobs = BlobStore(store.engine)
    data = os.urandom(CHUNK_SIZE + 10)
    sha256, _ = write(blobs, data)
    with store.engine.begin() as connection:
        connection.execute(update(BlobChunk).where(BlobChunk.seq == 1).values(data=b"x" * 10))
    with pytest.raises(BlobCorrupt, match=sha256):
        read(blobs, sha256)


def test_a_missing_chunk_is_refused_as_corrupt(store: Store) -> None:
    blobs = BlobStore(store.engine)
    sha256, _ = write(blobs, os.urandom(2 * CHUNK_SIZE))
    with store.engine.begin() as connection:
        connection.execute(BlobChunk.__table__.delete().where(BlobChunk.seq == 0))
    with pytest.raises(BlobCorrupt, match="missing chunk 0"):
        read(blobs, sha256)


def test_a_deleted_blob_can_be_stored_again(store: Store) -> None:
    blobs = BlobStore(store.engine)
    data = os.urandom(3000)
    sha256, _ = write(blobs, data)
    blobs.delete(sha256)
    assert not blobs.has(sha256) and blobs.chunk_rows() == 0
    assert write(blobs, data) == (sha256, True)
    assert read(blobs, sha256) == data


def test_concurrent_uploads_of_the_same_bytes_from_two_clients_store_one_blob(
    open_stores: StoreFactory,
) -> None:
    # Two stores, two engines: as two server replicas on one database.
    clients = [BlobStore(open_stores().engine) for _ in range(2)]
    data = os.urandom(4 * CHUNK_SIZE + 7)
    both_wrote = threading.Barrier(2, timeout=30)
    results: list[tuple[str, bool]] = []
    failures: list[BaseException] = []

    def upload(blobs: BlobStore) -> None:
        try:
            pending = blobs.begin()
            for start in range(0, len(data), CHUNK_SIZE):
                pending.write(data[start : start + CHUNK_SIZE])
            both_wrote.wait()  # both have every chunk written before either commits
            results.append((pending.sha256, pending.commit()))
        except BaseException as error:  # reported below, in the test's thread
            failures.append(error)

    threads = [threading.Thread(target=upload, args=(blobs,)) for blobs in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    assert sorted(new for _, new in results) == [False, True]
    sha256 = results[0][0]
    assert {sha for sha, _ in results} == {sha256}
    assert clients[0].chunk_rows() == 5  # the loser's chunks are gone
    assert read(clients[1], sha256) == data == read(clients[0], sha256)


def test_abandoned_uploads_are_swept_and_committed_blobs_are_not(store: Store) -> None:
    blobs = BlobStore(store.engine)
    kept, _ = write(blobs, os.urandom(2000))
    abandoned = blobs.begin()
    abandoned.write(os.urandom(2000))
    abandoned.write(os.urandom(2000))
    in_progress = blobs.begin()
    in_progress.write(os.urandom(2000))
    long_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    with store.engine.begin() as connection:
        connection.execute(
            update(BlobChunk).where(BlobChunk.upload_id != in_progress.upload_id).values(written_at=long_ago)
        )
    assert blobs.delete_abandoned(datetime.timedelta(hours=1)) == 2
    assert blobs.chunk_rows() == 2  # the committed blob's chunk, and the upload still in progress
    assert read(blobs, kept)
    in_progress.write(os.urandom(10))
    assert in_progress.commit()


def test_the_blob_migration_adds_its_tables_to_an_older_database(store_url: str) -> None:
    number = MIGRATIONS.index(engine_module._blobs) + 1
    with Store.open(store_url) as first:
        with first.engine.begin() as connection:
            connection.execute(text("DROP TABLE blob_chunks"))
            connection.execute(text("DROP TABLE blobs"))
            connection.execute(delete(SchemaMigration).where(SchemaMigration.version >= number))
        assert "blobs" not in inspect(first.engine).get_table_names()
    with Store.open(store_url) as upgraded:
        assert {"blobs", "blob_chunks"} <= set(inspect(upgraded.engine).get_table_names())
        blobs = BlobStore(upgraded.engine)
        sha256, _ = write(blobs, b"after the upgrade")
        assert read(blobs, sha256) == b"after the upgrade"


def age(store: Store, sha256: str, days: float) -> None:
    """Make a blob look last used `days` ago."""
    moment = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days)
    with store.engine.begin() as connection:
        connection.execute(update(Blob).where(Blob.sha256 == sha256).values(last_used_at=moment))


def test_blobs_no_version_names_are_deleted_once_unused_for_long(store: Store) -> None:
    blobs = BlobStore(store.engine)
    old_unnamed, _ = write(blobs, b"old and named by nothing")
    old_named, _ = write(blobs, b"old but a version names it")
    touched, _ = write(blobs, b"old, then named by a version being created")
    recent, _ = write(blobs, b"uploaded just now")
    for sha256 in (old_unnamed, old_named, touched):
        age(store, sha256, days=30)
    config = copy.deepcopy(CONFIG)
    config["agentRuntimeArtifact"]["codeConfiguration"]["code"]["s3"]["prefix"] = f"{old_named}.zip"
    store.create_runtime("named", "us-east-1", ACCOUNT, config)
    blobs.touch(touched)
    assert blobs.delete_unused(datetime.timedelta(days=7)) == [old_unnamed]
    assert not blobs.has(old_unnamed)
    assert all(blobs.has(sha256) for sha256 in (old_named, touched, recent))
    assert blobs.chunk_rows() == 3


def test_two_replicas_sweeping_at_once_delete_each_unused_blob_once(open_stores: StoreFactory) -> None:
    clients = [BlobStore(open_stores().engine) for _ in range(2)]
    unused = []
    for number in range(6):
        sha256, _ = write(clients[0], f"unused {number}".encode())
        unused.append(sha256)
    with clients[0].engine.begin() as connection:
        long_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
        connection.execute(update(Blob).values(last_used_at=long_ago))
    start = threading.Barrier(2, timeout=30)
    deleted: list[list[str]] = []
    failures: list[BaseException] = []

    def sweep(blobs: BlobStore) -> None:
        try:
            start.wait()
            deleted.append(blobs.delete_unused(datetime.timedelta(days=7)))
        except BaseException as error:  # reported below, in the test's thread
            failures.append(error)

    threads = [threading.Thread(target=sweep, args=(blobs,)) for blobs in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    assert sorted(deleted[0] + deleted[1]) == sorted(unused)  # each by exactly one of them
    assert clients[1].chunk_rows() == 0
