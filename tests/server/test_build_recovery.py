"""A build interrupted by the server's death is taken up again when the server restarts."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import botocore.auth
import botocore.awsrequest
import httpx
import pytest

from tests.cli.test_server_commands import agentcore, clients
from tests.conftest import free_port, wait_until
from tests.server.conftest import artifact


class SilentIndex:
    """A package index that accepts connections and never answers: a build using it hangs."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.asked = threading.Event()
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self.listener.accept()
                self._held.append(connection)
                self.asked.set()

    def close(self) -> None:
        self.listener.close()
        for connection in self._held:
            connection.close()


@pytest.fixture
def home() -> Iterator[Path]:
    # Short: worker sockets live under the data dir, and unix socket paths max out at 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="oacb-", dir="/tmp"))
    yield path
    pid_file = path / "server" / "server.pid"
    if pid_file.exists():
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    shutil.rmtree(path, ignore_errors=True)


def test_a_build_cut_by_kill_9_is_built_again_at_start_up_and_its_failure_names_the_restart(
    home: Path,
) -> None:
    index = SilentIndex()
    try:
        port = free_port()
        assert agentcore(home, "server", "start", "--port", str(port), "--warm-pool", "0").returncode == 0
        control, _, credentials = clients(home, port)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(
                "agent.py", "from bedrock_agentcore import BedrockAgentCoreApp\napp = BedrockAgentCoreApp()\n"
            )
            archive.writestr(
                "requirements.txt", f"--index-url http://127.0.0.1:{index.port}/simple/\nno-such-package\n"
            )
        url = f"http://127.0.0.1:{port}/_agentcore/artifacts"
        request = botocore.awsrequest.AWSRequest(method="PUT", url=url, data=buffer.getvalue())
        botocore.auth.SigV4Auth(credentials, "bedrock-agentcore", "us-east-1").add_auth(request)
        key = httpx.put(url, content=buffer.getvalue(), headers=dict(request.headers)).json()["key"]
        created = control.create_agent_runtime(
            agentRuntimeName="interrupted", roleArn="arn:aws:iam::000000000000:role/agent",
            agentRuntimeArtifact=artifact(key),
        )  # fmt: skip
        runtime_id = created["agentRuntimeId"]
        assert index.asked.wait(timeout=60), "the build never reached the package index"
        assert control.get_agent_runtime(agentRuntimeId=runtime_id)["status"] == "CREATING"
        os.kill(int((home / "server" / "server.pid").read_text()), signal.SIGKILL)
    finally:
        index.close()  # the index is gone for good: the build taken up again cannot succeed

    assert agentcore(home, "server", "start", "--port", str(port), "--warm-pool", "0").returncode == 0
    control, _, _ = clients(home, port)

    def settled() -> dict[str, object] | None:
        described: dict[str, object] = control.get_agent_runtime(agentRuntimeId=runtime_id)
        return described if described["status"] != "CREATING" else None

    described = wait_until(settled, timeout=120, interval=0.2)
    assert described["status"] == "CREATE_FAILED"
    reason = str(described["failureReason"])
    assert reason.startswith("the server restarted in the middle of this build, and building again failed:")
    assert "no-such-package" in reason or str(index.port) in reason
