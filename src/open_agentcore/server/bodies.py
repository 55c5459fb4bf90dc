"""Request bodies read once, hashed as they arrive, bounded in size and in memory, then replayed.

Authentication must hash a body before the signature can be checked, and the route must not see
a byte of it before then. Small bodies (almost every call) stay in memory; a body past
`IN_MEMORY` spills to a temporary file in the server's data dir, so a large artifact upload costs
disk, not memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

from starlette.types import Message, Receive

IN_MEMORY = 1024 * 1024
_REPLAY_CHUNK = 256 * 1024


class BodyTooLarge(Exception):
    """The body is longer than the operation accepts."""


class ClientGone(Exception):
    """The client disconnected before its body was complete."""


class RequestBody:
    """A request body read whole: its SHA-256 and size; `replay` hands it to the route."""

    def __init__(self, spool_dir: Path | None) -> None:
        self._spool_dir = spool_dir
        self._digest = hashlib.sha256()
        self._chunks: list[bytes] = []
        self._file: IO[bytes] | None = None
        self._receive: Receive | None = None
        self._spooled: AsyncIterator[Message] | None = None
        self._replaying = False
        self.size = 0

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    async def read(self, receive: Receive, limit: int) -> None:
        """Read the whole body: `BodyTooLarge` past `limit` bytes, `ClientGone` on a disconnect."""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            if chunk:
                self.size += len(chunk)
                if self.size > limit:
                    raise BodyTooLarge
                self._digest.update(chunk)
                self._keep(chunk)
            if not message.get("more_body", False):
                return

    def _keep(self, chunk: bytes) -> None:
        if self._file is None and self.size <= IN_MEMORY:
            self._chunks.append(chunk)
            return
        if self._file is None:
            if self._spool_dir is not None:
                self._spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._file = tempfile.TemporaryFile(dir=self._spool_dir, prefix="body-")  # noqa: SIM115 - closed in close()
            for kept in self._chunks:
                self._file.write(kept)
            self._chunks = []
        self._file.write(chunk)

    def replay(self, receive: Receive) -> Receive:
        """A `receive` that yields the body again, then whatever the client sends next (disconnect)."""
        self._receive = receive
        if self._file is None:
            self._spooled = None
        else:
            self._spooled = self._messages()
        self._replaying = True
        return self._replayed

    async def _replayed(self) -> Message:
        # A bound method, not a closure and an async generator: this runs for every signed call.
        if self._replaying:
            if self._spooled is None:
                self._replaying = False
                return {"type": "http.request", "body": b"".join(self._chunks), "more_body": False}
            if (message := await anext(self._spooled, None)) is not None:
                return message
            self._replaying = False
        receive = self._receive
        assert receive is not None  # set by `replay`, the only way here
        return await receive()

    async def _messages(self) -> AsyncIterator[Message]:
        assert self._file is not None
        self._file.seek(0)
        while chunk := self._file.read(_REPLAY_CHUNK):
            yield {"type": "http.request", "body": chunk, "more_body": True}
        yield {"type": "http.request", "body": b"", "more_body": False}

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        self._chunks = []


def limited(receive: Receive, limit: int) -> Receive:
    """A `receive` that raises `BodyTooLarge` once more than `limit` body bytes came through it
    (bodies that are passed on unread: bearer-token calls, judged by the runtime's authorizer)."""
    seen = 0

    async def bounded() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge
        return message

    return bounded


def spool_dir(data_dir: Path) -> Path:
    """Where large bodies spill: inside the data dir, which only the server may read."""
    return data_dir / "tmp"


__all__ = ["IN_MEMORY", "BodyTooLarge", "ClientGone", "RequestBody", "limited", "spool_dir"]
