"""SigV4 verification against requests signed by botocore itself: `auth/sigv4.py`.

AWS cannot exist here: static fake credentials stand in for an account, and boto3 clients are
stopped just before sending so the exact bytes they would put on the wire can be verified.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
from hypothesis import given
from hypothesis import strategies as st

from open_agentcore.auth import (
    Credential,
    IncompleteSignature,
    MissingAuthentication,
    RequestExpired,
    SignatureError,
    SignatureMismatch,
    UnrecognizedClient,
    authorization_scheme,
    verify_headers,
    verify_presigned,
)
from open_agentcore.auth.sigv4 import parse_authorization

KEY = Credential("AKIAFAKEKEY000000001", "fake+secret/for/tests/only/000000000000", "admin")
ARN = "arn:aws:bedrock-agentcore:us-east-1:000000000000:runtime/hello-Ab12Cd34Ef"


def lookup(access_key_id: str) -> Credential | None:
    return KEY if access_key_id == KEY.access_key_id else None


class Captured(Exception):
    """Raised from botocore's before-send hook: the request is complete but never sent."""

    def __init__(self, request: Any) -> None:
        self.request = request


def capture(service: str, call: str, **params: Any) -> dict[str, Any]:
    client = boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id=KEY.access_key_id,
        aws_secret_access_key=KEY.secret_access_key,
    )

    def stop(request: Any, **_: Any) -> None:
        raise Captured(request)

    client.meta.events.register("before-send", stop)
    with pytest.raises(Captured) as captured:
        getattr(client, call)(**params)
    request = captured.value.request
    url = urlsplit(request.url)
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    headers = [(k, v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()]
    # The HTTP library adds Host on the wire; botocore signed it from the URL.
    headers.append(("Host", url.netloc))
    return {
        "method": request.method,
        "raw_path": url.path,
        "raw_query": url.query,
        "headers": headers,
        "body": body,
    }


def verify(wire: dict[str, Any], **overrides: Any) -> Credential:
    args = {**wire, **overrides}
    return verify_headers(
        args["method"],
        args["raw_path"],
        args["raw_query"],
        args["headers"],
        hashlib.sha256(args["body"]).hexdigest(),
        lookup,
        now=overrides.get("now"),
    )


WIRES = {
    "invoke": ("bedrock-agentcore", "invoke_agent_runtime", {"agentRuntimeArn": ARN, "payload": b'{"a": 1}',
               "runtimeSessionId": "s" * 40, "qualifier": "DEFAULT"}),
    "get": ("bedrock-agentcore-control", "get_agent_runtime", {"agentRuntimeId": "hello-Ab12Cd34Ef"}),
    "list_versions": ("bedrock-agentcore-control", "list_agent_runtime_versions",
                      {"agentRuntimeId": "hello-Ab12Cd34Ef", "maxResults": 5, "nextToken": "x y/+=~"}),
    "create": ("bedrock-agentcore-control", "create_agent_runtime", {
        "agentRuntimeName": "hello", "roleArn": "arn:aws:iam::000000000000:role/r",
        "agentRuntimeArtifact": {"codeConfiguration": {"code": {"s3": {"bucket": "b", "prefix": "k.zip"}},
                                                       "runtime": "PYTHON_3_11",
                                                       "entryPoint": ["agent.py"]}}}),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(WIRES))
def test_boto3_requests_verify(name: str) -> None:
    service, call, params = WIRES[name]
    wire = capture(service, call, **params)
    assert verify(wire) == KEY


def test_the_arn_path_is_double_encoded_when_canonicalised() -> None:
    wire = capture(*WIRES["invoke"][:2], **WIRES["invoke"][2])
    assert wire["raw_path"] == f"/runtimes/{quote(ARN, safe='')}/invocations"
    decoded_path = f"/runtimes/{ARN}/invocations"
    with pytest.raises(SignatureMismatch):
        verify(wire, raw_path=decoded_path)


@pytest.fixture
def invoke_wire() -> dict[str, Any]:
    return capture(*WIRES["invoke"][:2], **WIRES["invoke"][2])


def _replace_header(wire: dict[str, Any], name: str, value: str | None) -> list[tuple[str, str]]:
    kept = [(k, v) for k, v in wire["headers"] if k.lower() != name.lower()]
    return kept if value is None else [*kept, (name, value)]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"raw_path": "/runtimes/other/invocations"}, SignatureMismatch),
        ({"raw_query": "qualifier=OTHER"}, SignatureMismatch),
        ({"body": b'{"a": 2}'}, SignatureMismatch),
        ({"method": "PUT"}, SignatureMismatch),
    ],
)
def test_tampering_is_refused(
    invoke_wire: dict[str, Any], change: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        verify(invoke_wire, **change)


def test_a_tampered_signed_header_is_refused(invoke_wire: dict[str, Any]) -> None:
    headers = _replace_header(invoke_wire, "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id", "t" * 40)
    with pytest.raises(SignatureMismatch):  # boto3 signs the session header: it cannot be swapped
        verify(invoke_wire, headers=headers)
    verify(invoke_wire, headers=_replace_header(invoke_wire, "User-Agent", "changed"))  # never signed
    with pytest.raises(SignatureMismatch):
        verify(invoke_wire, headers=_replace_header(invoke_wire, "Host", "evil.example"))


def test_unknown_key_and_wrong_secret(invoke_wire: dict[str, Any]) -> None:
    with pytest.raises(UnrecognizedClient):
        verify_headers(
            invoke_wire["method"], invoke_wire["raw_path"], invoke_wire["raw_query"], invoke_wire["headers"],
            hashlib.sha256(invoke_wire["body"]).hexdigest(), lambda key: None,
        )  # fmt: skip
    wrong = Credential(KEY.access_key_id, "not-the-secret", "admin")
    with pytest.raises(SignatureMismatch):
        verify_headers(
            invoke_wire["method"], invoke_wire["raw_path"], invoke_wire["raw_query"], invoke_wire["headers"],
            hashlib.sha256(invoke_wire["body"]).hexdigest(), lambda key: wrong,
        )  # fmt: skip


@pytest.mark.parametrize("minutes", [-6, 6])
def test_clock_skew_over_five_minutes_is_refused(invoke_wire: dict[str, Any], minutes: int) -> None:
    now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)
    with pytest.raises(RequestExpired):
        verify(invoke_wire, now=now)
    verify(invoke_wire, now=now - datetime.timedelta(minutes=minutes / 2))


def test_missing_pieces_are_typed_errors(invoke_wire: dict[str, Any]) -> None:
    with pytest.raises(MissingAuthentication):
        verify(invoke_wire, headers=_replace_header(invoke_wire, "Authorization", None))
    with pytest.raises(IncompleteSignature):
        verify(invoke_wire, headers=_replace_header(invoke_wire, "X-Amz-Date", None))
    authorization = dict(invoke_wire["headers"])["Authorization"]
    other_service = authorization.replace("/bedrock-agentcore/", "/s3/")
    with pytest.raises(IncompleteSignature, match="service"):
        verify(invoke_wire, headers=_replace_header(invoke_wire, "Authorization", other_service))


def test_error_messages_never_contain_secrets_or_signatures(invoke_wire: dict[str, Any]) -> None:
    with pytest.raises(SignatureError) as refused:
        verify(invoke_wire, body=b"changed")
    signature = dict(invoke_wire["headers"])["Authorization"].rsplit("Signature=", 1)[1]
    assert KEY.secret_access_key not in str(refused.value) and signature not in str(refused.value)


def test_authorization_scheme() -> None:
    assert authorization_scheme({"authorization": "AWS4-HMAC-SHA256 Credential=x"}, "") == "sigv4"
    assert authorization_scheme({"authorization": "Bearer abc"}, "") == "bearer"
    assert authorization_scheme({}, "a=1&X-Amz-Signature=ff") == "presigned"
    assert authorization_scheme({}, "") is None


# Presigned URLs, as our AgentCoreRuntimeClient (through botocore) makes them ------------------


def presign(expires: int = 300, query: str = "qualifier=DEFAULT") -> tuple[str, str, str]:
    credentials = botocore.credentials.Credentials(KEY.access_key_id, KEY.secret_access_key)
    url = f"https://agents.test:8443/runtimes/{quote(ARN, safe='')}/ws?{query}"
    request = botocore.awsrequest.AWSRequest(method="GET", url=url, headers={"host": "agents.test:8443"})
    botocore.auth.SigV4QueryAuth(credentials, "bedrock-agentcore", "us-east-1", expires=expires).add_auth(
        request
    )
    parts = urlsplit(request.url)
    return parts.path, parts.query, parts.netloc


def check(path: str, query: str, host: str, **kwargs: Any) -> Credential:
    return verify_presigned("GET", path, query, [("Host", host)], lookup, **kwargs)


def test_presigned_url_verifies() -> None:
    assert check(*presign(query="qualifier=DEFAULT&X-Amzn-Bedrock-AgentCore-Runtime-Session-Id=abc")) == KEY


def test_presigned_url_expires() -> None:
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=121)
    with pytest.raises(RequestExpired):
        check(*presign(expires=120), now=later)


def test_presigned_expiry_over_300_is_refused() -> None:
    with pytest.raises(IncompleteSignature, match="300"):
        check(*presign(expires=301))


@pytest.mark.parametrize("edit", ["qualifier=OTHER", "drop-signed-headers", "extra"])
def test_presigned_tampering_is_refused(edit: str) -> None:
    path, query, host = presign()
    if edit == "qualifier=OTHER":
        query = query.replace("qualifier=DEFAULT", edit)
    elif edit == "drop-signed-headers":
        query = "&".join(p for p in query.split("&") if not p.startswith("X-Amz-SignedHeaders"))
    else:
        query += "&tenant=red"
    with pytest.raises(SignatureError):
        check(path, query, host)


# Parsers never raise anything but the typed errors -----------------------------------------


@given(st.text(max_size=300))
def test_authorization_parser_only_raises_typed_errors(value: str) -> None:
    with contextlib.suppress(IncompleteSignature):
        parse_authorization(value)


@given(st.text(max_size=300), st.text(max_size=100))
def test_header_verifier_only_raises_typed_errors(authorization: str, date: str) -> None:
    headers = [("Authorization", "AWS4-HMAC-SHA256 " + authorization), ("X-Amz-Date", date), ("Host", "h")]
    with contextlib.suppress(SignatureError):
        verify_headers("GET", "/", "", headers, hashlib.sha256(b"").hexdigest(), lookup)


@given(st.lists(st.tuples(st.sampled_from(
    ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders",
     "X-Amz-Signature", "qualifier"]), st.text(max_size=60)), max_size=8))  # fmt: skip
def test_presigned_verifier_only_raises_typed_errors(pairs: list[tuple[str, str]]) -> None:
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs)
    with contextlib.suppress(SignatureError):
        verify_presigned("GET", "/runtimes/x/ws", query, [("Host", "h")], lookup)
