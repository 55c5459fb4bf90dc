"""Ended sessions are remembered with why they ended; their logs are kept and their files removed."""

from __future__ import annotations

import json
from typing import Any

import boto3
import botocore.config

from tests.conftest import wait_until
from tests.server.conftest import KEY_ID, SECRET, Server, artifact

AGENT = """
import os
import sys
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload, context):
    print(f"marker {payload['marker']}", flush=True)
    print("on stderr too", file=sys.stderr, flush=True)
    with open(os.path.join(os.environ["HOME"], "scratch.bin"), "wb") as scratch:
        scratch.write(b"x" * 4096)
    if payload.get("crash"):
        os._exit(3)
    return {"ok": True}
"""


def listing(server: Server, runtime_id: str, state: str = "all") -> dict[str, dict[str, Any]]:
    reply = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions?state={state}")
    assert reply.status_code == 200, reply.text
    return {entry["sessionId"]: entry for entry in reply.json()["sessions"]}


def invoke(server: Server, arn: str, session: str, **payload: Any) -> Any:
    reply = server.data.invoke_agent_runtime(
        agentRuntimeArn=arn, payload=json.dumps(payload).encode(), runtimeSessionId=session
    )
    return json.loads(reply["response"].read())


def test_a_stopped_session_is_listed_as_ended_keeps_its_log_and_leaves_no_files(server: Server) -> None:
    created = server.deploy({"agent.py": AGENT}, "journal")
    arn, runtime_id = created["agentRuntimeArn"], created["agentRuntimeId"]
    session = "j" * 40
    assert invoke(server, arn, session, marker="first-run-41") == {"ok": True}
    assert listing(server, runtime_id, "live")[session]["state"] == "IDLE"
    assert any((server.data_dir / "w").iterdir()), "a live session has its own work dir"
    server.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=session)

    def ended() -> dict[str, Any] | None:
        entry = listing(server, runtime_id).get(session)
        return entry if entry and entry["state"] == "ENDED" else None

    entry = wait_until(ended, timeout=10)
    assert entry["endReason"] == "stopped by StopRuntimeSession"
    assert session not in listing(server, runtime_id, "live")
    # (its version's fork server, `fork-...`, lingers a while for the next session: not a session's)
    left = [path.name for path in (server.data_dir / "w").iterdir() if not path.name.startswith("fork-")]
    assert left == [], "an ended session's home and tmp are removed"
    log = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions/{session}/logs")
    assert log.status_code == 200 and "marker first-run-41" in log.text and "on stderr too" in log.text

    # The same id again is a fresh worker whose output follows the earlier run's in the log.
    assert invoke(server, arn, session, marker="second-run-42") == {"ok": True}
    log = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions/{session}/logs")
    assert log.text.index("marker first-run-41") < log.text.index("marker second-run-42")


def test_a_crashed_session_says_how_its_worker_exited(server: Server) -> None:
    created = server.deploy({"agent.py": AGENT}, "crashlog")
    arn, runtime_id = created["agentRuntimeArn"], created["agentRuntimeId"]
    session = "c" * 40
    error = None
    try:
        invoke(server, arn, session, marker="before-crash", crash=True)
    except server.data.exceptions.RuntimeClientError as refused:
        error = refused
    assert error is not None

    def reason() -> str | None:
        entry = listing(server, runtime_id).get(session)
        return entry["endReason"] if entry and entry["state"] == "ENDED" else None

    assert wait_until(reason, timeout=10) == "worker exited with code 3"
    log = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions/{session}/logs")
    assert "marker before-crash" in log.text


def test_listing_and_logs_refuse_what_does_not_exist(server: Server) -> None:
    runtime_id = server.deploy({"agent.py": AGENT}, "nolog")["agentRuntimeId"]
    bad = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions?state=sometimes")
    assert (bad.status_code, bad.headers["x-amzn-errortype"]) == (400, "ValidationException")
    missing = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions/{'n' * 40}/logs")
    assert (missing.status_code, missing.headers["x-amzn-errortype"]) == (404, "ResourceNotFoundException")
    unknown = server.signed("GET", "/_agentcore/runtimes/missing-AAAAAAAAAA/sessions")
    assert unknown.status_code == 404


LIFECYCLE_AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp
from bedrock_agentcore.runtime.models import PingStatus

app = BedrockAgentCoreApp()
busy = False


@app.entrypoint
def invoke(payload):
    global busy
    busy = payload["busy"]
    return {"busy": busy}


@app.ping
def status():
    return PingStatus.HEALTHY_BUSY if busy else PingStatus.HEALTHY
"""


def test_idle_sessions_end_but_healthy_busy_ones_live_to_their_max_lifetime(server: Server) -> None:
    # The fixture's server allows lifecycles down to 1 s (--min-lifecycle-seconds 1); boto3 itself
    # checks the managed service's 60 s minimum unless told not to.
    unchecked = boto3.client(
        "bedrock-agentcore-control", region_name="us-east-1", endpoint_url=server.url,
        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
        config=botocore.config.Config(parameter_validation=False),
    )  # fmt: skip
    created = unchecked.create_agent_runtime(
        agentRuntimeName="lifecycle", roleArn="arn:aws:iam::000000000000:role/agent",
        agentRuntimeArtifact=artifact(server.upload({"agent.py": LIFECYCLE_AGENT})),
        lifecycleConfiguration={"idleRuntimeSessionTimeout": 1, "maxLifetime": 5},
    )  # fmt: skip
    server.wait_ready(created["agentRuntimeId"])
    arn, runtime_id = created["agentRuntimeArn"], created["agentRuntimeId"]
    idle, busy = "i" * 40, "b" * 40
    assert invoke(server, arn, busy, busy=True) == {"busy": True}
    assert invoke(server, arn, idle, busy=False) == {"busy": False}

    def reason(session: str) -> str | None:
        entry = listing(server, runtime_id).get(session)
        return entry["endReason"] if entry and entry["state"] == "ENDED" else None

    assert wait_until(lambda: reason(idle), timeout=20, interval=0.1) == "idle timeout"
    assert wait_until(lambda: reason(busy), timeout=20, interval=0.1) == (
        "maxLifetime reached: the session may live 5 s"
    )
