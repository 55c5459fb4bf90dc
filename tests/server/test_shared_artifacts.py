"""Two runtime servers on one PostgreSQL store, each with its own data dir (as replicas on two
machines): an artifact uploaded through one is usable through the other."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.server.conftest import Server, artifact, running_server
from tests.store.conftest import fresh_postgres_database, postgres_server  # noqa: F401 - a fixture

AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()
count = 0


@app.entrypoint
def invoke(payload, context):
    global count
    count += 1
    return {"count": count, "said": payload.get("say")}
"""

SIX_AGENT = AGENT.replace("count = 0\n", "count = 0\nimport six\n").replace(
    '"said": payload.get("say")}', '"said": payload.get("say"), "six": six.__version__}'
)
ROLE = "arn:aws:iam::000000000000:role/agent"


@pytest.fixture
def database(postgres_server: str) -> Iterator[str]:  # noqa: F811 - the imported fixture
    url, drop = fresh_postgres_database(postgres_server)
    try:
        yield url
    finally:
        drop()


@contextlib.contextmanager
def replicas(database: str) -> Iterator[tuple[Server, Server]]:
    """Two servers on `database`, each on its own data dir (short paths: worker sockets live there)."""
    dirs = [Path(tempfile.mkdtemp(prefix="oacs-", dir="/tmp")) for _ in range(2)]
    try:
        with (
            running_server(dirs[0], store_url=database) as one,
            running_server(dirs[1], store_url=database) as two,
        ):
            yield one, two
    finally:
        for directory in dirs:
            shutil.rmtree(directory, ignore_errors=True)


def call(server: Server, arn: str, session: str, payload: dict[str, Any]) -> dict[str, Any]:
    reply = server.data.invoke_agent_runtime(
        agentRuntimeArn=arn, payload=json.dumps(payload).encode(), runtimeSessionId=session
    )
    answer: dict[str, Any] = json.loads(reply["response"].read())
    return answer


def create(server: Server, name: str, key: str) -> dict[str, Any]:
    created: dict[str, Any] = server.control.create_agent_runtime(
        agentRuntimeName=name, roleArn=ROLE, agentRuntimeArtifact=artifact(key)
    )
    return server.wait_ready(created["agentRuntimeId"])


def session_log(server: Server, runtime_id: str, session_id: str) -> str:
    reply = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions/{session_id}/logs")
    assert reply.status_code == 200, reply.text
    return reply.text


@pytest.mark.timeout(240)
def test_an_artifact_uploaded_through_one_server_is_created_and_invoked_through_another(
    database: str,
) -> None:
    with replicas(database) as (one, two):
        key = one.upload({"agent.py": AGENT})
        assert not (two.data_dir / "artifacts" / key).exists()
        described = create(two, "uploadedelsewhere", key)
        assert described["status"] == "READY", described.get("failureReason")
        assert call(two, described["agentRuntimeArn"], "a" * 33, {"say": "hi"}) == {"count": 1, "said": "hi"}
        # Fetched once into the second server's cache, byte for byte what was uploaded.
        assert (two.data_dir / "artifacts" / key).read_bytes() == (
            one.data_dir / "artifacts" / key
        ).read_bytes()


@pytest.mark.timeout(400)
def test_a_version_built_by_one_server_is_built_by_another_on_first_use_and_the_session_log_says_so(
    database: str,
) -> None:
    with replicas(database) as (one, two):
        created = one.deploy({"agent.py": SIX_AGENT, "requirements.txt": "six==1.16.0\n"}, "builtelsewhere")
        runtime_id, arn = created["agentRuntimeId"], created["agentRuntimeArn"]
        first, second, on_one = "f" * 33, "g" * 33, "h" * 33
        assert call(two, arn, first, {"say": "x"}) == {"count": 1, "said": "x", "six": "1.16.0"}
        log = session_log(two, runtime_id, first)
        assert (
            f"version 1 of {runtime_id} was new to this server: it fetched its artifact from the shared "
            "store, unpacked its code, built its environment on first use"
        ) in log
        # Built once per server: the next session starts from what the first one built.
        assert call(two, arn, second, {"say": "y"})["count"] == 1
        assert "new to this server" not in session_log(two, runtime_id, second)
        # The server that built it never says so. (A session of another id: with the process
        # backend a session lives on the replica that started it.)
        assert call(one, arn, on_one, {"say": "z"})["count"] == 1
        assert "new to this server" not in session_log(one, runtime_id, on_one)


@pytest.mark.timeout(240)
def test_keys_that_are_malformed_or_stored_by_no_server_fail_the_version_with_the_reason(
    database: str,
) -> None:
    with replicas(database) as (one, two):
        one.upload({"agent.py": AGENT})
        missing = create(two, "neveruploaded", "0" * 64 + ".zip")
        assert missing["status"] == "CREATE_FAILED"
        assert "upload it first with PUT /_agentcore/artifacts" in missing["failureReason"]
        malformed = create(two, "malformedkey", "../state.db")
        assert malformed["status"] == "CREATE_FAILED"
        assert "is not an artifact key (expected <sha256>.zip)" in malformed["failureReason"]


@pytest.mark.timeout(240)
def test_a_corrupt_artifact_in_the_store_is_refused_never_run_and_can_be_uploaded_again(
    database: str,
) -> None:
    with replicas(database) as (one, two):
        key = one.upload({"agent.py": AGENT})
        with psycopg.connect(database) as connection:
            connection.execute("UPDATE blob_chunks SET data = %s", (b"PK\x03\x04" + b"\0" * 64,))
        described = create(two, "corrupted", key)
        assert described["status"] == "CREATE_FAILED"
        assert f"artifact {key!r} is corrupt in the store" in described["failureReason"]
        assert not (two.data_dir / "artifacts" / key).exists()
        assert not (two.data_dir / "code" / key.removesuffix(".zip")).exists()
        # Uploading the same zip again stores good bytes, and the next version builds from them.
        assert one.upload({"agent.py": AGENT}) == key
        two.control.update_agent_runtime(
            agentRuntimeId=described["agentRuntimeId"], roleArn=ROLE, agentRuntimeArtifact=artifact(key)
        )
        updated = two.wait_ready(described["agentRuntimeId"], "2")
        assert updated["status"] == "READY", updated.get("failureReason")
        assert call(two, described["agentRuntimeArn"], "c" * 33, {"say": "ok"})["said"] == "ok"


@pytest.mark.timeout(240)
def test_a_ready_version_whose_stored_artifact_is_corrupt_is_never_started_by_another_server(
    database: str,
) -> None:
    with replicas(database) as (one, two):
        created = one.deploy({"agent.py": AGENT}, "corruptlater")
        key = created_key(one, created["agentRuntimeId"])
        with psycopg.connect(database) as connection:
            connection.execute("UPDATE blob_chunks SET data = %s", (b"PK\x03\x04" + b"\0" * 64,))
        with pytest.raises(two.data.exceptions.RuntimeClientError) as refused:
            call(two, created["agentRuntimeArn"], "d" * 33, {"say": "never"})
        message = refused.value.response["Error"]["Message"]
        assert "is ready, but this server could not prepare it" in message
        assert f"artifact {key!r} is corrupt in the store" in message
        assert not (two.data_dir / "code" / key.removesuffix(".zip")).exists()
        assert two.signed("GET", "/_agentcore/health").json()["sessions"] == 0
        # The server that built it runs it from its own copy.
        assert call(one, created["agentRuntimeArn"], "d" * 33, {"say": "here"})["said"] == "here"


def created_key(server: Server, runtime_id: str) -> str:
    described = server.control.get_agent_runtime(agentRuntimeId=runtime_id)
    return str(described["agentRuntimeArtifact"]["codeConfiguration"]["code"]["s3"]["prefix"])
