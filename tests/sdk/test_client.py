"""`AgentCoreRuntimeClient`: URLs, SigV4 headers, presigned URLs, OAuth: `runtime/client.py`.

AWS itself cannot exist here: static fake credentials stand in for an account, and the
signatures are checked by an independent SigV4 implementation below and by a real WebSocket
server that verifies them before accepting the connection.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
import json
import subprocess
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import botocore.credentials
import pytest
import websockets
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from bedrock_agentcore.runtime import AgentCoreRuntimeClient

ARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/hello-Ab12Cd34Ef"
ENCODED_ARN = quote(ARN, safe="")
KEY_ID, SECRET = "AKIAFAKEFAKEFAKE0001", "fake/secret/key/for+tests/only0000000000"


class FakeSession:
    """Only what the client needs of a boto3 session: credentials."""

    def __init__(self, token: str | None = None) -> None:
        self.credentials = botocore.credentials.Credentials(KEY_ID, SECRET, token)

    def get_credentials(self) -> botocore.credentials.Credentials:
        return self.credentials


def _client(endpoint_url: str | None = None, token: str | None = None) -> AgentCoreRuntimeClient:
    return AgentCoreRuntimeClient(region="us-east-1", endpoint_url=endpoint_url, session=FakeSession(token))


# An independent SigV4 check, written from the specification --------------------------------


def _uri_encode(text: str, safe: str) -> str:
    return quote(text, safe=safe)


def _signature(
    method: str,
    raw_path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    signed: list[str],
    amz_date: str,
    scope: str,
    payload_hash: str,
) -> str:
    canonical_query = "&".join(f"{_uri_encode(k, '-_.~')}={_uri_encode(v, '-_.~')}" for k, v in sorted(query))
    canonical_headers = "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in signed)
    canonical = "\n".join(
        [
            method,
            _uri_encode(raw_path, "/~"),
            canonical_query,
            canonical_headers,
            ";".join(signed),
            payload_hash,
        ]
    )
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    date, region, service, _ = scope.split("/")
    key = ("AWS4" + SECRET).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def verify_header_signature(raw_path: str, raw_query: str, headers: Mapping[str, str]) -> bool:
    lower = {k.lower(): v for k, v in headers.items()}
    algorithm, _, rest = lower["authorization"].partition(" ")
    fields = dict(part.strip().split("=", 1) for part in rest.split(","))
    credential = fields["Credential"].split("/", 1)
    signed = fields["SignedHeaders"].split(";")
    expected = _signature(
        "GET",
        raw_path,
        parse_qsl(raw_query, keep_blank_values=True),
        lower,
        signed,
        lower["x-amz-date"],
        credential[1],
        hashlib.sha256(b"").hexdigest(),
    )
    return (
        algorithm == "AWS4-HMAC-SHA256"
        and credential[0] == KEY_ID
        and hmac.compare_digest(expected, fields["Signature"])
    )


def verify_presigned(raw_path: str, raw_query: str, host: str, now: datetime.datetime) -> bool:
    params = parse_qsl(raw_query, keep_blank_values=True)
    values = dict(params)
    signature = values["X-Amz-Signature"]
    unsigned = [(k, v) for k, v in params if k != "X-Amz-Signature"]
    signed = values["X-Amz-SignedHeaders"].split(";")
    scope = values["X-Amz-Credential"].split("/", 1)[1]
    expected = _signature(
        # botocore presigns this service over the hash of an empty body, not UNSIGNED-PAYLOAD.
        "GET",
        raw_path,
        unsigned,
        {"host": host},
        signed,
        values["X-Amz-Date"],
        scope,
        hashlib.sha256(b"").hexdigest(),
    )
    issued = datetime.datetime.strptime(values["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc
    )
    fresh = now <= issued + datetime.timedelta(seconds=int(values["X-Amz-Expires"]))
    return fresh and hmac.compare_digest(expected, signature)


# URL shapes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "prefix"),
    [
        (None, "wss://bedrock-agentcore.us-east-1.amazonaws.com"),
        ("http://127.0.0.1:8900", "ws://127.0.0.1:8900"),
        ("https://agents.example.test:8443", "wss://agents.example.test:8443"),
    ],
)
def test_ws_url_shape_follows_the_endpoint(endpoint: str | None, prefix: str) -> None:
    url, headers = _client(endpoint).generate_ws_connection(ARN, session_id="s-1", endpoint_name="DEFAULT")
    assert url == f"{prefix}/runtimes/{ENCODED_ARN}/ws?qualifier=DEFAULT"
    assert headers["X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"] == "s-1"


def test_connection_headers_leave_the_handshake_headers_to_the_websocket_library() -> None:
    # A second Upgrade or Sec-WebSocket-Key beside the library's own breaks the handshake.
    handshake = {"host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version"}
    client = _client("http://127.0.0.1:8900")
    _, signed = client.generate_ws_connection(ARN)
    _, bearer = client.generate_ws_connection_oauth(ARN, "tok")
    assert {"authorization", "x-amz-date"} <= {name.lower() for name in signed}
    assert not handshake & {name.lower() for name in signed}
    assert not handshake & {name.lower() for name in bearer}


def test_without_qualifier_there_is_no_query() -> None:
    url, headers = _client("http://localhost:1").generate_ws_connection(ARN)
    assert url == f"ws://localhost:1/runtimes/{ENCODED_ARN}/ws"
    assert len(headers["X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"]) == 36  # a fresh uuid4


@pytest.mark.parametrize("bad", ["ftp://host", "localhost:8900", "http://"])
def test_a_malformed_endpoint_url_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="endpoint_url"):
        AgentCoreRuntimeClient(endpoint_url=bad)


@pytest.mark.parametrize(
    "bad", ["", "runtime/x", "arn:aws:s3:::bucket", "arn:aws:bedrock-agentcore:us-east-1:12:runtime/x"]
)
def test_a_malformed_arn_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="ARN"):
        _client().generate_ws_connection(bad)


def test_region_comes_from_argument_then_environment_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert AgentCoreRuntimeClient().region == "us-west-2"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert AgentCoreRuntimeClient().region == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    assert AgentCoreRuntimeClient().region == "ap-south-1"
    assert AgentCoreRuntimeClient(region="us-east-2").region == "us-east-2"
    assert AgentCoreRuntimeClient(region_name="eu-north-1").region == "eu-north-1"


class RegionalSession(FakeSession):
    region_name = "eu-west-3"


def test_a_sessions_region_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    client = AgentCoreRuntimeClient(session=RegionalSession(), endpoint_url="http://127.0.0.1:8900")
    assert client.region == "eu-west-3"
    _, headers = client.generate_ws_connection(ARN)
    assert "/eu-west-3/bedrock-agentcore/aws4_request" in headers["Authorization"]
    assert AgentCoreRuntimeClient(region="us-east-2", session=RegionalSession()).region == "us-east-2"


def test_the_constructor_takes_the_references_keywords_and_positions() -> None:
    client = AgentCoreRuntimeClient("us-east-1", RegionalSession(), "langchain", None)
    assert (client.region, client.integration_source) == ("us-east-1", "langchain")
    assert isinstance(client.session, RegionalSession)


# Signatures ----------------------------------------------------------------------------------


def test_sigv4_headers_verify_independently_and_carry_the_session_token() -> None:
    url, headers = _client("http://127.0.0.1:8900", token="session-token-1").generate_ws_connection(
        ARN, endpoint_name="DEFAULT"
    )
    parts = urlsplit(url)
    headers = {**headers, "Host": parts.netloc}  # as the WebSocket library sends it
    assert verify_header_signature(parts.path, parts.query, headers)
    assert headers["X-Amz-Security-Token"] == "session-token-1"
    assert "/us-east-1/bedrock-agentcore/aws4_request" in headers["Authorization"]
    tampered = {**headers, "X-Amz-Date": "20200101T000000Z"}
    assert not verify_header_signature(parts.path, parts.query, tampered)


def test_presigned_url_verifies_and_expires() -> None:
    custom = {"tenant": "blue"}
    url = _client("https://agents.example.test").generate_presigned_url(
        ARN, session_id="s-9", endpoint_name="DEFAULT", custom_headers=custom, expires=120
    )
    assert custom == {"tenant": "blue"}  # the caller's mapping is untouched
    parts = urlsplit(url)
    assert parts.scheme == "wss"
    query = dict(parse_qsl(parts.query))
    assert query["X-Amz-Expires"] == "120" and query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"] == "s-9" and query["tenant"] == "blue"
    assert {"X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature"} <= set(query)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert verify_presigned(parts.path, parts.query, parts.netloc, now)
    assert not verify_presigned(parts.path, parts.query, parts.netloc, now + datetime.timedelta(seconds=200))
    assert not verify_presigned(parts.path, parts.query.replace("blue", "red"), parts.netloc, now)


@pytest.mark.parametrize("expires", [0, 301, 3600])
def test_presigned_expiry_outside_1_to_300_is_refused(expires: int) -> None:
    with pytest.raises(ValueError, match="300"):
        _client().generate_presigned_url(ARN, expires=expires)


def test_oauth_headers_carry_the_bearer_token() -> None:
    url, headers = _client("http://127.0.0.1:8900").generate_ws_connection_oauth(
        ARN, "tok-123", session_id="s"
    )
    assert url == f"ws://127.0.0.1:8900/runtimes/{ENCODED_ARN}/ws"
    assert headers["Authorization"] == "Bearer tok-123"
    with pytest.raises(ValueError, match="bearer_token"):
        _client().generate_ws_connection_oauth(ARN, "")


def test_missing_credentials_is_a_clear_error() -> None:
    class NoCredentials:
        def get_credentials(self) -> None:
            return None

    client = AgentCoreRuntimeClient(region="us-east-1", session=NoCredentials())
    with pytest.raises(RuntimeError, match="No AWS credentials"):
        client.generate_ws_connection(ARN)


def test_unknown_attributes_are_attribute_errors() -> None:
    with pytest.raises(AttributeError):
        _client().delete_everything  # noqa: B018


def test_importing_the_client_module_does_not_import_botocore() -> None:
    code = "import sys\nfrom bedrock_agentcore.runtime import client\nprint('botocore' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


# End to end: a real WebSocket server that checks the signature before accepting -------------


def _verifying_server() -> Starlette:
    async def runtime_ws(websocket: WebSocket) -> None:
        raw_path = websocket.scope["raw_path"].decode()
        raw_query = websocket.scope["query_string"].decode()
        headers = {k.decode(): v.decode() for k, v in websocket.scope["headers"]}
        if "authorization" in headers and headers["authorization"].startswith("AWS4"):
            ok, how = verify_header_signature(raw_path, raw_query, headers), "sigv4"
        elif "authorization" in headers:
            ok, how = headers["authorization"] == "Bearer good-token", "oauth"
        else:
            now = datetime.datetime.now(datetime.timezone.utc)
            ok, how = verify_presigned(raw_path, raw_query, headers["host"], now), "presigned"
        if not ok:
            await websocket.close(code=1008)
            return
        await websocket.accept()
        message = await websocket.receive_text()
        await websocket.send_text(json.dumps({"how": how, "echo": message}))
        await websocket.close()

    return Starlette(routes=[WebSocketRoute("/runtimes/{arn:path}/ws", runtime_ws)])


async def _exchange(url: str, headers: dict[str, str] | None = None) -> Any:
    wanted = {k: v for k, v in (headers or {}).items() if k.lower() not in {"upgrade", "connection", "host"}}
    wanted = {k: v for k, v in wanted.items() if not k.lower().startswith("sec-websocket")}
    async with websockets.connect(url, additional_headers=wanted) as ws:
        await ws.send("hi")
        return json.loads(await ws.recv())


def test_all_three_connection_kinds_reach_a_verifying_server(serve: Any) -> None:
    with serve(_verifying_server()) as base:
        client = _client(base)
        url, headers = client.generate_ws_connection(ARN, endpoint_name="DEFAULT")
        assert asyncio.run(_exchange(url, headers)) == {"how": "sigv4", "echo": "hi"}
        presigned = client.generate_presigned_url(ARN, endpoint_name="DEFAULT")
        assert asyncio.run(_exchange(presigned)) == {"how": "presigned", "echo": "hi"}
        url, headers = client.generate_ws_connection_oauth(ARN, "good-token")
        assert asyncio.run(_exchange(url, headers)) == {"how": "oauth", "echo": "hi"}
        tampered = presigned.replace("qualifier=DEFAULT", "qualifier=OTHER")
        with pytest.raises(websockets.InvalidStatus):  # refused at the handshake
            asyncio.run(_exchange(tampered))
