"""The resumable-stream client example in docs/streams.md runs as written against a real server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.server.conftest import KEY_ID, SECRET, Server


def test_the_documented_resuming_client_gets_every_event_once(server: Server, tmp_path: Path) -> None:
    agent, client = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "streams.md").read_text(), re.S)
    arn = server.deploy({"agent.py": agent}, "counter")["agentRuntimeArn"]
    (tmp_path / "client.py").write_text(client)
    environment = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_ENDPOINT_URL": server.url,
        "AWS_REGION": "us-east-1",
        "AGENT_ARN": arn,
    }
    done = subprocess.run(
        [sys.executable, "client.py"], cwd=tmp_path, env=environment, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [{"n": n} for n in range(1, 11)]
