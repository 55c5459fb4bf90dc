"""A real runtime server for the console's tests, and a client that logs in as a browser would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from open_agentcore.console import CSRF_HEADER
from tests.console.browser import Chromium, Page, console_errors
from tests.server.conftest import KEY_ID, SECRET, Server, server

__all__ = ["KEY_ID", "SECRET", "ConsoleClient", "log_in", "server"]


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


SCREENSHOTS: list[Path] = []


@pytest.fixture(scope="session")
def chromium() -> Iterator[Chromium]:
    browser = Chromium()
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-screenshots")


@pytest.fixture
def page(chromium: Chromium) -> Iterator[Page]:
    opened = chromium.new_page()
    try:
        yield opened
        errors = list(console_errors(opened))
        assert not errors, f"the console threw: {errors}"
    finally:
        chromium.close_page(opened)


@pytest.fixture
def shoot(page: Page, screenshot_dir: Path) -> Callable[[str], Path]:
    """Save a screenshot of the page under the session's screenshot directory, listed at the end."""

    def take(name: str) -> Path:
        path = page.screenshot(screenshot_dir / f"{name}.png")
        SCREENSHOTS.append(path)
        return path

    return take


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SCREENSHOTS:
        terminalreporter.write_sep("-", "console screenshots")
        for path in SCREENSHOTS:
            terminalreporter.write_line(str(path))


def log_in(page: Page, url: str, key_id: str = KEY_ID, secret: str = SECRET) -> None:
    """Open the console and sign in through its form, as a person would."""
    page.goto(f"{url}/_agentcore/console/")
    page.fill("#access-key-id", key_id)
    page.fill("#secret-access-key", secret)
    page.click("#login-submit")
    page.wait_for("!document.getElementById('nav').hidden")
