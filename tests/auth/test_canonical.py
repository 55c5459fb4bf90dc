"""The canonical request pieces: `auth/canonical.py`, checked against botocore's own signer."""

from __future__ import annotations

from urllib.parse import urlsplit

import botocore.auth
import botocore.credentials
from botocore.utils import percent_encode
from hypothesis import given
from hypothesis import strategies as st

from open_agentcore.auth.canonical import canonical_query, canonical_uri, query_pairs

SIGNER = botocore.auth.SigV4Auth(
    botocore.credentials.Credentials("AKIAX", "x"), "bedrock-agentcore", "us-east-1"
)
# What can appear in a request path on the wire (no '?' or '#', which end it).
PATH_CHARACTERS = st.sampled_from([*list("abcXYZ019-_.~/%:@!$&'()*+,;="), "%3A", "%2F", "..", "//", "%25"])
TEXT = st.text(max_size=12)


@given(st.lists(PATH_CHARACTERS, max_size=30).map("".join))
def test_canonical_uri_is_botocores(raw_path: str) -> None:
    assert canonical_uri(raw_path) == SIGNER._normalize_url_path(raw_path)


def test_an_encoded_arn_is_encoded_again() -> None:
    raw = "/runtimes/arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A000000000000%3Aruntime%2Fhello-abc1234567/ws"
    assert canonical_uri(raw) == (
        "/runtimes/arn%253Aaws%253Abedrock-agentcore%253Aus-east-1%253A000000000000%253Aruntime%252F"
        "hello-abc1234567/ws"
    )


@given(st.lists(st.tuples(TEXT, TEXT), max_size=6))
def test_canonical_query_is_botocores_for_botocore_encoded_queries(pairs: list[tuple[str, str]]) -> None:
    raw = "&".join(f"{percent_encode(name)}={percent_encode(value)}" for name, value in pairs)
    expected = SIGNER._canonical_query_string_url(urlsplit(f"http://h/?{raw}"))
    assert canonical_query(query_pairs(raw)) == expected


@given(st.lists(st.tuples(st.binary(max_size=6), st.binary(max_size=6)), max_size=4), st.data())
def test_distinct_queries_have_distinct_canonical_forms(
    pairs: list[tuple[bytes, bytes]], data: st.DataObject
) -> None:
    other = data.draw(st.lists(st.tuples(st.binary(max_size=6), st.binary(max_size=6)), max_size=4))
    assert (canonical_query(pairs) == canonical_query(other)) == (sorted(pairs) == sorted(other))


def test_plus_and_lower_case_escapes_decode_like_the_server_parses_them() -> None:
    assert (
        canonical_query(query_pairs("a=x+y&b=%2f"))
        == canonical_query(query_pairs("a=x%20y&b=%2F"))
        == "a=x%20y&b=%2F"
    )


def test_invalid_utf8_escapes_stay_distinct() -> None:
    assert canonical_query(query_pairs("a=%FF")) != canonical_query(query_pairs("a=%FE"))
