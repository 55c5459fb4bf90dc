"""The Ray head going away, and coming back, under a real `agentcore server run --backend ray`.

The head is a real `ray start --head` process tree on 127.0.0.1 (free ports, its own temp dir and
auth token, no dashboard, no usage statistics), which holds the session; the server is a real
subprocess. The head is killed as a crashed machine would lose it: every process of its tree,
found by its process group and their descendants, never `ray stop` (that would stop every Ray on
this machine, other tests' clusters included). Its raylet goes first, and the rest once the head
has told the server's Ray client that the node is dead: in that order Ray, in the server's own
process, goes after what the server owned on that node before the server notices the head is gone
(it ended the server's process, when the server kept its code in Ray's object store).

The tests run in order: the head is lost in the fixture, and the last test starts a head again on
the same port.

The cluster is the head alone: a `ray start --address` node cannot be kept on loopback (with
`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` it refuses to join; without, it swaps 127.0.0.1 for the
machine's outward interface), and `ray.cluster_utils.Cluster` will not lose its head.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import httpx
import pytest

from tests.conftest import free_port, wait_until
from tests.scale.conftest import ray_server_process
from tests.server.conftest import KEY_ID, SECRET, Server

pytestmark = pytest.mark.timeout(240)

AGENT = """
import os
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()
calls = []

@app.entrypoint
def main(payload):
    calls.append(payload)
    return {"calls": len(calls), "pid": os.getpid()}
"""
SESSION_MEMORY = 256 * 1024**2
# Ray's client in the server ends the server's process after this long without its head (60 s
# by default; shortened so the test can outlast it): the server must have let go of Ray before.
RAY_GIVE_UP = 10


@dataclass
class Head:
    """A `ray start --head` on 127.0.0.1:`port`, started (and restarted) by the test."""

    port: int
    root: Path
    environment: dict[str, str]
    groups: list[int] = field(default_factory=list)
    starts: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        temp_dir = self.root / f"t{self.starts}"  # Ray's socket paths are bounded in length
        ports = [str(free_port()) for _ in range(6)]
        command = [
            sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--node-ip-address", "127.0.0.1",
            "--port", str(self.port), "--include-dashboard=false", "--disable-usage-stats",
            "--dashboard-port", ports[0], "--dashboard-agent-listen-port", ports[1],
            "--dashboard-agent-grpc-port", ports[2], "--runtime-env-agent-port", ports[3],
            "--metrics-export-port", ports[4], "--node-manager-port", ports[5],
            "--temp-dir", str(temp_dir), "--num-cpus", "1", "--memory", str(1024**3),
            "--object-store-memory", str(80 * 1024**2),
        ]  # fmt: skip
        log = self.root / f"start-{self.starts}.log"
        with log.open("wb") as out:
            # Its own session: every process `ray start` leaves behind is in this process group.
            starter = subprocess.Popen(
                command, env=self.environment, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True,
            )  # fmt: skip
        self.groups.append(starter.pid)
        assert starter.wait(timeout=90) == 0, log.read_text()

    def _driver_told_of_node_death(self) -> bool:
        """Whether a Ray client of this head (the server's, the only one) logged a node's death."""
        for log in self.root.glob(f"t{self.starts}/session_*/logs/python-core-driver-*.log"):
            if "Node failure" in log.read_text(errors="replace"):
                return True
        return False

    def kill(self, server_told: bool = False) -> None:
        """SIGKILL every process of every head started, and everything they started; with
        `server_told`, the raylet first and the rest once the server's Ray client has logged the
        node's death (see the module's docstring)."""
        doomed = _descendants({pid for pid, group in _processes() if group in self.groups})
        raylets = {pid for pid in doomed if _command(pid).endswith("/raylet")} if server_told else set()
        for pid in raylets:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if raylets:
            wait_until(self._driver_told_of_node_death, timeout=30, interval=0.1)
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not doomed & {pid for pid, _ in _processes()}, timeout=30, interval=0.1)


def _command(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    return ""


def _processes() -> list[tuple[int, int]]:
    """(pid, process group) of every process of this machine."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if _state(stat) != "Z":
                    found.append((int(entry.name), int(stat.rpartition(")")[2].split()[2])))
    return found


def _state(stat: str) -> str:
    return stat.rpartition(")")[2].split()[0]


def _descendants(roots: set[int]) -> set[int]:
    """`roots` and every process below them (Ray's workers leave the head's process group)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
    found = set(roots)
    while True:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        if not more:
            return found
        found |= more


@dataclass
class LostHead:
    head: Head
    server: Server
    process: subprocess.Popen[bytes]
    log: Path
    arn: str
    session: str
    # What the call on the live session, made as soon as the head was gone, answered.
    call_on_live_session: botocore.exceptions.ClientError


def _ray_environment(root: Path) -> dict[str, str]:
    token = root / "token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    return {
        **os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
    }  # fmt: skip


@contextlib.contextmanager
def server_process(head: Head, node_dir: Path) -> Iterator[tuple[Server, subprocess.Popen[bytes], Path]]:
    """`agentcore server run --backend ray --ray-address 127.0.0.1:PORT`, stopped afterwards."""
    environment = {**head.environment, "RAY_gcs_rpc_server_reconnect_timeout_s": str(RAY_GIVE_UP)}
    with ray_server_process(head.address, node_dir, environment=environment) as running:
        yield running


def data_client(server: Server) -> Any:
    """A data-plane client that gives up after 30 s without an answer and makes each call once
    (botocore's `max_attempts` counts retries, `total_max_attempts` the calls): a call the server
    let hang fails the test with a read timeout."""
    return boto3.client(
        "bedrock-agentcore", region_name="us-east-1", endpoint_url=server.url,
        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
        config=botocore.config.Config(retries={"total_max_attempts": 1}, read_timeout=30, connect_timeout=5),
    )  # fmt: skip


def invoke(server: Server, arn: str, session_id: str) -> dict[str, Any]:
    reply = data_client(server).invoke_agent_runtime(
        agentRuntimeArn=arn, runtimeSessionId=session_id, payload=json.dumps({"n": 1}).encode()
    )
    answer: dict[str, Any] = json.loads(reply["response"].read())
    return answer


def refusal(server: Server, arn: str, session_id: str) -> botocore.exceptions.ClientError:
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        invoke(server, arn, session_id)
    return raised.value


def health(server: Server) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(server.url + "/_agentcore/health", timeout=10).json()
    return answer


def new_session() -> str:
    return f"head-{uuid.uuid4()}"


@pytest.fixture(scope="module")
def lost_head() -> Iterator[LostHead]:
    root = Path(tempfile.mkdtemp(prefix="oah-", dir="/tmp"))
    node_dir = Path(tempfile.mkdtemp(prefix="oahn-", dir="/tmp"))
    head = Head(free_port(), root, _ray_environment(root))
    try:
        head.start()
        with server_process(head, node_dir) as (server, process, log):
            arn = server.deploy({"agent.py": AGENT}, "survivor")["agentRuntimeArn"]
            session = new_session()
            assert invoke(server, arn, session)["calls"] == 1
            head.kill(server_told=True)
            # At once, before the server may have noticed: the worker died with the head's node.
            try:
                call = refusal(server, arn, session)
            except Exception as error:  # the server's own words say why it did not answer
                raise AssertionError(
                    f"{error}\nserver exit: {process.poll()}\nserver log:\n{log.read_text()[-6000:]}"
                ) from error
            yield LostHead(head, server, process, log, arn, session, call)
    finally:
        head.kill()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(node_dir, ignore_errors=True)


def test_a_call_on_a_live_session_gets_an_error_naming_the_head(lost_head: LostHead) -> None:
    error = lost_head.call_on_live_session.response
    assert error["Error"]["Code"] == "ServiceQuotaExceededException", error
    message = error["Error"]["Message"]
    assert "head" in message and lost_head.head.address in message, message


def test_health_says_the_head_is_unreachable(lost_head: LostHead) -> None:
    def unreachable() -> dict[str, Any] | None:
        answer = health(lost_head.server)
        return answer if answer.get("cluster", {}).get("reachable") is False else None

    answer = wait_until(unreachable, timeout=20, interval=0.2)
    assert answer["status"] == "degraded"
    assert answer["cluster"]["address"] == lost_head.head.address
    assert "stopped answering" in answer["cluster"]["reason"]


def test_a_new_session_is_refused_naming_the_head(lost_head: LostHead) -> None:
    wait_until(lambda: health(lost_head.server)["cluster"]["reachable"] is False, timeout=20, interval=0.2)
    error = refusal(lost_head.server, lost_head.arn, new_session()).response
    assert error["Error"]["Code"] == "ServiceQuotaExceededException", error
    message = error["Error"]["Message"]
    assert f"the Ray head at {lost_head.head.address} cannot be reached" in message, message
    assert "until it is back" in message


def test_the_live_session_ended_with_a_reason_naming_the_head(lost_head: LostHead) -> None:
    runtime_id = lost_head.arn.rsplit("/", 1)[1]

    def ended_session_log() -> str | None:
        reply = lost_head.server.signed(
            "GET", f"/_agentcore/runtimes/{runtime_id}/sessions/{lost_head.session}/logs"
        )
        return reply.text if reply.status_code == 200 and "Ray head" in reply.text else None

    text = wait_until(ended_session_log, timeout=20, interval=0.2)
    assert lost_head.head.address in text


def test_agentcore_server_status_says_the_head_is_unreachable(lost_head: LostHead) -> None:
    wait_until(lambda: health(lost_head.server)["cluster"]["reachable"] is False, timeout=20, interval=0.2)
    port = lost_head.server.url.rsplit(":", 1)[1]
    shown = subprocess.run(
        [sys.executable, "-m", "open_agentcore.cli", "server", "status", "--port", port],
        env={**os.environ, "AGENTCORE_HOME": str(lost_head.server.data_dir.parent)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert f"Ray head {lost_head.head.address}: UNREACHABLE" in shown.stdout, shown.stdout


def test_the_server_outlives_rays_own_deadline_and_its_control_plane_answers(lost_head: LostHead) -> None:
    # Ray's client ends its process RAY_GIVE_UP seconds after losing the head; the server, having
    # let go of Ray, keeps serving past that. Polled, not slept: it must answer all along.
    past_deadline = time.monotonic() + RAY_GIVE_UP + 5
    control = lost_head.server.control

    def served_past_deadline() -> bool:
        assert lost_head.process.poll() is None, lost_head.log.read_text()
        runtimes = control.list_agent_runtimes()["agentRuntimes"]
        assert [runtime["agentRuntimeName"] for runtime in runtimes] == ["survivor"]
        return time.monotonic() > past_deadline

    wait_until(served_past_deadline, timeout=RAY_GIVE_UP + 30, interval=0.5)
    described = control.get_agent_runtime(agentRuntimeId=lost_head.arn.rsplit("/", 1)[1])
    assert described["status"] == "READY"


def test_sessions_start_again_once_a_head_answers_at_the_same_address(lost_head: LostHead) -> None:
    lost_head.head.start()
    wait_until(lambda: health(lost_head.server)["cluster"]["reachable"] is True, timeout=60, interval=0.2)
    server, arn = lost_head.server, lost_head.arn
    # The old session's worker is gone with the old cluster: the same id starts afresh.
    assert invoke(server, arn, lost_head.session)["calls"] == 1
    assert invoke(server, arn, lost_head.session)["calls"] == 2
    assert lost_head.process.poll() is None
