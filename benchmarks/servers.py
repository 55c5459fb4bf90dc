"""Starting an agent under uvicorn, pinned to core 0, with the same settings for every contender."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from environments import Environment

AGENTS = Path(__file__).resolve().parent / "agents"
SERVER_CORE = "0"
UVICORN_SETTINGS = ["--http", "h11", "--loop", "asyncio", "--log-level", "warning", "--no-access-log"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running agent server: its port, process and how long it took to answer `/ping`."""

    port: int
    process: subprocess.Popen[bytes]
    startup_seconds: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1])


def _pings(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        connection.request("GET", "/ping")
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


@contextmanager
def serving(environment: Environment, target: str, timeout: float = 30) -> Iterator[Server]:
    """Run `python -m uvicorn agents.<target>` in `environment`; stopped on exit, always."""
    port = free_port()
    command = [
        "taskset", "-c", SERVER_CORE, str(environment.python), "-m", "uvicorn", target,
        "--port", str(port), *UVICORN_SETTINGS,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(AGENTS)}
    # A file, not a pipe: an unread pipe fills up and then blocks a server that logs per request.
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=AGENTS, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        while not _pings(port):
            if process.poll() is not None:
                raise RuntimeError(f"{target} in {environment.name} exited: {_tail(log)}")
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"{target} in {environment.name} did not answer /ping within {timeout}s")
            time.sleep(0.002)
        yield Server(port, process, time.perf_counter() - started)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def _tail(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-2000:]
