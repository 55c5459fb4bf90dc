"""Uploaded code zips, stored once each under the SHA-256 of their bytes (the key `<sha256>.zip`)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from open_agentcore.store import BlobCorrupt, BlobNotFound, BlobStore, Store

from .sharing import SharedUpload, fetch, restore

BUCKET = "agentcore-artifacts"
MAX_UPLOAD = 250 * 1024 * 1024
_KEY = re.compile(r"^[0-9a-f]{64}\.zip$")


class ArtifactError(Exception):
    """Base of artifact failures; messages are safe to show to the client."""


class ArtifactTooLarge(ArtifactError):
    pass


class InvalidArtifact(ArtifactError):
    pass


class ArtifactNotFound(ArtifactError):
    pass


class CorruptArtifact(ArtifactError):
    """The stored bytes of an artifact do not match its hash; they are never unpacked or run."""


@dataclass(frozen=True)
class ArtifactRef:
    """Where an artifact lives, in the S3 terms the control plane speaks."""

    bucket: str
    key: str
    size: int


class ArtifactStore:
    """Uploaded zips by `<sha256>.zip`, stored once per content.

    With `blobs` (a store shared by several server replicas) the store holds every artifact and
    `root` is this server's cache of them: an upload is written to both as it streams, and a key
    this server lacks is fetched from the store, checked against its hash, and cached. Without
    `blobs` the directory alone holds them. `path` blocks (it may fetch): call it from a thread.
    """

    def __init__(self, root: Path, blobs: BlobStore | None = None) -> None:
        self.root = root
        self.blobs = blobs
        root.mkdir(parents=True, exist_ok=True)

    @classmethod
    def for_store(cls, root: Path, store: Store) -> ArtifactStore:
        """The artifact store a server on `store` keeps: shared through the store on PostgreSQL,
        in `root` alone on SQLite.

        A SQLite store is one machine's file, so no other replica could read blobs from it; keeping
        each zip in the database as well as in `root` would only double the disk it takes.
        """
        shared = store.engine.dialect.name != "sqlite"
        return cls(root, BlobStore(store.engine) if shared else None)

    def claim(self, key: str) -> None:
        """Say that a new runtime version names artifact `key`, so no sweep deletes it; blocking.

        When the shared store lacks it but this server's cache has it (a sweep removed it, unused,
        before this version came), it is stored again from the cache, for the other replicas.
        """
        if self.blobs is None or not _KEY.match(key):
            return
        sha256 = key.removesuffix(".zip")
        self.blobs.touch(sha256)
        if not self.blobs.has(sha256) and self.has_local(key):
            restore(self.blobs, self.root / key, sha256)

    def sweep(self) -> None:
        """Delete from the shared store what no one will read (uploads abandoned midway, blobs no
        version named for a long while), and this server's cached copies of them; blocking."""
        if self.blobs is None:
            return
        self.blobs.delete_abandoned()
        for sha256 in self.blobs.delete_unused():
            (self.root / f"{sha256}.zip").unlink(missing_ok=True)

    def has_local(self, key: str) -> bool:
        """Whether this server's directory holds artifact `key` (no fetch needed)."""
        return bool(_KEY.match(key)) and (self.root / key).exists()

    def path(self, key: str) -> Path:
        """The local file of artifact `key`, fetched from the shared store when only it has it.

        Raises `ArtifactNotFound` (a malformed or unknown key) or `CorruptArtifact`.
        """
        if not _KEY.match(key):
            raise ArtifactNotFound(f"{key!r} is not an artifact key (expected <sha256>.zip)")
        path = self.root / key
        if path.exists():
            return path
        missing = f"no artifact {key!r}: upload it first with PUT /_agentcore/artifacts"
        if self.blobs is None:
            raise ArtifactNotFound(missing)
        try:
            return fetch(self.blobs, key, self.root)
        except BlobNotFound:
            raise ArtifactNotFound(missing) from None
        except BlobCorrupt as error:
            # Removed, so that uploading the same zip again stores good bytes instead of being
            # taken for a copy already there.
            self.blobs.delete(key.removesuffix(".zip"))
            raise CorruptArtifact(
                f"artifact {key!r} is corrupt in the store and was removed from it ({error}); "
                "upload the zip again"
            ) from None

    async def put(self, chunks: AsyncIterator[bytes], max_bytes: int = MAX_UPLOAD) -> ArtifactRef:
        """Store a zip streamed in chunks, hashing as it is written; atomic and idempotent."""
        digest = hashlib.sha256()
        size = 0
        partial = self.root / f".upload-{secrets.token_hex(8)}"
        shared: SharedUpload | None = None
        if self.blobs is not None:
            await asyncio.to_thread(self.sweep)
            shared = SharedUpload(self.blobs.begin())
        try:
            with partial.open("wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise ArtifactTooLarge(f"the artifact is larger than {max_bytes // (1024 * 1024)} MB")
                    digest.update(chunk)
                    out.write(chunk)
                    if shared is not None:
                        await shared.write(chunk)
            if size == 0 or not zipfile.is_zipfile(partial):
                raise InvalidArtifact("the artifact must be a zip file")
            key = f"{digest.hexdigest()}.zip"
            if shared is not None:
                await shared.commit()
                shared = None
            final = self.root / key
            if final.exists():
                partial.unlink()
            else:
                os.replace(partial, final)
            return ArtifactRef(BUCKET, key, size)
        finally:
            partial.unlink(missing_ok=True)
            if shared is not None:
                await shared.abort()


__all__ = [
    "BUCKET",
    "MAX_UPLOAD",
    "ArtifactError",
    "ArtifactNotFound",
    "ArtifactRef",
    "ArtifactStore",
    "ArtifactTooLarge",
    "CorruptArtifact",
    "InvalidArtifact",
]
