"""The runtime server's limits and extensions: payload size, session quota, session list and logs,
back-pressure on streamed replies, and agents built on Amazon's own SDK."""

from __future__ import annotations

import concurrent.futures
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import pytest

from tests.conftest import wait_until
from tests.server.conftest import Server, clients, running_server, sign

AGENT = """
import sys
import uuid
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()
count = 0
INSTANCE = uuid.uuid4().hex


@app.entrypoint
def invoke(payload, context):
    global count
    if "frames" in payload:
        return frames(payload["frames"], payload["size"])
    if "say" in payload:
        print(f"stdout says {payload['say']}", flush=True)
        print(f"stderr says {payload['say']}", file=sys.stderr, flush=True)
    count += 1
    return {"count": count, "instance": INSTANCE, "received": len(payload.get("pad", ""))}


def frames(total, size):
    produced = 0
    try:
        for produced in range(1, total + 1):
            print(f"produced {produced}", flush=True)
            yield "x" * size
    finally:
        print(f"closed after {produced}", flush=True)
"""

LIMIT = 64 * 1024


@pytest.fixture
def small_server(short_data_dir: Path) -> Iterator[Server]:
    """A server that takes payloads of at most 64 KiB and hosts at most two sessions."""
    with running_server(short_data_dir, max_payload=LIMIT, max_sessions=2) as server:
        yield server


def invoke(server: Server, arn: str, session: str, body: bytes) -> dict[str, Any]:
    reply = server.data.invoke_agent_runtime(agentRuntimeArn=arn, payload=body, runtimeSessionId=session)
    answer: dict[str, Any] = json.loads(reply["response"].read())
    return answer


def padded(size: int) -> bytes:
    """A JSON payload of exactly `size` bytes."""
    body = json.dumps({"pad": ""}).encode()
    return json.dumps({"pad": "x" * (size - len(body))}).encode()


def test_a_payload_over_the_limit_is_refused_and_the_session_lives_on(small_server: Server) -> None:
    arn = small_server.deploy({"agent.py": AGENT}, "payloads")["agentRuntimeArn"]
    session = "p" * 33
    first = invoke(small_server, arn, session, padded(LIMIT))  # exactly at the limit passes
    assert (first["count"], first["received"]) == (1, LIMIT - len(b'{"pad": ""}'))

    for size in (LIMIT + 1, 16 * LIMIT):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            invoke(small_server, arn, session, padded(size))
        error = refused.value.response
        assert error["Error"]["Code"] == "ValidationException", error
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 413
        assert "too large" in error["Error"]["Message"]

    second = invoke(small_server, arn, session, b"{}")
    assert (second["count"], second["instance"]) == (2, first["instance"])


def test_sessions_past_the_quota_are_refused_until_one_stops(small_server: Server) -> None:
    arn = small_server.deploy({"agent.py": AGENT}, "quota")["agentRuntimeArn"]
    one, two, three = "1" * 33, "2" * 33, "3" * 33
    assert invoke(small_server, arn, one, b"{}")["count"] == 1
    assert invoke(small_server, arn, two, b"{}")["count"] == 1
    with pytest.raises(small_server.data.exceptions.ServiceQuotaExceededException) as refused:
        invoke(small_server, arn, three, b"{}")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 402
    assert invoke(small_server, arn, one, b"{}")["count"] == 2  # a live session is still served

    small_server.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=two)
    assert invoke(small_server, arn, three, b"{}")["count"] == 1


def test_sessions_starting_at_once_stay_within_the_quota(small_server: Server) -> None:
    arn = small_server.deploy({"agent.py": AGENT}, "rush")["agentRuntimeArn"]
    sessions = [f"{i}" * 33 for i in range(5)]
    # One client per thread, all asking for a new session at the same moment.
    data_clients = [clients(small_server.url)[1] for _ in sessions]
    start = threading.Barrier(len(sessions))

    def attempt(index: int) -> str:
        start.wait(30)
        try:
            data_clients[index].invoke_agent_runtime(
                agentRuntimeArn=arn, payload=b"{}", runtimeSessionId=sessions[index]
            )["response"].read()
        except botocore.exceptions.ClientError as error:
            return str(error.response["Error"]["Code"])
        return "served"

    with concurrent.futures.ThreadPoolExecutor(len(sessions)) as pool:
        outcomes = list(pool.map(attempt, range(len(sessions))))
    assert sorted(outcomes) == ["ServiceQuotaExceededException"] * 3 + ["served"] * 2
    runtime_id = arn.rsplit("/", 1)[1]
    assert len(listed(small_server, runtime_id)) == 2


def listed(server: Server, runtime_id: str) -> dict[str, dict[str, Any]]:
    reply = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions")
    assert reply.status_code == 200, reply.text
    return {entry["sessionId"]: entry for entry in reply.json()["sessions"]}


def test_the_session_list_shows_each_live_session_with_its_state_and_idle_time(server: Server) -> None:
    created = server.deploy({"agent.py": AGENT}, "listing")
    runtime_id, arn = created["agentRuntimeId"], created["agentRuntimeArn"]
    assert listed(server, runtime_id) == {}
    first = invoke(server, arn, "l" * 33, b"{}")
    invoke(server, arn, "m" * 33, b"{}")

    sessions = listed(server, runtime_id)
    assert set(sessions) == {"l" * 33, "m" * 33}
    entry = sessions["l" * 33]
    assert (entry["state"], entry["version"]) == ("IDLE", "1")
    idle = entry["idleSeconds"]
    assert idle >= 0
    wait_until(lambda: listed(server, runtime_id)["l" * 33]["idleSeconds"] > idle)
    assert invoke(server, arn, "l" * 33, b"{}")["instance"] == first["instance"]
    assert (
        listed(server, runtime_id)["l" * 33]["idleSeconds"]
        < listed(server, runtime_id)["m" * 33]["idleSeconds"]
    )  # an invocation resets the idle clock

    server.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId="m" * 33)
    assert set(listed(server, runtime_id)) == {"l" * 33}


def session_log(server: Server, runtime_id: str, session: str) -> str:
    reply = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions/{session}/logs")
    assert reply.status_code == 200, reply.text
    return reply.text


def test_session_logs_hold_what_that_sessions_agent_printed(server: Server) -> None:
    created = server.deploy({"agent.py": AGENT}, "logs")
    runtime_id, arn = created["agentRuntimeId"], created["agentRuntimeArn"]
    mine, theirs = uuid.uuid4().hex, uuid.uuid4().hex
    invoke(server, arn, "a" * 33, json.dumps({"say": mine}).encode())
    invoke(server, arn, "b" * 33, json.dumps({"say": theirs}).encode())

    log = wait_until(lambda: (text := session_log(server, runtime_id, "a" * 33)) and mine in text and text)
    assert f"stdout says {mine}" in log and f"stderr says {mine}" in log
    assert theirs not in log  # each session has its own worker, and its own log

    missing = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions/{'z' * 33}/logs")
    assert missing.status_code == 404
    assert missing.headers["x-amzn-errortype"] == "ResourceNotFoundException"
    assert "message" in missing.json()


def test_session_logs_from_an_offset_give_only_what_follows_it(server: Server) -> None:
    created = server.deploy({"agent.py": AGENT}, "offsets")
    runtime_id, arn = created["agentRuntimeId"], created["agentRuntimeArn"]
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    invoke(server, arn, "o" * 33, json.dumps({"say": first}).encode())
    path = f"/_agentcore/runtimes/{runtime_id}/sessions/{'o' * 33}/logs"
    before = wait_until(
        lambda: (text := session_log(server, runtime_id, "o" * 33)) and first in text and text
    )
    invoke(server, arn, "o" * 33, json.dumps({"say": second}).encode())
    wait_until(lambda: second in session_log(server, runtime_id, "o" * 33))

    offset = len(before.encode())
    rest = server.signed("GET", f"{path}?offset={offset}")
    full = session_log(server, runtime_id, "o" * 33).encode()
    assert rest.headers["x-agentcore-log-offset"] == str(offset)
    assert full.startswith(before.encode()) and full[offset:].startswith(rest.content)
    assert second in rest.text
    # Past the end (a log that restarted shorter): everything, from 0, and the header says so.
    past = server.signed("GET", f"{path}?offset=999999999")
    assert past.headers["x-agentcore-log-offset"] == "0" and first in past.text
    assert server.signed("GET", f"{path}?offset=-1").status_code == 400


@pytest.mark.parametrize("path", ["/sessions", "/sessions/{session}/logs"])
def test_the_session_extensions_refuse_unsigned_requests(server: Server, path: str) -> None:
    created = server.deploy({"agent.py": AGENT}, "private")
    secret = uuid.uuid4().hex
    invoke(server, created["agentRuntimeArn"], "s" * 33, json.dumps({"say": secret}).encode())
    url = f"{server.url}/_agentcore/runtimes/{created['agentRuntimeId']}" + path.format(session="s" * 33)
    refused = httpx.get(url)
    assert refused.status_code == 403
    assert refused.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    assert secret not in refused.text and "s" * 33 not in refused.text


FRAME = 64 * 1024
FRAMES = 2000
# What may sit between the agent's generator and a client that stopped reading: the SDK's 64
# frames of credit, the worker's and the server's socket and transport buffers (a few MiB).
WINDOW = 400


def produced(server: Server, runtime_id: str, session: str) -> int:
    counts = re.findall(r"^produced (\d+)$", session_log(server, runtime_id, session), re.M)
    return int(counts[-1]) if counts else 0


def settled(read: Any, quiet: float = 0.5) -> Any:
    """A condition for `wait_until`: true once `read()` has not changed for `quiet` seconds."""
    last: dict[str, Any] = {"value": object(), "since": 0.0}

    def check() -> Any:
        value, now = read(), time.monotonic()
        if value != last["value"]:
            last.update(value=value, since=now)
            return None
        return value if now - last["since"] >= quiet else None

    return check


class SlowReader:
    """A streaming invocation whose client reads only when told, with a small receive buffer."""

    def __init__(self, server: Server, runtime_id: str, session: str, payload: dict[str, Any]) -> None:
        url = f"{server.url}/runtimes/{runtime_id}/invocations"
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": session}
        # A small receive buffer turns off the kernel's autotuning, which would otherwise let the
        # socket alone soak up tens of MiB of a reply nobody reads.
        transport = httpx.HTTPTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)])
        self.client = httpx.Client(transport=transport, timeout=60)
        self.response = self.client.send(
            self.client.build_request("POST", url, content=body, headers=sign("POST", url, body, headers)),
            stream=True,
        )
        assert self.response.status_code == 200, self.response.read()
        self.chunks = self.response.iter_raw(FRAME)
        self.received = 0

    def read_frames(self, count: int) -> None:
        while self.received < count * (FRAME + 8):  # `data: "xx..x"\n\n`
            self.received += len(next(self.chunks))

    @property
    def frames(self) -> int:
        return self.received // (FRAME + 8)

    def close(self) -> None:
        self.response.close()
        self.client.close()


def test_a_client_that_stops_reading_holds_the_agents_generator_back(server: Server) -> None:
    runtime_id = server.deploy({"agent.py": AGENT}, "pressure")["agentRuntimeId"]
    session = "q" * 33
    reader = SlowReader(server, runtime_id, session, {"frames": FRAMES, "size": FRAME - 2})
    try:
        reader.read_frames(10)
        paused_at = wait_until(settled(lambda: produced(server, runtime_id, session)), timeout=60)
        assert reader.frames <= paused_at <= reader.frames + WINDOW < FRAMES
        assert listed(server, runtime_id)[session]["state"] == "BUSY"

        reader.read_frames(paused_at + 50)  # reading again lets the generator go on, as far again
        moved_to = wait_until(settled(lambda: produced(server, runtime_id, session)), timeout=60)
        assert paused_at < moved_to <= reader.frames + WINDOW < FRAMES
    finally:
        reader.close()

    # A client that goes away no longer holds the agent back: its generator runs to the end (the
    # answer is kept for a resume, `docs/streams.md`), and then the session idles on.
    log = wait_until(
        lambda: (text := session_log(server, runtime_id, session)) and "closed after" in text and text,
        timeout=60,
    )
    closed_after = int(re.findall(r"^closed after (\d+)$", log, re.M)[-1])
    assert closed_after == FRAMES
    wait_until(lambda: listed(server, runtime_id)[session]["state"] == "IDLE")
    assert invoke(server, runtime_id, session, b"{}")["count"] == 1


REFERENCE_AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()
turns = []


@app.entrypoint
def invoke(payload, context):
    import bedrock_agentcore
    turns.append(payload["say"])
    return {"turns": list(turns), "session": context.session_id, "sdk": bedrock_agentcore.__file__}


if __name__ == "__main__":
    app.run()
"""


@pytest.mark.timeout(600)
def test_an_agent_built_on_amazons_sdk_deploys_and_keeps_session_state(server: Server) -> None:
    created = server.deploy(
        {"agent.py": REFERENCE_AGENT, "requirements.txt": "bedrock-agentcore\n"}, "reference"
    )
    described = server.control.get_agent_runtime(agentRuntimeId=created["agentRuntimeId"])
    assert described["status"] == "READY", described.get("failureReason")
    arn, session = created["agentRuntimeArn"], "r" * 33
    first = invoke(server, arn, session, json.dumps({"say": "hello"}).encode())
    assert (first["turns"], first["session"]) == (["hello"], session)
    assert "site-packages" in first["sdk"] and "/sdk/" not in first["sdk"]  # Amazon's, not ours
    second = invoke(server, arn, session, json.dumps({"say": "again"}).encode())
    assert second["turns"] == ["hello", "again"]
