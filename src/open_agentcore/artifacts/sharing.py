"""Artifacts in a store shared by server replicas: uploads streamed into it as they arrive, and
what this server lacks fetched from it into the local cache."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from pathlib import Path

from open_agentcore.store import BlobStore, BlobUpload, StoreError
from open_agentcore.store.blobs import CHUNK_SIZE

logger = logging.getLogger("open_agentcore.artifacts")


class SharedUpload:
    """An upload's bytes on their way into the store: `CHUNK_SIZE` rows, written off the event loop,
    so at most one chunk of the upload is held in memory."""

    def __init__(self, upload: BlobUpload) -> None:
        self._upload = upload
        self._pending = bytearray()

    async def write(self, data: bytes) -> None:
        self._pending += data
        while len(self._pending) >= CHUNK_SIZE:
            chunk = bytes(self._pending[:CHUNK_SIZE])
            del self._pending[:CHUNK_SIZE]
            await asyncio.to_thread(self._upload.write, chunk)

    async def commit(self) -> bool:
        """Make the blob visible to every replica; False when the same bytes were stored already."""
        if self._pending:
            await asyncio.to_thread(self._upload.write, bytes(self._pending))
            self._pending.clear()
        return await asyncio.to_thread(self._upload.commit)

    async def abort(self) -> None:
        """Drop what was written; a failure is only logged (any replica's sweep deletes it later)."""
        self._pending.clear()
        try:
            await asyncio.to_thread(self._upload.abort)
        except StoreError as error:
            logger.warning("Could not delete an abandoned upload now (%s); a later sweep will", error)


def fetch(blobs: BlobStore, key: str, root: Path) -> Path:
    """Copy the blob of artifact `key` (`<sha256>.zip`) into `root / key`, atomically, its bytes
    checked against the hash on the way; blocking.

    Raises the store's `BlobNotFound`, or `BlobCorrupt` (nothing is written to `root / key` then).
    """
    final = root / key
    partial = root / f".fetch-{secrets.token_hex(8)}"
    try:
        with partial.open("wb") as out:
            size = blobs.copy_to(key.removesuffix(".zip"), out)
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    logger.info("Fetched artifact %s (%d bytes) from the shared store", key, size)
    return final


def restore(blobs: BlobStore, path: Path, sha256: str) -> bool:
    """Store this server's cached copy of a blob the shared store lost; blocking. False (and
    nothing stored) when the copy does not hash to `sha256`."""
    upload = blobs.begin()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK_SIZE):
            upload.write(chunk)
    if upload.sha256 != sha256:
        upload.abort()
        logger.warning("The cached copy of artifact %s.zip does not match its hash; not restored", sha256)
        return False
    upload.commit()
    logger.info("Stored artifact %s.zip again from this server's cache", sha256)
    return True


__all__ = ["SharedUpload", "fetch", "restore"]
