"""Local mode (`cli/local.py`, `cli/ports.py`): the agent as a real process on 127.0.0.1, found,
replaced and stopped through its recorded state; real HTTP to it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from open_agentcore.cli.local import stop_local
from open_agentcore.cli.project import AgentConfig, AgentState, Project
from tests.cli.cli_harness import agentcore, start_agentcore
from tests.conftest import free_port, wait_until

ECHO_AGENT = """
import os
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    if payload.get("exit") is not None:
        os._exit(payload["exit"])
    return {"echo": payload, "greeting": os.environ.get("GREETING")}
"""


@pytest.fixture
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="oacl-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A configured project with one agent, `hello`; any local agent it left running is killed."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "agent.py").write_text(ECHO_AGENT)
    Project(root, {"hello": AgentConfig(name="hello", entrypoint="agent.py")}, "hello").save()
    yield root
    loaded = Project.load(root)
    stop_local(loaded, loaded.agents["hello"])  # signals only a process that is still our launcher


def state_of(root: Path) -> AgentState:
    return Project.load(root).state("hello")


def invoke(port: int, payload: dict[str, object]) -> httpx.Response:
    return httpx.post(f"http://127.0.0.1:{port}/invocations", json=payload, timeout=10, trust_env=False)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def listening(port: int | None = None) -> Iterator[int]:
    """Hold a loopback port (a free one unless given) with a listening socket of this process."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port or 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_deploy_local_serves_the_agent_detached_and_records_it(home: Path, project: Path) -> None:
    port = free_port()
    done = agentcore(home, project, "local-deploy", "--port", str(port), "--env", "GREETING=hi")
    assert done.returncode == 0, done.stderr
    assert f"http://127.0.0.1:{port}" in done.stdout
    assert "agentcore invoke" in done.stdout and "curl" in done.stdout
    state = state_of(project)
    assert (state.mode, state.local_port) == ("local", port)
    assert state.local_pid is not None and alive(state.local_pid)
    # The CLI has exited; the agent lives on and answers.
    assert invoke(port, {"prompt": "hello"}).json() == {"echo": {"prompt": "hello"}, "greeting": "hi"}
    assert (project / ".bedrock_agentcore" / "hello" / "local.log").exists()


def test_stop_local_stops_the_process_and_clears_the_state(home: Path, project: Path) -> None:
    port = free_port()
    assert agentcore(home, project, "local-deploy", "--port", str(port)).returncode == 0
    pid = state_of(project).local_pid
    assert pid is not None
    stopped = agentcore(home, project, "local-stop")
    assert stopped.stdout.strip() == "stopped"
    wait_until(lambda: not alive(pid), timeout=15)
    assert not answers(port)
    state = state_of(project)
    assert (state.mode, state.local_port, state.local_pid) == (None, None, None)
    assert agentcore(home, project, "local-stop").stdout.strip() == "nothing was running"


def test_deploying_again_replaces_the_previous_process(home: Path, project: Path) -> None:
    port = free_port()
    assert agentcore(home, project, "local-deploy", "--port", str(port)).returncode == 0
    first = state_of(project).local_pid
    again = agentcore(home, project, "local-deploy", "--port", str(port))
    assert again.returncode == 0, again.stderr
    assert "stopped the previous local process" in again.stdout
    second = state_of(project).local_pid
    assert first is not None and second is not None and second != first
    assert not alive(first)
    assert invoke(port, {"n": 2}).json()["echo"] == {"n": 2}


def test_an_explicit_port_in_use_names_its_holder(home: Path, project: Path) -> None:
    with listening() as port:
        done = agentcore(home, project, "local-deploy", "--port", str(port))
    assert done.returncode == 1
    line = done.stderr.strip()
    assert "\n" not in line
    assert f"port {port} is in use by pid {os.getpid()}" in line  # this test process holds it
    assert state_of(project).local_pid is None


def test_the_default_port_moves_to_the_next_free_one_when_taken(home: Path, project: Path) -> None:
    # Whether or not something else already holds 8080, it is taken while the command runs.
    with contextlib.ExitStack() as stack:
        with contextlib.suppress(OSError):
            stack.enter_context(listening(8080))
        done = agentcore(home, project, "local-deploy")
    assert done.returncode == 0, done.stderr
    port = state_of(project).local_port
    assert port is not None and port > 8080
    assert "port 8080 is in use" in done.stdout and f"using {port} instead" in done.stdout
    assert invoke(port, {}).status_code == 200


def test_an_agent_that_fails_to_start_shows_its_log_and_exits_1(home: Path, project: Path) -> None:
    (project / "agent.py").write_text("raise RuntimeError('no model configured')\n")
    done = agentcore(home, project, "local-deploy", "--port", str(free_port()))
    assert done.returncode == 1
    assert "RuntimeError: no model configured" in done.stderr  # the log's last lines
    assert "exited with code 3 before answering /ping" in done.stderr.strip().splitlines()[-1]
    assert state_of(project).local_pid is None


def test_stop_local_leaves_a_reused_pid_alone(home: Path, project: Path) -> None:
    # The recorded pid now belongs to something that is not our launcher.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        Project.load(project).save_state(
            "hello", AgentState(mode="local", local_port=8080, local_pid=bystander.pid)
        )
        assert agentcore(home, project, "local-stop").stdout.strip() == "nothing was running"
        assert bystander.poll() is None
        assert state_of(project).local_pid is None
    finally:
        bystander.kill()
        bystander.wait()


def test_foreground_runs_attached_and_ctrl_c_stops_it(home: Path, project: Path, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "fg.log"
    cli = start_agentcore(home, project, "local-deploy", "--foreground", "--port", str(port), log=log)
    try:
        wait_until(lambda: state_of(project).local_pid is not None and answers(port), timeout=30)
        pid = state_of(project).local_pid
        assert pid is not None
        cli.send_signal(signal.SIGINT)
        assert cli.wait(30) == 0, log.read_text()
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert not alive(pid)
    assert not answers(port)
    assert state_of(project).local_pid is None
    assert "Ctrl-C stops it" in log.read_text()


def test_foreground_passes_the_agent_exit_code_through(home: Path, project: Path, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "fg.log"
    cli = start_agentcore(home, project, "local-deploy", "--foreground", "--port", str(port), log=log)
    try:
        # The CLI's own line, not /ping: an agent that exits before the CLI saw it answer is a start failure.
        wait_until(lambda: "Ctrl-C stops it" in log.read_text(), timeout=30)
        with contextlib.suppress(httpx.HTTPError):  # the agent exits mid-request
            invoke(port, {"exit": 7})
        assert cli.wait(30) == 7, log.read_text()
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


def test_requirements_elsewhere_build_a_cached_environment(home: Path, project: Path) -> None:
    (project / "deps").mkdir()
    (project / "deps" / "agent-deps.txt").write_text("six==1.16.0\n")
    (project / "agent.py").write_text(
        "import six\nfrom bedrock_agentcore import BedrockAgentCoreApp\n\napp = BedrockAgentCoreApp()\n\n\n"
        "@app.entrypoint\ndef invoke(payload):\n    return {'six': six.__version__}\n"
    )
    loaded = Project.load(project)
    loaded.agents["hello"].requirements_file = "deps/agent-deps.txt"
    loaded.save()
    port = free_port()
    first = agentcore(home, project, "local-deploy", "--port", str(port), timeout=300)
    assert first.returncode == 0, first.stderr
    assert "deps/agent-deps.txt" in first.stdout and " built" in first.stdout
    assert invoke(port, {}).json() == {"six": "1.16.0"}
    again = agentcore(home, project, "local-deploy", "--port", str(port), timeout=300)
    assert again.returncode == 0, again.stderr
    assert "reused from the cache" in again.stdout
    assert json.loads(invoke(port, {}).text) == {"six": "1.16.0"}


def test_a_missing_requirements_file_is_one_line(home: Path, project: Path) -> None:
    loaded = Project.load(project)
    loaded.agents["hello"].requirements_file = "nope.txt"
    loaded.save()
    done = agentcore(home, project, "local-deploy", "--port", str(free_port()))
    assert done.returncode == 1
    assert done.stderr.strip() == "agentcore: requirements file nope.txt does not exist"
