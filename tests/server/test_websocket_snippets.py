"""The AgentCore overview's WebSocket client code, as written there, against a real runtime server.

The overview hands `generate_ws_connection()`'s headers whole to the `websockets` client, with its
current API (`additional_headers=`) and its legacy one (`extra_headers=`); the only change here is
where the client points: `endpoint_url` and a boto3 session holding the server's admin key.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
from pathlib import Path
from typing import Any

import boto3
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from bedrock_agentcore.runtime import AgentCoreRuntimeClient
from open_agentcore.server import ServerConfig
from open_agentcore.server.websocket_protocol import GOING_AWAY, SHUTDOWN_REASON
from tests.auth.oidc_issuer import OidcIssuer, rsa_key
from tests.conftest import free_port
from tests.server.conftest import KEY_ID, SECRET, Server, clients
from tests.server.uvicorn_harness import serving

AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    return payload


@app.websocket
async def chat(websocket, context):
    await websocket.accept()
    while True:
        message = await websocket.receive_json()
        await websocket.send_json({"reply": message["inputText"], "session": context.session_id})
"""


def sdk_client(url: str) -> AgentCoreRuntimeClient:
    # AWS itself cannot exist here: the server's admin key stands in for IAM credentials.
    session = boto3.Session(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET, region_name="us-east-1")
    return AgentCoreRuntimeClient(session=session, endpoint_url=url)


async def talk_current(ws_url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    async with websockets.connect(ws_url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"inputText": "Hello!"}))
        answer: dict[str, Any] = json.loads(await ws.recv())
        return answer


async def talk_legacy(ws_url: str, headers: dict[str, str]) -> dict[str, Any]:
    import warnings

    with warnings.catch_warnings():  # the snippet's API on purpose: websockets says it is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        from websockets.legacy.client import connect as legacy_connect

    async with legacy_connect(ws_url, extra_headers=headers) as ws:
        await ws.send(json.dumps({"inputText": "Hello!"}))
        answer: dict[str, Any] = json.loads(await ws.recv())
        return answer


@pytest.fixture
def arn(server: Server) -> str:
    return str(server.deploy({"agent.py": AGENT}, "overview")["agentRuntimeArn"])


def test_sigv4_headers_passed_whole_to_the_current_websockets_api(server: Server, arn: str) -> None:
    client = sdk_client(server.url)
    ws_url, headers = client.generate_ws_connection(runtime_arn=arn, session_id="o" * 40)
    assert asyncio.run(talk_current(ws_url, headers)) == {"reply": "Hello!", "session": "o" * 40}


def test_sigv4_headers_passed_whole_to_the_legacy_websockets_api(server: Server, arn: str) -> None:
    client = sdk_client(server.url)
    ws_url, headers = client.generate_ws_connection(runtime_arn=arn, session_id="l" * 40)
    assert asyncio.run(talk_legacy(ws_url, headers)) == {"reply": "Hello!", "session": "l" * 40}


def test_a_presigned_url_alone_connects(server: Server, arn: str) -> None:
    client = sdk_client(server.url)
    presigned = client.generate_presigned_url(runtime_arn=arn, session_id="p" * 40, expires=300)
    assert asyncio.run(talk_current(presigned)) == {"reply": "Hello!", "session": "p" * 40}


def reference_shaped(headers: dict[str, str], host: str) -> dict[str, str]:
    """Headers as Amazon's SDK returns them: the connection's own plus a full set of handshake ones."""
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    handshake = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}
    return {"Host": host, **headers, **handshake, "Sec-WebSocket-Key": key}


@pytest.mark.parametrize("talk", [talk_current, talk_legacy], ids=["current", "legacy"])
def test_headers_shaped_like_the_reference_sdks_are_accepted_though_doubled(
    server: Server, arn: str, talk: Any
) -> None:
    client = sdk_client(server.url)
    ws_url, headers = client.generate_ws_connection(runtime_arn=arn, session_id="r" * 40)
    doubled = reference_shaped(headers, server.url.removeprefix("http://"))
    assert asyncio.run(talk(ws_url, doubled)) == {"reply": "Hello!", "session": "r" * 40}


def test_the_oauth_snippet_connects_with_a_bearer_token(server: Server) -> None:
    with OidcIssuer() as issuer:
        issuer.add_key("rsa-1", rsa_key(0))
        authorizer = {
            "customJWTAuthorizer": {"discoveryUrl": issuer.discovery_url, "allowedAudience": ["api"]}
        }
        arn = server.deploy({"agent.py": AGENT}, "overviewjwt", authorizerConfiguration=authorizer)[
            "agentRuntimeArn"
        ]
        token = issuer.sign(issuer.claims(sub="alice"))
        client = sdk_client(server.url)
        ws_url, headers = client.generate_ws_connection_oauth(
            runtime_arn=arn, bearer_token=token, session_id="b" * 40
        )
        assert asyncio.run(talk_current(ws_url, headers)) == {"reply": "Hello!", "session": "b" * 40}
        doubled = reference_shaped(headers, server.url.removeprefix("http://"))
        assert asyncio.run(talk_legacy(ws_url, doubled)) == {"reply": "Hello!", "session": "b" * 40}


def test_an_agent_without_a_websocket_handler_is_refused_with_the_reason(server: Server) -> None:
    plain = "from bedrock_agentcore import BedrockAgentCoreApp\napp = BedrockAgentCoreApp()\n"
    plain += "@app.entrypoint\ndef invoke(payload):\n    return payload\n"
    arn = server.deploy({"agent.py": plain}, "nows")["agentRuntimeArn"]
    ws_url, headers = sdk_client(server.url).generate_ws_connection(runtime_arn=arn)
    with pytest.raises(InvalidStatus) as refused:
        asyncio.run(talk_current(ws_url, headers))
    response = refused.value.response
    assert (response.status_code, response.headers["x-amzn-errortype"]) == (424, "RuntimeClientError")
    assert "no websocket handler" in json.loads(response.body)["message"].lower()


def test_server_shutdown_closes_open_websockets_with_going_away(short_data_dir: Path) -> None:
    config = ServerConfig(
        data_dir=short_data_dir, port=free_port(), min_lifecycle_seconds=1, warm_pool=0, reap_interval=0.2
    )
    with contextlib.ExitStack() as stack:
        with serving(config) as url:
            deployed = Server(url, short_data_dir, *clients(url)).deploy({"agent.py": AGENT}, "shutdown")
            ws_url, headers = sdk_client(url).generate_ws_connection(runtime_arn=deployed["agentRuntimeArn"])
            ws = stack.enter_context(connect(ws_url, additional_headers=headers, open_timeout=60))
            ws.send(json.dumps({"inputText": "before the shutdown"}))
            assert json.loads(ws.recv(timeout=30))["reply"] == "before the shutdown"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (GOING_AWAY, SHUTDOWN_REASON)
