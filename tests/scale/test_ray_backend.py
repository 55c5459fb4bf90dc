"""Sessions on a real three-node Ray cluster, driven with boto3 through a real runtime server."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import pytest
import websockets.exceptions
import websockets.sync.client

from bedrock_agentcore.runtime import AgentCoreRuntimeClient
from open_agentcore.sessions import SessionManager
from tests.conftest import accepts, free_port, wait_until
from tests.scale.conftest import NODES, RayCluster, ray_server
from tests.server.conftest import KEY_ID, SECRET, Server

pytestmark = pytest.mark.timeout(240)
# The SDK hands back the upgrade headers too; a WebSocket library sets those itself.
_UPGRADE = {"upgrade", "connection", "sec-websocket-version", "sec-websocket-key", "host", "user-agent"}

AGENT = """
import os
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()
calls = []

@app.entrypoint
def main(payload):
    calls.append(payload)
    return {"calls": len(calls), "node": os.environ.get("AGENTCORE_NODE_ID"), "pid": os.getpid()}

@app.websocket
async def talk(websocket, context):
    await websocket.accept()
    text = await websocket.receive_text()
    calls.append(text)
    await websocket.send_json({"echo": text, "calls": len(calls)})
    await websocket.close()
"""


@pytest.fixture(scope="module")
def served(ray_cluster: RayCluster) -> Iterator[tuple[Server, Any, str]]:
    """One server on the cluster and one runtime deployed on it, for the whole module."""
    with ray_server(ray_cluster) as (server, app):
        created = server.deploy({"agent.py": AGENT}, "scaled")
        yield server, app, created["agentRuntimeArn"]


def invoke(server: Server, arn: str, session_id: str) -> dict[str, Any]:
    reply = server.data.invoke_agent_runtime(
        agentRuntimeArn=arn, runtimeSessionId=session_id, payload=json.dumps({"n": 1}).encode()
    )
    answer: dict[str, Any] = json.loads(reply["response"].read())
    return answer


def new_session() -> str:
    return f"scale-{uuid.uuid4()}"


@contextlib.contextmanager
def sessions_stopped(server: Server, arn: str, ids: list[str]) -> Iterator[list[str]]:
    """Stop the sessions in `ids` afterwards, so the next test finds every node free."""
    try:
        yield ids
    finally:
        for session_id in ids:
            with contextlib.suppress(botocore.exceptions.ClientError):
                server.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=session_id)


def manager(app: Any) -> SessionManager:
    sessions: SessionManager = app.state.sessions
    return sessions


def test_the_same_session_twice_reaches_one_workers_memory(served: tuple[Server, Any, str]) -> None:
    server, _, arn = served
    session = new_session()
    with sessions_stopped(server, arn, [session]):
        first, second = invoke(server, arn, session), invoke(server, arn, session)
    assert (first["calls"], second["calls"]) == (1, 2)
    assert first["node"] == second["node"] and first["pid"] == second["pid"]


def test_sessions_are_spread_over_the_nodes_by_their_cpus(served: tuple[Server, Any, str]) -> None:
    server, _, arn = served
    with sessions_stopped(server, arn, [new_session() for _ in range(NODES)]) as ids:
        nodes = {invoke(server, arn, session_id)["node"] for session_id in ids}
    # Each node has 1 CPU and each session reserves 1: no two can share a node.
    assert len(nodes) == NODES


BULKY_AGENT = """
import hashlib, pathlib
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()

@app.entrypoint
def main(payload):
    return {"blob": hashlib.sha256((pathlib.Path(__file__).parent / "blob.txt").read_bytes()).hexdigest()}
"""


def test_code_many_times_larger_than_one_part_reaches_its_node_whole(served: tuple[Server, Any, str]) -> None:
    # 700,000 bytes: eleven of the parts the server sends code in, each inside a call to the actor.
    server = served[0]
    blob = secrets.token_hex(350_000)
    arn = server.deploy({"agent.py": BULKY_AGENT, "blob.txt": blob}, "bulky")["agentRuntimeArn"]
    with sessions_stopped(server, arn, [new_session()]) as ids:
        answer = invoke(server, arn, ids[0])
    assert answer == {"blob": hashlib.sha256(blob.encode()).hexdigest()}


def test_a_websocket_reaches_the_sessions_worker_on_its_node(
    served: tuple[Server, Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _, arn = served
    # AWS itself cannot exist here: the admin key of the local server stands in for IAM credentials.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    client = AgentCoreRuntimeClient(region="us-east-1", endpoint_url=server.url)
    session = new_session()
    with sessions_stopped(server, arn, [session]):
        invoke(server, arn, session)
        url, headers = client.generate_ws_connection(arn, session_id=session)
        kept = {name: value for name, value in headers.items() if name.lower() not in _UPGRADE}
        with websockets.sync.client.connect(url, additional_headers=kept, open_timeout=60) as websocket:
            websocket.send("hello")
            answer = json.loads(websocket.recv(timeout=30))
    assert answer == {"echo": "hello", "calls": 2}  # the same worker as the invocation's


def test_a_session_no_node_has_room_for_is_refused_with_a_quota_error(
    served: tuple[Server, Any, str],
) -> None:
    server, app, arn = served
    with sessions_stopped(server, arn, [new_session() for _ in range(NODES + 1)]) as ids:
        for session_id in ids[:NODES]:
            invoke(server, arn, session_id)
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            invoke(server, arn, ids[NODES])
    error = refused.value.response["Error"]
    assert error["Code"] == "ServiceQuotaExceededException"
    assert "no Ray node had room" in error["Message"]
    assert manager(app).get(arn.rsplit("/", 1)[1], ids[NODES]) is None


def test_a_session_larger_than_any_node_is_refused_at_once(ray_cluster: RayCluster) -> None:
    with ray_server(ray_cluster, session_cpus=4.0) as (server, _):
        created = server.deploy({"agent.py": AGENT}, "too_big")
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            invoke(server, created["agentRuntimeArn"], new_session())
    error = refused.value.response["Error"]
    assert error["Code"] == "ServiceQuotaExceededException"
    assert "even when idle" in error["Message"]


PROBE = """
import socket
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()

@app.entrypoint
def main(payload):
    try:
        socket.create_connection((payload["host"], payload["port"]), timeout=5).close()
        return {"reached": True}
    except OSError as error:
        return {"reached": False, "error": str(error)}
"""


def test_without_a_network_an_agent_cannot_reach_the_ray_cluster(ray_cluster: RayCluster) -> None:
    host, port = ray_cluster.address.rsplit(":", 1)
    with ray_server(ray_cluster, session_network="none") as (server, _):
        arn = server.deploy({"agent.py": PROBE}, "probe")["agentRuntimeArn"]
        session = new_session()
        with sessions_stopped(server, arn, [session]):
            reply = server.data.invoke_agent_runtime(
                agentRuntimeArn=arn, runtimeSessionId=session,
                payload=json.dumps({"host": host, "port": int(port)}).encode(),
            )  # fmt: skip
            answer = json.loads(reply["response"].read())
    # The server still reached it (its port was bound outside the worker's empty network); the
    # agent cannot reach Ray's head, which would run any code it sent on every node.
    assert answer["reached"] is False, answer


def test_a_workers_port_refuses_requests_without_its_own_secret(served: tuple[Server, Any, str]) -> None:
    server, app, arn = served
    runtime_id = arn.rsplit("/", 1)[1]
    with sessions_stopped(server, arn, [new_session(), new_session()]) as ids:
        for session_id in ids:
            invoke(server, arn, session_id)
        one, other = (manager(app).get(runtime_id, session_id) for session_id in ids)
        assert one is not None and other is not None
        address, others = one.client.address, other.client.address
        assert address is not None and others is not None
        url = f"http://{address.host}:{address.port}"
        forged = address.secret[:-1] + ("A" if address.secret[-1] != "A" else "B")
        attempts = {
            "none": {},
            "another worker's": {"x-agentcore-worker-secret": others.secret},
            "forged": {"x-agentcore-worker-secret": forged},
            "empty": {"x-agentcore-worker-secret": ""},
            "twice, one right": {},
        }
        for name, headers in attempts.items():
            for method, path in (("GET", "/ping"), ("POST", "/invocations")):
                extra = [
                    ("x-agentcore-worker-secret", "wrong"),
                    ("x-agentcore-worker-secret", address.secret),
                ]
                sent = extra if name.startswith("twice") else list(headers.items())
                reply = httpx.request(method, url + path, headers=sent, json={}, timeout=10)
                assert reply.status_code == 403, (name, path, reply.text)
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            websockets.sync.client.connect(f"ws://{address.host}:{address.port}/ws", open_timeout=10)
        assert refused.value.response.status_code == 403
        # The server's own requests still get through, and the refused ones never reached the agent.
        assert invoke(server, arn, ids[0])["calls"] == 2
        allowed = httpx.get(url + "/ping", headers={"x-agentcore-worker-secret": address.secret}, timeout=10)
        assert allowed.status_code == 200


def test_a_dead_node_ends_its_session_and_the_next_call_gets_a_fresh_worker(
    served: tuple[Server, Any, str], ray_cluster: RayCluster
) -> None:
    server, app, arn = served
    runtime_id = arn.rsplit("/", 1)[1]
    with sessions_stopped(server, arn, [new_session() for _ in range(NODES)]) as ids:
        placed = {session_id: invoke(server, arn, session_id)["node"] for session_id in ids}
        victim = next(node for node in ray_cluster.cluster.worker_nodes if node.node_id in placed.values())
        session = next(session_id for session_id, node in placed.items() if node == victim.node_id)
        live = manager(app).get(runtime_id, session)
        assert live is not None and live.client.address is not None
        address = live.client.address
        head = ray_cluster.cluster.head_node.node_id
        survivor = next(session_id for session_id, node in placed.items() if node == head)
        # Free the third node for the fresh worker (the dead node's CPU goes with it); the head's stays.
        for other in ids:
            if other not in (session, survivor):
                server.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=other)
        ray_cluster.cluster.remove_node(victim, allow_graceful=False)

        def ended() -> str | None:
            listed = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions?state=all").json()
            for entry in listed["sessions"]:
                if entry["sessionId"] == session and entry["state"] == "ENDED":
                    return str(entry["endReason"])
            return None

        assert wait_until(ended, timeout=60, interval=0.2) == "the Ray node running this session died"
        wait_until(lambda: not accepts(address.host, address.port), timeout=30, interval=0.2)
        again = invoke(server, arn, session)
        assert again["calls"] == 1 and again["node"] not in (victim.node_id, head)
        # The session on another node lived through it, memory and all.
        assert invoke(server, arn, survivor)["calls"] == 2


def test_nothing_listens_beyond_loopback(served: tuple[Server, Any, str]) -> None:
    server, _, arn = served
    session = new_session()
    with sessions_stopped(server, arn, [session]):
        invoke(server, arn, session)  # a worker is listening too
        bound = _bound_sockets(_descendants(os.getpid()))
    assert bound, "found no socket of the cluster's processes: the check would prove nothing"
    assert any(port for _, port, kind in bound if kind == "tcp-listen")
    outward = [entry for entry in bound if not _loopback(entry[0])]
    assert outward == []


def server_run(data_dir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """`agentcore server run --backend ray FLAGS` as a real process, expected to refuse to start."""
    return subprocess.run(
        [sys.executable, "-m", "open_agentcore.cli", "server", "run", "--backend", "ray",
         "--data-dir", str(data_dir), "--port", str(free_port()), *flags],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "AGENTCORE_ADMIN_ACCESS_KEY_ID": "AKIATESTADMIN0000001",
             "AGENTCORE_ADMIN_SECRET_ACCESS_KEY": "test-secret-for-the-local-server-only-00"},
    )  # fmt: skip


def test_an_unreachable_head_is_refused_in_one_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    result = server_run(tmp_path / "data", "--ray-address", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"no Ray head answers at 127.0.0.1:{port}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_sandbox_ray_nodes_do_not_offer_is_refused_in_one_line(tmp_path: Path) -> None:
    result = server_run(tmp_path / "data", "--sandbox", "gvisor", "--ray-address", "127.0.0.1:1")
    assert result.returncode == 1
    assert "--backend ray runs workers with --sandbox auto, bwrap, none, not 'gvisor'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                frontier.append(pid)
    return found


def _bound_sockets(pids: set[int]) -> list[tuple[str, int, str]]:
    """(address, port, kind) of the TCP sockets listening and the UDP sockets bound by `pids`."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    bound = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if inode not in inodes or (table.startswith("tcp") and state != "0A"):
                continue
            address, port = local.split(":")
            kind = "tcp-listen" if table.startswith("tcp") else "udp"
            bound.append((_address(address), int(port, 16), kind))
    return bound


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def _loopback(address: str) -> bool:
    return address.startswith("127.") or address in ("::1", "::ffff:127.0.0.1") or (
        address.startswith("::ffff:127.")
    )  # fmt: skip
