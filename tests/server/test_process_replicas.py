"""Two process-backend servers on one PostgreSQL store: a session lives on the machine of the
replica that started it, and the other replica says so instead of starting a second worker."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from tests.conftest import wait_until
from tests.server.conftest import Server, artifact, running_server
from tests.store.conftest import fresh_postgres_database, postgres_server  # noqa: F401 - a fixture

AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()
count = 0


@app.entrypoint
def invoke(payload):
    global count
    count += 1
    return {"count": count}
"""


@pytest.fixture
def two_replicas(postgres_server: str) -> Iterator[tuple[Server, Server, str]]:  # noqa: F811 - a fixture
    url, drop = fresh_postgres_database(postgres_server)
    # Short: worker sockets live under the data dir, and unix socket paths max out at 107 bytes.
    dirs = [Path(tempfile.mkdtemp(prefix="oacp-", dir="/tmp")) for _ in range(2)]
    try:
        with running_server(dirs[0], store_url=url) as one, running_server(dirs[1], store_url=url) as two:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                archive.writestr(zipfile.ZipInfo("agent.py", date_time=(2026, 1, 1, 0, 0, 0)), AGENT)
            # Each replica keeps uploaded code on its own disk (until artifacts live in the store).
            keys = {
                server.signed("PUT", "/_agentcore/artifacts", buffer.getvalue()).json()["key"]
                for server in (one, two)
            }
            (key,) = keys
            created = one.control.create_agent_runtime(
                agentRuntimeName="pinned", roleArn="arn:aws:iam::000000000000:role/agent",
                agentRuntimeArtifact=artifact(key),
            )  # fmt: skip
            one.wait_ready(created["agentRuntimeId"])
            yield one, two, created["agentRuntimeArn"]
    finally:
        drop()
        for directory in dirs:
            shutil.rmtree(directory, ignore_errors=True)


def call(server: Server, arn: str, session: str) -> dict[str, Any]:
    reply = server.data.invoke_agent_runtime(agentRuntimeArn=arn, payload=b"{}", runtimeSessionId=session)
    answer: dict[str, Any] = json.loads(reply["response"].read())
    return answer


@pytest.mark.timeout(180)
def test_a_session_held_by_another_process_replica_is_refused_not_restarted(
    two_replicas: tuple[Server, Server, str],
) -> None:
    one, two, arn = two_replicas
    session = f"pinned-{uuid.uuid4()}"
    assert call(one, arn, session)["count"] == 1
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        call(two, arn, session)
    error = refused.value.response["Error"]
    assert error["Code"] == "ConflictException"
    assert (
        "--backend ray" in error["Message"]
        and (one.data_dir / "replica-id").read_text().strip() in error["Message"]
    )
    # The session goes on where it lives; other sessions are served by either replica.
    assert call(one, arn, session)["count"] == 2
    assert call(two, arn, f"pinned-{uuid.uuid4()}")["count"] == 1
    one.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=session)
    runtime_id = arn.rsplit("/", 1)[1]

    def ended_on_record() -> bool:
        listed = two.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions?state=all").json()["sessions"]
        return any(entry["sessionId"] == session and entry["state"] == "ENDED" for entry in listed)

    # Ended on record (the write follows the stop): the id is free again, on any replica.
    wait_until(ended_on_record, timeout=30)
    assert call(two, arn, session)["count"] == 1
