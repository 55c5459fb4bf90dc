"""A real runtime server for the console's tests, and a client that logs in as a browser would."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from open_agentcore.console import CSRF_HEADER
from tests.server.conftest import KEY_ID, SECRET, Server, server

__all__ = ["KEY_ID", "SECRET", "ConsoleClient", "server"]


class ConsoleClient:
    """An HTTP client holding a console cookie: what the console's JavaScript sends, without a browser."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=60, headers={"origin": url})
        self.csrf = ""

    def login(self, key_id: str = KEY_ID, secret: str = SECRET) -> httpx.Response:
        body = {"accessKeyId": key_id, "secretAccessKey": secret}
        reply = self.http.post("/_agentcore/console/login", json=body)
        if reply.status_code == 200:
            self.csrf = reply.json()["csrfToken"]
        return reply

    def call(self, method: str, path: str, **options: Any) -> httpx.Response:
        """A request as the console makes it: the cookie, its CSRF token, and the console's origin."""
        headers = {CSRF_HEADER: self.csrf, **options.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **options)

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def console(server: Server) -> Iterator[ConsoleClient]:
    client = ConsoleClient(server.url)
    try:
        yield client
    finally:
        client.close()
