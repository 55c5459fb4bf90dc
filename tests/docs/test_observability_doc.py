"""The trace-reading script of docs/observability.md runs as written against a real traced server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.server.conftest import KEY_ID, SECRET, Server
from tests.telemetry.conftest import short_data_dir, traced_server  # noqa: F401 - a fixture

HELLO = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    return {"message": "hello"}
"""


def example(name: str) -> str:
    found = dict(
        re.findall(
            r"```python\n# example: (\w+)\n(.*?)```", (REPO / "docs" / "observability.md").read_text(), re.S
        )
    )
    return found[name]


def test_the_documented_trace_printer_prints_the_invocation(short_data_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    with traced_server(short_data_dir) as server:
        check(server, tmp_path)


def check(server: Server, tmp_path: Path) -> None:
    created = server.deploy({"agent.py": HELLO}, "doc_traced")
    (tmp_path / "print_trace.py").write_text(example("print_trace"))
    environment = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ENDPOINT_URL": server.url,
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
        "RUNTIME_ARN": created["agentRuntimeArn"],
    }  # fmt: skip
    done = subprocess.run(
        [sys.executable, "print_trace.py"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("InvokeAgentRuntime [open-agentcore] ")
    summary = json.loads(lines[-1])
    assert len(summary["traceId"]) == 32 and summary["spans"] >= 1
