"""An invocation's body reaches the worker whole, whether authentication kept it in memory (one
replayed message) or spilled it to disk (replayed in several pieces)."""

from __future__ import annotations

import hashlib
import json

import pytest

from open_agentcore.server.bodies import IN_MEMORY
from tests.server.conftest import Server

AGENT = """
import hashlib
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    blob = payload["blob"]
    return {"length": len(blob), "sha256": hashlib.sha256(blob.encode()).hexdigest()}
"""


@pytest.mark.parametrize("size", [0, 1000, 3 * IN_MEMORY + 12345], ids=["empty", "small", "spilled"])
def test_the_worker_gets_the_whole_payload(server: Server, size: int) -> None:
    arn = server.deploy({"agent.py": AGENT}, "bodies")["agentRuntimeArn"]
    blob = "".join(chr(ord("a") + i % 26) for i in range(size))
    reply = server.data.invoke_agent_runtime(
        agentRuntimeArn=arn, payload=json.dumps({"blob": blob}).encode(), runtimeSessionId="b" * 40
    )
    answer = json.loads(reply["response"].read())
    assert answer == {"length": size, "sha256": hashlib.sha256(blob.encode()).hexdigest()}
