"""What a key's policy lets it see and do through the console: the same checks as its signed calls."""

from __future__ import annotations

import json
import uuid

import boto3

from tests.console.agents import HELLO
from tests.console.conftest import ConsoleClient
from tests.server.conftest import Server


def key_for(server: Server, principal: str, *statements: dict[str, object]) -> tuple[str, str]:
    policy = {"Version": "2012-10-17", "Statement": list(statements)}
    body = json.dumps({"principal": principal, "policy": policy}).encode()
    created = server.signed("POST", "/_agentcore/access-keys", body)
    assert created.status_code == 200, created.text
    return created.json()["accessKeyId"], created.json()["secretAccessKey"]


def only_runtime(server: Server, arn: str) -> tuple[str, str]:
    """A key that may list runtimes and do anything to the runtime `arn`, nothing to any other."""
    return key_for(
        server, "alice",
        {"Effect": "Allow", "Action": "bedrock-agentcore:ListAgentRuntimes", "Resource": "*"},
        {"Effect": "Allow", "Action": "bedrock-agentcore:*", "Resource": arn},
    )  # fmt: skip


def test_a_key_allowed_one_runtime_sees_and_invokes_only_that_one(
    server: Server, console: ConsoleClient
) -> None:
    mine = server.deploy({"agent.py": HELLO}, "mine")
    theirs = server.deploy({"agent.py": HELLO}, "theirs")
    assert console.login(*only_runtime(server, mine["agentRuntimeArn"])).status_code == 200

    listed = console.call("POST", "/runtimes/", json={})
    assert listed.status_code == 200, listed.text
    assert [r["agentRuntimeId"] for r in listed.json()["agentRuntimes"]] == [mine["agentRuntimeId"]]

    session = {"x-amzn-bedrock-agentcore-runtime-session-id": str(uuid.uuid4())}
    allowed = console.call(
        "POST", f"/runtimes/{mine['agentRuntimeId']}/invocations", json={}, headers=session
    )
    assert allowed.status_code == 200, allowed.text
    assert allowed.json() == {"hello": "world"}
    for method, path in (
        ("POST", f"/runtimes/{theirs['agentRuntimeId']}/invocations"),
        ("GET", f"/runtimes/{theirs['agentRuntimeId']}/"),
        ("GET", f"/_agentcore/runtimes/{theirs['agentRuntimeId']}/sessions"),
    ):
        refused = console.call(method, path, json={}, headers=session)
        assert refused.status_code == 403, (path, refused.text)
        assert "user/alice is not authorized" in refused.json()["message"]


def test_the_admin_sees_every_runtime_through_the_console(server: Server, console: ConsoleClient) -> None:
    first = server.deploy({"agent.py": HELLO}, "first")
    second = server.deploy({"agent.py": HELLO}, "second")
    assert console.login().status_code == 200
    listed = console.call("POST", "/runtimes/", json={}).json()["agentRuntimes"]
    assert {r["agentRuntimeId"] for r in listed} == {first["agentRuntimeId"], second["agentRuntimeId"]}


def test_a_signed_list_is_filtered_the_same_way(server: Server) -> None:
    mine = server.deploy({"agent.py": HELLO}, "mine")
    server.deploy({"agent.py": HELLO}, "theirs")
    key_id, secret = only_runtime(server, mine["agentRuntimeArn"])
    control = boto3.client(
        "bedrock-agentcore-control", region_name="us-east-1", endpoint_url=server.url,
        aws_access_key_id=key_id, aws_secret_access_key=secret,
    )  # fmt: skip
    listed = control.list_agent_runtimes()["agentRuntimes"]
    assert [r["agentRuntimeId"] for r in listed] == [mine["agentRuntimeId"]]
