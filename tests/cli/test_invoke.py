"""`agentcore invoke` (`cli/invoke.py`, `cli/payloads.py`, `cli/websocket.py`) through the real CLI
against a real agent process: what is sent (JSON, prompts, --raw, broken JSON), how --ws
conversations end, --output, and reaching a running `agentcore dev`."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.cli_harness import HARNESS, agentcore, environment, start_agentcore
from tests.conftest import free_port, wait_until

AGENT = """
from starlette.websockets import WebSocket

from bedrock_agentcore import BedrockAgentCoreApp, RequestContext

app = BedrockAgentCoreApp()
received = []


@app.entrypoint
def invoke(payload):
    received.append(payload)
    return {"got": payload, "count": len(received), "where": WHERE}


@app.websocket
async def echo(websocket: WebSocket, context: RequestContext) -> None:
    await websocket.accept()
    async for message in websocket.iter_text():
        if message == "bye":
            await websocket.close()
            return
        await websocket.send_text(message)


WHERE = "local"
"""


@dataclass
class Project:
    root: Path
    home: Path

    def run(self, *args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """One `agentcore` command with `stdin` as its (finite) standard input."""
        return subprocess.run(
            [sys.executable, str(HARNESS), *args], cwd=self.root, env=environment(self.home),
            input=stdin, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def ok(self, *args: str, stdin: str = "") -> str:
        done = self.run(*args, stdin=stdin)
        assert done.returncode == 0, f"agentcore {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def fails(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 1, f"expected exit 1:\n{done.stdout}\n{done.stderr}"
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("agentcore: "), done.stderr
        return lines[0]


def new_project() -> Project:
    """A configured project in a fresh directory, with its own AGENTCORE_HOME."""
    root = Path(tempfile.mkdtemp(prefix="oaci-", dir="/tmp"))
    space = Project(root / "p", root / "h")
    space.root.mkdir()
    (space.root / "agent.py").write_text(AGENT)
    space.ok("configure", "--entrypoint", "agent.py", "--name", "agent", "--non-interactive")
    return space


@pytest.fixture
def project() -> Iterator[Project]:
    space = new_project()
    yield space
    shutil.rmtree(space.root.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def running() -> Iterator[Project]:
    """A project whose agent runs locally (`deploy --local`) on a free port, shared by the module."""
    space = new_project()
    space.ok("local-deploy", "--port", str(free_port()))
    yield space
    space.run("local-stop")
    shutil.rmtree(space.root.parent, ignore_errors=True)


def test_json_is_sent_as_written_and_text_as_a_prompt(running: Project) -> None:
    assert json.loads(running.ok("invoke", '{"name": "A"}'))["got"] == {"name": "A"}
    assert json.loads(running.ok("invoke", "hello there"))["got"] == {"prompt": "hello there"}
    assert json.loads(running.ok("invoke", "-", stdin='{"from": "stdin"}\n'))["got"] == {"from": "stdin"}


def test_broken_json_is_a_one_line_error_with_its_column_and_sends_nothing(running: Project) -> None:
    error = running.fails("invoke", '{"name": }')
    assert "line 1, column 10" in error and "--raw" in error
    assert "column 4" in running.fails("invoke", "1.2.3")
    # Nothing reached the agent: the invocations either side are consecutive.
    before = json.loads(running.ok("invoke", "{}"))["count"]
    running.fails("invoke", '{"name": }')
    assert json.loads(running.ok("invoke", "{}"))["count"] == before + 1


def test_output_json_wraps_the_answer_with_the_session(running: Project) -> None:
    shown = json.loads(running.ok("invoke", '{"a": 1}', "--output", "json", "--session-id", "s-json"))
    assert shown["sessionId"] == "s-json" and shown["response"]["got"] == {"a": 1}
    assert json.loads(running.ok("invoke", "{}", "--json"))["sessionId"] == "s-json"  # sticky


def test_raw_sends_the_text_as_it_is(running: Project) -> None:
    # The SDK's /invocations takes JSON only, so raw text reaches it unwrapped and is refused...
    assert "400" in running.fails("invoke", "not json", "--raw")
    # ...and over the WebSocket the agent gets exactly the text.
    assert running.ok("invoke", "--ws", "--raw", "hello raw").splitlines() == ["hello raw"]


def test_ws_ends_at_the_end_of_input_once_the_agent_answered(running: Project) -> None:
    shown = running.ok("invoke", "--ws", "first", stdin='second\n{"third": 3}\n')
    assert shown.splitlines() == ['{"prompt": "first"}', '{"prompt": "second"}', '{"third": 3}']


def test_ws_ends_when_the_agent_closes(running: Project) -> None:
    # Input that never ends: only the agent's close can end this one.
    with (running.root / "closes.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(HARNESS), "invoke", "--ws", "--raw", "hi"], cwd=running.root,
            env=environment(running.home), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
            text=True,
        )  # fmt: skip
        assert process.stdin is not None and process.stdout is not None
        try:
            assert process.stdout.readline() == "hi\n"
            process.stdin.write("bye\n")
            process.stdin.flush()
            assert process.wait(30) == 0  # stdin is still open
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_ws_ends_after_messages_n(running: Project) -> None:
    with (running.root / "messages.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(HARNESS), "invoke", "--ws", "--raw", "one", "--messages", "2"],
            cwd=running.root, env=environment(running.home), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=log, text=True,
        )  # fmt: skip
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write("two\nthree\n")
            process.stdin.flush()
            assert process.wait(30) == 0  # stdin is still open: the count ended it
            assert process.stdout.read().splitlines() == ["one", "two"]
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_ws_output_json_collects_the_messages(running: Project) -> None:
    shown = json.loads(running.ok("invoke", "--ws", '{"n": 1}', "--output", "json", "-s", "ws-1"))
    assert shown == {"sessionId": "ws-1", "messages": [{"n": 1}]}


def test_ws_broken_json_in_the_input_ends_with_an_error(running: Project) -> None:
    done = running.run("invoke", "--ws", "ok", stdin='{"bad": }\n')
    assert done.returncode == 1 and "column 9" in done.stderr


def test_interactive_prompts_for_each_message(running: Project) -> None:
    done = running.run("invoke", "--ws", "--interactive", "--raw", stdin="a\nb\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["a", "b"]
    assert done.stderr.count("> ") == 3  # one prompt per line, and one met by the end of input


def test_messages_without_ws_is_a_usage_error(running: Project) -> None:
    done = running.run("invoke", "{}", "--messages", "2")
    assert done.returncode == 2 and "go with --ws" in done.stderr


@pytest.fixture
def dev(project: Project) -> Iterator[tuple[Project, int, subprocess.Popen[bytes]]]:
    """`agentcore dev` of the project's agent on a free port, stopped with Ctrl-C at the end."""
    port = free_port()
    log = project.root.parent / "dev.log"
    process = start_agentcore(project.home, project.root, "dev", "--port", str(port), log=log)
    try:
        wait_until(lambda: "with hot reload" in log.read_text() or process.poll() is not None, timeout=60)
        assert process.poll() is None, log.read_text()
        yield project, port, process
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as in its terminal; killed if it has not stopped within 20 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_invoke_local_reaches_a_running_dev_server(dev: tuple[Project, int, subprocess.Popen[bytes]]) -> None:
    project, _, _ = dev
    (project.root / "agent.py").write_text(AGENT.replace('WHERE = "local"', 'WHERE = "dev"'))
    # The dev server reloads the saved file; wait for the new code to answer.
    wait_until(lambda: json.loads(project.ok("invoke", "--local", "{}"))["where"] == "dev", timeout=60)
    assert json.loads(project.ok("invoke", "{}"))["where"] == "dev"  # never deployed: dev is the target


def test_after_dev_stops_invoke_local_says_what_to_run(
    dev: tuple[Project, int, subprocess.Popen[bytes]],
) -> None:
    project, port, process = dev
    state = project.root / ".bedrock_agentcore" / "agent" / "state.json"
    assert json.loads(state.read_text())["dev_port"] == port
    process.send_signal(signal.SIGINT)  # Ctrl-C in its terminal
    assert process.wait(30) == 0
    assert json.loads(state.read_text())["dev_port"] is None
    assert "agentcore dev" in project.fails("invoke", "--local", "{}")


def test_dev_in_an_unconfigured_directory_is_reachable(tmp_path: Path) -> None:
    root, home = tmp_path / "bare", Path(tempfile.mkdtemp(prefix="oacb-", dir="/tmp"))
    root.mkdir()
    (root / "agent.py").write_text(AGENT.replace('WHERE = "local"', 'WHERE = "bare"'))
    log = tmp_path / "dev.log"
    process = start_agentcore(home, root, "dev", "--port", str(free_port()), log=log)
    try:
        wait_until(lambda: "with hot reload" in log.read_text() or process.poll() is not None, timeout=60)
        done = agentcore(home, root, "invoke", "{}")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["where"] == "bare"
    finally:
        stop(process)
        shutil.rmtree(home, ignore_errors=True)
