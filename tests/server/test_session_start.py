"""`agentcore server run --session-start fork`: sessions invoked with boto3 through a real server
are forked by their version's fork server, keep their state, and are apart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import wait_until
from tests.server.conftest import Server, running_server

AGENT = """
import os
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()
turns = []


@app.entrypoint
def invoke(payload, context):
    turns.append(payload["say"])
    return {"turns": turns, "pid": os.getpid(), "session": context.session_id}
"""


def invoke(server: Server, arn: str, session: str, say: str) -> dict[str, Any]:
    body = json.dumps({"say": say}).encode()
    reply = server.data.invoke_agent_runtime(agentRuntimeArn=arn, payload=body, runtimeSessionId=session)
    answer: dict[str, Any] = json.loads(reply["response"].read())
    return answer


def session_log(server: Server, runtime_id: str, session: str) -> str:
    reply = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions/{session}/logs")
    assert reply.status_code == 200, reply.text
    return reply.text


def test_sessions_are_forked_through_the_server_and_keep_their_state(short_data_dir: Path) -> None:
    with running_server(short_data_dir, sandbox="none", session_start="fork", warm_pool=1) as server:
        health = server.signed("GET", "/_agentcore/health").json()
        assert health["protections"]["session_start"] == "fork"
        created = server.deploy({"agent.py": AGENT}, "forked")
        runtime_id, arn = created["agentRuntimeId"], created["agentRuntimeArn"]
        first, mine = "a" * 33, "b" * 33
        invoke(server, arn, first, "hello")
        again = invoke(server, arn, first, "again")
        other = invoke(server, arn, mine, "elsewhere")
        assert again["turns"] == ["hello", "again"] and again["session"] == first
        assert other["turns"] == ["elsewhere"] and other["session"] == mine and other["pid"] != again["pid"]
        log = wait_until(lambda: session_log(server, runtime_id, mine))
        assert "session forked by its version's fork server" in log
        listed = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions").json()["sessions"]
        assert {(s["sessionId"], s["startedBy"]) for s in listed} == {(first, "fork"), (mine, "fork")}
        # The first took the pool's worker, forked when the runtime became ready (ready or not yet).
        assert {s["startedFrom"] for s in listed if s["sessionId"] == first} <= {"warm", "warming"}


def test_with_bwrap_sessions_are_forked_each_into_its_own_sandbox(short_data_dir: Path) -> None:
    with running_server(short_data_dir, sandbox="bwrap", session_start="fork") as server:
        health = server.signed("GET", "/_agentcore/health").json()
        assert (
            health["protections"]["sandbox"] == "bwrap" and health["protections"]["session_start"] == "fork"
        )
        created = server.deploy({"agent.py": AGENT}, "sandboxed")
        runtime_id, arn = created["agentRuntimeId"], created["agentRuntimeArn"]
        first, mine = "c" * 33, "d" * 33
        invoke(server, arn, first, "hello")
        again = invoke(server, arn, first, "again")
        other = invoke(server, arn, mine, "elsewhere")
        assert again["turns"] == ["hello", "again"] and other["turns"] == ["elsewhere"]
        # Each agent is pid 2 of a pid namespace of its own (its reaper is 1).
        assert again["pid"] == other["pid"] == 2
        listed = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions").json()["sessions"]
        assert {(s["sessionId"], s["startedBy"]) for s in listed} == {(first, "fork"), (mine, "fork")}
        assert "session forked by its version's fork server" in session_log(server, runtime_id, mine)
