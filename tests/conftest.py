"""Fixtures shared by every suite: free loopback ports, real uvicorn servers, agent processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

REPO = Path(__file__).resolve().parent.parent


# A test run started as a background job of a non-interactive shell (`.ci/run &`) inherits SIGINT
# ignored, and so would every `agentcore` process the tests start (an ignored signal stays ignored
# across exec): the tests that press Ctrl-C need the default, whoever started the run.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> socket.socket:
    """A TCP listener on 127.0.0.1:`port` that accepts nothing (connections queue): something that
    answers at an address, such as a Ray head's."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    return listener


def accepts(host: str, port: int) -> bool:
    """Whether something accepts a TCP connection at `host`:`port` now (within 2 s)."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


@contextlib.contextmanager
def serve_in_thread(app: Any, **config: Any) -> Iterator[str]:
    """Serve an ASGI app with a real uvicorn server on a loopback port (`port=`, or a free one);
    yields its base URL."""
    port = int(config.pop("port", None) or free_port())
    options: dict[str, Any] = {"host": "127.0.0.1", "port": port, "log_level": "warning", "lifespan": "on"}
    options.update(config)
    with serve_config_in_thread(uvicorn.Config(app, **options)) as url:
        yield url


@contextlib.contextmanager
def serve_config_in_thread(config: uvicorn.Config) -> Iterator[str]:
    """Run a real uvicorn server for `config` (its host must be 127.0.0.1) in a thread; yields its
    base URL, and stops it afterwards."""
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=10)
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def serve() -> Callable[..., contextlib.AbstractContextManager[str]]:
    """`with serve(app) as url:` a real uvicorn server in a thread, stopped afterwards."""
    return serve_in_thread


class AgentProcess:
    """An agent script running as a real process on a free port (its `app.run()` honours `PORT`)."""

    def __init__(self, script: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {**os.environ, "PORT": str(self.port), "PYTHONUNBUFFERED": "1"}
        environment.update(env or {})
        # Logs go to a temporary file, never beside the script (examples/ is part of the repo).
        handle, name = tempfile.mkstemp(prefix=f"agent-{self.port}-", suffix=".log")
        self.log_path = Path(name)
        self._log = os.fdopen(handle, "wb")
        self.process = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=str(cwd or script.parent),
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 20) -> AgentProcess:
        def healthy() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"agent exited with {self.process.returncode}:\n{self.log()}")
            try:
                return httpx.get(self.url + "/ping", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=timeout, interval=0.05)
        return self

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        self.log_path.unlink(missing_ok=True)
        return self.process.returncode


@pytest.fixture
def agent_process() -> Iterator[Callable[..., AgentProcess]]:
    """Start agent scripts as real processes; every one is stopped at the end of the test."""
    started: list[AgentProcess] = []

    def start(script: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> AgentProcess:
        agent = AgentProcess(script, env=env, cwd=cwd)
        started.append(agent)
        return agent.wait_ready()

    yield start
    for agent in started:
        agent.stop()
