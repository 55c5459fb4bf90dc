"""Every example, deployed to one runtime server with the CLI and invoked as a user would."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port

EXAMPLES = REPO / "examples"


class Deployer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.environment = {
            **os.environ,
            "AGENTCORE_HOME": str(root / "h"),
            "AGENTCORE_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        }
        for name in ("AGENTCORE_ADMIN_ACCESS_KEY_ID", "AGENTCORE_ADMIN_SECRET_ACCESS_KEY"):
            self.environment.pop(name, None)

    def agentcore(self, project: Path, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "open_agentcore.cli", *args], cwd=project, env=self.environment,
            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert done.returncode == 0, f"agentcore {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def deploy(self, example: str, entrypoint: str = "agent.py") -> Path:
        project = self.root / example
        shutil.copytree(EXAMPLES / example, project)
        self.agentcore(project, "configure", "--entrypoint", entrypoint, "--non-interactive")
        assert "is READY" in self.agentcore(project, "deploy")
        return project


@pytest.fixture(scope="module")
def deployer() -> Iterator[Deployer]:
    root = Path(tempfile.mkdtemp(prefix="oace-", dir="/tmp"))  # short: unix socket paths are limited
    deployer = Deployer(root)
    yield deployer
    with contextlib.suppress(Exception):
        deployer.agentcore(root, "server", "stop")
    pid_file = root / "h" / "server" / "server.pid"
    if pid_file.exists():
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    shutil.rmtree(root, ignore_errors=True)


def test_hello(deployer: Deployer) -> None:
    project = deployer.deploy("hello")
    assert json.loads(deployer.agentcore(project, "invoke", '{"name": "Ada"}')) == {
        "message": "Hello, Ada!", "visit": 1,
    }  # fmt: skip


def test_session_aware(deployer: Deployer) -> None:
    project = deployer.deploy("session_aware")
    first = json.loads(deployer.agentcore(project, "invoke", "{}", "--session-id", "alice"))
    second = json.loads(deployer.agentcore(project, "invoke", "{}"))  # the session is sticky
    other = json.loads(deployer.agentcore(project, "invoke", "{}", "--session-id", "bob"))
    assert (first["count"], second["count"], other["count"]) == (1, 2, 1)
    assert second["session_id"] == "alice"


def test_streaming_both_kinds(deployer: Deployer) -> None:
    project = deployer.deploy("streaming")
    lines = deployer.agentcore(project, "invoke", '{"prompt": "tokens stream as made"}').splitlines()
    assert {"token": "tokens"} in [json.loads(line) for line in lines]
    shutil.rmtree(project)
    project = deployer.deploy("streaming", "sync_agent.py")
    events = json.loads(deployer.agentcore(project, "invoke", '{"prompt": "one two"}', "--json"))["events"]
    assert events[-1]["done"] is True


def test_websocket_echo(deployer: Deployer) -> None:
    project = deployer.deploy("websocket_echo")
    out = deployer.agentcore(project, "invoke", '{"echo": "me"}', "--ws", "--timeout", "3")
    assert '{"echo": "me"}' in out


def test_async_task(deployer: Deployer) -> None:
    project = deployer.deploy("async_task")
    started = json.loads(deployer.agentcore(project, "invoke", '{"action": "start", "seconds": 1}'))
    assert started["started"]
    status = json.loads(deployer.agentcore(project, "invoke", '{"action": "status"}'))
    assert "running" in status


def test_middleware(deployer: Deployer) -> None:
    project = deployer.deploy("middleware")
    assert json.loads(deployer.agentcore(project, "invoke", '{"prompt": "hi"}')) == {"echo": {"prompt": "hi"}}


# Its deploy installs strands-agents from PyPI and its first call imports it: minutes on a loaded machine.
@pytest.mark.timeout(600)
def test_strands_agent_streams_its_events(deployer: Deployer) -> None:
    # strands-agents is installed from PyPI into the agent's own environment by the server.
    project = deployer.deploy("strands")
    events = json.loads(deployer.agentcore(project, "invoke", '{"prompt": "count these words"}', "--json"))
    assert events["contentType"].startswith("text/event-stream")
    assert len(events["events"]) > 1
