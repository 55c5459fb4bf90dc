"""A traced runtime server, and a tiny OTLP/HTTP collector."""

from __future__ import annotations

import contextlib
import gzip
import http.server
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, wait_until
from tests.server.conftest import Server, running_server


def traced_server(data_dir: Path, **overrides: Any) -> contextlib.AbstractContextManager[Server]:
    """A runtime server (tracing on, its default) whose workers know its real port."""
    return running_server(data_dir, **overrides)


@pytest.fixture
def short_data_dir() -> Iterator[Path]:
    """An empty data dir with a short path (worker sockets live under it), removed afterwards."""
    data_dir = Path(tempfile.mkdtemp(prefix="oact-", dir="/tmp"))
    try:
        yield data_dir
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def server(short_data_dir: Path) -> Iterator[Server]:
    with traced_server(short_data_dir) as running:
        yield running


def traces(server: Server, query: str = "") -> list[dict[str, Any]]:
    reply = server.signed("GET", f"/_agentcore/traces{query}")
    assert reply.status_code == 200, reply.text
    found: list[dict[str, Any]] = reply.json()["traces"]
    return found


def trace(server: Server, trace_id: str) -> dict[str, Any]:
    reply = server.signed("GET", f"/_agentcore/traces/{trace_id}")
    assert reply.status_code == 200, reply.text
    found: dict[str, Any] = reply.json()
    return found


def wait_for_spans(
    server: Server, trace_id: str, predicate: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The trace's spans once `predicate` holds for them (spans are written in batches, off the request)."""

    def ready() -> list[dict[str, Any]] | None:
        reply = server.signed("GET", f"/_agentcore/traces/{trace_id}")
        if reply.status_code != 200:
            return None
        spans: list[dict[str, Any]] = reply.json()["spans"]
        return spans if predicate(spans) else None

    found: list[dict[str, Any]] = wait_until(ready, timeout=30, interval=0.1)
    return found


class Collector:
    """What the test's OTLP/HTTP collector received: (path, headers, body) per POST."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()


@pytest.fixture
def collector() -> Iterator[Collector]:
    """A real OTLP/HTTP receiver on loopback, standing in for Jaeger or an OpenTelemetry Collector."""
    port = free_port()
    received = Collector(f"http://127.0.0.1:{port}")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            with received.lock:
                headers = {name.lower(): value for name, value in self.headers.items()}
                received.posts.append((self.path, headers, body))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def post_spans(server: Server, body: bytes, content_type: str, **headers: str) -> httpx.Response:
    """POST /v1/traces with a worker's credential (in `headers`), or signed when none is given."""
    if "authorization" in headers:
        return httpx.post(
            server.url + "/v1/traces", content=body, headers={"content-type": content_type, **headers}
        )
    from tests.server.conftest import sign

    signed = sign("POST", server.url + "/v1/traces", body, {"content-type": content_type, **headers})
    return httpx.post(server.url + "/v1/traces", content=body, headers=signed)
