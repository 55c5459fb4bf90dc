"""A session belongs to the principal that created it: nobody else invokes, streams into or stops it.

The attack: any caller allowed to invoke a runtime who learns a session id (a log line, a shared
link, a guess at a short id) could invoke into that session and read what its owner's agent keeps
in memory, or stop it. The managed service does not prevent this; we do, unless the server runs
with `--shared-sessions`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import botocore.config
import botocore.exceptions
import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.auth.oidc_issuer import OidcIssuer, rsa_key
from tests.conftest import wait_until
from tests.security.attack import Key, Target, allow, short_data_dir, signed_headers
from tests.server.conftest import running_server

# Keeps notes in memory, per worker: what one session's caller must never read through another.
NOTES_AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()
notes = []


@app.entrypoint
def invoke(payload, context):
    if "note" in payload:
        notes.append(payload["note"])
    return {"notes": notes, "session": context.session_id}


@app.websocket
async def talk(websocket, context):
    await websocket.accept()
    await websocket.send_json({"notes": notes})
    await websocket.close()
"""
ACTIONS = [
    "bedrock-agentcore:InvokeAgentRuntime",
    "bedrock-agentcore:InvokeAgentRuntimeWithWebSocketStream",
    "bedrock-agentcore:StopRuntimeSession",
]
SESSION = "alice-keeps-her-notes-here-0000000001"


@contextlib.contextmanager
def notes_server(data_dir: Path, **options: Any) -> Iterator[Target]:
    with running_server(data_dir, **options) as running:
        runtime = running.deploy({"agent.py": NOTES_AGENT}, "notes")
        target = Target(running, {"notes": runtime})
        for name in ("alice", "bob"):
            target.add_key(name, allow(ACTIONS, target.id("notes")))
        yield target


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    with short_data_dir() as data_dir, notes_server(data_dir) as running:
        yield running


def data_client(target: Target, key: Key) -> Any:
    return boto3.client(
        "bedrock-agentcore", region_name="us-east-1", endpoint_url=target.server.url,
        aws_access_key_id=key.access_key_id, aws_secret_access_key=key.secret,
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )  # fmt: skip


def invoke(target: Target, key: Key, session: str, payload: dict[str, Any]) -> Any:
    reply = data_client(target, key).invoke_agent_runtime(
        agentRuntimeArn=target.arn("notes"), runtimeSessionId=session, payload=json.dumps(payload).encode()
    )
    return json.loads(reply["response"].read())


def refused(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as error:
        call(**kwargs)
    return error.value.response["Error"]["Code"], error.value.response["Error"]["Message"]


def live(target: Target, session: str) -> bool:
    reply = target.server.signed("GET", f"/_agentcore/runtimes/{target.id('notes')}/sessions")
    return session in [entry["sessionId"] for entry in reply.json()["sessions"]]


def test_another_principal_cannot_invoke_into_a_session(target: Target) -> None:
    alice, bob = target.keys["alice"], target.keys["bob"]
    assert invoke(target, alice, SESSION, {"note": "the launch code is 0000"})["notes"] == [
        "the launch code is 0000"
    ]
    code, message = refused(
        data_client(target, bob).invoke_agent_runtime,
        agentRuntimeArn=target.arn("notes"), runtimeSessionId=SESSION, payload=b'{"note": "bob was here"}',
    )  # fmt: skip
    assert code == "AccessDeniedException"
    assert "another principal" in message and "alice" not in message
    # Nothing of bob's call reached the session.
    assert invoke(target, alice, SESSION, {})["notes"] == ["the launch code is 0000"]


def test_another_principal_cannot_open_a_websocket_into_a_session(target: Target) -> None:
    invoke(target, target.keys["alice"], SESSION, {})
    url = f"{target.server.url}/runtimes/{quote(target.arn('notes'), safe='')}/ws"
    headers = signed_headers(
        target.keys["bob"], "GET", url, headers={"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": SESSION}
    )
    with (
        pytest.raises(InvalidStatus) as denied,
        connect(url.replace("http://", "ws://", 1), additional_headers=headers, open_timeout=30) as socket,
    ):
        socket.recv(timeout=30)
    assert denied.value.response.status_code == 403
    assert denied.value.response.headers["x-amzn-errortype"] == "AccessDeniedException"


def test_another_principal_cannot_stop_a_session(target: Target) -> None:
    invoke(target, target.keys["alice"], SESSION, {})
    code, _ = refused(
        data_client(target, target.keys["bob"]).stop_runtime_session,
        agentRuntimeArn=target.arn("notes"), runtimeSessionId=SESSION,
    )  # fmt: skip
    assert code == "AccessDeniedException"
    assert live(target, SESSION)


def test_an_ended_session_stays_its_owners(target: Target) -> None:
    alice, bob = target.keys["alice"], target.keys["bob"]
    session = "alice-ended-this-one-00000000000000002"
    invoke(target, alice, session, {"note": "gone"})
    data_client(target, alice).stop_runtime_session(
        agentRuntimeArn=target.arn("notes"), runtimeSessionId=session
    )
    wait_until(lambda: not live(target, session))
    code, _ = refused(
        data_client(target, bob).invoke_agent_runtime,
        agentRuntimeArn=target.arn("notes"), runtimeSessionId=session, payload=b"{}",
    )  # fmt: skip
    assert code == "AccessDeniedException"
    assert invoke(target, alice, session, {})["notes"] == []  # a fresh worker, still alice's session


def test_each_principal_has_its_own_sessions(target: Target) -> None:
    bob = target.keys["bob"]
    session = "bobs-own-session-0000000000000000000003"
    assert invoke(target, bob, session, {"note": "mine"})["notes"] == ["mine"]
    code, _ = refused(
        data_client(target, target.keys["alice"]).invoke_agent_runtime,
        agentRuntimeArn=target.arn("notes"), runtimeSessionId=session, payload=b"{}",
    )  # fmt: skip
    assert code == "AccessDeniedException"


def test_the_admin_key_may_use_and_stop_any_session(target: Target) -> None:
    session = "alice-session-the-operator-looks-into-4"
    invoke(target, target.keys["alice"], session, {"note": "visible to the operator"})
    reply = target.server.data.invoke_agent_runtime(
        agentRuntimeArn=target.arn("notes"), runtimeSessionId=session, payload=b"{}"
    )
    assert json.loads(reply["response"].read())["notes"] == ["visible to the operator"]
    target.server.data.stop_runtime_session(agentRuntimeArn=target.arn("notes"), runtimeSessionId=session)
    assert not live(target, session)


def test_ownership_survives_a_server_restart() -> None:
    session = "alice-before-the-restart-000000000005"
    with short_data_dir() as data_dir:
        with running_server(data_dir) as first:
            runtime = first.deploy({"agent.py": NOTES_AGENT}, "notes")
            restarted = Target(first, {"notes": runtime})
            alice = restarted.add_key("alice", allow(ACTIONS, restarted.id("notes")))
            bob = restarted.add_key("bob", allow(ACTIONS, restarted.id("notes")))
            invoke(restarted, alice, session, {"note": "before"})
        with running_server(data_dir) as second:
            restarted.server = second
            code, _ = refused(
                data_client(restarted, bob).invoke_agent_runtime,
                agentRuntimeArn=restarted.arn("notes"), runtimeSessionId=session, payload=b"{}",
            )  # fmt: skip
            assert code == "AccessDeniedException"
            assert invoke(restarted, alice, session, {})["session"] == session


def test_shared_sessions_lets_any_caller_in() -> None:
    with short_data_dir() as data_dir, notes_server(data_dir, shared_sessions=True) as shared:
        invoke(shared, shared.keys["alice"], SESSION, {"note": "shared on purpose"})
        assert invoke(shared, shared.keys["bob"], SESSION, {})["notes"] == ["shared on purpose"]


def test_bearer_token_sessions_belong_to_their_subject() -> None:
    with OidcIssuer() as issuer, short_data_dir() as data_dir, running_server(data_dir) as server:
        issuer.add_key("rsa-1", rsa_key(0))
        authorizer = {
            "customJWTAuthorizer": {"discoveryUrl": issuer.discovery_url, "allowedAudience": ["api"]}
        }
        arn = server.deploy({"agent.py": NOTES_AGENT}, "jwtnotes", authorizerConfiguration=authorizer)[
            "agentRuntimeArn"
        ]
        path = f"{server.url}/runtimes/{quote(arn, safe='')}/invocations"

        def call(subject: str, note: str) -> httpx.Response:
            headers = {
                "authorization": f"Bearer {issuer.sign(issuer.claims(sub=subject))}",
                "x-amzn-bedrock-agentcore-runtime-session-id": SESSION,
                "content-type": "application/json",
            }
            return httpx.post(path, content=json.dumps({"note": note}).encode(), headers=headers, timeout=60)

        first = call("alice", "hers")
        assert first.status_code == 200 and first.json()["notes"] == ["hers"]
        second = call("mallory", "mine now")
        assert second.status_code == 403, second.text
        assert second.headers["x-amzn-errortype"] == "AccessDeniedException"
        assert call("alice", "still hers").json()["notes"] == ["hers", "still hers"]
