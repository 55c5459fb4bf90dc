""" "My server": `server start` on a non-default port records where it listens, and every command
finds it there; the endpoint precedence; hints that name the right agent and the right command.

One real server (on a free port, never 8900) for the module; the CLI runs as a user runs it, with
no endpoint in its environment unless a test puts one there.
"""

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

from tests.conftest import free_port

AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    return {"agent": "NAME", "got": payload}
"""

CLEARED = (
    "AGENTCORE_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AGENTCORE_ADMIN_ACCESS_KEY_ID", "AGENTCORE_ADMIN_SECRET_ACCESS_KEY",
)  # fmt: skip


@dataclass
class Machine:
    root: Path
    home: Path
    project: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        environment = {**os.environ, "AGENTCORE_HOME": str(self.home), **env}
        for name in CLEARED:
            if name not in env:
                environment.pop(name, None)
        return subprocess.run(
            [sys.executable, "-m", "open_agentcore.cli", *args], cwd=self.project, env=environment,
            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def ok(self, *args: str, **env: str) -> str:
        done = self.run(*args, **env)
        assert done.returncode == 0, f"agentcore {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def error(self, *args: str, **env: str) -> str:
        done = self.run(*args, **env)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1 and lines[0].startswith("agentcore: "), done.stderr
        return lines[0]


@pytest.fixture(scope="module")
def machine() -> Iterator[Machine]:
    root = Path(tempfile.mkdtemp(prefix="oacm-", dir="/tmp"))  # short: worker socket paths
    port = free_port()
    while port == 8900:
        port = free_port()
    space = Machine(root, root / "h", root / "project", port)
    space.project.mkdir()
    for name in ("alpha", "beta"):
        (space.project / f"{name}.py").write_text(AGENT.replace("NAME", name))
    space.ok("server", "start", "--port", str(port), "--warm-pool", "0")
    yield space
    space.run("server", "stop")
    record = space.home / "server" / "server.json"
    if record.exists():
        with contextlib.suppress(OSError, ValueError):
            os.kill(json.loads(record.read_text())["pid"], signal.SIGKILL)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def deployed(machine: Machine) -> dict[str, str]:
    """Two agents configured, beta deployed with --agent (and no endpoint given anywhere)."""
    outputs = {
        "configure alpha": machine.ok("configure", "-e", "alpha.py", "-y"),
        "configure beta": machine.ok("configure", "-e", "beta.py", "--name", "beta", "-y"),
        "deploy beta": machine.ok("deploy", "--agent", "beta"),
    }
    return outputs


def test_server_start_records_its_url_and_pid(machine: Machine) -> None:
    record = json.loads((machine.home / "server" / "server.json").read_text())
    assert record["url"] == machine.url and record["port"] == machine.port
    os.kill(record["pid"], 0)  # the server process itself


def test_server_status_finds_the_recorded_port(machine: Machine) -> None:
    assert f"runtime server running at {machine.url}" in machine.ok("server", "status")


def test_credentials_print_every_variable_for_the_recorded_port(machine: Machine) -> None:
    exports = dict(
        line.removeprefix("export ").split("=", 1)
        for line in machine.ok("server", "credentials").splitlines()
    )
    assert exports["AGENTCORE_ENDPOINT_URL"] == exports["AWS_ENDPOINT_URL"] == machine.url
    assert exports["AWS_REGION"] == exports["AWS_DEFAULT_REGION"] == "us-east-1"
    assert exports["AWS_ACCESS_KEY_ID"].startswith("AKIA") and exports["AWS_SECRET_ACCESS_KEY"]


def test_deploy_uses_the_recorded_server_and_streams_the_build_log(
    deployed: dict[str, str], machine: Machine
) -> None:
    out = deployed["deploy beta"]
    assert "starting the local runtime server" not in out
    assert f"uploading to {machine.url}" in out
    # A build log line, with the seconds since the build started, between "building" and READY.
    building, ready = out.index("building version 1"), out.index("is READY")
    log_lines = [line for line in out[building:ready].splitlines() if "│" in line]
    assert log_lines and all(re.match(r"^\s+\d+\.\d+s │ \S", line) for line in log_lines), out
    assert any("requirements" in line for line in log_lines), out


def test_configure_hint_names_the_agent_when_several_are_configured(deployed: dict[str, str]) -> None:
    assert "next: agentcore deploy        " in deployed["configure alpha"]  # one agent: no --agent needed
    assert "next: agentcore deploy --agent beta " in deployed["configure beta"]


def test_deploy_hint_invokes_exactly_that_agent(deployed: dict[str, str], machine: Machine) -> None:
    hint = next(line for line in deployed["deploy beta"].splitlines() if line.startswith("next: "))
    command = hint.removeprefix("next: ").split("  ·  ")[0]
    assert command == 'agentcore invoke \'{"prompt": "hello"}\' --agent beta'
    answered = json.loads(machine.ok("invoke", '{"prompt": "hello"}', "--agent", "beta"))
    assert answered == {"agent": "beta", "got": {"prompt": "hello"}}


def test_stop_session_twice_says_it_is_already_stopped(deployed: dict[str, str], machine: Machine) -> None:
    machine.ok("invoke", "{}", "--agent", "beta", "--session-id", "to-stop-twice")
    assert machine.ok("stop-session", "--agent", "beta").strip() == "stopped session to-stop-twice"
    again = machine.ok("stop-session", "--agent", "beta")
    assert "to-stop-twice is already stopped" in again and "no invoke has used one" not in again
    explicit = machine.ok("stop-session", "--agent", "beta", "-s", "to-stop-twice")
    assert "has no running worker" in explicit


def test_agentcore_endpoint_url_wins_over_aws_endpoint_url(
    deployed: dict[str, str], machine: Machine
) -> None:
    dead_a, dead_b = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    both = machine.error("status", "--agent", "beta", AGENTCORE_ENDPOINT_URL=dead_a, AWS_ENDPOINT_URL=dead_b)
    assert f"no runtime server answers at {dead_a}" in both
    aws_only = machine.error("status", "--agent", "beta", AWS_ENDPOINT_URL=dead_b)
    assert f"no runtime server answers at {dead_b}" in aws_only


def test_the_endpoint_url_flag_wins_over_the_environment(deployed: dict[str, str], machine: Machine) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    env = {"AGENTCORE_ENDPOINT_URL": dead, "AWS_ENDPOINT_URL": dead}
    for argv in (["--endpoint-url", machine.url, "status", "--agent", "beta"],
                 ["status", "--agent", "beta", "--endpoint-url", machine.url]):  # fmt: skip
        assert f"server {machine.url}" in machine.ok(*argv, **env)
    flagged_dead = machine.error("status", "--agent", "beta", "--endpoint-url", dead)
    assert f"no runtime server answers at {dead}" in flagged_dead


def test_deploy_streams_uvs_lines_while_building(deployed: dict[str, str], machine: Machine) -> None:
    gamma = machine.project / "gamma"
    gamma.mkdir()
    (gamma / "agent.py").write_text(AGENT.replace("NAME", "gamma"))
    (gamma / "requirements.txt").write_text("open-agentcore-no-such-package-xyz==1.0\n")
    machine.ok("configure", "-e", "gamma/agent.py", "--name", "gamma", "-y")
    failed = machine.run("deploy", "--agent", "gamma")
    assert failed.returncode == 1 and "deploy failed" in failed.stderr
    streamed = [line for line in failed.stdout.splitlines() if "│" in line]
    assert any("open-agentcore-no-such-package-xyz" in line for line in streamed), failed.stdout


def test_a_down_server_hint_starts_it_on_its_own_port(deployed: dict[str, str], machine: Machine) -> None:
    machine.ok("server", "stop")
    try:
        start = f"agentcore server start --port {machine.port}"
        assert machine.error("invoke", "{}", "--agent", "beta").endswith(f"(start it: {start})")
        down = machine.run("server", "status")
        assert down.returncode == 1 and f"(start it: {start})" in down.stdout
    finally:
        machine.ok("server", "start", "--port", str(machine.port), "--warm-pool", "0")
    # The same data dir again: the runtime deployed before is there, on the same port.
    assert json.loads(machine.ok("invoke", "{}", "--agent", "beta"))["agent"] == "beta"
