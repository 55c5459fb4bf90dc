"""A worker's readiness probe: `GET /ping` on its unix socket, as plainly as HTTP allows.

Run once or more for every new worker before its session's first call: an HTTP client library
would spend a millisecond or more of the server's event loop on each probe (a client, a transport,
a pool), which a new session waits for.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

_REQUEST = b"GET /ping HTTP/1.1\r\nhost: worker\r\nconnection: close\r\n\r\n"
_STATUS_LINE_LIMIT = 1024


async def ping(socket_path: Path) -> int:
    """The status code of the worker's answer to `GET /ping` (0 when the answer is no HTTP);
    `OSError` when its socket refuses the connection or closes it first."""
    reader, writer = await asyncio.open_unix_connection(str(socket_path), limit=_STATUS_LINE_LIMIT)
    try:
        writer.write(_REQUEST)
        await writer.drain()
        line = await reader.readline()
    finally:
        writer.close()
    if not line:
        raise ConnectionResetError("the worker closed the connection without answering")
    parts = line.split()
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return 0


__all__ = ["ping"]
