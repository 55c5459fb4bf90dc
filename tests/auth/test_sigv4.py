"""Header-signed requests: `auth/sigv4.py` `verify_headers` and `authorization_scheme`.

Every accepted request here was signed by botocore itself (see `wire.py`); every rejection is
that request changed in one way.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from bedrock_agentcore.runtime.client import AgentCoreRuntimeClient
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
)
from open_agentcore.auth.canonical import canonical_uri
from open_agentcore.auth.sigv4 import signing_key

from .wire import ARN, ENCODED_ARN, ENDPOINT, KEY, WireRequest, capture, fake_session, lookup, sign

RUNTIME_ID = "hello-abc1234567"
SESSION_ID = "0f9b8d9e-7c6a-4b5e-9d3c-2a1b0c9d8e7f-session"
BOTO3_CALLS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "invoke_agent_runtime": (
        "bedrock-agentcore",
        "invoke_agent_runtime",
        {"agentRuntimeArn": ARN, "payload": b"{}", "runtimeSessionId": SESSION_ID},
    ),
    "invoke_with_qualifier": (
        "bedrock-agentcore",
        "invoke_agent_runtime",
        {"agentRuntimeArn": ARN, "payload": b'{"prompt": "hi"}', "runtimeSessionId": SESSION_ID,
         "qualifier": "DEFAULT", "contentType": "application/json", "accept": "text/event-stream"},
    ),
    "get_agent_runtime": ("bedrock-agentcore-control", "get_agent_runtime", {"agentRuntimeId": RUNTIME_ID}),
    "list_agent_runtimes": (
        "bedrock-agentcore-control",
        "list_agent_runtimes",
        {"maxResults": 5, "nextToken": "x y"},
    ),
    "list_agent_runtime_versions": (
        "bedrock-agentcore-control",
        "list_agent_runtime_versions",
        {"agentRuntimeId": RUNTIME_ID, "maxResults": 5, "nextToken": "x y/+=~%"},
    ),
    "create_agent_runtime": (
        "bedrock-agentcore-control",
        "create_agent_runtime",
        {"agentRuntimeName": "hello", "roleArn": "arn:aws:iam::000000000000:role/r",
         "agentRuntimeArtifact": {"codeConfiguration": {
             "code": {"s3": {"bucket": "agentcore-artifacts", "prefix": "k.zip"}},
             "runtime": "PYTHON_3_11", "entryPoint": ["agent.py"]}}},
    ),
}  # fmt: skip


def verify(request: WireRequest, **options: Any) -> Credential:
    return verify_headers(
        request.method,
        request.raw_path,
        request.raw_query,
        request.headers,
        request.payload_sha256,
        options.pop("lookup", lookup),
        **options,
    )


@pytest.fixture(scope="module")
def invoke() -> WireRequest:
    service, operation, params = BOTO3_CALLS["invoke_agent_runtime"]
    return capture(service, operation, **params)


# Accepted -----------------------------------------------------------------------------------


@pytest.mark.parametrize("call", sorted(BOTO3_CALLS))
def test_boto3_requests_verify(call: str) -> None:
    service, operation, params = BOTO3_CALLS[call]
    assert verify(capture(service, operation, **params)) == KEY


def test_invoke_puts_the_arn_percent_encoded_in_the_path(invoke: WireRequest) -> None:
    assert invoke.raw_path == f"/runtimes/{ENCODED_ARN}/invocations"


def test_the_raw_path_is_encoded_again_when_canonicalised(invoke: WireRequest) -> None:
    assert canonical_uri(invoke.raw_path) == f"/runtimes/{ENCODED_ARN.replace('%', '%25')}/invocations"
    with pytest.raises(SignatureMismatch):  # what a server that decoded the path first would check
        verify(dataclasses.replace(invoke, raw_path=f"/runtimes/{ARN}/invocations"))


def test_header_names_match_in_any_case(invoke: WireRequest) -> None:
    lower = dataclasses.replace(invoke, headers=tuple((k.lower(), v) for k, v in invoke.headers))
    upper = dataclasses.replace(invoke, headers=tuple((k.upper(), v) for k, v in invoke.headers))
    assert verify(lower) == verify(upper) == KEY


def test_headers_may_be_a_mapping(invoke: WireRequest) -> None:
    assert verify(dataclasses.replace(invoke, headers=dict(invoke.headers))) == KEY  # type: ignore[arg-type]


def test_an_unsigned_header_may_change(invoke: WireRequest) -> None:
    assert verify(invoke.with_header("User-Agent", "something else")) == KEY


def test_any_region_in_the_scope_is_accepted() -> None:
    request = sign("GET", f"{ENDPOINT}/runtimes/{RUNTIME_ID}/", region="eu-west-3")
    assert "/eu-west-3/bedrock-agentcore/" in request.header("Authorization")
    assert verify(request) == KEY


def test_dot_segments_and_double_slashes_are_normalised_like_botocore() -> None:
    assert verify(sign("GET", f"{ENDPOINT}/runtimes/./x//y/../{RUNTIME_ID}/")) == KEY


def test_repeated_and_reserved_query_parameters_verify() -> None:
    request = sign("POST", f"{ENDPOINT}/runtimes/?b=2&a=1&a=0&tok=x%2By%20z%2F&flag&e=")
    assert verify(request) == KEY


def test_whitespace_in_signed_header_values_is_collapsed() -> None:
    request = sign("GET", f"{ENDPOINT}/runtimes/", headers={"X-Amzn-Trace": "  a   b\tc  "})
    assert verify(request.with_header("X-Amzn-Trace", "a b c")) == KEY


def test_a_matching_content_sha256_header_is_accepted() -> None:
    body = b'{"prompt": "hello"}'
    request = sign("POST", f"{ENDPOINT}/runtimes/", body, {"X-Amz-Content-SHA256": _sha256(body)})
    assert verify(request) == KEY


def test_a_websocket_signed_by_our_sdk_client_verifies() -> None:
    client = AgentCoreRuntimeClient("us-east-1", endpoint_url="http://127.0.0.1:8900", session=fake_session())
    url, headers = client.generate_ws_connection(ARN, session_id="s-1", endpoint_name="DEFAULT")
    path, _, query = url.removeprefix("ws://127.0.0.1:8900").partition("?")
    sent = (("Host", "127.0.0.1:8900"), *headers.items())  # the WebSocket library adds Host
    assert verify(WireRequest("GET", path, query, sent, b"")) == KEY


def test_signing_keys_are_cached(invoke: WireRequest) -> None:
    verify(invoke)
    hits = signing_key.cache_info().hits
    verify(invoke)
    assert signing_key.cache_info().hits == hits + 1


# Refused ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"raw_path": f"/runtimes/{ENCODED_ARN.replace('hello', 'other')}/invocations"},
        {"raw_path": f"/runtimes/{ENCODED_ARN}/invocations/"},
        {"raw_query": "qualifier=DEFAULT"},
        {"method": "PUT"},
        {"body": b'{"a": 1}'},
        {"body": b""},
    ],
    ids=["path", "trailing-slash", "query", "method", "body", "empty-body"],
)
def test_a_tampered_request_is_refused(invoke: WireRequest, change: dict[str, Any]) -> None:
    with pytest.raises(SignatureMismatch, match="does not match the signature you provided"):
        verify(dataclasses.replace(invoke, **change))


@pytest.mark.parametrize(
    ("name", "value"),
    [("X-Amzn-Bedrock-AgentCore-Runtime-Session-Id", "t" * 40), ("Host", "evil.example:9")],
)
def test_a_tampered_signed_header_is_refused(invoke: WireRequest, name: str, value: str) -> None:
    with pytest.raises(SignatureMismatch):
        verify(invoke.with_header(name, value))


def test_a_tampered_query_value_is_refused() -> None:
    request = capture(*BOTO3_CALLS["list_agent_runtimes"][:2], **BOTO3_CALLS["list_agent_runtimes"][2])
    with pytest.raises(SignatureMismatch):
        verify(
            dataclasses.replace(request, raw_query=request.raw_query.replace("maxResults=5", "maxResults=6"))
        )


def test_an_unknown_key_is_unrecognized(invoke: WireRequest) -> None:
    with pytest.raises(UnrecognizedClient):
        verify(invoke, lookup=lambda key_id: None)


def test_the_wrong_secret_is_a_mismatch(invoke: WireRequest) -> None:
    wrong = Credential(KEY.access_key_id, "not-the-secret", "admin")
    with pytest.raises(SignatureMismatch):
        verify(invoke, lookup=lambda key_id: wrong)


@pytest.mark.parametrize(("minutes", "wording"), [(-6, "not yet current"), (6, "Signature expired")])
def test_clock_skew_over_five_minutes_is_refused(invoke: WireRequest, minutes: int, wording: str) -> None:
    with pytest.raises(RequestExpired, match=wording):
        verify(invoke, now=invoke.signed_at + datetime.timedelta(minutes=minutes))


@pytest.mark.parametrize("minutes", [-4, 4])
def test_clock_skew_within_five_minutes_is_accepted(invoke: WireRequest, minutes: int) -> None:
    assert verify(invoke, now=invoke.signed_at + datetime.timedelta(minutes=minutes)) == KEY


def test_max_skew_is_configurable(invoke: WireRequest) -> None:
    with pytest.raises(RequestExpired):
        verify(
            invoke,
            now=invoke.signed_at + datetime.timedelta(minutes=2),
            max_skew=datetime.timedelta(minutes=1),
        )


def test_another_service_is_refused(invoke: WireRequest) -> None:
    with pytest.raises(IncompleteSignature, match="service"):
        verify(invoke, service="bedrock-agentcore-control")
    with pytest.raises(IncompleteSignature, match="service"):
        verify(sign("GET", f"{ENDPOINT}/runtimes/", service="s3"))


def test_no_authorization_is_missing_authentication(invoke: WireRequest) -> None:
    with pytest.raises(MissingAuthentication, match="Missing Authentication Token"):
        verify(invoke.with_header("Authorization", None))


def test_a_bearer_token_is_not_a_signature(invoke: WireRequest) -> None:
    with pytest.raises(IncompleteSignature, match="Bearer") as refused:
        verify(invoke.with_header("Authorization", "Bearer eyJhbGciOiJub25lIn0.secret-token."))
    assert "secret-token" not in str(refused.value)


def test_missing_x_amz_date_is_incomplete(invoke: WireRequest) -> None:
    with pytest.raises(IncompleteSignature, match="X-Amz-Date"):
        verify(invoke.with_header("X-Amz-Date", None))


def _authorization(invoke: WireRequest) -> str:
    return invoke.header("Authorization")


MALFORMED: dict[str, Callable[[str], str]] = {
    "algorithm-only": lambda a: "AWS4-HMAC-SHA256",
    "other-algorithm": lambda a: a.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"),
    "no-signature": lambda a: a.rsplit(", Signature=", 1)[0],
    "duplicate-part": lambda a: a + ", Signature=" + "0" * 64,
    "unknown-part": lambda a: a + ", Extra=1",
    "short-scope": lambda a: a.replace("/aws4_request", ""),
    "bad-terminator": lambda a: a.replace("/aws4_request", "/aws5_request"),
    "scope-date-not-x-amz-date": lambda a: a.replace("/20", "/19", 1),
    "upper-case-signed-header": lambda a: a.replace("SignedHeaders=host", "SignedHeaders=Host"),
    "unsorted-signed-headers": lambda a: a.replace("host;x-amz-date", "x-amz-date;host"),
    "host-not-signed": lambda a: a.replace("SignedHeaders=host;", "SignedHeaders="),
    "signed-header-absent": lambda a: a.replace("SignedHeaders=host;", "SignedHeaders=accept;host;"),
    "signature-not-hex": lambda a: a[:-64] + "z" * 64,
    "signature-short": lambda a: a[:-2],
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_authorization_header_is_incomplete(invoke: WireRequest, name: str) -> None:
    header = MALFORMED[name](_authorization(invoke))
    with pytest.raises(IncompleteSignature):
        verify(invoke.with_header("Authorization", header))


@pytest.mark.parametrize("name", ["Authorization", "X-Amz-Date"])
def test_a_repeated_authentication_header_is_incomplete(invoke: WireRequest, name: str) -> None:
    request = dataclasses.replace(invoke, headers=(*invoke.headers, (name.lower(), invoke.header(name))))
    with pytest.raises(IncompleteSignature, match="only once"):
        verify(request)


def test_a_malformed_x_amz_date_is_incomplete(invoke: WireRequest) -> None:
    with pytest.raises(IncompleteSignature, match="X-Amz-Date"):
        verify(invoke.with_header("X-Amz-Date", invoke.header("X-Amz-Date")[:-1]))


def test_unsigned_payload_is_refused() -> None:
    request = sign("POST", f"{ENDPOINT}/runtimes/", b"{}", {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    with pytest.raises(IncompleteSignature, match="sign the body"):
        verify(request)


def test_a_content_sha256_header_that_is_not_the_body_hash_is_refused() -> None:
    request = sign("POST", f"{ENDPOINT}/runtimes/", b"{}", {"X-Amz-Content-SHA256": _sha256(b"{}")})
    with pytest.raises(SignatureMismatch, match="x-amz-content-sha256"):
        verify(dataclasses.replace(request, body=b"[]"))


# What the errors say ------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["wrong-secret", "changed-body"])
def test_error_messages_never_contain_the_secret_or_the_signature(invoke: WireRequest, failure: str) -> None:
    signature = _authorization(invoke).rsplit("Signature=", 1)[1]
    wrong = Credential(KEY.access_key_id, KEY.secret_access_key + "x", "admin")
    with pytest.raises(SignatureError) as refused:
        if failure == "wrong-secret":
            verify(invoke, lookup=lambda key_id: wrong)
        else:
            verify(dataclasses.replace(invoke, body=b"x"))
    assert KEY.secret_access_key not in str(refused.value)
    assert signature not in str(refused.value)


def test_a_credential_repr_hides_the_secret() -> None:
    assert KEY.secret_access_key not in repr(KEY)


@pytest.mark.parametrize(
    ("error", "wire_name", "status"),
    [
        (MissingAuthentication, "MissingAuthenticationTokenException", 403),
        (IncompleteSignature, "IncompleteSignatureException", 400),
        (UnrecognizedClient, "UnrecognizedClientException", 403),
        (SignatureMismatch, "InvalidSignatureException", 403),
        (RequestExpired, "InvalidSignatureException", 403),
    ],
)
def test_each_error_carries_its_wire_name_and_status(
    error: type[SignatureError], wire_name: str, status: int
) -> None:
    assert (error.wire_name, error.status, error("m").code) == (wire_name, status, wire_name)


# authorization_scheme -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "query", "scheme"),
    [
        ([("Authorization", "AWS4-HMAC-SHA256 Credential=x")], "", "sigv4"),
        ([("authorization", "Basic dXNlcg==")], "", "sigv4"),  # verify_headers says what is wrong
        ([("AUTHORIZATION", "Bearer abc")], "", "bearer"),
        ([("Authorization", "bearer abc")], "qualifier=DEFAULT", "bearer"),
        ([], "qualifier=DEFAULT&X-Amz-Signature=ff", "presigned"),
        ([], "X-Amz-Credential=AKIA%2F", "presigned"),
        ([("Authorization", "  ")], "", None),
        ([], "qualifier=X-Amz-Signature", None),
        ([], "", None),
    ],
)
def test_authorization_scheme(headers: list[tuple[str, str]], query: str, scheme: str | None) -> None:
    assert authorization_scheme(headers, query) == scheme


def test_a_header_and_a_presigned_query_together_are_refused() -> None:
    with pytest.raises(IncompleteSignature, match="not both"):
        authorization_scheme({"authorization": "Bearer abc"}, "X-Amz-Signature=ff")


def _sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


# What is kept between requests ---------------------------------------------------------------


def test_a_rotated_secret_refuses_what_the_old_one_signed(invoke: WireRequest) -> None:
    """Derived signing keys are kept per secret: the same key id with a new secret matches nothing
    signed with the old one, even right after the old one was used."""
    assert verify(invoke) == KEY
    rotated = dataclasses.replace(KEY, secret_access_key="another+secret/after/rotation/0000000000")
    with pytest.raises(SignatureMismatch):
        verify(invoke, lookup=lambda key_id: rotated)
    assert verify(invoke) == KEY


@pytest.mark.parametrize("name", ["short-scope", "unsorted-signed-headers", "signature-not-hex"])
def test_an_error_is_raised_every_time_after_the_valid_form_was_seen(invoke: WireRequest, name: str) -> None:
    """The checked forms of a credential scope and header list are kept; their errors are not."""
    broken = invoke.with_header("Authorization", MALFORMED[name](_authorization(invoke)))
    for _ in range(3):
        assert verify(invoke) == KEY
        with pytest.raises(IncompleteSignature):
            verify(broken)


def test_a_query_on_a_new_path_is_canonicalised_for_that_path() -> None:
    first = sign("POST", f"{ENDPOINT}/runtimes/{ENCODED_ARN}/invocations?qualifier=A", b"{}")
    second = sign("POST", f"{ENDPOINT}/runtimes/{ENCODED_ARN}/invocations?qualifier=B", b"{}")
    assert verify(first) == KEY and verify(second) == KEY
    swapped = dataclasses.replace(first, raw_query=second.raw_query)
    with pytest.raises(SignatureMismatch):
        verify(swapped)


@pytest.mark.parametrize("query", ["X%2DAmz-Signature=ff", "x=1&X-Amz-Credential=a", "X-Amz-Algorithm"])
def test_a_presigned_marker_is_found_however_the_query_spells_it(query: str) -> None:
    assert authorization_scheme([], query) == "presigned"
