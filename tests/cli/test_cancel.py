"""`agentcore cancel` as a user runs it: the real CLI against the embedded server it starts."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.cli.test_workflow import Workspace, workspace  # noqa: F401 - the fixture
from tests.conftest import wait_until

AGENT = """
import asyncio
from bedrock_agentcore import BedrockAgentCoreApp, BedrockAgentCoreContext

app = BedrockAgentCoreApp()


@app.entrypoint
async def invoke(payload):
    request_id = BedrockAgentCoreContext.get_request_id()
    if payload.get("wait"):
        print(f"waiting {request_id}", flush=True)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            print(f"cancelled {request_id}", flush=True)
            raise
    return {"ok": True}
"""


def test_cancel_stops_the_invocation_and_the_session_answers_again(workspace: Workspace) -> None:  # noqa: F811
    (workspace.project / "my_agent.py").write_text(AGENT)
    workspace.ok("configure", "--entrypoint", "my_agent.py", "--name", "patient", "--non-interactive")
    workspace.ok("deploy")
    assert '"ok": true' in workspace.ok("invoke", "{}", "--session-id", "long-one")
    environment = {
        **os.environ,
        "AGENTCORE_HOME": str(workspace.home),
        "AGENTCORE_ENDPOINT_URL": f"http://127.0.0.1:{workspace.port}",
    }
    waiting = subprocess.Popen(
        [sys.executable, "-m", "open_agentcore.cli", "invoke", '{"wait": true}'], cwd=workspace.project,
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        found = wait_until(
            lambda: re.search(r"waiting (\S+)", workspace.ok("logs")), timeout=60, interval=0.2
        )
        request_id = found.group(1)
        assert f"cancelled invocation {request_id}" in workspace.ok("cancel", request_id)
        _, stderr = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    assert waiting.returncode == 1 and "the invocation was cancelled" in stderr
    wait_until(lambda: f"cancelled {request_id}" in workspace.ok("logs"), timeout=30, interval=0.2)
    assert '"ok": true' in workspace.ok("invoke", "{}")  # the same session answers again
    unknown = workspace.fails("cancel", "no-such-request")
    assert "ResourceNotFoundException" in unknown or "no invocation" in unknown


def test_cancel_without_an_id_cancels_the_invocation_invoke_sent_last(workspace: Workspace) -> None:  # noqa: F811
    (workspace.project / "my_agent.py").write_text(AGENT)
    workspace.ok("configure", "--entrypoint", "my_agent.py", "--name", "patient", "--non-interactive")
    workspace.ok("deploy")
    nothing_yet = workspace.fails("cancel")
    assert "no invoke has" in nothing_yet
    environment = {
        **os.environ,
        "AGENTCORE_HOME": str(workspace.home),
        "AGENTCORE_ENDPOINT_URL": f"http://127.0.0.1:{workspace.port}",
    }
    waiting = subprocess.Popen(
        [sys.executable, "-m", "open_agentcore.cli", "invoke", '{"wait": true}', "--request-id", "job-7"],
        cwd=workspace.project, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # The agent sees the id the command chose, and `cancel` finds it without being told.
        wait_until(lambda: "waiting job-7" in workspace.ok("logs"), timeout=60, interval=0.2)
        assert "cancelled invocation job-7" in workspace.ok("cancel")
        _, stderr = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    assert waiting.returncode == 1 and "the invocation was cancelled" in stderr
    wait_until(lambda: "cancelled job-7" in workspace.ok("logs"), timeout=30, interval=0.2)


def test_a_request_id_the_server_would_refuse_is_a_usage_error(
    workspace: Workspace,  # noqa: F811
) -> None:
    (workspace.project / "my_agent.py").write_text(AGENT)
    workspace.ok("configure", "--entrypoint", "my_agent.py", "--name", "patient", "--non-interactive")
    for bad in ("has space", "x" * 129, "slash/in/it", ""):
        refused = workspace.fails("invoke", "{}", "--request-id", bad, code=2)
        assert "--request-id" in refused and "1-128 characters" in refused
    both = workspace.fails("invoke", "--ws", "hi", "--request-id", "job-1", code=2)
    assert "not --ws" in both
