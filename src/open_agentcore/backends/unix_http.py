"""HTTP clients for workers' unix sockets.

httpx builds a TLS context for every transport and loads the system's CA bundle into it, about
45 ms and 0.9 MiB each, though a unix socket never carries TLS. One shared context without
certificates is handed to every transport instead.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

_NO_TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def unix_transport(socket_path: Path) -> httpx.AsyncHTTPTransport:
    """A transport to a worker's unix socket, cheap to create."""
    return httpx.AsyncHTTPTransport(uds=str(socket_path), verify=_NO_TLS)


__all__ = ["unix_transport"]
