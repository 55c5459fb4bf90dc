"""`agentcore invoke --resume` (`cli/invoke.py`) through the real CLI against a real runtime server:
a streamed answer interrupted with Ctrl-C is finished by `--resume`, every event printed once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import KEY_ID, SECRET, Server, running_server
from tests.server.test_resume import AGENT, Target, go


@dataclass
class Workspace:
    project: Path
    server: Server

    def environment(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.project.parent),
            "AGENTCORE_HOME": str(self.project.parent / "h"), "AGENTCORE_ENDPOINT_URL": self.server.url,
            "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET,
        }  # fmt: skip

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "open_agentcore.cli", *args]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), cwd=self.project, env=self.environment(), capture_output=True, text=True,
            timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, f"agentcore {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout


@pytest.fixture
def workspace() -> Iterator[Workspace]:
    root = Path(tempfile.mkdtemp(prefix="oacr-", dir="/tmp"))
    (root / "project").mkdir()
    (root / "project" / "streamer.py").write_text(AGENT)
    try:
        with running_server(root / "d") as server:
            space = Workspace(root / "project", server)
            space.ok("configure", "--entrypoint", "streamer.py", "--name", "streamer", "--non-interactive")
            space.ok("deploy")
            yield space
    finally:
        shutil.rmtree(root, ignore_errors=True)


def state(space: Workspace) -> dict[str, Any]:
    path = space.project / ".bedrock_agentcore" / "streamer" / "state.json"
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def test_resume_prints_the_rest_of_an_interrupted_stream_once(workspace: Workspace) -> None:
    interrupted = subprocess.Popen(
        workspace.command("invoke", '{"total": 20}', "--session-id", "cli-resume-" + "0" * 24),
        cwd=workspace.project, env=workspace.environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert interrupted.stdout is not None
    printed = [interrupted.stdout.readline() for _ in range(5)]  # the agent holds frame 6 back
    interrupted.send_signal(signal.SIGINT)
    interrupted.communicate(timeout=60)
    assert [json.loads(line)["n"] for line in printed] == [1, 2, 3, 4, 5]
    recorded = state(workspace)
    assert recorded["stream_session_id"] == "cli-resume-" + "0" * 24
    assert recorded["stream_event_id"].endswith(":5")

    target = Target(workspace.server, {"streamer": {"agentRuntimeArn": recorded["runtime_arn"]}})
    assert go(target, recorded["stream_session_id"])  # the agent finished with no client attached
    rest = workspace.ok("invoke", "--resume").splitlines()
    assert [json.loads(line)["n"] for line in rest] == list(range(6, 21))
    assert state(workspace)["stream_event_id"].endswith(":20")
    # Nothing left to print: a second resume prints nothing and succeeds.
    assert workspace.ok("invoke", "--resume") == ""


def test_resume_with_nothing_recorded_says_so(workspace: Workspace) -> None:
    done = workspace.run("invoke", "--resume")
    assert done.returncode == 1 and "nothing to resume" in done.stderr


def test_resume_of_a_stream_whose_session_ended_is_a_one_line_error(workspace: Workspace) -> None:
    session = "cli-ended-" + "0" * 24
    workspace.ok("invoke", '{"total": 3, "hold": false}', "--session-id", session)
    workspace.ok("stop-session")
    done = workspace.run("invoke", "--resume")
    assert done.returncode == 1 and "ResourceNotFoundException" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
