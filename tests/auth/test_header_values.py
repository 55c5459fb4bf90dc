"""`auth/sigv4.py` `header_values`: the headers grouped once from ASGI's raw bytes, which the server
hands to both `authorization_scheme` and `begin_headers`, decide exactly as the text headers do."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from open_agentcore.auth import SignatureError, authorization_scheme, sigv4, verify_headers
from open_agentcore.auth.sigv4 import HeaderValues, header_values

from .wire import ENDPOINT, WireRequest, lookup, sign


def _raw(request: WireRequest) -> list[tuple[bytes, bytes]]:
    """The request's headers as an ASGI server hands them on: lower-case names, latin-1 bytes."""
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in request.headers]


def _verdict(request: WireRequest, headers: object) -> str:
    try:
        credential = verify_headers(
            request.method, request.raw_path, request.raw_query, headers,  # type: ignore[arg-type]
            request.payload_sha256, lookup, now=request.signed_at + datetime.timedelta(seconds=1),
        )  # fmt: skip
    except SignatureError as error:
        return type(error).__name__
    return credential.principal


def test_a_botocore_signed_request_verifies_from_its_raw_headers() -> None:
    request = sign("POST", f"{ENDPOINT}/runtimes/abc/invocations?qualifier=DEFAULT", b'{"a": 1}')
    values = header_values(_raw(request))
    assert isinstance(values, HeaderValues)
    assert authorization_scheme(values) == "sigv4"
    assert _verdict(request, values) == _verdict(request, list(request.headers)) != "SignatureMismatch"


def test_repeated_headers_keep_their_order_and_every_value() -> None:
    values = header_values([(b"x-a", b"1"), (b"X-B", b"2"), (b"x-a", b"3")])
    assert values == {"x-a": ["1", "3"], "x-b": ["2"]}


def test_a_repeated_date_header_is_refused_from_raw_headers_too() -> None:
    request = sign("POST", f"{ENDPOINT}/runtimes/abc/invocations", b"{}")
    doubled = [*_raw(request), (b"x-amz-date", request.header("X-Amz-Date").encode())]
    assert _verdict(request, header_values(doubled)) == "IncompleteSignature"


def test_bearer_and_missing_authorization_are_told_apart_from_raw_headers() -> None:
    assert authorization_scheme(header_values([(b"authorization", b"Bearer abc")])) == "bearer"
    assert authorization_scheme(header_values([(b"host", b"x")])) is None
    assert authorization_scheme(header_values([(b"authorization", b"  ")])) is None


_NAMES = st.sampled_from(["x-amz-date", "host", "x-custom", "content-type", "authorization", "x-amz-meta"])
_VALUES = st.binary(max_size=12).filter(lambda value: b"\r" not in value and b"\n" not in value)


@given(extra=st.lists(st.tuples(_NAMES, _VALUES), max_size=4))
def test_any_added_headers_get_the_same_verdict_raw_or_as_text(extra: list[tuple[str, bytes]]) -> None:
    request = sign("POST", f"{ENDPOINT}/runtimes/abc/invocations", b"{}", headers={"X-Custom": "v  w"})
    raw = _raw(request) + [(name.encode(), value) for name, value in extra]
    text = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]
    assert _verdict(request, header_values(raw)) == _verdict(request, text)


@pytest.mark.parametrize("name", [b"AUTHORIZATION", b"Authorization"])
def test_names_in_any_case_are_grouped_lower_case(name: bytes) -> None:
    assert header_values([(name, b"Bearer t")]) == {"authorization": ["Bearer t"]}


def test_a_signed_value_sent_as_utf8_verifies_from_raw_headers() -> None:
    # The client signed the text "séance" and sent its UTF-8 bytes (curl does): only the UTF-8
    # reading of the wire's bytes matches, and `header_values` must not skip looking for it.
    session = "x-amzn-bedrock-agentcore-runtime-session-id"
    request = sign("POST", f"{ENDPOINT}/runtimes/abc/invocations", b"{}", headers={session: "séance"})
    raw = [
        (name.lower().encode("latin-1"), value.encode("utf-8" if name.lower() == session else "latin-1"))
        for name, value in request.headers
    ]
    values = header_values(raw)
    assert not values.ascii
    assert _verdict(request, values) == "admin"


def test_a_request_with_ascii_values_only_is_marked_so() -> None:
    request = sign("POST", f"{ENDPOINT}/runtimes/abc/invocations", b"{}")
    assert header_values(_raw(request)).ascii
    assert not HeaderValues({"host": ["x"]}).ascii  # made by hand: unknown, so looked at


def test_the_names_seen_stay_bounded_and_right_past_the_bound() -> None:
    many = [(f"X-Name-{index}".encode(), b"v") for index in range(3 * sigv4._MAX_NAMES)]
    values = header_values(many)
    assert len(sigv4._NAMES) <= sigv4._MAX_NAMES
    assert list(values) == [f"x-name-{index}" for index in range(3 * sigv4._MAX_NAMES)]
    request = sign("POST", f"{ENDPOINT}/runtimes/abc/invocations", b"{}")
    assert _verdict(request, header_values(_raw(request))) == "admin"  # still verifies once the bound is met
