"""What the console's session pages read: each live session's owner and memory."""

from __future__ import annotations

import uuid

from tests.console.agents import HELLO, invoke_json
from tests.console.conftest import ConsoleClient
from tests.server.conftest import Server


def test_live_sessions_carry_their_owner_and_memory(server: Server, console: ConsoleClient) -> None:
    created = server.deploy({"agent.py": HELLO}, "listed")
    session_id = str(uuid.uuid4())
    assert invoke_json(server, created["agentRuntimeArn"], session_id, {}) == {"hello": "world"}
    assert console.login().status_code == 200
    reply = console.call("GET", f"/_agentcore/runtimes/{created['agentRuntimeId']}/sessions")
    assert reply.status_code == 200, reply.text
    (session,) = reply.json()["sessions"]
    assert session["sessionId"] == session_id
    assert session["owner"] == "key:admin"
    assert session["state"] == "IDLE"
    # A Python worker with the SDK imported holds several MiB, and far less than the 8 GiB limit.
    assert 4 << 20 < session["memoryBytes"] < 8 << 30
