"""Our SigV4 signer agrees with botocore byte for byte, and with our verifier."""

from __future__ import annotations

import datetime
import hashlib

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest

from open_agentcore.auth import Credential, SignatureMismatch, sign_headers, verify_headers

KEY = Credential("AKIASIGNINGTEST00001", "signing-secret-0000000000000000000000000", "admin")
MOMENT = datetime.datetime(2026, 11, 25, 9, 30, 0, tzinfo=datetime.timezone.utc)
ARN = "arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A000000000000%3Aruntime%2Fhello-AAAAAAAAAA"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", f"/runtimes/{ARN}/invocations?qualifier=DEFAULT", b'{"prompt": "hi"}'),
        ("GET", "/runtimes/hello-AAAAAAAAAA/?version=2", b""),
        ("PUT", "/_agentcore/artifacts", b"PK\x03\x04 zip bytes"),
        ("POST", "/runtimes/", b'{"maxResults": 5}'),
    ],
)
def test_signatures_match_botocore(method: str, path: str, body: bytes) -> None:
    url = "http://127.0.0.1:8900" + path
    request = botocore.awsrequest.AWSRequest(
        method=method, url=url, data=body, headers={"Content-Type": "application/json"}
    )
    credentials = botocore.credentials.Credentials(KEY.access_key_id, KEY.secret_access_key)
    botocore.auth.SigV4Auth(credentials, "bedrock-agentcore", "us-east-1").add_auth(request)
    # Sign at the moment botocore did, which it read from the clock.
    moment = datetime.datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    ours = sign_headers(
        method, url, KEY, "us-east-1", body, {"Content-Type": "application/json"},
        now=moment.replace(tzinfo=datetime.timezone.utc),
    )  # fmt: skip
    assert ours["authorization"] == request.headers["Authorization"]


def test_what_we_sign_our_verifier_accepts_and_a_changed_body_it_refuses() -> None:
    url = f"http://127.0.0.1:8900/runtimes/{ARN}/invocations?qualifier=DEFAULT"
    body = b'{"prompt": "hi"}'
    headers = sign_headers("POST", url, KEY, "us-east-1", body, now=MOMENT)
    path, query = url.split("8900", 1)[1].split("?")

    def lookup(key_id: str) -> Credential | None:
        return KEY if key_id == KEY.access_key_id else None

    verified = verify_headers(
        "POST", path, query, headers, hashlib.sha256(body).hexdigest(), lookup, now=MOMENT
    )
    assert verified.principal == "admin"
    tampered = {**headers, "x-amz-content-sha256": hashlib.sha256(b"other").hexdigest()}
    with pytest.raises(SignatureMismatch):
        verify_headers(
            "POST", path, query, tampered, hashlib.sha256(b"other").hexdigest(), lookup, now=MOMENT
        )
