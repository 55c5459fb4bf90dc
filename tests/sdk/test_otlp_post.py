"""The span exporter's POST on a plain socket: what reaches the collector, and what its answers mean."""

from __future__ import annotations

import os
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from bedrock_agentcore.runtime.otlp_json import OtlpJsonExporter
from bedrock_agentcore.runtime.otlp_post import CollectorError, post


class Received:
    """A collector on loopback that records each request whole and answers with `answer`."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.url = ""


@pytest.fixture
def collector(request: pytest.FixtureRequest) -> Iterator[Received]:
    received = Received(getattr(request, "param", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"))

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = self.request.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            while len(body) < length:
                body += self.request.recv(65536)
            received.requests.append(head + b"\r\n\r\n" + body)
            self.request.sendall(received.answer)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    received.url = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_post_sends_the_body_and_headers_and_returns_the_status(collector: Received) -> None:
    status = post(collector.url, b'{"resourceSpans": []}', {"authorization": "Bearer t"}, timeout=5)
    assert status == 200
    head, _, body = collector.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/traces HTTP/1.1"
    assert b"authorization: Bearer t" in lines and b"connection: close" in lines
    assert body == b'{"resourceSpans": []}'


@pytest.mark.parametrize(
    "collector", [b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n"], indirect=True
)
def test_post_returns_a_refusal_as_its_status(collector: Received) -> None:
    assert post(collector.url, b"{}", {}, timeout=5) == 401


@pytest.mark.parametrize("collector", [b"SSH-2.0-OpenSSH_9.6\r\n"], indirect=True)
def test_an_answer_that_is_not_http_is_a_collector_error(collector: Received) -> None:
    with pytest.raises(CollectorError, match="not HTTP"):
        post(collector.url, b"{}", {}, timeout=5)


@pytest.mark.parametrize("collector", [b""], indirect=True)
def test_a_connection_closed_without_an_answer_is_a_collector_error(collector: Received) -> None:
    with pytest.raises(CollectorError, match="without an HTTP answer"):
        post(collector.url, b"{}", {}, timeout=5)


def test_configured_headers_cannot_smuggle_lines_or_replace_the_framing(collector: Received) -> None:
    headers = {"x-evil": "a\r\nx-injected: 1", "content-length": "0", "Host": "elsewhere", "x-fine": "yes"}
    assert post(collector.url, b"{}", headers, timeout=5) == 200
    lines = collector.requests[0].partition(b"\r\n\r\n")[0].split(b"\r\n")
    assert not any(line.startswith((b"x-evil", b"x-injected", b"Host: elsewhere")) for line in lines)
    assert b"content-length: 2" in lines and b"content-length: 0" not in lines and b"x-fine: yes" in lines


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/v1/traces", "http:///v1/traces", "not a url"])
def test_a_url_that_is_not_http_with_a_host_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        post(url, b"{}", {}, timeout=5)


def test_nothing_listening_is_an_os_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(OSError):
            post(f"http://127.0.0.1:{port}/v1/traces", b"{}", {}, timeout=5)


def test_the_exporter_goes_through_the_proxy_the_environment_names(
    collector: Received, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The collector stands in for the proxy: a proxied request names the whole URL.
    monkeypatch.setenv("HTTP_PROXY", collector.url.removesuffix("/v1/traces"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector.invalid:4318")
    exporter = OtlpJsonExporter.from_environment(os.environ)
    assert exporter.export([]).name == "SUCCESS"
    assert collector.requests[0].startswith(b"POST http://collector.invalid:4318/v1/traces HTTP/1.1")


def test_without_a_proxy_the_exporter_posts_directly(
    collector: Received, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.removesuffix("/v1/traces"))
    assert OtlpJsonExporter.from_environment(os.environ).export([]).name == "SUCCESS"
    assert collector.requests[0].startswith(b"POST /v1/traces HTTP/1.1\r\nhost: 127.0.0.1:")
