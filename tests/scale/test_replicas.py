"""Two server replicas on one PostgreSQL store and one Ray cluster serve the same sessions.

Replica 1 is a real `agentcore server run` process (so it can be killed with SIGKILL); replica 2
is a real uvicorn server in this process (so the test can read its state). Both have their own
data dir and reach the same three-node Ray cluster on loopback.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest

from open_agentcore.store import SessionState, Store
from tests.conftest import accepts, wait_until
from tests.scale.conftest import RayCluster, ray_server, ray_server_process
from tests.server.conftest import KEY_ID, SECRET, Server, artifact, clients
from tests.store.conftest import fresh_postgres_database, postgres_server  # noqa: F401 - a fixture

pytestmark = pytest.mark.timeout(300)

AGENT = """
import os
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()
calls = []

@app.entrypoint
def main(payload):
    calls.append(payload)
    return {"calls": len(calls), "pid": os.getpid(), "node": os.environ.get("AGENTCORE_NODE_ID")}
"""
IDLE_TIMEOUT = 2


@dataclass
class Replicas:
    one: Server
    two: Server
    store: Store
    url: str
    arn: str
    idle_arn: str
    cluster: RayCluster


@contextlib.contextmanager
def replica_process(cluster: RayCluster, store_url: str) -> Iterator[tuple[Server, subprocess.Popen[bytes]]]:
    """`agentcore server run --backend ray --store postgresql://...` as a real process, stopped afterwards."""
    with ray_server_process(cluster.address, cluster.node_dir, ["--store", store_url]) as (
        server,
        process,
        _,
    ):
        yield server, process


@pytest.fixture(scope="module")
def replicas(ray_cluster: RayCluster, postgres_server: str) -> Iterator[Replicas]:  # noqa: F811
    url, drop = fresh_postgres_database(postgres_server)
    try:
        with (
            replica_process(ray_cluster, url) as (one, _),
            ray_server(ray_cluster, store_url=url) as (two, _),
        ):
            # Uploaded through replica 1 only: replica 2 fetches the code from the shared store by its
            # hash when its first session of a version starts there.
            key = one.upload({"agent.py": AGENT})
            # boto3 checks the managed service's 60 s minimum unless told not to; the server allows 1 s.
            unchecked = boto3.client(
                "bedrock-agentcore-control", region_name="us-east-1", endpoint_url=one.url,
                aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                config=botocore.config.Config(parameter_validation=False),
            )  # fmt: skip
            arns = []
            for name, idle in (("counter", 900), ("idler", IDLE_TIMEOUT)):
                created = unchecked.create_agent_runtime(
                    agentRuntimeName=name, roleArn="arn:aws:iam::000000000000:role/agent",
                    agentRuntimeArtifact=artifact(key),
                    lifecycleConfiguration={"idleRuntimeSessionTimeout": idle, "maxLifetime": 3600},
                )  # fmt: skip
                one.wait_ready(created["agentRuntimeId"])
                arns.append(created["agentRuntimeArn"])
            store = Store.open(url)
            try:
                yield Replicas(one, two, store, url, arns[0], arns[1], ray_cluster)
            finally:
                store.close()
    finally:
        drop()


def invoke(server: Server, arn: str, session_id: str, data: Any = None) -> dict[str, Any]:
    reply = (data or server.data).invoke_agent_runtime(
        agentRuntimeArn=arn, runtimeSessionId=session_id, payload=json.dumps({"n": 1}).encode()
    )
    answer: dict[str, Any] = json.loads(reply["response"].read())
    return answer


def new_session() -> str:
    return f"replica-{uuid.uuid4()}"


@contextlib.contextmanager
def stopped_afterwards(server: Server, arn: str, session_id: str) -> Iterator[str]:
    """Stop the session at the end, so the next test finds the cluster's nodes free."""
    try:
        yield session_id
    finally:
        with contextlib.suppress(botocore.exceptions.ClientError):
            server.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=session_id)


def runtime_of(arn: str) -> str:
    return arn.rsplit("/", 1)[1]


def test_one_session_through_either_replica_reaches_one_workers_memory(replicas: Replicas) -> None:
    one, two, arn = replicas.one, replicas.two, replicas.arn
    with stopped_afterwards(two, arn, new_session()) as session:
        answers = [invoke(one, arn, session), invoke(two, arn, session), invoke(one, arn, session)]
    assert [answer["calls"] for answer in answers] == [1, 2, 3]
    assert len({(answer["pid"], answer["node"]) for answer in answers}) == 1


def test_a_session_started_through_the_replica_the_code_was_not_uploaded_to_runs_it(
    replicas: Replicas,
) -> None:
    # The fixture uploaded through replica 1 only: replica 2 fetched the zip from the shared store.
    two, arn = replicas.two, replicas.arn
    with stopped_afterwards(two, arn, new_session()) as session:
        assert invoke(two, arn, session)["calls"] == 1
        record = replicas.store.get_session(runtime_of(arn), session)
    assert record.worker.get("replica") == (two.data_dir / "replica-id").read_text().strip()
    assert list((two.data_dir / "artifacts").glob("*.zip")), "replica 2 has no copy of the code"


def test_the_session_record_names_the_replica_that_started_it(replicas: Replicas) -> None:
    one, two, arn = replicas.one, replicas.two, replicas.arn
    with stopped_afterwards(two, arn, new_session()) as session:
        invoke(one, arn, session)
        invoke(two, arn, session)
        record = replicas.store.get_session(runtime_of(arn), session)
        listed = _listed(two, runtime_of(arn))
    started_by = (one.data_dir / "replica-id").read_text().strip()
    assert record.worker["replica"] == started_by
    assert [entry["replica"] for entry in listed if entry["sessionId"] == session] == [started_by]
    assert started_by != (two.data_dir / "replica-id").read_text().strip()


def test_the_worker_secret_in_the_store_reaches_no_log(replicas: Replicas) -> None:
    one, two, arn = replicas.one, replicas.two, replicas.arn
    with stopped_afterwards(two, arn, new_session()) as session:
        invoke(one, arn, session)
        invoke(two, arn, session)  # adopted: replica 2 read the secret from the store
        secret = replicas.store.get_session(runtime_of(arn), session).worker["secret"]
        listed = json.dumps(_listed(two, runtime_of(arn)))
    # Replica 1 logs at info level, adoption and session events included.
    logs = [one.data_dir.parent / "server.log", *one.data_dir.rglob("*.log"), *two.data_dir.rglob("*.log")]
    assert len(secret) >= 32 and secret not in listed
    assert all(secret not in path.read_text(errors="replace") for path in logs if path.is_file())


def test_two_first_calls_of_one_new_session_at_once_start_one_worker(replicas: Replicas) -> None:
    one, two, arn = replicas.one, replicas.two, replicas.arn
    barrier = threading.Barrier(2)
    answers: list[dict[str, Any]] = []
    # One boto3 client per thread: clients are not shared across threads.
    data = [clients(one.url)[1], clients(two.url)[1]]

    def first_call(server: Server, client: Any, session: str) -> None:
        barrier.wait(timeout=30)
        answers.append(invoke(server, arn, session, client))

    with stopped_afterwards(two, arn, new_session()) as session:
        threads = [
            threading.Thread(target=first_call, args=(server, client, session))
            for server, client in zip((one, two), data, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert sorted(answer["calls"] for answer in answers) == [1, 2]
    assert len({answer["pid"] for answer in answers}) == 1


def test_stopping_through_replica_two_stops_the_worker_replica_one_started(replicas: Replicas) -> None:
    one, two, arn = replicas.one, replicas.two, replicas.arn
    with stopped_afterwards(two, arn, new_session()) as session:
        assert invoke(one, arn, session)["calls"] == 1
        assert invoke(one, arn, session)["calls"] == 2
        first = replicas.store.get_session(runtime_of(arn), session).worker["workerId"]
        two.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=session)
        record = replicas.store.get_session(runtime_of(arn), session)
        assert (record.state, record.end_reason) == (SessionState.STOPPED, "stopped by StopRuntimeSession")
        # Replica 1's entry for the stopped worker notices; its next call starts afresh.
        assert invoke(one, arn, session)["calls"] == 1
        assert replicas.store.get_session(runtime_of(arn), session).worker["workerId"] != first


def test_a_session_whose_worker_died_gets_one_fresh_worker_through_both_replicas(replicas: Replicas) -> None:
    import ray  # connected: replica 2 runs in this process

    one, two, arn = replicas.one, replicas.two, replicas.arn
    with stopped_afterwards(two, arn, new_session()) as session:
        invoke(one, arn, session)
        assert invoke(one, arn, session)["calls"] == 2
        dead = replicas.store.get_session(runtime_of(arn), session).worker
        ray.kill(ray.get_actor(dead["actor"], namespace="open-agentcore"), no_restart=True)
        # ray.kill only asks: until the worker is gone, a call may still reach it (CI saw calls 3).
        wait_until(lambda: not accepts(dead["host"], int(dead["port"])), timeout=30, interval=0.1)
        barrier = threading.Barrier(2)
        answers: list[dict[str, Any]] = []
        data = [clients(one.url)[1], clients(two.url)[1]]

        def call(server: Server, client: Any) -> None:
            barrier.wait(timeout=30)
            answers.append(invoke(server, arn, session, client))

        threads = [threading.Thread(target=call, args=pair) for pair in zip((one, two), data, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        fresh = replicas.store.get_session(runtime_of(arn), session).worker
    # The agent's memory starts over once, in one worker both replicas reach.
    assert sorted(answer["calls"] for answer in answers) == [1, 2]
    assert fresh["workerId"] != dead["workerId"]


def test_stopping_a_session_no_replica_holds_is_not_found_on_either(replicas: Replicas) -> None:
    for server in (replicas.one, replicas.two):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            server.data.stop_runtime_session(agentRuntimeArn=replicas.arn, runtimeSessionId=new_session())
        assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_another_principal_is_refused_the_session_through_either_replica(replicas: Replicas) -> None:
    one, two, arn = replicas.one, replicas.two, replicas.arn
    created = one.signed(
        "POST", "/_agentcore/access-keys",
        json.dumps({"principal": "someone-else", "policy": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"}]}}).encode(),
    )  # fmt: skip
    assert created.status_code == 200, created.text
    key = created.json()
    with stopped_afterwards(two, arn, new_session()) as session:
        invoke(one, arn, session)
        for server in (one, two):
            other = boto3.client(
                "bedrock-agentcore", region_name="us-east-1", endpoint_url=server.url,
                aws_access_key_id=key["accessKeyId"], aws_secret_access_key=key["secretAccessKey"],
                config=botocore.config.Config(retries={"max_attempts": 1}, read_timeout=60),
            )  # fmt: skip
            with pytest.raises(botocore.exceptions.ClientError) as refused:
                invoke(server, arn, session, other)
            assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
            with pytest.raises(botocore.exceptions.ClientError) as refused:
                other.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=session)
            assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
        # Refused, not ended: the owner's session goes on.
        assert invoke(two, arn, session)["calls"] == 2


def _listed(server: Server, runtime_id: str) -> list[dict[str, Any]]:
    sessions: list[dict[str, Any]] = server.signed(
        "GET", f"/_agentcore/runtimes/{runtime_id}/sessions"
    ).json()["sessions"]
    return sessions


def _idle_ends(server: Server, runtime_id: str) -> int:
    logs = server.data_dir / "logs" / "sessions" / runtime_id
    if not logs.is_dir():
        return 0
    return sum(path.read_text().count("session ended: idle timeout") for path in logs.iterdir())


def test_an_idle_session_both_replicas_hold_is_reaped_once(replicas: Replicas) -> None:
    one, two, arn = replicas.one, replicas.two, replicas.idle_arn
    runtime_id = runtime_of(arn)
    with stopped_afterwards(two, arn, new_session()) as session:
        invoke(one, arn, session)
        invoke(two, arn, session)  # both replicas now hold the session

        def ended() -> bool:
            return replicas.store.get_session(runtime_id, session).state is SessionState.STOPPED

        wait_until(ended, timeout=60, interval=0.2)
        assert replicas.store.get_session(runtime_id, session).end_reason == "idle timeout"
        # Each replica's table lets go of it (its actor is gone), and only one of them reaped it.
        wait_until(lambda: not _listed(one, runtime_id) and not _listed(two, runtime_id), timeout=30)
        assert _idle_ends(one, runtime_id) + _idle_ends(two, runtime_id) == 1


def test_a_replica_killed_with_sigkill_loses_no_session(replicas: Replicas) -> None:
    two, arn = replicas.two, replicas.arn
    with (
        replica_process(replicas.cluster, replicas.url) as (doomed, process),
        stopped_afterwards(two, arn, new_session()) as session,
    ):
        # The new replica never had the code uploaded to it: it fetches it from the shared store.
        first = invoke(doomed, arn, session)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        after = invoke(two, arn, session)
        assert (after["calls"], after["pid"], after["node"]) == (2, first["pid"], first["node"])
