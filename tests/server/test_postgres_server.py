"""The whole runtime server on a real PostgreSQL store: what it records outlives the server."""

from __future__ import annotations

import json
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
    return {"count": count, "version": "v1"}
"""


@pytest.fixture
def database(postgres_server: str) -> Iterator[str]:  # noqa: F811 - the imported fixture
    url, drop = fresh_postgres_database(postgres_server)
    try:
        yield url
    finally:
        drop()


def call(server: Server, arn: str, session: str, **extra: Any) -> dict[str, Any]:
    reply = server.data.invoke_agent_runtime(
        agentRuntimeArn=arn, payload=b"{}", runtimeSessionId=session, **extra
    )
    answer: dict[str, Any] = json.loads(reply["response"].read())
    return answer


def endpoints_of(server: Server, runtime_id: str) -> dict[str, str]:
    listed = server.control.list_agent_runtime_endpoints(agentRuntimeId=runtime_id)["runtimeEndpoints"]
    return {endpoint["name"]: endpoint["liveVersion"] for endpoint in listed}


@pytest.mark.timeout(180)
def test_runtimes_versions_and_endpoints_outlive_a_server_restart(
    short_data_dir: Path, database: str
) -> None:
    with running_server(short_data_dir, store_url=database) as server:
        assert not (short_data_dir / "state.db").exists()
        created = server.deploy({"agent.py": AGENT}, "durable", description="kept in postgres")
        runtime_id, arn = created["agentRuntimeId"], created["agentRuntimeArn"]
        assert call(server, arn, "a" * 33) == {"count": 1, "version": "v1"}
        server.control.create_agent_runtime_endpoint(
            agentRuntimeId=runtime_id, name="pinned", agentRuntimeVersion="1"
        )
        key = server.upload({"agent.py": AGENT.replace('"v1"', '"v2"')})
        updated = server.control.update_agent_runtime(
            agentRuntimeId=runtime_id,
            roleArn="arn:aws:iam::000000000000:role/agent",
            agentRuntimeArtifact=artifact(key),
        )
        assert updated["agentRuntimeVersion"] == "2"
        assert server.wait_ready(runtime_id)["status"] == "READY"
        assert call(server, arn, "b" * 33)["version"] == "v2"

    with psycopg.connect(database) as connection:  # written where we said, not to a file beside
        rows = connection.execute("SELECT id FROM runtimes").fetchall()
    assert rows == [(runtime_id,)]

    with running_server(short_data_dir, store_url=database) as restarted:
        described = restarted.control.get_agent_runtime(agentRuntimeId=runtime_id)
        assert (described["status"], described["agentRuntimeVersion"]) == ("READY", "2")
        assert described["description"] == "kept in postgres"
        listed = restarted.control.list_agent_runtimes()["agentRuntimes"]
        assert [entry["agentRuntimeId"] for entry in listed] == [runtime_id]
        versions = restarted.control.list_agent_runtime_versions(agentRuntimeId=runtime_id)["agentRuntimes"]
        assert sorted(v["agentRuntimeVersion"] for v in versions) == ["1", "2"]
        assert endpoints_of(restarted, runtime_id) == {"DEFAULT": "2", "pinned": "1"}
        # The workers went with the old server; the same ids start afresh on the recorded versions.
        assert call(restarted, arn, "a" * 33) == {"count": 1, "version": "v2"}
        assert call(restarted, arn, "c" * 33, qualifier="pinned") == {"count": 1, "version": "v1"}
