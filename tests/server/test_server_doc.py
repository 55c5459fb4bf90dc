"""The boto3 walk-through in docs/server.md runs as written against a real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.server.conftest import KEY_ID, SECRET, Server

HELLO = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    return {"message": f"Hello, {payload['name']}!"}


@app.websocket
async def greet(websocket):
    await websocket.accept()
    await websocket.send_text(f"Hello over a WebSocket, {await websocket.receive_text()}!")
"""


def test_the_documented_deploy_and_invoke_works(server: Server, tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "server.md").read_text(), re.S)
    assert len(blocks) == 2
    (tmp_path / "deploy.py").write_text(blocks[0])
    (tmp_path / "websocket.py").write_text(blocks[1])
    (tmp_path / "agent.py").write_text(HELLO)
    environment = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_ENDPOINT_URL": server.url,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",  # what `agentcore server credentials` exports
    }
    done = subprocess.run(
        [sys.executable, "deploy.py"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == 'application/json b\'{"message": "Hello, Alice!"}\''
    done = subprocess.run(
        [sys.executable, "websocket.py"], cwd=tmp_path, env=environment, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Hello over a WebSocket, Bob!"
