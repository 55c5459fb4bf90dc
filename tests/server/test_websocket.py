"""WebSockets through the runtime server: signed, presigned, proxied both ways to the session's worker."""

from __future__ import annotations

import datetime
import json
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import botocore.session
import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from bedrock_agentcore.runtime import AgentCoreRuntimeClient
from tests.conftest import wait_until
from tests.server.conftest import KEY_ID, SECRET, Server

AGENT = """
import os
from bedrock_agentcore import BedrockAgentCoreApp
from starlette.websockets import WebSocketDisconnect

app = BedrockAgentCoreApp()
count = 0


@app.entrypoint
def invoke(payload, context):
    global count
    count += 1
    return {"count": count}


@app.websocket
async def talk(websocket, context):
    global count
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                print(f"client closed with {message.get('code')}", flush=True)
                return
            if message.get("bytes") is not None:
                await websocket.send_bytes(message["bytes"][::-1])
                continue
            text = message["text"]
            if text == "close":
                await websocket.close(code=4321, reason="agent says bye")
                return
            if text == "crash":
                os._exit(3)
            count += 1
            await websocket.send_json({"echo": text, "count": count, "session": context.session_id,
                                       "custom": context.request_headers.get(
                                           "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tone") if
                                       context.request_headers else None})
    except WebSocketDisconnect as gone:
        print(f"client closed with {gone.code}", flush=True)
"""

# The SDK hands back the upgrade headers too; a WebSocket library sets those itself.
_UPGRADE = {"upgrade", "connection", "sec-websocket-version", "sec-websocket-key", "host", "user-agent"}


@pytest.fixture
def runtime_client(server: Server, monkeypatch: pytest.MonkeyPatch) -> AgentCoreRuntimeClient:
    # AWS itself cannot exist here: the admin key of the local server stands in for IAM credentials.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    return AgentCoreRuntimeClient(region="us-east-1", endpoint_url=server.url)


def signed(client: AgentCoreRuntimeClient, arn: str, session: str, **extra: Any) -> ClientConnection:
    url, headers = client.generate_ws_connection(arn, session_id=session, **extra)
    kept = {name: value for name, value in headers.items() if name.lower() not in _UPGRADE}
    return connect(url, additional_headers=kept, open_timeout=60)


def refusal(url: str, **options: Any) -> Any:
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=60, **options)
    return refused.value.response


def sessions_of(server: Server, runtime_id: str) -> list[dict[str, Any]]:
    reply = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions")
    assert reply.status_code == 200, reply.text
    listed: list[dict[str, Any]] = reply.json()["sessions"]
    return listed


def test_text_and_binary_messages_reach_the_sessions_worker_and_back(
    server: Server, runtime_client: AgentCoreRuntimeClient
) -> None:
    arn = server.deploy({"agent.py": AGENT}, "wsecho")["agentRuntimeArn"]
    session = "w" * 40
    first = server.data.invoke_agent_runtime(agentRuntimeArn=arn, payload=b"{}", runtimeSessionId=session)
    assert json.loads(first["response"].read()) == {"count": 1}
    with signed(runtime_client, arn, session) as websocket:
        websocket.send("hello")
        # The same worker as the HTTP invocation: its count goes on from there.
        assert json.loads(websocket.recv(timeout=30)) == {
            "echo": "hello", "count": 2, "session": session, "custom": None,
        }  # fmt: skip
        websocket.send(b"\x00\x01binary")
        assert websocket.recv(timeout=30) == b"yranib\x01\x00"
    other = server.data.invoke_agent_runtime(agentRuntimeArn=arn, payload=b"{}", runtimeSessionId="x" * 40)
    assert json.loads(other["response"].read()) == {"count": 1}


def test_close_codes_pass_both_ways(server: Server, runtime_client: AgentCoreRuntimeClient) -> None:
    created = server.deploy({"agent.py": AGENT}, "wsclose")
    arn, runtime_id = created["agentRuntimeArn"], created["agentRuntimeId"]
    with signed(runtime_client, arn, "s" * 40) as websocket:
        websocket.send("close")
        with pytest.raises(ConnectionClosed) as closed:
            websocket.recv(timeout=30)
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4321, "agent says bye")

    session = "c" * 40
    with signed(runtime_client, arn, session) as websocket:
        websocket.send("ping?")
        websocket.recv(timeout=30)
        websocket.close(code=4002, reason="client leaves")

    def agent_saw_the_code() -> bool:
        reply = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions/{session}/logs")
        return "client closed with 4002" in reply.text

    wait_until(agent_saw_the_code, timeout=30, interval=0.05)


def test_a_worker_that_dies_closes_the_client_with_1011_and_the_session_restarts(
    server: Server, runtime_client: AgentCoreRuntimeClient
) -> None:
    arn = server.deploy({"agent.py": AGENT}, "wscrash")["agentRuntimeArn"]
    session = "k" * 40
    with signed(runtime_client, arn, session) as websocket:
        websocket.send("one")
        assert json.loads(websocket.recv(timeout=30))["count"] == 1
        websocket.send("crash")
        with pytest.raises(ConnectionClosed) as closed:
            websocket.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    with signed(runtime_client, arn, session) as websocket:
        websocket.send("again")
        assert json.loads(websocket.recv(timeout=30))["count"] == 1


def test_a_presigned_url_connects_and_carries_session_and_allowlisted_headers(
    server: Server, runtime_client: AgentCoreRuntimeClient
) -> None:
    tone = "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tone"
    arn = server.deploy(
        {"agent.py": AGENT}, "wspresigned", requestHeaderConfiguration={"requestHeaderAllowlist": [tone]}
    )["agentRuntimeArn"]
    session = "p" * 40
    url = runtime_client.generate_presigned_url(arn, session_id=session, custom_headers={tone: "calm"})
    with connect(url, open_timeout=60) as websocket:
        websocket.send("hi")
        reply = json.loads(websocket.recv(timeout=30))
    assert (reply["session"], reply["custom"]) == (session, "calm")


def test_bad_signatures_are_refused_at_the_handshake_before_any_worker_starts(
    server: Server, runtime_client: AgentCoreRuntimeClient
) -> None:
    created = server.deploy({"agent.py": AGENT}, "wsrefused")
    arn, runtime_id = created["agentRuntimeArn"], created["agentRuntimeId"]
    url = runtime_client.generate_presigned_url(arn, session_id="t" * 40)
    tampered = url.replace("t" * 40, "u" * 40)
    unsigned = url.split("?")[0]
    for attempt, error in (
        (tampered, "InvalidSignatureException"),
        (unsigned, "MissingAuthenticationTokenException"),
    ):
        response = refusal(attempt)
        assert (response.status_code, response.headers["x-amzn-errortype"]) == (403, error)
        assert "message" in json.loads(response.body)
    session = botocore.session.Session()
    session.set_credentials("AKIASTRANGER00000000", "x" * 40)
    stranger = AgentCoreRuntimeClient(region="us-east-1", endpoint_url=server.url, session=session)
    response = refusal(stranger.generate_presigned_url(arn, session_id="t" * 40))
    assert (response.status_code, response.headers["x-amzn-errortype"]) == (
        403,
        "UnrecognizedClientException",
    )
    assert sessions_of(server, runtime_id) == []


def test_unknown_runtimes_and_agents_without_a_websocket_are_refused_in_the_aws_shape(
    server: Server, runtime_client: AgentCoreRuntimeClient
) -> None:
    missing = "arn:aws:bedrock-agentcore:us-east-1:000000000000:runtime/missing-AAAAAAAAAA"
    response = refusal(runtime_client.generate_presigned_url(missing))
    assert (response.status_code, response.headers["x-amzn-errortype"]) == (404, "ResourceNotFoundException")

    plain = "from bedrock_agentcore import BedrockAgentCoreApp\napp = BedrockAgentCoreApp()\n"
    plain += "@app.entrypoint\ndef invoke(payload):\n    return payload\n"
    arn = server.deploy({"agent.py": plain}, "wsnone")["agentRuntimeArn"]
    response = refusal(runtime_client.generate_presigned_url(arn, session_id="n" * 40))
    assert (response.status_code, response.headers["x-amzn-errortype"]) == (424, "RuntimeClientError")
    assert "no websocket handler" in json.loads(response.body)["message"].lower()


A2A_AGENT = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

CARD = {"name": "calendar", "description": "books meetings", "version": "1.0.0", "skills": []}


async def card(request):
    return JSONResponse(CARD)


async def rpc(request):
    call = await request.json()
    return JSONResponse({"jsonrpc": "2.0", "id": call["id"], "result": {"method": call["method"]}})


async def ping(request):
    return JSONResponse({"status": "Healthy", "time_of_last_update": 0})


app = Starlette(routes=[Route("/.well-known/agent-card.json", card), Route("/", rpc, methods=["POST"]),
                        Route("/ping", ping)])
"""


def test_agent_cards_come_from_a2a_agents_and_only_from_them(server: Server) -> None:
    a2a = server.deploy({"agent.py": A2A_AGENT}, "calendar", protocolConfiguration={"serverProtocol": "A2A"})[
        "agentRuntimeArn"
    ]
    reply = server.data.get_agent_card(agentRuntimeArn=a2a, runtimeSessionId="g" * 40)
    assert reply["agentCard"]["name"] == "calendar"
    assert reply["runtimeSessionId"] == "g" * 40
    # A2A invocations go to the agent's JSON-RPC root, not /invocations.
    call = {"jsonrpc": "2.0", "id": 7, "method": "message/send", "params": {}}
    invoked = server.data.invoke_agent_runtime(
        agentRuntimeArn=a2a, payload=json.dumps(call).encode(), runtimeSessionId="g" * 40
    )
    assert json.loads(invoked["response"].read())["result"] == {"method": "message/send"}

    plain = "from bedrock_agentcore import BedrockAgentCoreApp\napp = BedrockAgentCoreApp()\n"
    plain += "@app.entrypoint\ndef invoke(payload):\n    return payload\n"
    http_arn = server.deploy({"agent.py": plain}, "plainhttp")["agentRuntimeArn"]
    with pytest.raises(server.data.exceptions.ResourceNotFoundException, match="only A2A agents"):
        server.data.get_agent_card(agentRuntimeArn=http_arn)
    path = f"/runtimes/{quote(http_arn, safe='')}/invocations/.well-known/agent-card.json"
    assert httpx.get(server.url + path).status_code == 403  # unsigned


def test_an_expired_presigned_url_is_refused_before_any_worker_starts(
    server: Server, runtime_client: AgentCoreRuntimeClient
) -> None:
    created = server.deploy({"agent.py": AGENT}, "wsexpired")
    url = runtime_client.generate_presigned_url(created["agentRuntimeArn"], session_id="e" * 40, expires=1)

    amz_date = parse_qs(urlsplit(url).query)["X-Amz-Date"][0]
    signed_at = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)

    def expired() -> bool:
        # Until its second is up the URL would be accepted (and start a worker): ask the server's
        # clock, whose Date header is whole seconds, for two seconds past the signing time.
        server_now = parsedate_to_datetime(httpx.get(server.url + "/_agentcore/health").headers["date"])
        return server_now >= signed_at + datetime.timedelta(seconds=2)

    wait_until(expired, timeout=30, interval=0.25)
    response = refusal(url)
    assert (response.status_code, response.headers["x-amzn-errortype"]) == (403, "InvalidSignatureException")
    assert "expired" in json.loads(response.body)["message"].lower()
    assert sessions_of(server, created["agentRuntimeId"]) == []
