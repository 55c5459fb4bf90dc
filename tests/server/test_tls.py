"""The runtime server over TLS: boto3, raw HTTPS and `wss://` from the SDK's client, all verifying
the server's certificate against a private CA made for the test."""

from __future__ import annotations

import io
import json
import shutil
import ssl
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import httpx
import pytest
from websockets.sync.client import connect

from bedrock_agentcore.runtime import AgentCoreRuntimeClient
from open_agentcore.server import ServerConfig
from tests.conftest import free_port, wait_until
from tests.server.conftest import KEY_ID, SECRET, artifact, sign
from tests.server.uvicorn_harness import serving
from tests.tls_certificates import Certificates, issue

AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload, context):
    return {"echo": payload, "session": context.session_id}


@app.websocket
async def talk(websocket, context):
    await websocket.accept()
    text = await websocket.receive_text()
    await websocket.send_json({"echo": text, "session": context.session_id})
    await websocket.close()
"""


@dataclass
class TlsServer:
    url: str
    certificates: Certificates
    arn: str

    def trusting(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.certificates.ca))


def clients(url: str, verify: str | bool | None) -> tuple[Any, Any]:
    settings = {
        "region_name": "us-east-1", "endpoint_url": url, "verify": verify,
        "aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET,
        "config": botocore.config.Config(retries={"total_max_attempts": 1}, read_timeout=60),
    }  # fmt: skip
    return boto3.client("bedrock-agentcore-control", **settings), boto3.client(
        "bedrock-agentcore", **settings
    )


def upload(url: str, files: dict[str, str], verify: ssl.SSLContext) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    body = buffer.getvalue()
    target = url + "/_agentcore/artifacts"
    reply = httpx.put(target, content=body, headers=sign("PUT", target, body), verify=verify, timeout=60)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["key"])


@pytest.fixture(scope="module")
def tls_server() -> Iterator[TlsServer]:
    # Short: worker sockets live under the data dir, and unix socket paths max out at 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="oact-", dir="/tmp"))
    certificates = issue(root)
    config = ServerConfig(
        data_dir=root / "d", port=free_port(), tls_cert=certificates.cert, tls_key=certificates.key,
        min_lifecycle_seconds=1, warm_pool=0, reap_interval=0.2,
    )  # fmt: skip
    try:
        with serving(config) as url:
            assert url.startswith("https://127.0.0.1:")
            control, _ = clients(url, str(certificates.ca))
            key = upload(url, {"agent.py": AGENT}, ssl.create_default_context(cafile=str(certificates.ca)))
            created = control.create_agent_runtime(
                agentRuntimeName="tls", roleArn="arn:aws:iam::000000000000:role/agent",
                agentRuntimeArtifact=artifact(key),
            )  # fmt: skip
            runtime_id = created["agentRuntimeId"]
            wait_until(
                lambda: control.get_agent_runtime(agentRuntimeId=runtime_id)["status"] != "CREATING",
                timeout=120, interval=0.1,
            )  # fmt: skip
            assert control.get_agent_runtime(agentRuntimeId=runtime_id)["status"] == "READY"
            yield TlsServer(url, certificates, created["agentRuntimeArn"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_boto3_trusting_the_ca_creates_and_invokes_over_https(tls_server: TlsServer) -> None:
    control, data = clients(tls_server.url, str(tls_server.certificates.ca))
    listed = control.list_agent_runtimes()["agentRuntimes"]
    assert [runtime["agentRuntimeArn"] for runtime in listed] == [tls_server.arn]
    reply = data.invoke_agent_runtime(
        agentRuntimeArn=tls_server.arn, payload=b'{"over": "tls"}', runtimeSessionId="t" * 40
    )
    assert json.loads(reply["response"].read()) == {"echo": {"over": "tls"}, "session": "t" * 40}


def test_boto3_without_the_ca_fails_with_an_ssl_error(tls_server: TlsServer) -> None:
    control, data = clients(tls_server.url, None)  # botocore's own CA bundle: it never saw this CA
    with pytest.raises(botocore.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        control.list_agent_runtimes()
    with pytest.raises(botocore.exceptions.SSLError):
        data.invoke_agent_runtime(agentRuntimeArn=tls_server.arn, payload=b"{}", runtimeSessionId="u" * 40)


@pytest.fixture
def runtime_client(tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch) -> AgentCoreRuntimeClient:
    # AWS itself cannot exist here: the admin key of the local server stands in for IAM credentials.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    return AgentCoreRuntimeClient(region="us-east-1", endpoint_url=tls_server.url)


def test_a_presigned_wss_url_reaches_the_agent_through_a_context_trusting_the_ca(
    tls_server: TlsServer, runtime_client: AgentCoreRuntimeClient
) -> None:
    url = runtime_client.generate_presigned_url(tls_server.arn, session_id="w" * 40)
    assert url.startswith("wss://127.0.0.1:")
    with connect(url, ssl=tls_server.trusting(), open_timeout=60) as websocket:
        websocket.send("hello over wss")
        assert json.loads(websocket.recv(timeout=30)) == {"echo": "hello over wss", "session": "w" * 40}


def test_signed_wss_headers_reach_the_agent_too(
    tls_server: TlsServer, runtime_client: AgentCoreRuntimeClient
) -> None:
    url, headers = runtime_client.generate_ws_connection(tls_server.arn, session_id="h" * 40)
    upgrade = {"upgrade", "connection", "sec-websocket-version", "sec-websocket-key", "host", "user-agent"}
    kept = {name: value for name, value in headers.items() if name.lower() not in upgrade}
    with connect(url, additional_headers=kept, ssl=tls_server.trusting(), open_timeout=60) as websocket:
        websocket.send("signed")
        assert json.loads(websocket.recv(timeout=30)) == {"echo": "signed", "session": "h" * 40}


def test_a_wss_url_is_refused_by_a_client_that_does_not_trust_the_ca(
    tls_server: TlsServer, runtime_client: AgentCoreRuntimeClient
) -> None:
    url = runtime_client.generate_presigned_url(tls_server.arn, session_id="x" * 40)
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(url, ssl=ssl.create_default_context(), open_timeout=60)


def test_plain_http_to_the_tls_port_gets_no_answer_and_the_server_stays_up(tls_server: TlsServer) -> None:
    plain = tls_server.url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError) as failed:
        httpx.get(plain + "/_agentcore/health", timeout=30)
    assert not isinstance(failed.value, httpx.TimeoutException), "the server should close, not hang"
    health = httpx.get(tls_server.url + "/_agentcore/health", verify=tls_server.trusting(), timeout=30)
    assert health.status_code == 200


def test_stopping_does_not_wait_for_idle_tls_connections(tmp_path: Path) -> None:
    certificates = issue(tmp_path)
    data_dir = Path(tempfile.mkdtemp(prefix="oact-", dir="/tmp"))
    config = ServerConfig(
        data_dir=data_dir, port=free_port(), tls_cert=certificates.cert, tls_key=certificates.key, warm_pool=0
    )
    trusting = ssl.create_default_context(cafile=str(certificates.ca))
    try:
        # `serving` fails unless the server stops while this client still holds its idle connection.
        with httpx.Client(verify=trusting) as pooled, serving(config) as url:
            assert pooled.get(url + "/_agentcore/health").status_code == 200
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
