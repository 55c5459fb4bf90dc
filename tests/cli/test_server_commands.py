"""`agentcore server ...` as a user runs it: real processes, a real server, boto3 on its credentials."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import httpx
import pytest

from tests.conftest import free_port, wait_until

AGENT = """
import time
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    time.sleep(payload.get("think", 0))
    return {"ok": True}
"""


def agentcore(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "AGENTCORE_HOME": str(home)}
    for name in ("AGENTCORE_ADMIN_ACCESS_KEY_ID", "AGENTCORE_ADMIN_SECRET_ACCESS_KEY"):
        environment.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "open_agentcore.cli", *args],
        capture_output=True, text=True, timeout=timeout, env=environment,
    )  # fmt: skip


@pytest.fixture
def home() -> Iterator[Path]:
    # Short: worker sockets live under the data dir, and unix socket paths max out at 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="oach-", dir="/tmp"))
    yield path
    pid_file = path / "server" / "server.pid"
    if pid_file.exists():
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    shutil.rmtree(path, ignore_errors=True)


def clients(home: Path, port: int) -> tuple[Any, Any, botocore.credentials.Credentials]:
    exports = dict(
        line.removeprefix("export ").split("=", 1)
        for line in agentcore(home, "server", "credentials", "--port", str(port)).stdout.splitlines()
    )
    assert exports["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{port}"
    assert exports["AWS_DEFAULT_REGION"] == exports["AWS_REGION"]  # botocore reads the former
    credentials = botocore.credentials.Credentials(
        exports["AWS_ACCESS_KEY_ID"], exports["AWS_SECRET_ACCESS_KEY"]
    )
    settings = {
        "region_name": exports["AWS_REGION"], "endpoint_url": exports["AWS_ENDPOINT_URL"],
        "aws_access_key_id": credentials.access_key, "aws_secret_access_key": credentials.secret_key,
    }  # fmt: skip
    control = boto3.client("bedrock-agentcore-control", **settings)
    return control, boto3.client("bedrock-agentcore", **settings), credentials


def upload(port: int, credentials: botocore.credentials.Credentials) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("agent.py", AGENT)
    url = f"http://127.0.0.1:{port}/_agentcore/artifacts"
    request = botocore.awsrequest.AWSRequest(method="PUT", url=url, data=buffer.getvalue())
    botocore.auth.SigV4Auth(credentials, "bedrock-agentcore", "us-east-1").add_auth(request)
    return str(httpx.put(url, content=buffer.getvalue(), headers=dict(request.headers)).json()["key"])


def test_start_status_credentials_stop(home: Path) -> None:
    port = free_port()
    started = agentcore(home, "server", "start", "--port", str(port))
    assert started.returncode == 0, started.stderr
    assert f"running at http://127.0.0.1:{port}" in started.stdout
    status = agentcore(home, "server", "status", "--port", str(port))
    assert status.returncode == 0 and "sandbox bwrap" in status.stdout
    for protection in ("capabilities: none", "seccomp: on", "no_new_privs: yes", "limit memory: 8 GiB",
                       "limits enforced with: cgroup v1"):  # fmt: skip
        assert protection in status.stdout, status.stdout
    credentials = home / "server" / "admin-credentials.json"
    assert oct(credentials.stat().st_mode & 0o777) == "0o600"
    control, _, _ = clients(home, port)
    assert control.list_agent_runtimes()["agentRuntimes"] == []
    again = agentcore(home, "server", "start", "--port", str(port))
    assert again.returncode == 1 and "already answers" in again.stderr and len(again.stderr.splitlines()) == 1
    stopped = agentcore(home, "server", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert agentcore(home, "server", "status", "--port", str(port)).returncode == 1
    nothing = agentcore(home, "server", "stop")
    assert nothing.returncode == 1 and nothing.stderr.startswith("agentcore: no runtime server")


def test_kill_9_loses_no_runtime_and_leaves_no_worker(home: Path) -> None:
    port = free_port()
    assert agentcore(home, "server", "start", "--port", str(port), "--warm-pool", "0").returncode == 0
    control, data, credentials = clients(home, port)
    created = deploy(control, port, credentials, "survivor")
    runtime_id = created["agentRuntimeId"]
    reply = data.invoke_agent_runtime(
        agentRuntimeArn=created["agentRuntimeArn"], payload=b"{}", runtimeSessionId="k" * 33
    )
    assert json.loads(reply["response"].read()) == {"ok": True}
    server_pid = int((home / "server" / "server.pid").read_text())
    workers = workers_of(home, port, credentials, runtime_id)
    assert workers, "the invocation should have started a worker"
    os.kill(server_pid, signal.SIGKILL)
    wait_until(lambda: not any_alive(workers), timeout=20)
    assert agentcore(home, "server", "start", "--port", str(port)).returncode == 0
    control, data, _ = clients(home, port)
    assert control.get_agent_runtime(agentRuntimeId=runtime_id)["status"] == "READY"
    listed = signed_get(port, credentials, f"/_agentcore/runtimes/{runtime_id}/sessions?state=all").json()
    assert [(s["sessionId"], s["state"], s["endReason"]) for s in listed["sessions"]] == [
        ("k" * 33, "ENDED", "the server restarted")
    ]
    reply = data.invoke_agent_runtime(
        agentRuntimeArn=created["agentRuntimeArn"], payload=b"{}", runtimeSessionId="k" * 33
    )
    assert json.loads(reply["response"].read()) == {"ok": True}
    assert agentcore(home, "server", "stop").returncode == 0


def test_stop_drains_invocations_in_flight_then_stops_the_workers(home: Path) -> None:
    port = free_port()
    assert agentcore(home, "server", "start", "--port", str(port), "--warm-pool", "0").returncode == 0
    control, data, credentials = clients(home, port)
    created = deploy(control, port, credentials, "drained")
    answers: list[Any] = []

    def slow_call() -> None:
        reply = data.invoke_agent_runtime(
            agentRuntimeArn=created["agentRuntimeArn"], payload=b'{"think": 2}', runtimeSessionId="d" * 33
        )
        answers.append(json.loads(reply["response"].read()))

    caller = threading.Thread(target=slow_call)
    caller.start()
    sessions_path = f"/_agentcore/runtimes/{created['agentRuntimeId']}/sessions"

    def busy() -> bool:
        listed = signed_get(port, credentials, sessions_path).json()["sessions"]
        return any(session["state"] == "BUSY" for session in listed)

    wait_until(busy, timeout=60, interval=0.05)
    workers = workers_of(home, port, credentials, created["agentRuntimeId"])
    stopped = agentcore(home, "server", "stop")
    caller.join(timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert answers == [{"ok": True}], "the invocation in flight should have been answered before stopping"
    assert workers and not any_alive(workers)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/_agentcore/health")


def deploy(control: Any, port: int, credentials: botocore.credentials.Credentials, name: str) -> Any:
    key = upload(port, credentials)
    created = control.create_agent_runtime(
        agentRuntimeName=name, roleArn="arn:aws:iam::000000000000:role/r",
        agentRuntimeArtifact={"codeConfiguration": {
            "code": {"s3": {"bucket": "agentcore-artifacts", "prefix": key}},
            "runtime": "PYTHON_3_11", "entryPoint": ["agent.py"]}},
    )  # fmt: skip
    runtime_id = created["agentRuntimeId"]
    wait_until(lambda: control.get_agent_runtime(agentRuntimeId=runtime_id)["status"] == "READY", timeout=60)
    return created


def signed_get(port: int, credentials: botocore.credentials.Credentials, path: str) -> httpx.Response:
    url = f"http://127.0.0.1:{port}{path}"
    request = botocore.awsrequest.AWSRequest(method="GET", url=url)
    botocore.auth.SigV4Auth(credentials, "bedrock-agentcore", "us-east-1").add_auth(request)
    return httpx.get(url, headers=dict(request.headers))


def workers_of(
    home: Path, port: int, credentials: botocore.credentials.Credentials, runtime_id: str
) -> dict[Path, bytes]:
    """The server's worker processes with their command lines (a reused pid then does not count):
    each live session's of the runtime, as its session list gives the pid (a forked worker's command
    line is its fork server's), and every fresh worker and fork server whose command line names `home`."""
    found = {
        p: _cmdline(p) for p in Path("/proc").iterdir()
        if p.name.isdigit() and any(name in _cmdline(p) for name in (b"worker_main.py", b"fork_main.py"))
        and str(home).encode() in _cmdline(p)
    }  # fmt: skip
    listed = signed_get(port, credentials, f"/_agentcore/runtimes/{runtime_id}/sessions").json()
    for session in listed["sessions"]:
        process = Path(f"/proc/{session['pid']}")
        found[process] = _cmdline(process)
    return {process: command for process, command in found.items() if command}


def any_alive(workers: dict[Path, bytes]) -> bool:
    return any(_cmdline(process) == command for process, command in workers.items())


def invoke(data: Any, arn: str) -> Any:
    reply = data.invoke_agent_runtime(agentRuntimeArn=arn, payload=b"{}", runtimeSessionId="k" * 33)
    return json.loads(reply["response"].read())


def _cmdline(process: Path) -> bytes:
    try:
        return (process / "cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.parametrize(
    "command", [[], ["server"], ["server", "run"], ["server", "start"], ["server", "stop"]]
)
def test_every_command_has_help(command: list[str], home: Path) -> None:
    helped = agentcore(home, *command, "--help")
    assert helped.returncode == 0 and "usage: agentcore" in helped.stdout


def test_usage_errors_exit_2(home: Path) -> None:
    assert agentcore(home, "server", "fly").returncode == 2
    assert agentcore(home).returncode == 2


def test_a_sandbox_that_cannot_be_applied_is_refused_in_one_line(home: Path) -> None:
    done = agentcore(home, "server", "run", "--port", str(free_port()), "--sandbox", "gvisor-none-such")
    assert done.returncode == 2  # argparse: not a choice
    refused = agentcore(
        home, "server", "run", "--port", str(free_port()), "--sandbox", "none", "--session-network", "none"
    )
    assert refused.returncode == 1, refused.stdout
    assert refused.stderr.startswith("agentcore: --session-network none needs the bwrap sandbox")
    assert len(refused.stderr.strip().splitlines()) == 1
