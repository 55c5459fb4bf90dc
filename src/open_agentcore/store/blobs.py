"""Content-addressed blobs in the store, in chunk rows, so every server replica can read them.

A blob is written in two steps. Its bytes go into `blob_chunks` rows under a fresh upload id, one
short transaction per chunk, so a large blob never sits in memory whole nor holds a database lock
for long. Then one transaction records it in `blobs` under its SHA-256: until then no reader can
see it, and if that hash is already there (the same bytes uploaded before, or concurrently by
another replica) the new chunks are dropped instead. Readers check the bytes against the hash.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
from typing import Any, BinaryIO

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from .errors import StoreError
from .tables import Blob, BlobChunk, RuntimeVersion
from .transactions import Repository, utcnow

CHUNK_SIZE = 1024 * 1024
# An upload whose chunks are older than this and still unrecorded was abandoned (its server died
# mid-upload): any replica may delete them. Far longer than any upload of MAX_UPLOAD takes.
ABANDONED_AFTER = datetime.timedelta(hours=6)
# A blob no runtime version names, and neither uploaded nor named by a new version for this long,
# may be deleted by any replica.
UNUSED_AFTER = datetime.timedelta(days=7)


class BlobNotFound(StoreError):
    """No blob with that hash is stored."""


class BlobCorrupt(StoreError):
    """The stored bytes of a blob do not match its hash (or chunks are missing): never use them."""


def is_sha256(text: str) -> bool:
    """True for 64 lowercase hex digits, the only form of hash the blob table keys on."""
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _artifact_key(config: dict[str, Any]) -> str | None:
    """The artifact key a version's configuration names (`...code.s3.prefix`), if any."""
    try:
        key = config["agentRuntimeArtifact"]["codeConfiguration"]["code"]["s3"]["prefix"]
    except (KeyError, TypeError):
        return None
    return key if isinstance(key, str) else None


class BlobUpload:
    """Chunks of one blob being written; `commit` makes it visible, `abort` drops it.

    Blocking (each call is a database transaction): call it from a thread.
    """

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs
        self.upload_id = secrets.token_hex(16)
        self.size = 0
        self.chunks = 0
        self._digest = hashlib.sha256()

    def write(self, data: bytes) -> None:
        """Store `data` as the next chunk (any length up to a few MiB; `CHUNK_SIZE` is the norm)."""
        if not data:
            return
        with self._blobs._write() as session:
            session.add(BlobChunk(upload_id=self.upload_id, seq=self.chunks, data=data, written_at=utcnow()))
        self._digest.update(data)
        self.chunks += 1
        self.size += len(data)

    @property
    def sha256(self) -> str:
        """The hash of what was written so far."""
        return self._digest.hexdigest()

    def commit(self) -> bool:
        """Record the blob under its hash; False when that hash was already stored (these chunks
        are then deleted, and the stored blob stands)."""
        sha256 = self.sha256
        try:
            with self._blobs._write() as session:
                if session.get(Blob, sha256) is not None:
                    session.execute(delete(BlobChunk).where(BlobChunk.upload_id == self.upload_id))
                    return False
                now = utcnow()
                session.add(
                    Blob(
                        sha256=sha256,
                        upload_id=self.upload_id,
                        size=self.size,
                        chunks=self.chunks,
                        created_at=now,
                        last_used_at=now,
                    )
                )
            return True
        except IntegrityError:
            # Another replica recorded the same bytes between our check and our insert.
            self.abort()
            return False

    def abort(self) -> None:
        """Delete the chunks written so far."""
        with self._blobs._write() as session:
            session.execute(delete(BlobChunk).where(BlobChunk.upload_id == self.upload_id))


class BlobStore(Repository):
    """Blobs by SHA-256 in the store's database (SQLite or PostgreSQL); thread-safe."""

    def begin(self) -> BlobUpload:
        """A new upload; nothing is visible until its `commit`."""
        return BlobUpload(self)

    def has(self, sha256: str) -> bool:
        """Whether a blob with this hash is recorded (its bytes are not checked here)."""
        with self._read() as session:
            return session.get(Blob, sha256) is not None

    def size_of(self, sha256: str) -> int:
        """The recorded size of a blob. Raises `BlobNotFound`."""
        with self._read() as session:
            row = session.get(Blob, sha256)
            if row is None:
                raise BlobNotFound(f"no blob {sha256} is stored")
            return row.size

    def copy_to(self, sha256: str, out: BinaryIO) -> int:
        """Write the blob's bytes to `out`, one chunk in memory at a time; returns the size.

        Raises `BlobNotFound`, or `BlobCorrupt` when the bytes do not hash to `sha256` (what was
        written to `out` must then be thrown away).
        """
        with self._read() as session:
            row = session.get(Blob, sha256)
            if row is None:
                raise BlobNotFound(f"no blob {sha256} is stored")
            upload_id, chunks, size = row.upload_id, row.chunks, row.size
        digest = hashlib.sha256()
        written = 0
        for seq in range(chunks):
            # One short read per chunk: a slow writer of `out` holds no transaction open.
            with self._read() as session:
                data = session.scalar(
                    select(BlobChunk.data).where(BlobChunk.upload_id == upload_id, BlobChunk.seq == seq)
                )
            if data is None:
                raise BlobCorrupt(f"blob {sha256} is missing chunk {seq} of {chunks}")
            digest.update(data)
            written += len(data)
            out.write(data)
        if written != size or digest.hexdigest() != sha256:
            raise BlobCorrupt(
                f"blob {sha256} is corrupt: its stored bytes ({written} of {size} recorded) hash to "
                f"{digest.hexdigest()}"
            )
        return written

    def delete(self, sha256: str) -> None:
        """Forget a blob and delete its chunks (a corrupt one, so the same bytes can be stored again)."""
        with self._write() as session:
            row = session.get(Blob, sha256)
            if row is not None:
                session.execute(delete(BlobChunk).where(BlobChunk.upload_id == row.upload_id))
                session.delete(row)

    def touch(self, sha256: str) -> None:
        """Mark a blob as just used (a version about to name it), so `delete_unused` spares it."""
        with self._write() as session:
            session.execute(update(Blob).where(Blob.sha256 == sha256).values(last_used_at=utcnow()))

    def delete_unused(self, older_than: datetime.timedelta = UNUSED_AFTER) -> list[str]:
        """Delete the blobs that no runtime version names and that were last uploaded or touched
        more than `older_than` ago; returns their hashes.

        Safe on several replicas at once: the candidates' rows are locked (PostgreSQL) until they
        are gone, so a concurrent `touch` waits and then finds nothing, and a second sweep skips them.
        """
        cutoff = utcnow() - older_than
        with self._write() as session:
            candidates = session.scalars(
                select(Blob).where(Blob.last_used_at < cutoff).with_for_update(skip_locked=True)
            ).all()
            if not candidates:
                return []
            named = {_artifact_key(config) for config in session.scalars(select(RuntimeVersion.config))}
            unused = [blob for blob in candidates if f"{blob.sha256}.zip" not in named]
            for blob in unused:
                session.execute(delete(BlobChunk).where(BlobChunk.upload_id == blob.upload_id))
                session.delete(blob)
            return [blob.sha256 for blob in unused]

    def delete_abandoned(self, older_than: datetime.timedelta = ABANDONED_AFTER) -> int:
        """Delete chunks of uploads never committed and older than `older_than`; returns how many.

        Safe on any replica at any time: an upload in progress writes a chunk at least every few
        seconds, and committed blobs are never touched.
        """
        cutoff = utcnow() - older_than
        committed = select(Blob.upload_id)
        with self._write() as session:
            stale = select(BlobChunk.upload_id).where(
                BlobChunk.written_at < cutoff, BlobChunk.upload_id.not_in(committed)
            )
            # Every chunk of such an upload goes, young ones too: the upload is dead as a whole.
            result = session.execute(delete(BlobChunk).where(BlobChunk.upload_id.in_(stale.distinct())))
            return int(getattr(result, "rowcount", 0) or 0)

    def chunk_rows(self) -> int:
        """How many chunk rows exist, committed or not (diagnostics and tests)."""
        with self._read() as session:
            return int(session.scalar(select(func.count()).select_from(BlobChunk)) or 0)


__all__ = [
    "ABANDONED_AFTER",
    "CHUNK_SIZE",
    "UNUSED_AFTER",
    "BlobCorrupt",
    "BlobNotFound",
    "BlobStore",
    "BlobUpload",
    "is_sha256",
]
