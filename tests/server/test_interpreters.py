"""`codeConfiguration.runtime` (PYTHON_3_12, ...) chooses the worker's Python, through a real server.

The server looks for the interpreter on its PATH and among uv's installed Pythons. Each test sets
both, so what this host happens to have installed decides nothing: a PATH of system directories
(this project's images carry one Python there) and an empty uv directory.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import running_server

AGENT = """
import sys
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    return {"python": "%d.%d" % sys.version_info[:2]}
"""

HOST = f"{sys.version_info.major}.{sys.version_info.minor}"
# A Python the tests make sure is absent: the next minor version after the server's.
MISSING = f"3.{sys.version_info.minor + 1}"
MISSING_RUNTIME = f"PYTHON_3_{sys.version_info.minor + 1}"


def code(key: str, runtime: str) -> dict[str, Any]:
    s3 = {"bucket": "agentcore-artifacts", "prefix": key}
    return {"codeConfiguration": {"code": {"s3": s3}, "runtime": runtime, "entryPoint": ["agent.py"]}}


@pytest.fixture
def bare_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The server's PATH without any python3.N but the system's, and no uv-installed Pythons."""
    system = [d for d in ("/usr/local/bin", "/usr/bin", "/bin") if os.path.isdir(d)]
    assert not any(Path(d, f"python{MISSING}").exists() for d in system), f"python{MISSING} is installed"
    monkeypatch.setenv("PATH", os.pathsep.join(system))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path / "no-uv-pythons"))
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    return tmp_path


def create(server: Any, name: str, runtime: str) -> dict[str, Any]:
    key = server.upload({"agent.py": AGENT})
    created: dict[str, Any] = server.control.create_agent_runtime(
        agentRuntimeName=name,
        roleArn="arn:aws:iam::000000000000:role/agent",
        agentRuntimeArtifact=code(key, runtime),
    )
    return server.wait_ready(created["agentRuntimeId"])


def python_of(server: Any, arn: str) -> str:
    reply = server.data.invoke_agent_runtime(agentRuntimeArn=arn, payload=b"{}", runtimeSessionId="i" * 40)
    return str(json.loads(reply["response"].read())["python"])


def test_a_python_the_host_lacks_fails_the_version_naming_it_and_the_remedies(
    bare_host: Path, short_data_dir: Path
) -> None:
    with running_server(short_data_dir) as server:
        described = create(server, "needs_next", MISSING_RUNTIME)
    assert described["status"] == "CREATE_FAILED"
    reason = described["failureReason"]
    assert f"{MISSING_RUNTIME} needs Python {MISSING}" in reason
    assert f"python{MISSING}" in reason and f"uv python install {MISSING}" in reason
    assert "--allow-host-python" in reason


def test_with_allow_host_python_it_runs_on_the_servers_python_and_says_so(
    bare_host: Path, short_data_dir: Path
) -> None:
    with running_server(short_data_dir, allow_host_python=True) as server:
        described = create(server, "hosted", MISSING_RUNTIME)
        assert described["status"] == "READY"
        assert described["failureReason"].startswith(f"runs on the server's Python {HOST}: {MISSING_RUNTIME}")
        assert "--allow-host-python" in described["failureReason"]
        assert python_of(server, described["agentRuntimeArn"]) == HOST


def test_the_servers_own_python_serves_its_runtime_with_no_reason(
    bare_host: Path, short_data_dir: Path
) -> None:
    with running_server(short_data_dir) as server:
        described = create(server, "same", f"PYTHON_3_{sys.version_info.minor}")
        assert described["status"] == "READY" and "failureReason" not in described
        assert python_of(server, described["agentRuntimeArn"]) == HOST


def test_a_runtime_that_is_not_python_fails_even_with_host_python_allowed(short_data_dir: Path) -> None:
    with running_server(short_data_dir, allow_host_python=True) as server:
        described = create(server, "node", "NODE_22")
    assert described["status"] == "CREATE_FAILED"
    assert "NODE_22 is not served here" in described["failureReason"]


def _other_python() -> Path | None:
    """Some Python 3.N installed on this machine other than the server's (pyenv keeps them apart)."""
    for root in (Path.home() / ".pyenv" / "versions", Path("/usr/bin"), Path("/usr/local/bin")):
        for candidate in sorted(root.glob("3.1[0-9]*/bin/python3.1[0-9]")) + sorted(
            root.glob("python3.1[0-9]")
        ):
            if not candidate.name.endswith(HOST) and candidate.is_file():
                return candidate
    return None


def test_an_installed_python_is_found_on_the_path_and_runs_the_worker(
    bare_host: Path, short_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = _other_python()
    if other is None:
        pytest.skip("no Python but the server's on this machine")
    version = other.name.removeprefix("python")
    monkeypatch.setenv("PATH", f"{other.parent}{os.pathsep}{os.environ['PATH']}")
    with running_server(short_data_dir) as server:
        described = create(server, "other", "PYTHON_" + version.replace(".", "_"))
        assert described["status"] == "READY", described.get("failureReason")
        assert python_of(server, described["agentRuntimeArn"]) == version
