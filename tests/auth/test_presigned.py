"""Presigned URLs (SigV4 query authentication): `auth/sigv4.py` `verify_presigned`.

The URLs are presigned by botocore's `SigV4QueryAuth` (and by our SDK client, which uses it) the
way WebSocket clients do: the `wss://` URL signed as `https://` with a `host` header.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from typing import Any
from urllib.parse import parse_qsl

import botocore.auth
import pytest

from bedrock_agentcore.runtime.client import AgentCoreRuntimeClient
from open_agentcore.auth import (
    Credential,
    IncompleteSignature,
    RequestExpired,
    SignatureMismatch,
    UnrecognizedClient,
    verify_presigned,
)

from .wire import ARN, ENCODED_ARN, KEY, WireRequest, fake_session, lookup, presign

WS_URL = (
    f"wss://agents.test:8443/runtimes/{ENCODED_ARN}/ws"
    "?qualifier=DEFAULT&X-Amzn-Bedrock-AgentCore-Runtime-Session-Id=0f9b8d9e-session"
)


def verify(request: WireRequest, **options: Any) -> Credential:
    return verify_presigned(
        request.method,
        request.raw_path,
        request.raw_query,
        request.headers,
        options.pop("lookup", lookup),
        **options,
    )


def signed_at(request: WireRequest) -> datetime.datetime:
    moment = datetime.datetime.strptime(dict(parse_qsl(request.raw_query))["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    return moment.replace(tzinfo=datetime.timezone.utc)


def edit_query(
    request: WireRequest, drop: str = "", add: str = "", old: str = "", new: str = ""
) -> WireRequest:
    pairs = [pair for pair in request.raw_query.split("&") if not (drop and pair.startswith(drop + "="))]
    query = "&".join(pairs).replace(old, new) if old else "&".join(pairs)
    return dataclasses.replace(request, raw_query=f"{query}&{add}" if add else query)


class _UnsignedPayloadQueryAuth(botocore.auth.SigV4QueryAuth):  # type: ignore[misc]
    """Presigns over `UNSIGNED-PAYLOAD`, as S3-style presigners do, but with this service's path rules."""

    def payload(self, request: Any) -> str:
        return str(botocore.auth.UNSIGNED_PAYLOAD)


@pytest.fixture(scope="module")
def url() -> WireRequest:
    return presign(WS_URL)


# Accepted -----------------------------------------------------------------------------------


def test_a_botocore_presigned_websocket_url_verifies(url: WireRequest) -> None:
    assert url.raw_path == f"/runtimes/{ENCODED_ARN}/ws"
    assert verify(url) == KEY


def test_a_url_from_our_sdk_client_verifies() -> None:
    client = AgentCoreRuntimeClient("us-east-1", endpoint_url="http://127.0.0.1:8900", session=fake_session())
    raw = client.generate_presigned_url(ARN, session_id="s-1", endpoint_name="DEFAULT", expires=60)
    path, _, query = raw.removeprefix("ws://127.0.0.1:8900").partition("?")
    assert verify(WireRequest("GET", path, query, (("host", "127.0.0.1:8900"),), b"")) == KEY


def test_unsigned_payload_is_accepted_for_an_empty_body() -> None:
    assert verify(presign(WS_URL, signer=_UnsignedPayloadQueryAuth)) == KEY


def test_a_url_is_valid_until_its_expiry(url: WireRequest) -> None:
    assert verify(url, now=signed_at(url) + datetime.timedelta(seconds=300)) == KEY


def test_a_presigned_request_with_a_body_checks_its_hash() -> None:
    url = f"https://agents.test/runtimes/{ENCODED_ARN}/invocations"
    request = presign(url, method="POST")  # botocore hashed the (empty) body it saw
    with pytest.raises(SignatureMismatch):
        verify(request, payload_sha256=hashlib.sha256(b"injected").hexdigest())


# Refused ------------------------------------------------------------------------------------


def test_an_expired_url_is_refused(url: WireRequest) -> None:
    with pytest.raises(RequestExpired, match="Signature expired"):
        verify(url, now=signed_at(url) + datetime.timedelta(seconds=301))


def test_a_url_signed_in_the_future_is_refused(url: WireRequest) -> None:
    with pytest.raises(RequestExpired, match="not yet current"):
        verify(url, now=signed_at(url) - datetime.timedelta(minutes=6))


@pytest.mark.parametrize("expires", [301, 3600, 0, -1])
def test_an_expiry_outside_1_to_300_seconds_is_refused(expires: int) -> None:
    with pytest.raises(IncompleteSignature, match="X-Amz-Expires"):
        verify(presign(WS_URL, expires=expires))


def test_max_expires_is_configurable() -> None:
    assert verify(presign(WS_URL, expires=600), max_expires=900) == KEY


@pytest.mark.parametrize(
    "edit",
    [
        {"old": "qualifier=DEFAULT", "new": "qualifier=OTHER"},
        {"old": "Session-Id=0f9b8d9e-session", "new": "Session-Id=stolen"},
        {"add": "tenant=red"},
        {"drop": "qualifier"},
        {"drop": "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"},
        {"old": "X-Amz-Expires=300", "new": "X-Amz-Expires=299"},
    ],
    ids=["qualifier", "session", "added", "removed-qualifier", "removed-session", "expires"],
)
def test_a_tampered_query_is_a_mismatch(url: WireRequest, edit: dict[str, str]) -> None:
    with pytest.raises(SignatureMismatch):
        verify(edit_query(url, **edit))


@pytest.mark.parametrize(
    "parameter",
    [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
    ],
)
def test_a_removed_auth_parameter_is_incomplete(url: WireRequest, parameter: str) -> None:
    with pytest.raises(IncompleteSignature, match=parameter):
        verify(edit_query(url, drop=parameter))


def test_a_repeated_auth_parameter_is_incomplete(url: WireRequest) -> None:
    with pytest.raises(IncompleteSignature, match="more than once"):
        verify(edit_query(url, add="X-Amz-Signature=" + "0" * 64))


@pytest.mark.parametrize("change", [{"method": "POST"}, {"headers": (("Host", "evil.test:8443"),)}])
def test_another_method_or_host_is_a_mismatch(url: WireRequest, change: dict[str, Any]) -> None:
    with pytest.raises(SignatureMismatch):
        verify(dataclasses.replace(url, **change))


def test_a_missing_signed_host_header_is_incomplete(url: WireRequest) -> None:
    with pytest.raises(IncompleteSignature, match="host"):
        verify(dataclasses.replace(url, headers=()))


def test_an_unknown_key_is_unrecognized(url: WireRequest) -> None:
    with pytest.raises(UnrecognizedClient):
        verify(url, lookup=lambda key_id: None)


def test_another_service_is_refused(url: WireRequest) -> None:
    with pytest.raises(IncompleteSignature, match="service"):
        verify(url, service="execute-api")
