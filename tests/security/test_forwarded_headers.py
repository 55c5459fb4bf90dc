"""What a caller's headers can carry into a worker (`server/data.py: forwardable`, `worker_headers`).

The invocation decodes only the headers a worker may be sent, straight from the raw ASGI pairs.
Attacks, through a real server and a real worker whose agent reports every header it received:
the caller's own credential headers (a security token, proxy credentials, a cookie), a forged
worker secret in two letter cases, custom headers in other letter cases or sent twice, a custom
header outside the allowlist, header names bent with whitespace, a second session header slipped
past the signature, and bytes outside ASCII. Sent on a raw socket, so nothing between the test
and the server tidies them.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import pytest

from tests.security.attack import short_data_dir
from tests.server.conftest import Server, running_server, sign

AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()

@app.entrypoint
def invoke(payload, context):
    return {"headers": [[name.lower(), value] for name, value in context.request.headers.items()]}
"""
ALLOWED = "x-amzn-bedrock-agentcore-runtime-custom-tenant"
OTHER = "x-amzn-bedrock-agentcore-runtime-custom-other"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with short_data_dir() as data_dir, running_server(data_dir) as running:
        yield running


@pytest.fixture(scope="module")
def arn(server: Server) -> str:
    allowlist = {"requestHeaderAllowlist": ["X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant"]}
    deployed = server.deploy({"agent.py": AGENT}, "headers", requestHeaderConfiguration=allowlist)
    return str(deployed["agentRuntimeArn"])


def exchange(server: Server, arn: str, extra: list[tuple[str, bytes]]) -> bytes:
    """Invoke with `extra` headers (signed where SigV4 signs them) on a raw socket; the answer."""
    path = f"/runtimes/{quote(arn, safe='')}/invocations"
    body = b"{}"
    signable = {name: value.decode("latin-1") for name, value in extra if name.lower().startswith("x-amz-")}
    signable["X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"] = "f" * 40
    headers = sign("POST", server.url + path, body, signable)
    parts = urlsplit(server.url)
    lines = [f"POST {path} HTTP/1.1".encode(), f"host: {parts.netloc}".encode(), b"content-length: 2"]
    lines += [
        f"{name}: {value}".encode("latin-1") for name, value in headers.items() if name.lower() != "host"
    ]
    lines += [name.encode() + b": " + value for name, value in extra if not name.lower().startswith("x-amz-")]
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as connection:
        connection.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
            head, _, rest = answer.partition(b"\r\n\r\n")
            lengths = [
                line[15:] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
            ]
            if lengths and len(rest) >= int(lengths[0]):
                break
    return answer


def received(server: Server, arn: str, extra: list[tuple[str, bytes]]) -> list[list[str]]:
    """The headers the agent saw when invoked with `extra`."""
    answer = exchange(server, arn, extra)
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:500]
    seen: list[list[str]] = json.loads(rest)["headers"]
    return seen


def test_no_credential_of_the_caller_and_no_forged_secret_reaches_the_worker(
    server: Server, arn: str
) -> None:
    seen = received(server, arn, [
        ("X-Amz-Security-Token", b"caller-session-token"),
        ("x-agentcore-worker-secret", b"forged"),
        ("X-AGENTCORE-WORKER-SECRET", b"forged-upper"),
        ("Proxy-Authorization", b"Basic Y2FsbGVyOnNlY3JldA=="),
        ("Cookie", b"session=stolen"),
    ])  # fmt: skip
    names = {name for name, _ in seen}
    assert not {name for name in names if name.startswith("x-amz-") or name == "authorization"}, seen
    assert "x-agentcore-worker-secret" not in names, seen
    assert not {"proxy-authorization", "cookie"} & names, seen
    assert not any(
        "forged" in value or "stolen" in value or "caller-session-token" in value for _, value in seen
    )


def test_only_the_allowlisted_custom_header_passes_in_any_letter_case_and_others_never(
    server: Server, arn: str
) -> None:
    seen = received(server, arn, [
        ("X-AMZN-BEDROCK-AGENTCORE-RUNTIME-CUSTOM-TENANT", b"blue"),
        ("x-Amzn-Bedrock-Agentcore-Runtime-Custom-Tenant", b"green"),
        ("X-Amzn-Bedrock-AgentCore-Runtime-Custom-Other", b"not allowlisted"),
    ])  # fmt: skip
    assert [value for name, value in seen if name == ALLOWED] == ["blue", "green"], seen
    assert not [name for name, _ in seen if name.startswith(OTHER)], seen


def test_a_header_name_bent_to_look_allowlisted_is_refused_whole(server: Server, arn: str) -> None:
    for bent in (
        b"X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant\t",
        b"X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant ",
    ):
        answer = exchange(server, arn, [(bent.decode("latin-1"), b"bent")])
        assert answer.startswith(b"HTTP/1.1 400"), answer[:300]


def test_a_second_session_header_slipped_past_the_signature_is_refused(server: Server, arn: str) -> None:
    # SigV4 joins a repeated header's values: the signed session id no longer matches.
    answer = exchange(server, arn, [("X-Amzn-Bedrock-AgentCore-Runtime-Session-Id", b"e" * 40)])
    assert answer.startswith(b"HTTP/1.1 403"), answer[:300]
    assert b"InvalidSignatureException" in answer.partition(b"\r\n\r\n")[0]


def test_bytes_outside_ascii_in_an_allowlisted_header_reach_the_agent_as_sent(
    server: Server, arn: str
) -> None:
    seen = received(
        server, arn, [("X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant", "blå".encode("latin-1"))]
    )
    assert [value for name, value in seen if name == ALLOWED] == ["blå"]
    assert [value for name, value in seen if name == "x-amzn-bedrock-agentcore-runtime-session-id"] == [
        "f" * 40
    ]
