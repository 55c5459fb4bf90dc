"""`agentcore logs` (`cli/logs.py`) through the real CLI against a real runtime server: JSON lines
rendered as time, level and message, tracebacks as tracebacks, `--json`, `--follow`, and what it
says when there is nothing to show."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_until

AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    if payload.get("fail"):
        raise ValueError("failed on purpose")
    print(f"said {payload.get('say')}", flush=True)
    return {"ok": True}
"""


@dataclass
class Deployed:
    project: Path
    home: Path
    port: int
    before_any_session: subprocess.CompletedProcess[str]

    def environment(self) -> dict[str, str]:
        environment = {
            **os.environ,
            "AGENTCORE_HOME": str(self.home),
            "AGENTCORE_ENDPOINT_URL": f"http://127.0.0.1:{self.port}",
        }
        for name in (
            "AGENTCORE_ADMIN_ACCESS_KEY_ID",
            "AGENTCORE_ADMIN_SECRET_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
        ):
            environment.pop(name, None)
        return environment

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "open_agentcore.cli", *args]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), cwd=self.project, env=self.environment(), capture_output=True, text=True,
            timeout=300, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, f"agentcore {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployed]:
    """The agent deployed to the embedded server the CLI starts; `logs` run once before any invoke."""
    # Short: worker sockets live under AGENTCORE_HOME, and unix socket paths max out at 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="oacl-", dir="/tmp"))
    (root / "p").mkdir()
    (root / "p" / "agent.py").write_text(AGENT)
    space = Deployed(root / "p", root / "h", free_port(), subprocess.CompletedProcess([], 0))
    try:
        space.ok("configure", "--entrypoint", "agent.py", "--name", "logger", "--non-interactive")
        space.ok("deploy")
        space.before_any_session = space.run("logs")
        yield space
    finally:
        space.run("server", "stop")
        pid_file = space.home / "server" / "server.pid"
        if pid_file.exists():
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


def test_no_session_yet_is_said_on_stderr_with_exit_0(deployed: Deployed) -> None:
    done = deployed.before_any_session
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "no sessions yet" in done.stderr and "agentcore invoke" in done.stderr


def test_a_session_without_a_log_is_said_on_stderr_with_exit_0(deployed: Deployed) -> None:
    done = deployed.run("logs", "--session-id", "never-used")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and "session never-used has no log yet" in done.stderr


def test_json_lines_render_as_time_level_message_with_the_traceback(deployed: Deployed) -> None:
    failed = deployed.run("invoke", '{"fail": true}', "--session-id", "tb")
    assert failed.returncode == 1
    shown = deployed.ok("logs", "--session-id", "tb")
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} ERROR Invocation failed", shown, re.MULTILINE), shown
    assert "Traceback (most recent call last):\n" in shown
    assert re.search(r'^  File ".*agent\.py", line \d+, in invoke$', shown, re.MULTILINE), shown
    assert "\nValueError: failed on purpose\n" in shown
    assert "stackTrace" not in shown and '"level"' not in shown


def test_json_prints_the_lines_as_stored(deployed: Deployed) -> None:
    deployed.run("invoke", '{"fail": true}', "--session-id", "raw")
    lines = deployed.ok("logs", "--session-id", "raw", "--json").splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    failure = next(record for record in records if record.get("message", "").startswith("Invocation failed"))
    assert failure["level"] == "ERROR" and isinstance(failure["stackTrace"], list)
    assert failure["sessionId"] == "raw"


def test_follow_prints_a_line_written_after_it_started(deployed: Deployed, tmp_path: Path) -> None:
    deployed.ok("invoke", '{"say": "before"}', "--session-id", "followed")
    output = tmp_path / "follow.out"
    with output.open("w") as out:
        follower = subprocess.Popen(
            deployed.command("logs", "--follow", "--session-id", "followed"), cwd=deployed.project,
            env=deployed.environment(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        wait_until(lambda: "said before" in output.read_text(), timeout=60)
        assert "said after" not in output.read_text()
        deployed.ok("invoke", '{"say": "after"}', "--session-id", "followed")
        wait_until(lambda: "said after" in output.read_text(), timeout=60)
        assert output.read_text().count("said before") == 1  # what it printed is not printed again
        follower.send_signal(signal.SIGINT)
        assert follower.wait(30) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
