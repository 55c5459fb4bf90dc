"""Parsing signature claims, fuzzed: `auth/claims.py`, and the verifiers end to end on junk input.

Whatever a client sends, only the typed errors may escape: anything else would be a 500.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from open_agentcore.auth import (
    Credential,
    IncompleteSignature,
    SignatureError,
    parse_authorization,
    parse_presigned_query,
    verify_headers,
    verify_presigned,
)
from open_agentcore.auth.claims import parse_amz_date

from .wire import KEY

ANY_TEXT = st.text(st.characters(blacklist_categories=()), max_size=200)  # surrogates included
NOW = datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.timezone.utc)
AMZ_DATE = "20250601T120000Z"
PRESIGNED_NAMES = [
    b"X-Amz-Algorithm", b"X-Amz-Credential", b"X-Amz-Date", b"X-Amz-Expires",
    b"X-Amz-SignedHeaders", b"X-Amz-Signature", b"X-Amz-Security-Token", b"qualifier",
]  # fmt: skip


def any_key(access_key_id: str) -> Credential:
    """A lookup that knows every key, so fuzzed requests reach the signature comparison."""
    return Credential(access_key_id, KEY.secret_access_key, "fuzz")


authorization_parts = st.lists(
    st.tuples(
        st.sampled_from(["Credential", "SignedHeaders", "Signature", "credential", ""]),
        st.sampled_from(["=", "", "=="]),
        st.one_of(
            ANY_TEXT,
            st.just(f"{KEY.access_key_id}/20250601/us-east-1/bedrock-agentcore/aws4_request"),
            st.just("host;x-amz-date"),
            st.text("0123456789abcdef", min_size=64, max_size=64),
        ),
    ),
    max_size=5,
)


@given(ANY_TEXT)
def test_any_authorization_text_parses_or_is_incomplete(value: str) -> None:
    with contextlib.suppress(IncompleteSignature):
        parse_authorization(value)


@given(
    st.sampled_from(["AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 ", "Bearer", ""]), authorization_parts, ANY_TEXT
)
def test_near_valid_authorization_parses_or_is_incomplete(
    algorithm: str, parts: list[tuple[str, str, str]], separator: str
) -> None:
    value = algorithm + " " + (separator[:2] or ", ").join(f"{n}{eq}{v}" for n, eq, v in parts)
    try:
        claim = parse_authorization(value)
    except IncompleteSignature:
        return
    assert len(claim.signature) == 64 and list(claim.signed_headers) == sorted(set(claim.signed_headers))


@given(
    st.lists(
        st.tuples(st.one_of(st.sampled_from(PRESIGNED_NAMES), st.binary(max_size=20)), st.binary(max_size=80))
    )
)
def test_any_presigned_query_parses_or_is_incomplete(pairs: list[tuple[bytes, bytes]]) -> None:
    with contextlib.suppress(IncompleteSignature):
        parse_presigned_query(pairs)


@given(st.one_of(ANY_TEXT, st.from_regex(r"[0-9]{8}T[0-9]{6}Z", fullmatch=True)))
def test_any_amz_date_parses_or_is_incomplete(value: str) -> None:
    with contextlib.suppress(IncompleteSignature):
        assert parse_amz_date(value).tzinfo is datetime.timezone.utc


@settings(max_examples=300)
@given(
    method=st.sampled_from(["GET", "POST", "ge t", ""]),
    raw_path=ANY_TEXT,
    raw_query=ANY_TEXT,
    host=ANY_TEXT,
    content_sha256=st.one_of(st.none(), ANY_TEXT),
    signed_headers=st.sampled_from(["host", "host;x-amz-date", "content-type;host"]),
)
def test_verify_headers_raises_only_typed_errors(
    method: str, raw_path: str, raw_query: str, host: str, content_sha256: str | None, signed_headers: str
) -> None:
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={KEY.access_key_id}/20250601/us-east-1/bedrock-agentcore/aws4_request, "
        f"SignedHeaders={signed_headers}, Signature={'ab' * 32}"
    )
    headers = [("Authorization", authorization), ("X-Amz-Date", AMZ_DATE), ("Host", host)]
    if content_sha256 is not None:
        headers.append(("x-amz-content-sha256", content_sha256))
    with pytest.raises(SignatureError):
        verify_headers(
            method, raw_path, raw_query, headers, hashlib.sha256(b"").hexdigest(), any_key, now=NOW
        )


@settings(max_examples=300)
@given(raw_path=ANY_TEXT, extra=ANY_TEXT, expires=st.sampled_from(["300", "1", "0", "99999999999", "٣"]))
def test_verify_presigned_raises_only_typed_errors(raw_path: str, extra: str, expires: str) -> None:
    query = (
        f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={KEY.access_key_id}%2F20250601%2Fus-east-1"
        f"%2Fbedrock-agentcore%2Faws4_request&X-Amz-Date={AMZ_DATE}&X-Amz-Expires={expires}"
        f"&X-Amz-SignedHeaders=host&X-Amz-Signature={'cd' * 32}&{extra}"
    )
    with pytest.raises(SignatureError):
        verify_presigned("GET", raw_path, query, [("host", extra)], any_key, now=NOW)


@given(ANY_TEXT, ANY_TEXT)
def test_verifiers_raise_only_typed_errors_on_arbitrary_auth_text(authorization: str, query: str) -> None:
    headers = [("Authorization", authorization), ("X-Amz-Date", AMZ_DATE), ("Host", "h")]
    with pytest.raises(SignatureError):
        verify_headers("GET", "/", query, headers, hashlib.sha256(b"").hexdigest(), any_key, now=NOW)
    with pytest.raises(SignatureError):
        verify_presigned("GET", "/", query, [], any_key, now=NOW)
