"""Runtimes with a JWT authorizer: bearer tokens from a real local OpenID issuer, end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import botocore.exceptions
import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from bedrock_agentcore.runtime import AgentCoreRuntimeClient
from tests.auth.oidc_issuer import OidcIssuer, rsa_key
from tests.server.conftest import Server, artifact

AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload, context):
    headers = context.request.headers
    return {"user": headers.get("X-Amzn-Bedrock-AgentCore-Runtime-User-Id"),
            "authorization": headers.get("Authorization"), "echo": payload}


@app.websocket
async def talk(websocket, context):
    await websocket.accept()
    text = await websocket.receive_text()
    headers = websocket.headers
    await websocket.send_text(f"{text} from {headers.get('X-Amzn-Bedrock-AgentCore-Runtime-User-Id')}")
    await websocket.close()
"""


SESSION = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"


@pytest.fixture
def issuer() -> Iterator[OidcIssuer]:
    with OidcIssuer() as running:
        running.add_key("rsa-1", rsa_key(0))
        yield running


def jwt_config(issuer: OidcIssuer, **rules: Any) -> dict[str, Any]:
    return {
        "customJWTAuthorizer": {"discoveryUrl": issuer.discovery_url, "allowedAudience": ["api"], **rules}
    }


def bearer_invoke(server: Server, arn: str, token: str | None, **headers: str) -> httpx.Response:
    path = f"/runtimes/{quote(arn, safe='')}/invocations"
    sent = {
        "content-type": "application/json",
        "x-amzn-bedrock-agentcore-runtime-session-id": "j" * 40,
        **headers,
    }
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    return httpx.post(server.url + path, content=b'{"q": 1}', headers=sent, timeout=60)


def refusal(reply: httpx.Response) -> tuple[int, str, str]:
    return reply.status_code, reply.headers.get("x-amzn-errortype", ""), reply.json()["message"]


def test_a_valid_token_reaches_the_agent_with_its_subject_as_the_user_id(
    server: Server, issuer: OidcIssuer
) -> None:
    arn = server.deploy({"agent.py": AGENT}, "jwtok", authorizerConfiguration=jwt_config(issuer))[
        "agentRuntimeArn"
    ]
    token = issuer.sign(issuer.claims(sub="alice"))
    # The caller cannot claim another user: the token's subject wins.
    reply = bearer_invoke(server, arn, token, **{"x-amzn-bedrock-agentcore-runtime-user-id": "mallory"})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"user": "alice", "authorization": None, "echo": {"q": 1}}

    allowlisted = server.deploy(
        {"agent.py": AGENT}, "jwtheaders", authorizerConfiguration=jwt_config(issuer),
        requestHeaderConfiguration={"requestHeaderAllowlist": ["Authorization"]},
    )["agentRuntimeArn"]  # fmt: skip
    assert bearer_invoke(server, allowlisted, token).json()["authorization"] == f"Bearer {token}"


def test_every_rejection_names_its_reason_and_never_the_token(server: Server, issuer: OidcIssuer) -> None:
    config = jwt_config(issuer, allowedScopes=["invoke"])
    arn = server.deploy({"agent.py": AGENT}, "jwtno", authorizerConfiguration=config)["agentRuntimeArn"]
    assert refusal(bearer_invoke(server, arn, None))[:2] == (401, "UnauthorizedException")
    cases = {
        "expired": issuer.claims(scope="invoke", iat=1_000, exp=2_000),
        "audience": issuer.claims(scope="invoke", aud="someone-else"),
        "scope": issuer.claims(scope="read write"),
        "issuer": issuer.claims(scope="invoke", iss="https://impostor.example"),
    }
    for reason, claims in cases.items():
        token = issuer.sign(claims)
        status, code, message = refusal(bearer_invoke(server, arn, token))
        assert (status, code) == (403, "AccessDeniedException"), (reason, message)
        assert reason in message
        assert token[-20:] not in message and token[:20] not in message
    forged = issuer.sign(issuer.claims(scope="invoke"))[:-8] + "AAAAAAAA"
    assert "signature" in refusal(bearer_invoke(server, arn, forged))[2]


def test_sigv4_and_bearer_each_only_where_they_belong(server: Server, issuer: OidcIssuer) -> None:
    jwt_arn = server.deploy({"agent.py": AGENT}, "jwtonly", authorizerConfiguration=jwt_config(issuer))[
        "agentRuntimeArn"
    ]
    with pytest.raises(botocore.exceptions.ClientError) as signed:
        server.data.invoke_agent_runtime(agentRuntimeArn=jwt_arn, payload=b"{}", runtimeSessionId="s" * 40)
    assert signed.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "bearer token" in signed.value.response["Error"]["Message"]

    sigv4_arn = server.deploy({"agent.py": AGENT}, "sigonly")["agentRuntimeArn"]
    status, code, message = refusal(bearer_invoke(server, sigv4_arn, issuer.sign(issuer.claims())))
    assert (status, code) == (403, "AccessDeniedException") and "does not accept bearer tokens" in message
    # Unproven callers learn nothing about which runtimes exist.
    missing = "arn:aws:bedrock-agentcore:us-east-1:000000000000:runtime/missing-AAAAAAAAAA"
    assert refusal(bearer_invoke(server, missing, None))[:2] == (403, "MissingAuthenticationTokenException")
    assert refusal(bearer_invoke(server, sigv4_arn, None))[:2] == (403, "MissingAuthenticationTokenException")
    # Bearer tokens never work on the control plane.
    listing = httpx.post(server.url + "/runtimes/", json={}, headers={"authorization": "Bearer x"})
    assert listing.status_code == 403


def test_a_websocket_authenticates_with_the_token(server: Server, issuer: OidcIssuer) -> None:
    arn = server.deploy({"agent.py": AGENT}, "jwtws", authorizerConfiguration=jwt_config(issuer))[
        "agentRuntimeArn"
    ]
    client = AgentCoreRuntimeClient(region="us-east-1", endpoint_url=server.url)
    url, headers = client.generate_ws_connection_oauth(arn, issuer.sign(issuer.claims(sub="bob")), "w" * 40)
    kept = {k: v for k, v in headers.items() if k.lower() in ("authorization", SESSION.lower())}
    with connect(url, additional_headers=kept, open_timeout=60) as websocket:
        websocket.send("hello")
        assert websocket.recv(timeout=30) == "hello from bob"
    url, headers = client.generate_ws_connection_oauth(arn, "not-a-jwt", "w" * 40)
    with pytest.raises(InvalidStatus) as refused:
        connect(url, additional_headers={"Authorization": headers["Authorization"]}, open_timeout=60)
    assert refused.value.response.status_code == 403
    assert "malformed" in json.loads(refused.value.response.body)["message"]


def test_the_issuer_must_answer_when_the_authorizer_is_configured(server: Server) -> None:
    with OidcIssuer() as gone:
        discovery = gone.discovery_url
    key = server.upload({"agent.py": AGENT})

    with pytest.raises(server.control.exceptions.ValidationException, match="discovery URL"):
        server.control.create_agent_runtime(
            agentRuntimeName="jwtgone", roleArn="arn:aws:iam::000000000000:role/agent",
            agentRuntimeArtifact=artifact(key),
            authorizerConfiguration={"customJWTAuthorizer": {"discoveryUrl": discovery}},
        )  # fmt: skip
    with pytest.raises(server.control.exceptions.ValidationException, match="discoveryUrl"):
        server.control.create_agent_runtime(
            agentRuntimeName="jwtbad", roleArn="arn:aws:iam::000000000000:role/agent",
            agentRuntimeArtifact=artifact(key),
            authorizerConfiguration={"customJWTAuthorizer": {"discoveryUrl": "ftp://x/.well-known/openid-configuration"}},
        )  # fmt: skip
