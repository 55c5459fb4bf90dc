"""Headless Chromium (Debian's package) driven over the DevTools protocol, for the console's tests.

No WebDriver and nothing downloaded: Chromium listens for DevTools on a loopback port, and each
test gets its own browser context (its own cookies) and page. Chromium is kept off the network:
every host name but 127.0.0.1 resolves to nothing, and its background services are switched off.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import websockets.sync.client

from tests.conftest import wait_until

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # the tests run as root, where Chromium's own sandbox cannot start
    "--disable-gpu",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-breakpad",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,CertificateTransparencyComponentUpdater",
    "--metrics-recording-only",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-pings",
    "--password-store=basic",
    "--use-mock-keychain",
    "--window-size=1360,900",
    "--hide-scrollbars",
    "about:blank",
)
_LISTENING = re.compile(r"DevTools listening on (ws://127\.0\.0\.1:\d+/\S+)")


def chromium_path() -> str:
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return found
    raise RuntimeError("no Chromium here: scripts/install-test-deps.sh installs Debian's chromium")


class DevTools:
    """One DevTools connection: commands answered in order, events kept for whoever asks."""

    def __init__(self, url: str) -> None:
        self._stack = contextlib.ExitStack()
        self._socket = self._stack.enter_context(
            websockets.sync.client.connect(url, max_size=64 * 1024 * 1024, open_timeout=30)
        )
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, session: str | None = None, timeout: float = 30, **params: Any) -> Any:
        with self._lock:
            number = next(self._ids)
            message: dict[str, Any] = {"id": number, "method": method, "params": params}
            if session:
                message["sessionId"] = session
            self._socket.send(json.dumps(message))
            while True:
                reply = json.loads(self._socket.recv(timeout=timeout))
                if reply.get("id") != number:
                    self.events.append(reply)
                    continue
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def close(self) -> None:
        self._stack.close()


class Page:
    """A tab in its own browser context: navigate, evaluate, wait for a condition, screenshot."""

    def __init__(self, tools: DevTools, context: str, target: str, session: str) -> None:
        self.tools, self.context, self.target, self.session = tools, context, target, session

    def send(self, method: str, **params: Any) -> Any:
        return self.tools.send(method, self.session, **params)

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited when it is a promise)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails'].get('exception', result)}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20) -> Any:
        """Poll until the expression is truthy in the page; fail after `timeout` seconds."""
        try:
            return wait_until(lambda: self.evaluate(expression), timeout=timeout, interval=0.05)
        except AssertionError:
            shown = str(self.evaluate("document.body?.innerText ?? ''"))[:1500]
            errors = list(console_errors(self))
            message = f"not true within {timeout}s: {expression}\npage: {shown}\nerrors: {errors}"
            raise AssertionError(message) from None

    def text(self, selector: str) -> str:
        return str(self.evaluate(f"document.querySelector({json.dumps(selector)})?.innerText ?? ''"))

    def fill(self, selector: str, value: str) -> None:
        self.wait_for(f"!!document.querySelector({json.dumps(selector)})")
        script = (
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            f" e.value = {json.dumps(value)};"
            " e.dispatchEvent(new Event('input', {bubbles: true}));"
            " e.dispatchEvent(new Event('change', {bubbles: true})); })()"
        )
        self.evaluate(script)

    def click(self, selector: str) -> None:
        self.wait_for(f"!!document.querySelector({json.dumps(selector)})")
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
        path.write_bytes(base64.b64decode(data))
        return path


class Chromium:
    """A headless Chromium process with a fresh profile, stopped (and its profile removed) on close."""

    def __init__(self) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="oac-chromium-"))
        self.process = subprocess.Popen(
            [chromium_path(), f"--user-data-dir={self.profile}", *FLAGS],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.tools = DevTools(self._endpoint())

    def _endpoint(self) -> str:
        assert self.process.stderr is not None
        lines: list[str] = []
        for line in self.process.stderr:
            lines.append(line)
            if found := _LISTENING.search(line):
                # Keep reading stderr so Chromium never blocks on a full pipe.
                threading.Thread(target=self.process.stderr.read, daemon=True).start()
                return found.group(1)
            if len(lines) > 200:
                break
        self.close()
        raise RuntimeError("Chromium did not start:\n" + "".join(lines[-20:]))

    def new_page(self) -> Page:
        context = self.tools.send("Target.createBrowserContext")["browserContextId"]
        target = self.tools.send("Target.createTarget", url="about:blank", browserContextId=context)[
            "targetId"
        ]
        session = self.tools.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        page = Page(self.tools, context, target, session)
        page.send("Page.enable")
        page.send("Runtime.enable")
        return page

    def close_page(self, page: Page) -> None:
        self.tools.send("Target.closeTarget", targetId=page.target)
        self.tools.send("Target.disposeBrowserContext", browserContextId=page.context)

    def close(self) -> None:
        try:
            if hasattr(self, "tools"):
                self.tools.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)
            shutil.rmtree(self.profile, ignore_errors=True)


def console_errors(page: Page) -> Iterator[str]:
    """Uncaught exceptions the page has thrown so far (from the events DevTools sent)."""
    for event in page.tools.events:
        if event.get("sessionId") == page.session and event.get("method") == "Runtime.exceptionThrown":
            yield json.dumps(event["params"]["exceptionDetails"])[:500]
