"""One session cannot take the host: memory, processes and CPU are limited per session.

The attack: an agent allocated 2 GiB and started 64 processes, and nothing stopped it from taking
the machine (the OOM killer choosing a victim anywhere, pid exhaustion, every CPU). Now each
session runs in cgroups of its own (v1 on this machine) with the server's `--session-*` limits;
running out of memory ends that session with a reason its caller, its log and the session list
show, and the server and other sessions go on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from tests.conftest import wait_until
from tests.security.attack import short_data_dir
from tests.server.conftest import Server, running_server

HOG_AGENT = """
import os
import subprocess
import time

from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()
kept = []


@app.entrypoint
def invoke(payload, context):
    if "allocate_mib" in payload:
        for _ in range(payload["allocate_mib"]):
            kept.append(bytearray(1024 * 1024))
        return {"allocated": len(kept)}
    if "processes" in payload:
        started, refused = [], 0
        for _ in range(payload["processes"]):
            try:
                started.append(subprocess.Popen(["sleep", "30"]))
            except OSError:
                refused += 1
        for process in started:
            process.kill()
            process.wait()
        return {"started": len(started), "refused": refused}
    if "spin_seconds" in payload:
        end = time.monotonic() + payload["spin_seconds"]
        while time.monotonic() < end:
            pass
        return {"spun": True}
    return {"pid": os.getpid(), "kept": len(kept)}
"""
MEMORY = 160 * 1024 * 1024


@pytest.fixture(scope="module", params=["fresh", "fork"])
def session_start(request: pytest.FixtureRequest) -> str:
    """Sessions that start fresh, and sessions forked by their version's fork server (sandboxed alike)."""
    started: str = request.param
    return started


@pytest.fixture(scope="module")
def server(session_start: str) -> Iterator[Server]:
    limits = {"session_memory": MEMORY, "session_pids": 48, "session_cpus": 0.25}
    with (
        short_data_dir() as data_dir,
        running_server(data_dir, session_start=session_start, **limits) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def hog(server: Server) -> dict[str, Any]:
    created: dict[str, Any] = server.deploy({"agent.py": HOG_AGENT}, "hog")
    return created


def invoke(server: Server, arn: str, session: str, payload: dict[str, Any]) -> Any:
    reply = server.data.invoke_agent_runtime(
        agentRuntimeArn=arn, runtimeSessionId=session, payload=json.dumps(payload).encode()
    )
    return json.loads(reply["response"].read())


def sessions(server: Server, runtime_id: str) -> list[dict[str, Any]]:
    reply = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions?state=all")
    listed: list[dict[str, Any]] = reply.json()["sessions"]
    return listed


def cgroup_file(pid: int, controller: str, name: str) -> Path:
    """A file of the cgroup `pid` is in, in the v1 hierarchy of `controller`."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path("/sys/fs/cgroup") / controller / path.lstrip("/") / name
    raise AssertionError(f"pid {pid} has no {controller} cgroup")


def worker_pid(server: Server, runtime_id: str, session: str) -> int:
    for entry in sessions(server, runtime_id):
        if entry["sessionId"] == session and entry["state"] != "ENDED":
            return int(entry["pid"])
    raise AssertionError(f"no live session {session}")


def test_a_session_past_its_memory_ends_with_that_reason_and_others_go_on(
    server: Server, hog: dict[str, Any]
) -> None:
    arn, runtime_id = hog["agentRuntimeArn"], hog["agentRuntimeId"]
    bystander = "a-quiet-neighbour-session-0000000000001"
    victim = "a-greedy-session-000000000000000000002"
    neighbour_pid = invoke(server, arn, bystander, {})["pid"]
    invoke(server, arn, victim, {"allocate_mib": 16})
    with pytest.raises(botocore.exceptions.ClientError) as ended:
        invoke(server, arn, victim, {"allocate_mib": 1024})
    error = ended.value.response["Error"]
    assert error["Code"] == "RuntimeClientError", error
    assert "ran out of memory (limit 160 MiB" in error["Message"]

    # The session's end reaches the store through the journal's queue, maybe after the caller heard.
    def victim_reason() -> str | None:
        reasons = {entry["sessionId"]: entry.get("endReason") for entry in sessions(server, runtime_id)}
        return reasons.get(victim)

    assert "ran out of memory" in str(wait_until(victim_reason, timeout=30))
    log = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions/{victim}/logs").text
    assert "session ended: the session ran out of memory" in log
    # The neighbour kept its worker, and the server answers.
    assert invoke(server, arn, bystander, {})["pid"] == neighbour_pid
    assert invoke(server, arn, victim, {})["kept"] == 0  # the victim's next call: a fresh worker


def test_a_process_storm_hits_the_session_pids_limit(server: Server, hog: dict[str, Any]) -> None:
    arn = hog["agentRuntimeArn"]
    stormed = invoke(server, arn, "a-forking-session-0000000000000000003", {"processes": 200})
    assert stormed["refused"] > 0 and stormed["started"] < 48, stormed
    assert invoke(server, arn, "another-session-after-the-storm-000004", {})["kept"] == 0


def test_each_worker_is_in_cgroups_with_the_servers_limits(
    server: Server, hog: dict[str, Any], session_start: str
) -> None:
    arn, runtime_id = hog["agentRuntimeArn"], hog["agentRuntimeId"]
    session = "a-measured-session-000000000000000005"
    invoke(server, arn, session, {})
    (listed,) = [entry for entry in sessions(server, runtime_id) if entry["sessionId"] == session]
    assert listed["startedBy"] == session_start
    pid = worker_pid(server, runtime_id, session)
    assert int(cgroup_file(pid, "memory", "memory.limit_in_bytes").read_text()) == MEMORY
    assert cgroup_file(pid, "pids", "pids.max").read_text().strip() == "48"
    period = int(cgroup_file(pid, "cpu", "cpu.cfs_period_us").read_text())
    assert int(cgroup_file(pid, "cpu", "cpu.cfs_quota_us").read_text()) == period // 4
    # A spinning agent is held to its quarter of a CPU: the kernel throttles it.
    throttled = cgroup_file(pid, "cpu", "cpu.stat")
    invoke(server, arn, session, {"spin_seconds": 1.0})
    wait_until(lambda: "nr_throttled 0" not in throttled.read_text(), timeout=30)


def test_health_says_how_limits_are_enforced(server: Server) -> None:
    limits = server.signed("GET", "/_agentcore/health").json()["protections"]["limits"]
    assert limits["mode"] == "cgroup v1"
    assert limits["memory"].startswith("160 MiB")
