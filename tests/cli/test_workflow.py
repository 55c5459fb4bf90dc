"""The overview's Quick Start and development workflow, run as a user runs them: the real CLI in a
fresh project directory with its own AGENTCORE_HOME, against the embedded server it starts itself."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, free_port

AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()
count = 0


@app.entrypoint
def invoke(payload, context):
    global count
    count += 1
    if payload.get("stream"):
        return (word for word in ["Hello", " ", payload.get("name", "World"), "!"])
    print(f"invoked with {payload}", flush=True)
    return {"result": f"Hello {payload.get('name', 'World')}", "count": count}


if __name__ == "__main__":
    app.run()
"""


@dataclass
class Workspace:
    project: Path
    home: Path
    port: int

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
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
        return subprocess.run(
            [sys.executable, "-m", "open_agentcore.cli", *args], cwd=self.project, env=environment,
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, f"agentcore {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def fails(self, *args: str, code: int = 1) -> str:
        done = self.run(*args)
        assert done.returncode == code, f"expected exit {code}:\n{done.stdout}\n{done.stderr}"
        lines = done.stderr.strip().splitlines()
        if code == 1:
            assert len(lines) == 1 and lines[0].startswith("agentcore: "), done.stderr
        return done.stderr


@pytest.fixture
def workspace() -> Iterator[Workspace]:
    # Short: worker sockets live under AGENTCORE_HOME, and unix socket paths max out at 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="oacw-", dir="/tmp"))
    (root / "project").mkdir()
    space = Workspace(root / "project", root / "h", free_port())
    (space.project / "my_agent.py").write_text(AGENT)
    yield space
    space.run("server", "stop", timeout=60)
    pid_file = space.home / "server" / "server.pid"
    if pid_file.exists():
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    shutil.rmtree(root, ignore_errors=True)


def readme_quick_start() -> tuple[str, list[list[str]]]:
    """The README's Quick Start: the agent it shows and the commands it runs, as written there."""
    section = (REPO / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    agent = section.split("```python\n", 1)[1].split("```", 1)[0]
    script = section.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line.split("#", 1)[0]) for line in script.splitlines() if line.strip()]
    return agent, commands


def test_the_readme_quick_start_verbatim(workspace: Workspace) -> None:
    agent, commands = readme_quick_start()
    (workspace.project / "my_agent.py").write_text(agent)
    assert [command[:2] for command in commands] == [["agentcore", "configure"], ["agentcore", "deploy"],
                                                     ["agentcore", "invoke"]]  # fmt: skip
    configured = workspace.ok(*commands[0][1:])
    assert "configured agent 'my_agent'" in configured
    config = yaml.safe_load((workspace.project / ".bedrock_agentcore.yaml").read_text())
    assert config["default_agent"] == "my_agent"
    assert config["agents"]["my_agent"]["entrypoint"] == "my_agent.py"

    deployed = workspace.ok(*commands[1][1:])
    assert "starting the local runtime server" in deployed
    assert "is READY" in deployed and "ARN: arn:aws:bedrock-agentcore:us-east-1:" in deployed

    answer = json.loads(workspace.ok(*commands[2][1:]))
    assert answer["message"] == "Hello, Alice!" and answer["session"]


def test_the_development_workflow(workspace: Workspace) -> None:
    workspace.ok("configure", "--entrypoint", "my_agent.py", "--name", "hello", "--non-interactive")
    workspace.ok("deploy")
    # The session is sticky: the same worker answers until --new-session.
    assert json.loads(workspace.ok("invoke", '{"name": "A"}'))["count"] == 1
    assert json.loads(workspace.ok("invoke", '{"name": "A"}'))["count"] == 2
    assert json.loads(workspace.ok("invoke", '{"name": "A"}', "--new-session"))["count"] == 1
    assert (
        json.loads(workspace.ok("invoke", "hi there", "--session-id", "chosen-1"))["result"] == "Hello World"
    )
    assert json.loads(workspace.ok("invoke", '{"name": "B"}'))["count"] == 2  # chosen-1 is now sticky

    streamed = workspace.ok("invoke", '{"stream": true, "name": "Bob"}')
    assert streamed == "Hello Bob!\n"
    as_json = json.loads(workspace.ok("invoke", '{"stream": true, "name": "Bob"}', "--json"))
    assert as_json["events"] == ["Hello", " ", "Bob", "!"] and as_json["sessionId"] == "chosen-1"
    raw = workspace.ok("invoke", '{"stream": true, "name": "Bob"}', "--output", "raw")
    assert raw.startswith('data: "Hello"\nid: ')

    status = json.loads(workspace.ok("status", "--json"))
    assert status["runtime"]["status"] == "READY"
    assert status["lastSessionId"] == "chosen-1"
    assert {s["sessionId"] for s in status["runtime"]["sessions"]} >= {"chosen-1"}
    assert "invoked with {'prompt': 'hi there'}" in workspace.ok("logs")

    # A second deploy updates the runtime: a new version, same runtime id.
    (workspace.project / "my_agent.py").write_text(AGENT.replace("Hello", "Howdy"))
    workspace.ok("deploy")
    status = json.loads(workspace.ok("status", "--json"))
    assert status["runtime"]["version"] == "2" and status["runtime"]["versions"][:2] == ["2", "1"]
    assert json.loads(workspace.ok("invoke", '{"name": "C"}', "--new-session"))["result"] == "Howdy C"

    assert "stopped session" in workspace.ok("stop-session")
    dry = workspace.ok("destroy", "--dry-run")
    assert "delete runtime" in dry
    workspace.fails("destroy")  # not a terminal: refuses without --force
    workspace.ok("destroy", "--force")
    assert (
        "hello" not in yaml.safe_load((workspace.project / ".bedrock_agentcore.yaml").read_text())["agents"]
    )
    assert workspace.fails("invoke", "hi").startswith("agentcore: no agent is configured")


def test_local_first_then_deployed_invoke_goes_where_the_last_deploy_went(workspace: Workspace) -> None:
    workspace.ok("configure", "--entrypoint", "my_agent.py", "--non-interactive")
    port = free_port()
    local = workspace.ok("deploy", "--local", "--port", str(port))
    assert f"127.0.0.1:{port}" in local
    assert json.loads(workspace.ok("invoke", '{"name": "Local"}'))["result"] == "Hello Local"
    assert json.loads(workspace.ok("invoke", '{"name": "L"}', "--session-id", "s-local"))["count"] == 2
    deployed = workspace.ok("deploy")
    assert "is READY" in deployed
    # After a server deploy a plain invoke goes to the server (a new worker: count 1) ...
    assert json.loads(workspace.ok("invoke", '{"name": "Server"}'))["count"] == 1
    # ... and --local still reaches the local process, which kept counting.
    assert json.loads(workspace.ok("invoke", '{"name": "L"}', "--local"))["count"] == 3
    status = json.loads(workspace.ok("status", "--json"))
    assert status["mode"] == "server" and status["local"]["port"] == port
    assert status["runtime"]["status"] == "READY"
    assert "stopped the local agent" in workspace.ok("destroy", "--local")
    assert "not running locally" in workspace.fails("invoke", "hi", "--local")


def test_a_runtime_deleted_elsewhere_is_recreated_on_the_next_deploy(workspace: Workspace) -> None:
    workspace.ok("configure", "--entrypoint", "my_agent.py", "--non-interactive")
    workspace.ok("deploy")
    state_path = workspace.project / ".bedrock_agentcore" / "my_agent" / "state.json"
    first = json.loads(state_path.read_text())["runtime_id"]
    # Deleted behind the CLI's back (another user, the console): destroy would also forget it.
    state = json.loads(state_path.read_text())
    state["runtime_id"] = "my_agent-ZZZZZZZZZZ"
    state_path.write_text(json.dumps(state))
    redeployed = workspace.ok("deploy")
    assert "no longer exists on the server: creating a new one" in redeployed
    assert json.loads(state_path.read_text())["runtime_id"] == first  # the name was adopted, not duplicated


def test_a_failing_build_shows_its_log_and_exits_1(workspace: Workspace) -> None:
    (workspace.project / "requirements.txt").write_text("this-package-does-not-exist-anywhere-0ac==9.9.9\n")
    workspace.ok("configure", "--entrypoint", "my_agent.py", "--non-interactive")
    done = workspace.run("deploy")
    assert done.returncode == 1
    assert "--- build log" in done.stderr and "this-package-does-not-exist-anywhere-0ac" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("agentcore: deploy failed:")


def test_configure_errors_are_one_line_and_usage_errors_exit_2(workspace: Workspace) -> None:
    assert "does not exist" in workspace.fails("configure", "--entrypoint", "nope.py", "--non-interactive")
    assert "not allowed" in workspace.fails(
        "configure", "--entrypoint", "my_agent.py", "--name", "9lives", "--non-interactive"
    )
    assert "between 60 and 28800" in workspace.fails(
        "configure", "--entrypoint", "my_agent.py", "--idle-timeout", "5", "--non-interactive"
    )
    assert "KEY=VALUE" in workspace.fails(
        "configure", "--entrypoint", "my_agent.py", "--env", "novalue", "--non-interactive"
    )
    assert "openid-configuration" in workspace.fails(
        "configure", "--entrypoint", "my_agent.py", "--non-interactive",
        "--authorizer-config", '{"customJWTAuthorizer": {"discoveryUrl": "https://x.example"}}',
    )  # fmt: skip
    (workspace.project / "pkg").mkdir()
    (workspace.project / "pkg" / "agent.py").write_text(AGENT)
    (workspace.project / "pkg" / "main.py").write_text(AGENT)
    assert "exactly one of" in workspace.fails("configure", "--entrypoint", "pkg", "--non-interactive")
    assert "no agent is configured" in workspace.fails("invoke", "hi")  # every configure above failed
    workspace.fails("deploy", "--bogus-flag", code=2)
    workspace.fails("invoke", code=2)


def test_invoke_before_deploy_and_without_a_server_say_what_to_do(workspace: Workspace) -> None:
    workspace.ok("configure", "--entrypoint", "my_agent.py", "--non-interactive")
    assert "is not deployed" in workspace.fails("invoke", '{"a": 1}')
    assert "not deployed" in workspace.ok("status")


@pytest.mark.parametrize(
    "command",
    [["configure"], ["deploy"], ["invoke"], ["cancel"], ["status"], ["logs"], ["destroy"], ["stop-session"],
     ["configure", "list"], ["configure", "set-default"]],
)  # fmt: skip
def test_every_command_has_help_with_an_example(workspace: Workspace, command: list[str]) -> None:
    shown = workspace.ok(*command, "--help")
    assert "usage: agentcore" in shown and "example" in shown


HEADERS_AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload, context):
    print("handled", payload, flush=True)
    return {"headers": dict(context.request_headers or {}),
            "user": context.request.headers.get("x-amzn-bedrock-agentcore-runtime-user-id")}
"""


def test_headers_user_id_several_agents_and_logs(workspace: Workspace) -> None:
    (workspace.project / "headers_agent.py").write_text(HEADERS_AGENT)
    workspace.ok(
        "configure", "--entrypoint", "headers_agent.py", "--non-interactive",
        "--request-header-allowlist", "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tone",
    )  # fmt: skip
    workspace.ok("configure", "--entrypoint", "my_agent.py", "--non-interactive")
    listed = json.loads(workspace.ok("configure", "list", "--json"))
    assert listed["default_agent"] == "headers_agent" and set(listed["agents"]) == {
        "headers_agent",
        "my_agent",
    }
    workspace.ok("deploy")  # the default agent
    answer = json.loads(workspace.ok("invoke", "{}", "--headers", "Tone:calm,Other:x", "--user-id", "u-7"))
    assert answer["headers"] == {"X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tone": "calm"}  # only allowlisted
    assert answer["user"] == "u-7"
    assert "--headers takes Name:value" in workspace.fails("invoke", "{}", "--headers", "novalue")
    assert "not deployed" in workspace.fails("invoke", "{}", "--agent", "my_agent")
    workspace.ok("configure", "set-default", "my_agent")
    assert json.loads(workspace.ok("configure", "list", "--json"))["default_agent"] == "my_agent"
    assert "no agent named" in workspace.fails("configure", "set-default", "nobody")

    logs = workspace.ok("logs", "--agent", "headers_agent")
    assert "handled {}" in logs
    assert "handled {}" in workspace.ok("logs", "--agent", "headers_agent", "--since", "10m")
    assert "--since takes a duration" in workspace.fails(
        "logs", "--agent", "headers_agent", "--since", "soon"
    )
    # A token for a runtime without a JWT authorizer: the server says SigV4 is what it takes.
    refused = workspace.fails("invoke", "{}", "--agent", "headers_agent", "--bearer-token", "abc.def.ghi")
    assert "AccessDeniedException" in refused and "does not accept bearer tokens" in refused
    assert "abc.def.ghi" not in refused
