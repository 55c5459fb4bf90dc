"""The CLI's control-plane client against a real server: listings past one page, and `deploy`
adopting a runtime by name when it is on the second page (it looped forever when the CLI sent
`maxResults`/`nextToken` in the body, where the server does not read them)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from open_agentcore.auth.sigv4 import Credential
from open_agentcore.cli.control_client import PAGE_SIZE, ControlClient
from open_agentcore.cli.remote import RuntimeServer
from tests.conftest import free_port

AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    return {"adopted": True}
"""
BULK = PAGE_SIZE + 5


def agentcore(home: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "AGENTCORE_HOME": str(home)}
    for name in ("AGENTCORE_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AGENTCORE_ADMIN_ACCESS_KEY_ID",
                 "AGENTCORE_ADMIN_SECRET_ACCESS_KEY"):  # fmt: skip
        environment.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "open_agentcore.cli", *args], cwd=cwd, env=environment,
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="module")
def crowded() -> Iterator[tuple[Path, Path, ControlClient, str]]:
    """A server holding BULK runtimes plus `zz_target`, which sorts onto the second page."""
    root = Path(tempfile.mkdtemp(prefix="oacc-", dir="/tmp"))
    home, project = root / "h", root / "project"
    project.mkdir()
    (project / "zz_target.py").write_text(AGENT)
    port = free_port()
    started = agentcore(home, project, "server", "start", "--port", str(port), "--warm-pool", "0")
    assert started.returncode == 0, started.stderr
    try:
        keys = json.loads((home / "server" / "admin-credentials.json").read_text())
        credential = Credential(keys["accessKeyId"], keys["secretAccessKey"], "admin")
        client = ControlClient(RuntimeServer(f"http://127.0.0.1:{port}", credential, "us-east-1"))
        key = client.upload(_zip(AGENT))
        request = {
            "agentRuntimeArtifact": {"codeConfiguration": {
                "code": {"s3": {"bucket": "agentcore-artifacts", "prefix": key}},
                "runtime": f"PYTHON_3_{sys.version_info.minor}", "entryPoint": ["zz_target.py"],
            }},
            "roleArn": "arn:aws:iam::000000000000:role/r", "networkConfiguration": {"networkMode": "PUBLIC"},
        }  # fmt: skip
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: client.create_runtime(f"bulk_{n:03d}", request), range(BULK)))
        target = client.create_runtime("zz_target", request)
        yield home, project, client, target.runtime_id
    finally:
        agentcore(home, project, "server", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _zip(agent: str) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("zz_target.py", agent)
    return buffer.getvalue()


def test_list_runtimes_follows_next_token_to_the_last_page(
    crowded: tuple[Path, Path, ControlClient, str],
) -> None:
    _, _, client, target_id = crowded
    listed = list(client.list_runtimes())
    assert len(listed) == BULK + 1 > PAGE_SIZE
    assert len({runtime.runtime_id for runtime in listed}) == BULK + 1
    assert listed[-1].runtime_id == target_id  # ordered by id: the target is past the first page


def test_deploy_adopts_a_runtime_by_name_on_the_second_page(
    crowded: tuple[Path, Path, ControlClient, str],
) -> None:
    home, project, client, target_id = crowded
    configured = agentcore(home, project, "configure", "-e", "zz_target.py", "-y")
    assert configured.returncode == 0, configured.stderr
    deployed = agentcore(home, project, "deploy")
    assert deployed.returncode == 0 and "is READY" in deployed.stdout, deployed.stdout + deployed.stderr
    state = json.loads((project / ".bedrock_agentcore" / "zz_target" / "state.json").read_text())
    assert state["runtime_id"] == target_id
    described = client.get_runtime(target_id)
    assert described is not None and described.version == "2"  # updated, not created anew
    assert len(list(client.list_runtimes())) == BULK + 1
