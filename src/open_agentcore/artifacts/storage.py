"""Uploaded code zips, stored once each under the SHA-256 of their bytes."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class ArtifactRef:
    """Where an artifact lives, in the S3 terms the control plane speaks."""

    bucket: str
    key: str
    size: int


class ArtifactStore:
    """A directory of `<sha256>.zip` files; writing the same bytes twice stores them once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ArtifactNotFound(f"{key!r} is not an artifact key (expected <sha256>.zip)")
        path = self.root / key
        if not path.exists():
            raise ArtifactNotFound(f"no artifact {key!r}: upload it first with PUT /_agentcore/artifacts")
        return path

    async def put(self, chunks: AsyncIterator[bytes], max_bytes: int = MAX_UPLOAD) -> ArtifactRef:
        """Store a zip streamed in chunks, hashing as it is written; atomic and idempotent."""
        digest = hashlib.sha256()
        size = 0
        partial = self.root / f".upload-{secrets.token_hex(8)}"
        try:
            with partial.open("wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise ArtifactTooLarge(f"the artifact is larger than {max_bytes // (1024 * 1024)} MB")
                    digest.update(chunk)
                    out.write(chunk)
            if size == 0 or not zipfile.is_zipfile(partial):
                raise InvalidArtifact("the artifact must be a zip file")
            key = f"{digest.hexdigest()}.zip"
            final = self.root / key
            if final.exists():
                partial.unlink()
            else:
                os.replace(partial, final)
            return ArtifactRef(BUCKET, key, size)
        finally:
            partial.unlink(missing_ok=True)


__all__ = [
    "BUCKET",
    "MAX_UPLOAD",
    "ArtifactError",
    "ArtifactNotFound",
    "ArtifactRef",
    "ArtifactStore",
    "ArtifactTooLarge",
    "InvalidArtifact",
]
