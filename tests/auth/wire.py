"""Requests exactly as botocore would put them on the wire, for the verifiers to check.

AWS itself cannot exist here: static fake credentials stand in for an account, and boto3 clients
are stopped in their `before-send` hook, after signing, so nothing leaves the process.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials

from open_agentcore.auth import Credential

KEY = Credential("AKIAFAKEKEY000000001", "fake+secret/for/tests/only/000000000000", "admin")
ARN = "arn:aws:bedrock-agentcore:us-east-1:000000000000:runtime/hello-abc1234567"
ENCODED_ARN = quote(ARN, safe="")
ENDPOINT = "http://127.0.0.1:9"  # port 9 (discard): nothing is ever sent there


def lookup(access_key_id: str) -> Credential | None:
    """The key store the tests' server knows: only `KEY`."""
    return KEY if access_key_id == KEY.access_key_id else None


@dataclass(frozen=True)
class WireRequest:
    """A signed request as the server receives it: raw path and query, headers with Host."""

    method: str
    raw_path: str
    raw_query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def payload_sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    @property
    def signed_at(self) -> datetime.datetime:
        return datetime.datetime.strptime(self.header("X-Amz-Date"), "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc
        )

    def header(self, name: str) -> str:
        return next(value for key, value in self.headers if key.lower() == name.lower())

    def with_header(self, name: str, value: str | None) -> WireRequest:
        """This request with header `name` replaced, or removed when `value` is None."""
        kept = tuple((k, v) for k, v in self.headers if k.lower() != name.lower())
        return replace(self, headers=kept if value is None else (*kept, (name, value)))


class _Captured(Exception):
    def __init__(self, request: Any) -> None:
        self.request = request


def capture(service: str, operation: str, **params: Any) -> WireRequest:
    """Call a boto3 client pointed at `ENDPOINT` and return the request it would have sent."""
    client = boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=ENDPOINT,
        aws_access_key_id=KEY.access_key_id,
        aws_secret_access_key=KEY.secret_access_key,
    )

    def stop(request: Any, **_: Any) -> None:
        raise _Captured(request)

    client.meta.events.register("before-send.*", stop)
    try:
        getattr(client, operation)(**params)
    except _Captured as captured:
        return _from_botocore(captured.request)
    raise AssertionError("the before-send hook did not run")


def sign(
    method: str,
    url: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    region: str = "us-east-1",
    service: str = "bedrock-agentcore",
) -> WireRequest:
    """A request signed in its headers by botocore's `SigV4Auth`, as the server receives it."""
    request = botocore.awsrequest.AWSRequest(method=method, url=url, data=body, headers=headers or {})
    botocore.auth.SigV4Auth(_credentials(), service, region).add_auth(request)
    return _from_botocore(request.prepare())


def presign(
    url: str,
    expires: int = 300,
    signer: type[botocore.auth.SigV4QueryAuth] = botocore.auth.SigV4QueryAuth,
    method: str = "GET",
) -> WireRequest:
    """A `wss://` URL presigned by botocore as https with a `host` header, as our SDK does."""
    parts = urlsplit(url)
    https = parts._replace(scheme="https").geturl()
    request = botocore.awsrequest.AWSRequest(method=method, url=https, headers={"host": parts.netloc})
    signer(_credentials(), "bedrock-agentcore", "us-east-1", expires=expires).add_auth(request)
    signed = urlsplit(request.url)
    return WireRequest(method, signed.path, signed.query, (("Host", parts.netloc),), b"")


def fake_session() -> boto3.Session:
    """A boto3 session holding `KEY`, for clients that take a session."""
    return boto3.Session(
        aws_access_key_id=KEY.access_key_id,
        aws_secret_access_key=KEY.secret_access_key,
        region_name="us-east-1",
    )


def _credentials() -> botocore.credentials.Credentials:
    return botocore.credentials.Credentials(KEY.access_key_id, KEY.secret_access_key)


def _from_botocore(request: Any) -> WireRequest:
    url = urlsplit(request.url)
    body = request.body or b""
    headers = [(k, v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()]
    # urllib3 adds Host on the wire (no port for 80/443); botocore signed the same text.
    headers.append(("Host", url.netloc))
    return WireRequest(
        request.method, url.path, url.query, tuple(headers), body.encode() if isinstance(body, str) else body
    )
