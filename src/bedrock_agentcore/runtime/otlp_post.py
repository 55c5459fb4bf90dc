"""One HTTP/1.1 POST to an OTLP collector on a plain socket: what the JSON span exporter sends.

Not `urllib.request` or `http.client`: a forked worker's pages stay shared with its siblings until
it first runs code, and those two run about a thousand functions on a first request (the opener's
handlers, proxy lookups, response headers parsed by the `email` package), which unshared about
0.8 MiB of every session. A collector's answer needs only its status line. The connection is
made per batch and closed (`connection: close`); `https` URLs are wrapped in TLS with the
default context (the system's certificates). Where the environment sets a proxy for the URL's
scheme, `post_via_proxy` sends it with `urllib.request` instead, which honours `no_proxy` too.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_HEAD = 64 * 1024  # a status line longer than this is no collector's
_MAX_DRAIN = 1024 * 1024
_OWN_HEADERS = {"host", "content-length", "connection", "transfer-encoding"}
_PROXY_VARIABLES = {
    "http": ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"),
    "https": ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"),
}


class CollectorError(OSError):
    """The collector could not be reached, or did not answer with an HTTP status line."""


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
    """POST `body` to `url` with `headers` (no `host`, `content-length` or `connection`: set
    here); the answer's status code. `ValueError` for a URL that is not http(s) with a host;
    `OSError` (`CollectorError` among them) when no status came back."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an http(s) URL with a host: {url!r}")
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"POST {target} HTTP/1.1", f"host: {parts.netloc.rpartition('@')[2]}",
             f"content-length: {len(body)}", "connection: close"]  # fmt: skip
    lines += [f"{name}: {value}" for name, value in headers.items() if _fits(name, value)]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with socket.create_connection((parts.hostname, port), timeout) as plain:
        connection = _tls(plain, parts.hostname) if parts.scheme == "https" else plain
        try:
            connection.sendall(request)
            return _status(connection)
        finally:
            if connection is not plain:
                connection.close()


def proxy_configured(url: str, environ: Mapping[str, str]) -> bool:
    """Whether `environ` sets a proxy for `url`'s scheme (then use `post_via_proxy`)."""
    names = _PROXY_VARIABLES.get(urlsplit(url).scheme, ())
    return any(environ.get(name) for name in names)


def post_via_proxy(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
    """`post` through the environment's proxy (unless `no_proxy` names the host), with urllib."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310 - the configured collector
            reply.read()
            return int(reply.status)
    except urllib.error.HTTPError as refusal:
        return refusal.code


def _fits(name: str, value: str) -> bool:
    """Whether a configured header may be sent: not one set here, no line break (no smuggling)."""
    return name.lower() not in _OWN_HEADERS and not any(c in name + value for c in "\r\n")


def _tls(plain: socket.socket, hostname: str) -> socket.socket:
    import ssl  # only for https collectors: the runtime server's is plain http on its own host

    return ssl.create_default_context().wrap_socket(plain, server_hostname=hostname)


def _status(connection: socket.socket) -> int:
    """The status code of the answer on `connection`, whose rest is read and dropped."""
    head = b""
    while b"\r\n" not in head:
        chunk = connection.recv(4096)
        if not chunk or len(head) > _MAX_HEAD:
            raise CollectorError("the collector closed the connection without an HTTP answer")
        head += chunk
    version, _, rest = head.partition(b"\r\n")[0].partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/") or not code.isdigit():
        raise CollectorError(f"the collector's answer is not HTTP: {head[:80]!r}")
    drained = len(head)
    while drained < _MAX_DRAIN and (chunk := connection.recv(65536)):
        drained += len(chunk)
    return int(code)


__all__ = ["CollectorError", "post", "post_via_proxy", "proxy_configured"]
