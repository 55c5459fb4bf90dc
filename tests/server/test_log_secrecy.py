"""Secrets never reach a log: a real server process at its most verbose level, a whole workflow,
then every log it and its workers wrote is searched for the admin secret, bearer tokens and every
signature a client sent."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from bedrock_agentcore.runtime import AgentCoreRuntimeClient
from open_agentcore.server.redaction import REDACTED, SecretRedaction, redact
from open_agentcore.server.serving import LOG_LEVELS
from tests.conftest import free_port, wait_until

AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload, context):
    print(f"the agent was asked about {payload.get('topic')}", flush=True)
    return {"topic": payload.get("topic"), "session": context.session_id}


@app.websocket
async def talk(websocket, context):
    await websocket.accept()
    await websocket.send_text("echo " + await websocket.receive_text())
    await websocket.close()
"""

_SIGNATURE = re.compile(r"Signature=([0-9a-f]{64})")
_UPGRADE = {"upgrade", "connection", "sec-websocket-version", "sec-websocket-key", "host", "user-agent"}


@dataclass
class Secrets:
    """Everything that must never be logged, as the clients sent it."""

    values: set[str] = field(default_factory=set)

    def signed(self, authorization: str) -> None:
        self.values.update(_SIGNATURE.findall(authorization))

    def presigned(self, url: str) -> None:
        self.values.update(parse_qs(urlsplit(url).query)["X-Amz-Signature"])


@dataclass
class ServerProcess:
    url: str
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes]
    key_id: str
    secret: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)

    def logs(self) -> dict[Path, str]:
        """The server's own log and every file under its data dir's logs/ (build and session logs)."""
        found = {self.log: self.log.read_text(errors="replace")}
        for path in sorted((self.data_dir / "logs").rglob("*")):
            if path.is_file():
                found[path] = path.read_text(errors="replace")
        return found


def _environment(home: Path) -> dict[str, str]:
    environment = {**os.environ, "AGENTCORE_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    for name in ("AGENTCORE_ADMIN_ACCESS_KEY_ID", "AGENTCORE_ADMIN_SECRET_ACCESS_KEY", "AWS_CA_BUNDLE"):
        environment.pop(name, None)
    return environment


@pytest.fixture
def server_process() -> Iterator[ServerProcess]:
    # Short: worker sockets live under the data dir, and unix socket paths max out at 107 bytes.
    home = Path(tempfile.mkdtemp(prefix="oacl-", dir="/tmp"))
    data_dir, log, port = home / "server", home / "server-run.log", free_port()
    most_verbose = LOG_LEVELS[0]
    command = [
        sys.executable, "-m", "open_agentcore.cli", "server", "run", "--port", str(port),
        "--data-dir", str(data_dir), "--log-level", most_verbose, "--warm-pool", "0",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=_environment(home), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return httpx.get(url + "/_agentcore/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=60, interval=0.05)
        exported = subprocess.run(
            [sys.executable, "-m", "open_agentcore.cli", "server", "credentials", "--data-dir",
             str(data_dir)], env=_environment(home), capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
        values = dict(line.removeprefix("export ").split("=", 1) for line in exported.splitlines())
        yield ServerProcess(
            url, data_dir, log, process, values["AWS_ACCESS_KEY_ID"], values["AWS_SECRET_ACCESS_KEY"]
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        shutil.rmtree(home, ignore_errors=True)


def _clients(server: ServerProcess, sent: Secrets) -> tuple[Any, Any]:
    settings = {
        "region_name": "us-east-1", "endpoint_url": server.url,
        "aws_access_key_id": server.key_id, "aws_secret_access_key": server.secret,
        "config": botocore.config.Config(retries={"total_max_attempts": 1}, read_timeout=60),
    }  # fmt: skip
    control = boto3.client("bedrock-agentcore-control", **settings)
    data = boto3.client("bedrock-agentcore", **settings)

    def record(request: Any, **_: Any) -> None:
        sent.signed(request.headers.get("Authorization", b"").decode())

    for client in (control, data):
        client.meta.events.register("before-send", record)
    return control, data


def _signed(
    server: ServerProcess, sent: Secrets, method: str, path: str, body: bytes, secret: str,
    key_id: str | None = None,
) -> Any:  # fmt: skip
    url = server.url + path
    request = botocore.awsrequest.AWSRequest(method=method, url=url, data=body)
    credentials = botocore.credentials.Credentials(key_id or server.key_id, secret)
    botocore.auth.SigV4Auth(credentials, "bedrock-agentcore", "us-east-1").add_auth(request)
    sent.signed(request.headers["Authorization"])
    return httpx.request(method, url, content=body, headers=dict(request.headers), timeout=60)


def _workflow(server: ServerProcess, sent: Secrets, bearer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    control, data = _clients(server, sent)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("agent.py", AGENT)
    uploaded = _signed(server, sent, "PUT", "/_agentcore/artifacts", buffer.getvalue(), server.secret)
    assert uploaded.status_code == 200, uploaded.text
    created = control.create_agent_runtime(
        agentRuntimeName="quiet", roleArn="arn:aws:iam::000000000000:role/agent",
        agentRuntimeArtifact={"codeConfiguration": {
            "code": {"s3": {"bucket": "agentcore-artifacts", "prefix": uploaded.json()["key"]}},
            "runtime": "PYTHON_3_11", "entryPoint": ["agent.py"]}},
    )  # fmt: skip
    runtime_id, arn = created["agentRuntimeId"], created["agentRuntimeArn"]
    wait_until(lambda: control.get_agent_runtime(agentRuntimeId=runtime_id)["status"] == "READY", timeout=120)
    for topic in ("tides", "moths"):
        reply = data.invoke_agent_runtime(
            agentRuntimeArn=arn, payload=json.dumps({"topic": topic}).encode(), runtimeSessionId="q" * 40
        )
        assert json.loads(reply["response"].read())["topic"] == topic

    # The right key id with a wrong signature.
    forged = _signed(server, sent, "POST", "/runtimes/", b"{}", "not-the-secret-" + secrets.token_hex(8))
    assert forged.status_code == 403
    # A bearer token on a runtime without a JWT authorizer.
    path = f"/runtimes/{quote(arn, safe='')}/invocations"
    refused = httpx.post(
        server.url + path, content=b"{}", headers={"Authorization": f"Bearer {bearer}"}, timeout=60
    )
    assert refused.status_code in (401, 403), refused.text

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret)
    client = AgentCoreRuntimeClient(region="us-east-1", endpoint_url=server.url)
    presigned = client.generate_presigned_url(arn, session_id="p" * 40)
    sent.presigned(presigned)
    with connect(presigned, open_timeout=60) as websocket:
        websocket.send("presigned")
        assert websocket.recv(timeout=30) == "echo presigned"
    url, headers = client.generate_ws_connection(arn, session_id="s" * 40)
    sent.signed(headers["Authorization"])
    kept = {name: value for name, value in headers.items() if name.lower() not in _UPGRADE}
    with connect(url, additional_headers=kept, open_timeout=60) as websocket:
        websocket.send("signed")
        assert websocket.recv(timeout=30) == "echo signed"
    tampered = client.generate_presigned_url(arn, session_id="t" * 40).replace("t" * 40, "u" * 40)
    sent.presigned(tampered)
    with pytest.raises(InvalidStatus):
        connect(tampered, open_timeout=60)
    bearer_ws = {"Authorization": f"Bearer {bearer}"}
    with pytest.raises(InvalidStatus):
        connect(client.generate_ws_connection_oauth(arn, bearer)[0], additional_headers=bearer_ws)

    sessions = _signed(server, sent, "GET", f"/_agentcore/runtimes/{runtime_id}/sessions", b"", server.secret)
    assert sessions.status_code == 200
    logs = _signed(
        server, sent, "GET", f"/_agentcore/runtimes/{runtime_id}/sessions/{'q' * 40}/logs", b"", server.secret
    )
    assert "the agent was asked about moths" in logs.text

    # An access key made, used and revoked through the admin API: its secret is never logged.
    policy = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    body = json.dumps({"principal": "quiet-bot", "policy": policy}).encode()
    made = _signed(server, sent, "POST", "/_agentcore/access-keys", body, server.secret)
    assert made.status_code == 200, made.text
    key_id, key_secret = made.json()["accessKeyId"], made.json()["secretAccessKey"]
    sent.values.add(key_secret)
    assert _signed(server, sent, "POST", "/runtimes/", b"{}", key_secret, key_id).status_code == 200
    listed = _signed(server, sent, "GET", "/_agentcore/access-keys", b"", server.secret)
    assert listed.status_code == 200 and key_secret not in listed.text
    revoked = _signed(server, sent, "DELETE", f"/_agentcore/access-keys/{key_id}", b"", server.secret)
    assert revoked.status_code == 200
    assert _signed(server, sent, "POST", "/runtimes/", b"{}", key_secret, key_id).status_code == 403


def test_no_secret_reaches_any_log_at_the_most_verbose_level(
    server_process: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = Secrets()
    bearer = "eyJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(24) + "." + secrets.token_urlsafe(16)
    _workflow(server_process, sent, bearer, monkeypatch)
    server_process.stop()
    assert server_process.process.returncode == 0

    logs = server_process.logs()
    assert len(sent.values) >= 10
    for secret in (server_process.secret, bearer, *sent.values):
        leaks = [
            f"{path}: {line}" for path, text in logs.items() for line in text.splitlines() if secret in line
        ]
        assert not leaks, f"a secret ({secret[:6]}...) was logged:\n" + "\n".join(leaks)
    # The logs were verbose enough to have shown the secrets: requests, handshakes, the agent's output.
    everything = "\n".join(logs.values())
    assert '"POST /runtimes/ HTTP/1.1" 403' in everything
    assert "WebSocket /runtimes/" in everything and "X-Amz-Signature=" + REDACTED in everything
    assert "< authorization: " + REDACTED in everything.lower()
    assert "the agent was asked about tides" in everything


def test_redaction_keeps_the_shape_uvicorn_formats_access_lines_with() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/ws?X-Amz-Signature=abc123&a=1", "1.1", 101), None,
    )  # fmt: skip
    assert SecretRedaction().filter(record)
    assert record.args == ("127.0.0.1:5000", "GET", f"/ws?X-Amz-Signature={REDACTED}&a=1", "1.1", 101)


@pytest.mark.parametrize(
    ("logged", "shown"),
    [
        (
            "< Authorization: AWS4-HMAC-SHA256 Credential=AKIA/x, Signature=ab12",
            f"< Authorization: {REDACTED}",
        ),
        ("< authorization: Bearer eyJ.a.b", f"< authorization: {REDACTED}"),
        ("< X-Amz-Security-Token: FQoGZX", f"< X-Amz-Security-Token: {REDACTED}"),
        (
            "GET /x?X-Amz-Security-Token=FQo%2F&X-Amz-Date=1",
            f"GET /x?X-Amz-Security-Token={REDACTED}&X-Amz-Date=1",
        ),
        ("sent Bearer eyJ.a.b to the agent", f"sent Bearer {REDACTED} to the agent"),
        ("bearer tokens are accepted only for runtimes", "bearer tokens are accepted only for runtimes"),
        ("the request signature does not match", "the request signature does not match"),
    ],
)
def test_redaction_of_each_kind_of_secret(logged: str, shown: str) -> None:
    assert redact(logged) == shown


def test_a_malformed_log_call_is_redacted_before_logging_reports_it() -> None:
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, "%s %s", ("Bearer eyJ.a.b",), None
    )  # fmt: skip
    assert SecretRedaction().filter(record)
    assert record.args == (f"Bearer {REDACTED}",)
