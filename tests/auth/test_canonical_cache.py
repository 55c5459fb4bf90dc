"""The canonical URI is cached per raw path (`auth/canonical.py`): two paths that differ only in
how they are percent-encoded are different requests to SigV4, and a cached entry for one must
never verify a signature made for the other."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from open_agentcore.auth import SignatureMismatch, verify_headers
from open_agentcore.auth.canonical import canonical_uri

from .wire import ARN, ENCODED_ARN, ENDPOINT, KEY, WireRequest, lookup, sign

# One runtime's invocation path, spelled four ways on the wire.
SPELLINGS = (
    f"/runtimes/{ENCODED_ARN}/invocations",  # boto3's: upper-case hex
    f"/runtimes/{ENCODED_ARN.lower()}/invocations",  # lower-case hex
    f"/runtimes/{ARN.replace('/', '%2F')}/invocations",  # colons left as they are
    f"/runtimes/{ENCODED_ARN.replace('%3A', '%253A')}/invocations",  # encoded twice
)


def _verify(request: WireRequest) -> object:
    return verify_headers(
        request.method, request.raw_path, request.raw_query, request.headers, request.payload_sha256, lookup,
        now=request.signed_at + datetime.timedelta(seconds=1),
    )  # fmt: skip


def test_every_spelling_has_its_own_canonical_uri() -> None:
    assert len({canonical_uri(path) for path in SPELLINGS}) == len(SPELLINGS)


@pytest.mark.parametrize("signed_for", SPELLINGS)
def test_a_signature_for_one_spelling_verifies_for_it_alone_whichever_was_cached_first(
    signed_for: str,
) -> None:
    for other in SPELLINGS:
        canonical_uri(other)  # every spelling's entry is in the cache already
    request = sign("POST", ENDPOINT + signed_for, b"{}")
    assert request.raw_path == signed_for
    assert _verify(request) == KEY
    for other in SPELLINGS:
        if other != signed_for:
            with pytest.raises(SignatureMismatch):
                _verify(dataclasses.replace(request, raw_path=other))
