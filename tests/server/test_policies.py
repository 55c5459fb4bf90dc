"""Access keys with policies, made by `agentcore server keys`, against a real server and boto3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3
import botocore.config
import botocore.exceptions
import pytest

from open_agentcore.server.operations import OperationMatch, Unmatched
from open_agentcore.server.routes import ACTIONS, operation_table
from tests.server.conftest import Server

AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    return {"ok": True}
"""


def keys(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """`agentcore server keys ...` against `server`, signed with its admin key (in the environment)."""
    return subprocess.run(
        [sys.executable, "-m", "open_agentcore.cli", "server", "keys", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, "AGENTCORE_ENDPOINT_URL": server.url},
    )  # fmt: skip


def new_key(server: Server, tmp_path: Path, name: str, *statements: dict[str, Any]) -> tuple[str, str]:
    extra: list[str] = []
    if statements:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))
        extra = ["--policy", str(path)]
    done = keys(server, "create", "--name", name, "--json", *extra)
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    return created["accessKeyId"], created["secretAccessKey"]


def clients(server: Server, key: tuple[str, str]) -> tuple[Any, Any]:
    settings: dict[str, Any] = {
        "region_name": "us-east-1", "endpoint_url": server.url, "aws_access_key_id": key[0],
        "aws_secret_access_key": key[1], "config": botocore.config.Config(retries={"max_attempts": 1}),
    }  # fmt: skip
    return boto3.client("bedrock-agentcore-control", **settings), boto3.client(
        "bedrock-agentcore", **settings
    )


def denied(data: Any, arn: str) -> str:
    return error_of(data.invoke_agent_runtime, agentRuntimeArn=arn, payload=b"{}")[0]


def error_of(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        call(**kwargs)
    return refused.value.response["Error"]["Code"], refused.value.response["Error"]["Message"]


def invoke(data: Any, arn: str, **extra: Any) -> Any:
    reply = data.invoke_agent_runtime(agentRuntimeArn=arn, payload=b"{}", runtimeSessionId="p" * 40, **extra)
    return json.loads(reply["response"].read())


INVOKE = "bedrock-agentcore:InvokeAgentRuntime"
ACCOUNT = "000000000000"


def test_a_key_may_do_what_its_policy_allows_and_nothing_else(server: Server, tmp_path: Path) -> None:
    created = server.deploy({"agent.py": AGENT}, "guarded")
    arn = created["agentRuntimeArn"]
    key = new_key(server, tmp_path, "invoker", {"Effect": "Allow", "Action": INVOKE, "Resource": arn})
    control, data = clients(server, key)
    assert invoke(data, arn) == {"ok": True}
    code, message = error_of(control.list_agent_runtimes)
    assert code == "AccessDeniedException"
    assert "user/invoker is not authorized to perform: bedrock-agentcore:ListAgentRuntimes" in message
    # Acting for a user needs its own action.
    code, message = error_of(
        data.invoke_agent_runtime, agentRuntimeArn=arn, payload=b"{}", runtimeSessionId="p" * 40,
        runtimeUserId="someone",
    )  # fmt: skip
    assert code == "AccessDeniedException" and "InvokeAgentRuntimeForUser" in message

    nothing = new_key(server, tmp_path, "nobody")
    assert error_of(clients(server, nothing)[1].invoke_agent_runtime, agentRuntimeArn=arn, payload=b"{}")[
        0
    ] == ("AccessDeniedException")


def test_wildcards_and_an_explicit_deny(server: Server, tmp_path: Path) -> None:
    keep = server.deploy({"agent.py": AGENT}, "keepme")
    other = server.deploy({"agent.py": AGENT}, "other")
    key = new_key(
        server, tmp_path, "operator",
        {"Effect": "Allow", "Action": "bedrock-agentcore:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "bedrock-agentcore:Delete*", "Resource": "*:runtime/keepme-*"},
    )  # fmt: skip
    control, data = clients(server, key)
    assert len(control.list_agent_runtimes()["agentRuntimes"]) == 2
    assert invoke(data, keep["agentRuntimeArn"]) == {"ok": True}
    assert error_of(control.delete_agent_runtime, agentRuntimeId=keep["agentRuntimeId"])[0] == (
        "AccessDeniedException"
    )
    control.delete_agent_runtime(agentRuntimeId=other["agentRuntimeId"])


def test_a_resource_policy_admits_a_principal_and_its_deny_wins(server: Server, tmp_path: Path) -> None:
    created = server.deploy({"agent.py": AGENT}, "shared")
    arn = created["agentRuntimeArn"]
    guest = new_key(server, tmp_path, "guest")  # no identity policy at all
    _, guest_data = clients(server, guest)
    assert (
        error_of(guest_data.invoke_agent_runtime, agentRuntimeArn=arn, payload=b"{}")[0]
        == "AccessDeniedException"
    )
    admit = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:user/guest"},
                       "Action": INVOKE, "Resource": arn}],
    }  # fmt: skip
    server.control.put_resource_policy(resourceArn=arn, policy=json.dumps(admit))
    assert json.loads(server.control.get_resource_policy(resourceArn=arn)["policy"]) == admit
    assert invoke(guest_data, arn) == {"ok": True}

    operator = new_key(server, tmp_path, "op2", {"Effect": "Allow", "Action": "*", "Resource": "*"})
    deny = {"Statement": [{"Effect": "Deny", "Principal": "*", "Action": INVOKE, "Resource": "*"}]}
    server.control.put_resource_policy(resourceArn=arn, policy=json.dumps(deny))
    assert error_of(clients(server, operator)[1].invoke_agent_runtime, agentRuntimeArn=arn, payload=b"{}")[
        0
    ] == ("AccessDeniedException")
    assert invoke(server.data, arn) == {"ok": True}  # the admin key is allowed everything
    server.control.delete_resource_policy(resourceArn=arn)
    assert error_of(server.control.get_resource_policy, resourceArn=arn)[0] == "ResourceNotFoundException"
    bad = error_of(
        server.control.put_resource_policy, resourceArn=arn, policy='{"Statement": [{"Effect": "x"}]}'
    )
    assert bad[0] == "ValidationException" and "Effect" in bad[1]


def test_a_revoked_key_stops_working(server: Server, tmp_path: Path) -> None:
    key = new_key(server, tmp_path, "temp", {"Effect": "Allow", "Action": "*", "Resource": "*"})
    control, _ = clients(server, key)
    assert control.list_agent_runtimes()["agentRuntimes"] == []
    listed = keys(server, "list", "--json")
    assert [entry["principal"] for entry in json.loads(listed.stdout)] == ["temp"]
    assert key[1] not in listed.stdout
    assert keys(server, "revoke", key[0]).returncode == 0
    assert error_of(control.list_agent_runtimes)[0] == "UnrecognizedClientException"
    missing = keys(server, "revoke", "AKIANOSUCHKEY0000000")
    assert missing.returncode == 1 and missing.stderr.startswith("agentcore: no access key")


def test_every_route_names_its_action() -> None:
    arn = "arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A000000000000%3Aruntime%2Fh-AAAAAAAAAA"
    runtime = "arn:aws:bedrock-agentcore:us-east-1:000000000000:runtime/h-AAAAAAAAAA"
    cases = [
        ("http", "POST", f"/runtimes/{arn}/invocations", "InvokeAgentRuntime", runtime),
        ("http", "POST", f"/runtimes/{arn}/stopruntimesession", "StopRuntimeSession", runtime),
        ("http", "GET", f"/runtimes/{arn}/invocations/.well-known/agent-card.json", "GetAgentCard", runtime),
        ("websocket", "GET", f"/runtimes/{arn}/ws", "InvokeAgentRuntimeWithWebSocketStream", runtime),
        ("http", "PUT", "/runtimes/", "CreateAgentRuntime", None),
        ("http", "POST", "/runtimes/", "ListAgentRuntimes", None),
        ("http", "GET", "/runtimes/h-AAAAAAAAAA/", "GetAgentRuntime", runtime),
        ("http", "PUT", "/runtimes/h-AAAAAAAAAA/", "UpdateAgentRuntime", runtime),
        ("http", "DELETE", "/runtimes/h-AAAAAAAAAA/", "DeleteAgentRuntime", runtime),
        ("http", "POST", "/runtimes/h-AAAAAAAAAA/versions/", "ListAgentRuntimeVersions", runtime),
        ("http", "PUT", "/runtimes/h-AAAAAAAAAA/runtime-endpoints/", "CreateAgentRuntimeEndpoint", runtime),
        ("http", "POST", "/runtimes/h-AAAAAAAAAA/runtime-endpoints/", "ListAgentRuntimeEndpoints", runtime),
        ("http", "GET", "/runtimes/h-AAAAAAAAAA/runtime-endpoints/live/", "GetAgentRuntimeEndpoint",
         runtime + "/runtime-endpoint/live"),
        ("http", "PUT", "/runtimes/h-AAAAAAAAAA/runtime-endpoints/live/", "UpdateAgentRuntimeEndpoint",
         runtime + "/runtime-endpoint/live"),
        ("http", "DELETE", "/runtimes/h-AAAAAAAAAA/runtime-endpoints/live/", "DeleteAgentRuntimeEndpoint",
         runtime + "/runtime-endpoint/live"),
        ("http", "PUT", f"/resourcepolicy/{arn}", "PutResourcePolicy", runtime),
        ("http", "GET", f"/resourcepolicy/{arn}", "GetResourcePolicy", runtime),
        ("http", "DELETE", f"/resourcepolicy/{arn}", "DeleteResourcePolicy", runtime),
        ("http", "POST", f"/tags/{arn}", "TagResource", runtime),
        ("http", "DELETE", f"/tags/{arn}", "UntagResource", runtime),
        ("http", "GET", f"/tags/{arn}", "ListTagsForResource", runtime),
        ("http", "PUT", "/_agentcore/artifacts", "UploadArtifact", None),
        ("http", "GET", "/_agentcore/runtimes/h-AAAAAAAAAA/versions/1/build-log", "GetBuildLog", runtime),
        ("http", "GET", "/_agentcore/runtimes/h-AAAAAAAAAA/sessions", "ListRuntimeSessions", runtime),
        ("http", "GET", "/_agentcore/runtimes/h-AAAAAAAAAA/sessions/s/logs", "GetRuntimeSessionLogs",
         runtime),
        ("http", "POST", f"/_agentcore/runtimes/{arn}/sessions/s/requests/r-1/cancel",
         "CancelRuntimeInvocation", runtime),
        ("http", "POST", "/_agentcore/access-keys", "CreateAccessKey", None),
        ("http", "GET", "/_agentcore/access-keys", "ListAccessKeys", None),
        ("http", "DELETE", "/_agentcore/access-keys/AKIA0000000000000000", "RevokeAccessKey", None),
        ("http", "GET", "/metrics", "GetMetrics", None),
        ("http", "GET", "/_agentcore/console", "GetConsole", None),
        ("http", "GET", "/_agentcore/console/", "GetConsolePage", None),
        ("http", "GET", "/_agentcore/console/assets/app.js", "GetConsoleAsset", None),
        ("http", "POST", "/_agentcore/console/login", "ConsoleLogin", None),
        ("http", "POST", "/_agentcore/console/logout", "ConsoleLogout", None),
        ("http", "GET", "/_agentcore/console/session", "GetConsoleSession", None),
        ("http", "POST", "/v1/traces", "ExportTraces", None),
        ("http", "GET", "/_agentcore/traces", "ListTraces", None),
        ("http", "GET", f"/_agentcore/traces/{'ab' * 16}", "GetTrace", None),
    ]  # fmt: skip
    named = set()
    table = operation_table("us-east-1", ACCOUNT)
    for kind, method, path, action, resource in cases:
        scope = {"type": kind, "method": method, "path": unquote(path), "raw_path": path.encode()}
        found = table.classify(scope)
        assert isinstance(found, OperationMatch) and found.error is None, path
        assert found.operation.action == f"bedrock-agentcore:{action}", path
        if resource is not None:
            assert found.resource == resource, path
        named.add(found.operation.action)
    assert named | {"bedrock-agentcore:InvokeAgentRuntimeForUser", "bedrock-agentcore:Health"} == set(ACTIONS)
    nowhere = table.classify({"type": "http", "method": "GET", "path": "/nowhere", "raw_path": b"/nowhere"})
    assert isinstance(nowhere, Unmatched) and nowhere.error.status == 404
