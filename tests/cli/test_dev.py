"""`agentcore dev` (`cli/dev.py`, `cli/reloader.py`): a real dev server that reloads when agent.py
changes, moves off a busy port, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from open_agentcore.cli.reloader import python_files
from tests.cli.cli_harness import agentcore, start_agentcore
from tests.conftest import free_port, wait_until

AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    return {"version": VERSION}


VERSION = 1
"""
DevStarter = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="oacd-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An unconfigured directory holding agent.py: `dev` runs it as it is."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "agent.py").write_text(AGENT)
    return root


@pytest.fixture
def dev(home: Path, project: Path, tmp_path: Path) -> Iterator[DevStarter]:
    """Start `agentcore dev ...` in the project; every one is stopped (Ctrl-C, then kill) at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        process = start_agentcore(home, project, "dev", *args, log=tmp_path / f"dev{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def version(port: int) -> int | None:
    try:
        reply = httpx.post(f"http://127.0.0.1:{port}/invocations", json={}, timeout=2, trust_env=False)
    except httpx.HTTPError:
        return None
    return reply.json().get("version") if reply.status_code == 200 else None


def test_dev_reloads_when_the_agent_changes(dev: DevStarter, project: Path) -> None:
    port = free_port()
    server = dev("--port", str(port))
    wait_until(lambda: version(port) == 1, timeout=30)
    agent = project / "agent.py"
    agent.write_text(AGENT.replace("VERSION = 1", "VERSION = 2"))
    wait_until(lambda: version(port) == 2, timeout=30)
    server.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert server.wait(20) == 0
    assert version(port) is None  # nothing is left serving


def test_dev_survives_a_broken_save_and_recovers(dev: DevStarter, project: Path, tmp_path: Path) -> None:
    port = free_port()
    server = dev("--port", str(port))
    wait_until(lambda: version(port) == 1, timeout=30)
    (project / "agent.py").write_text("this is not python\n")
    wait_until(lambda: "agent failed to load" in (tmp_path / "dev0.log").read_text(), timeout=30)
    assert server.poll() is None
    (project / "agent.py").write_text(AGENT.replace("VERSION = 1", "VERSION = 3"))
    wait_until(lambda: version(port) == 3, timeout=30)


def test_dev_moves_to_the_next_free_port_and_says_so(dev: DevStarter, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        dev("--port", str(busy))
        log = tmp_path / "dev0.log"
        said = wait_until(lambda: "instead" in log.read_text() and log.read_text(), timeout=30)
    line = next(line for line in said.splitlines() if "instead" in line)
    assert line.startswith(f"port {busy} is in use")
    moved = int(line.rsplit("using ", 1)[1].split()[0])
    assert moved > busy
    wait_until(lambda: version(moved) == 1, timeout=30)
    printed = wait_until(lambda: "curl" in log.read_text() and log.read_text(), timeout=30)
    assert f"http://127.0.0.1:{moved}/invocations" in printed


def test_dev_without_an_agent_file_is_one_line(home: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    done = agentcore(home, empty, "dev")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "agentcore configure --entrypoint" in done.stderr


def test_the_watcher_skips_virtualenvs_caches_and_hidden_dirs(tmp_path: Path) -> None:
    for relative in (
        "agent.py",
        "pkg/tools.py",
        ".venv/lib/x.py",
        "env/lib/y.py",
        "__pycache__/z.py",
        ".git/h.py",
    ):
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr\n")
    watched = {path.relative_to(tmp_path).as_posix() for path in python_files(tmp_path)}
    assert watched == {"agent.py", "pkg/tools.py"}
