"""Requests are judged before they cost anything: headers first, bodies bounded, URLs not replayable.

Attacks: an unauthenticated client streams a 240 MiB body and the server reads it all into memory
before refusing it; a presigned URL made for one invocation carries any body; a signature scoped
to another region is accepted; an entry point outside the uploaded code runs; warm workers slip
past `--max-sessions`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import botocore.exceptions
import httpx
import pytest

from tests.conftest import free_port, wait_until
from tests.security.attack import Key, raw_request, short_data_dir, signed_headers
from tests.server.conftest import KEY_ID, SECRET, Server, artifact, running_server

ADMIN = Key(KEY_ID, SECRET)
ECHO_AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload, context):
    return {"payload": payload, "session": context.session_id}
"""
UPLOAD = 240 * 1024 * 1024


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with short_data_dir() as data_dir, running_server(data_dir) as running:
        yield running


@pytest.fixture(scope="module")
def echo(server: Server) -> str:
    return str(server.deploy({"agent.py": ECHO_AGENT}, "echo")["agentRuntimeArn"])


def invocation_path(arn: str) -> str:
    return f"/runtimes/{quote(arn, safe='')}/invocations"


def head_only(url: str, method: str, path: str, headers: dict[str, str], length: int) -> bytes:
    """Send a request head announcing `length` body bytes, none of them, and return the answer.

    A server that waits for the body before judging the request never answers: the socket's
    timeout then fails the test.
    """
    parts = urlsplit(url)
    lines = [f"{method} {path} HTTP/1.1", f"host: {parts.netloc}", f"content-length: {length}"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "content-length"]
    with socket.create_connection((parts.hostname, parts.port), timeout=15) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def status_and_type(answer: bytes) -> tuple[int, str]:
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    fields = dict(line.lower().split(": ", 1) for line in head[1:] if ": " in line)
    return int(head[0].split()[1]), fields.get("x-amzn-errortype", "")


def test_an_anonymous_upload_is_refused_before_its_body(server: Server) -> None:
    answer = head_only(server.url, "PUT", "/_agentcore/artifacts", {}, UPLOAD)
    assert status_and_type(answer) == (403, "missingauthenticationtokenexception")


def test_an_unknown_key_wrong_region_or_stale_date_is_refused_before_the_body(server: Server) -> None:
    url = server.url + "/_agentcore/artifacts"
    unknown = signed_headers(Key("AKIAUNKNOWN000000000", "x" * 40), "PUT", url)
    elsewhere = signed_headers(ADMIN, "PUT", url, region="eu-west-1")
    stale = signed_headers(ADMIN, "PUT", url)
    stale["X-Amz-Date"] = "20200101T000000Z"
    stale["Authorization"] = stale["Authorization"].replace(stale["Authorization"].split("/")[1], "20200101")
    for headers, expected in (
        (unknown, (403, "unrecognizedclientexception")),
        (elsewhere, (403, "invalidsignatureexception")),
        (stale, (403, "invalidsignatureexception")),
    ):
        assert (
            status_and_type(head_only(server.url, "PUT", "/_agentcore/artifacts", headers, UPLOAD))
            == expected
        )


def test_a_signature_for_another_region_is_refused(server: Server, echo: str) -> None:
    elsewhere = boto3.client(
        "bedrock-agentcore", region_name="eu-west-1", endpoint_url=server.url,
        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )  # fmt: skip
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        elsewhere.invoke_agent_runtime(agentRuntimeArn=echo, payload=b"{}", runtimeSessionId="r" * 40)
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert "region" in refused.value.response["Error"]["Message"]


def presigned(method: str, url: str, body: bytes = b"") -> str:
    request = botocore.awsrequest.AWSRequest(method=method, url=url, data=body)
    credentials = botocore.credentials.Credentials(KEY_ID, SECRET)
    botocore.auth.SigV4QueryAuth(credentials, "bedrock-agentcore", "us-east-1", expires=60).add_auth(request)
    return str(request.url)


def test_a_presigned_url_does_not_authenticate_an_invocation(server: Server, echo: str) -> None:
    url = presigned("POST", server.url + invocation_path(echo))
    path = url.removeprefix(server.url)
    for body in (b"", b'{"injected": "by whoever holds the URL"}'):
        reply = raw_request(server.url, "POST", path, body)
        assert (reply.status, reply.error_type) == (403, "AccessDeniedException"), reply.body
        assert b"WebSocket" in reply.body
    assert sessions_of(server, echo) == []


def test_a_presigned_url_does_not_authenticate_the_control_plane(server: Server, echo: str) -> None:
    runtime_id = echo.rsplit("/", 1)[1]
    for method, path in (
        ("GET", f"/runtimes/{runtime_id}/"),
        ("POST", "/runtimes/"),
        ("DELETE", f"/runtimes/{runtime_id}/"),
    ):
        reply = raw_request(server.url, method, presigned(method, server.url + path).removeprefix(server.url))
        assert (reply.status, reply.error_type) == (403, "AccessDeniedException"), (path, reply.body)
    assert server.control.get_agent_runtime(agentRuntimeId=runtime_id)["status"] == "READY"


def sessions_of(server: Server, arn: str) -> list[dict[str, Any]]:
    reply = server.signed("GET", f"/_agentcore/runtimes/{arn.rsplit('/', 1)[1]}/sessions?state=all")
    sessions: list[dict[str, Any]] = reply.json()["sessions"]
    return sessions


@pytest.mark.parametrize(
    "entry",
    ["/var/tmp/x.py", "../x.py", "code/../../x.py", "a//b.py", "a\\b.py", "x.py\0.txt", "/agent.py"],
)
def test_an_entry_point_outside_the_code_is_refused(server: Server, entry: str) -> None:
    key = server.upload({"agent.py": ECHO_AGENT})
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        server.control.create_agent_runtime(
            agentRuntimeName="escape", roleArn="arn:aws:iam::000000000000:role/agent",
            agentRuntimeArtifact=artifact(key, entry),
        )  # fmt: skip
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException", error
    assert "entryPoint" in error["Message"]


def test_session_ids_are_kept_as_the_utf8_they_were_sent_in(server: Server, echo: str) -> None:
    session = "séance-会話-" + "x" * 30
    path = invocation_path(echo)
    header = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
    # botocore signs the id's text; the wire carries its UTF-8 bytes, as curl would send them.
    signed = signed_headers(ADMIN, "POST", server.url + path, b"{}", {header: session})
    sent = {**signed, header: session.encode()}
    reply = httpx.post(server.url + path, content=b"{}", headers=sent, timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.json()["session"] == session  # the agent's context holds the real text
    assert dict(reply.headers.raw)[header.lower().encode()] == session.encode()
    listed = [entry["sessionId"] for entry in sessions_of(server, echo)]
    assert session in listed
    logs = server.signed(
        "GET", f"/_agentcore/runtimes/{echo.rsplit('/', 1)[1]}/sessions/{quote(session, safe='')}/logs"
    )
    assert logs.status_code == 200, logs.text


def test_warm_workers_count_toward_max_sessions() -> None:
    with short_data_dir() as data_dir, running_server(data_dir, max_sessions=2, warm_pool=1) as server:
        arn = server.deploy({"agent.py": ECHO_AGENT}, "capacity")["agentRuntimeArn"]

        def invoke(session: str) -> Any:
            reply = server.data.invoke_agent_runtime(
                agentRuntimeArn=arn, runtimeSessionId=session, payload=b"{}"
            )
            return json.loads(reply["response"].read())

        wait_until(lambda: len(workers(data_dir)) == 1, timeout=60)  # the warm one
        invoke("first-session-" + "0" * 30)
        wait_until(lambda: len(workers(data_dir)) == 2, timeout=60)  # and its replacement in the pool
        invoke("second-session-" + "0" * 30)  # the warm worker gives way
        assert len(workers(data_dir)) <= 2
        with pytest.raises(server.data.exceptions.ServiceQuotaExceededException, match="max-sessions 2"):
            invoke("third-session-" + "0" * 30)
        assert len(workers(data_dir)) <= 2


def workers(data_dir: Path) -> list[str]:
    """The server's workers (warm ones too), fresh or forked: each has its work dir, named by its
    worker id, under the data dir's `w/` while it lives (a fork server's dir is named `fork-...`)."""
    with contextlib.suppress(FileNotFoundError):
        return [entry.name for entry in (data_dir / "w").iterdir() if entry.name.startswith("w")]
    return []


@contextlib.contextmanager
def server_process(data_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    environment = {
        **os.environ,
        "AGENTCORE_ADMIN_ACCESS_KEY_ID": KEY_ID,
        "AGENTCORE_ADMIN_SECRET_ACCESS_KEY": SECRET,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "open_agentcore.cli", "server", "run", "--port", str(port), "--data-dir",
         str(data_dir), "--warm-pool", "0"],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(url), timeout=60, interval=0.1)
        yield url, process
    finally:
        process.terminate()
        process.wait(30)


def _healthy(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url + "/_agentcore/health", timeout=2).status_code == 200
    return False


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_large_bodies_with_a_bad_signature_cost_disk_not_memory() -> None:
    chunk = b"\0" * (1024 * 1024)
    with short_data_dir() as data_dir, server_process(data_dir) as (url, process):
        before = rss(process.pid)
        for _ in range(3):
            headers = signed_headers(ADMIN, "PUT", url + "/_agentcore/artifacts", b"")  # signed for no body
            refused = httpx.put(
                url + "/_agentcore/artifacts", content=iter([chunk] * 240), headers=headers, timeout=120
            )
            assert (refused.status_code, refused.headers["x-amzn-errortype"]) == (
                403,
                "InvalidSignatureException",
            )
        grown = rss(process.pid) - before
        assert grown < 64 * 1024 * 1024, f"the server grew by {grown / 2**20:.0f} MiB for 3 refused uploads"
        assert not any((data_dir / "tmp").iterdir())  # the spooled bodies are gone
