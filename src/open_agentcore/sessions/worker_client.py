"""HTTP/1.1 to one worker over its unix socket (or, for workers on other machines, TCP with the
worker's secret on every request): keep-alive connections, responses streamed through.

This is the hop every invocation takes, so it is a small client written for it rather than a
general one: the request goes out in one write, the response head is parsed once, and the body
is relayed chunk by chunk as the worker writes it (Content-Length, chunked, or until close). The
worker runs the agent's code and is not trusted: its response head is bounded in size and a
malformed one ends the call as `WorkerUnreachable`, never as an exception of another kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from open_agentcore.backends import WorkerAddress, WorkerHandle

CONNECT_TIMEOUT = 5.0
HEAD_LIMIT = 64 * 1024  # the worker's status line and headers, at most
_READ_SIZE = 64 * 1024
# Framing is ours to set; hop-by-hop headers are not forwarded.
_NOT_FORWARDED = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade"}
)
_NO_BODY = frozenset({204, 304})
SECRET_HEADER = "x-agentcore-worker-secret"  # noqa: S105 - a header name; what a TCP worker checks (`worker_main.SecretGate`)
_NOT_SENT = _NOT_FORWARDED | {SECRET_HEADER}  # a secret header from the caller is dropped, never forwarded


class WorkerUnreachable(Exception):
    """The worker refused or dropped the connection (it crashed or is stopping), or answered
    something that is not HTTP.

    `sent` is False when the worker read no byte of the request. `stale` marks the one case where
    that says nothing about the worker: a kept-alive connection it closed while idle.
    """

    def __init__(self, message: str, sent: bool = True, stale: bool = False) -> None:
        super().__init__(message)
        self.sent = sent
        self.stale = stale


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reused = False

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


class WorkerReply:
    """A worker's response head; iterate `body` to relay it, then `close()` (always)."""

    def __init__(
        self, status: int, headers: list[tuple[str, str]], client: WorkerClient, connection: _Connection,
        framing: tuple[str, int], keep_alive: bool,
    ) -> None:  # fmt: skip
        self.status = status
        self.headers: Sequence[tuple[str, str]] = headers
        self._client = client
        self._connection: _Connection | None = connection
        self._framing = framing
        self._keep_alive = keep_alive
        self._complete = False
        self._relaying = False
        self.body: AsyncIterator[bytes] = self._read_body()

    async def _read_body(self) -> AsyncIterator[bytes]:
        self._relaying = True
        connection = self._connection
        if connection is None:
            return
        reader = connection.reader
        kind, length = self._framing
        try:
            if kind == "length":
                remaining = length
                while remaining:
                    chunk = await reader.read(min(remaining, _READ_SIZE))
                    if not chunk:
                        raise WorkerUnreachable(
                            "the worker closed the connection in the middle of its answer"
                        )
                    remaining -= len(chunk)
                    yield chunk
            elif kind == "chunked":
                async for chunk in _chunks(reader):
                    yield chunk
            elif kind == "close":
                while chunk := await reader.read(_READ_SIZE):
                    yield chunk
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as error:
            raise WorkerUnreachable(_describe(error)) from None
        self._complete = True

    @property
    def length(self) -> int | None:
        """The body's size when the worker declared it (Content-Length), else None (streamed)."""
        kind, length = self._framing
        return length if kind == "length" else None

    async def read(self) -> bytes:
        """The whole body (for answers whose `length` is known and small), then `close()`."""
        try:
            kind, length = self._framing
            if kind == "length" and self._connection is not None and not self._relaying:
                # Most answers: one read of a known size, without the chunk-by-chunk relay.
                try:
                    whole = await self._connection.reader.readexactly(length)
                except asyncio.IncompleteReadError:
                    raise WorkerUnreachable(
                        "the worker closed the connection in the middle of its answer"
                    ) from None
                except OSError as error:
                    raise WorkerUnreachable(_describe(error)) from None
                self._complete = True
                return whole
            return b"".join([chunk async for chunk in self.body])
        finally:
            await self.close()

    async def close(self) -> None:
        """Give the connection back for the next call when the answer was read whole, else drop it."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if not self._complete:
            with contextlib.suppress(RuntimeError):  # still being iterated by a task just cancelled
                await self.body.aclose()  # type: ignore[attr-defined]
        if self._complete and self._keep_alive and connection.usable():
            self._client._release(connection)
        else:
            connection.close()


class WorkerClient:
    """Keep-alive HTTP/1.1 connections to one worker, shared by every call of its session.

    Over its unix socket, or, given `address`, over TCP with its secret added to every request
    (a secret header from the caller is dropped, never forwarded).
    """

    def __init__(self, socket_path: Path, address: WorkerAddress | None = None) -> None:
        self.socket_path = socket_path
        self.address = address
        self._secret_line = f"{SECRET_HEADER}: {address.secret}" if address is not None else None
        self._idle: list[_Connection] = []
        self._closed = False

    @classmethod
    def of(cls, handle: WorkerHandle) -> WorkerClient:
        """A client for a started worker: by TCP when its backend gave it an address."""
        address = getattr(handle, "address", None)
        return cls(handle.socket_path, address if isinstance(address, WorkerAddress) else None)

    async def send(
        self, method: str, path: str, headers: Sequence[tuple[str, str]], body: bytes, fresh: bool = False
    ) -> WorkerReply:
        """Send one request; returns as soon as the response head arrives (body not read yet).

        Header values are the ASGI server's latin-1 text, sent back byte for byte. One attempt:
        whether to try again is the session lease's decision (`SessionLease.call`). `fresh` opens
        a new connection rather than reusing a kept-alive one.
        """
        request = _serialise(method, path, headers, body, self._secret_line)
        connection = await self._connection(fresh)
        try:
            writer = connection.writer
            writer.write(request)
            if writer.transport.get_write_buffer_size():
                # Only a request the socket did not take at once needs waiting for; a worker that
                # is gone shows as much on the read below.
                await writer.drain()
            return await self._read_head(connection, method)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as error:
            connection.close()
            # A kept-alive connection the worker closed while idle: the request was never read.
            nothing_read = isinstance(error, asyncio.IncompleteReadError) and not error.partial
            stale = connection.reused and (nothing_read or isinstance(error, ConnectionError))
            raise WorkerUnreachable(_describe(error), sent=not stale, stale=stale) from None
        except BaseException:  # cancelled (the caller gave up): the connection is mid-request
            connection.close()
            raise

    async def _connection(self, fresh: bool = False) -> _Connection:
        if self._closed:
            raise WorkerUnreachable("the session's worker is stopping", sent=False)
        while self._idle and not fresh:
            connection = self._idle.pop()
            if connection.usable():
                connection.reused = True
                return connection
            connection.close()
        try:
            if self.address is not None:
                opening = asyncio.open_connection(self.address.host, self.address.port, limit=HEAD_LIMIT)
            else:
                opening = asyncio.open_unix_connection(str(self.socket_path), limit=HEAD_LIMIT)
            reader, writer = await asyncio.wait_for(opening, CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as error:
            raise WorkerUnreachable(_describe(error), sent=False) from None
        return _Connection(reader, writer)

    async def _read_head(self, connection: _Connection, method: str) -> WorkerReply:
        while True:
            head = await connection.reader.readuntil(b"\r\n\r\n")
            status, headers = _parse_head(head)
            if status >= 200:
                break  # 1xx interim answers are skipped
        names = {name: value for name, value in headers}
        keep_alive = names.get("connection", "").lower() != "close"
        framing: tuple[str, int]
        if method == "HEAD" or status in _NO_BODY:
            framing = ("length", 0)
        elif "chunked" in names.get("transfer-encoding", "").lower():
            framing = ("chunked", 0)
        elif "content-length" in names:
            length = int(names["content-length"])
            if length < 0:
                raise ValueError("negative content-length")
            framing = ("length", length)
        else:
            framing, keep_alive = ("close", 0), False
        return WorkerReply(status, headers, self, connection, framing, keep_alive)

    def _release(self, connection: _Connection) -> None:
        if self._closed:
            connection.close()
        else:
            self._idle.append(connection)

    async def ping(self, timeout: float = 5.0) -> str | None:
        """The worker's `/ping` status (`Healthy`, `HealthyBusy`), or None when it does not answer."""
        try:
            return await asyncio.wait_for(self._ping(), timeout)
        except (WorkerUnreachable, asyncio.TimeoutError, ValueError, AttributeError):
            return None

    async def _ping(self) -> str | None:
        # A new connection: a kept-alive one the worker dropped would read as "not answering".
        reply = await self.send("GET", "/ping", [], b"", fresh=True)
        try:
            chunks = [chunk async for chunk in reply.body]
        finally:
            await reply.close()
        status = json.loads(b"".join(chunks)).get("status")
        return status if isinstance(status, str) else None

    async def close(self) -> None:
        self._closed = True
        for connection in self._idle:
            connection.close()
        self._idle.clear()


def _serialise(
    method: str, path: str, headers: Sequence[tuple[str, str]], body: bytes, secret_line: str | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: worker", f"content-length: {len(body)}"]
    if secret_line is not None:
        lines.append(secret_line)
    for name, value in headers:
        if name.lower() in _NOT_SENT:
            continue
        line = f"{name}: {value}"
        if "\r" in line or "\n" in line or "\0" in line or ":" in name:
            continue  # cannot come from a parsed request; never let it split ours
        lines.append(line)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body


def _parse_head(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    text = head.decode("latin-1")
    status_line, *header_lines = text.split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    status = int(rest[:3])
    headers = []
    for line in header_lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"malformed header line: {line[:80]!r}")
        headers.append((name.strip().lower(), value.strip()))
    return status, headers


async def _chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers: not forwarded
            return
        remaining = size
        while remaining:
            chunk = await reader.read(min(remaining, _READ_SIZE))
            if not chunk:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(chunk)
            yield chunk
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("a chunk did not end with CRLF")


def _describe(error: BaseException) -> str:
    if isinstance(error, asyncio.IncompleteReadError):
        return "the worker closed the connection before answering"
    if isinstance(error, asyncio.LimitOverrunError):
        return f"the worker's response head is over {HEAD_LIMIT} bytes"
    if isinstance(error, asyncio.TimeoutError):
        return f"the worker's socket did not accept a connection within {CONNECT_TIMEOUT:g}s"
    if isinstance(error, ValueError):
        return f"the worker's answer is not valid HTTP: {error}"
    return str(error) or type(error).__name__


__all__ = ["SECRET_HEADER", "WorkerClient", "WorkerReply", "WorkerUnreachable"]
