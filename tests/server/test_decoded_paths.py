"""`server/decoded_paths.py`: uvicorn's decoded `scope["path"]`, remembered per exact path text,
is what `urllib.parse.unquote` gives, for every spelling, through a real server."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.types import Receive, Scope, Send

from open_agentcore.server import decoded_paths
from open_agentcore.server.protocol import ConnectionLimits, http_protocol
from tests.conftest import serve_in_thread

# Percent escapes, upper and lower case, broken ones, non-ASCII: where a decoder could differ.
PATHS = st.lists(st.sampled_from(["%", "2", "F", "f", "3", "A", "a", "/", "é", "%C3%A9", "%zz", "x"])).map(
    "".join
)


@given(PATHS)
def test_the_remembered_decoding_is_urllibs(path: str) -> None:
    assert decoded_paths.unquote(path) == urllib.parse.unquote(path)
    assert decoded_paths.unquote(path) == urllib.parse.unquote(path)  # from the cache this time


def test_a_long_path_is_decoded_right_and_not_kept() -> None:
    path = "/" + "%41" * 1000
    before = decoded_paths._remembered.cache_info().currsize
    assert decoded_paths.unquote(path) == "/" + "A" * 1000
    assert decoded_paths._remembered.cache_info().currsize == before


def test_the_cache_stays_bounded_whatever_paths_come() -> None:
    for index in range(3 * decoded_paths._ENTRIES):
        decoded_paths.unquote(f"/p%2F{index}")
    assert decoded_paths._remembered.cache_info().currsize <= decoded_paths._ENTRIES


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = json.dumps({"path": scope["path"], "raw": scope["raw_path"].decode("latin-1")}).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def echo() -> Iterator[str]:
    with serve_in_thread(_echo, http=http_protocol(ConnectionLimits()), lifespan="off") as url:
        yield url


@pytest.mark.parametrize(
    "raw",
    ["/runtimes/arn%3Aaws%3Ax%2Fy/invocations", "/runtimes/arn%3aaws%3ax%2fy/invocations",
     "/runtimes/arn:aws:x%2Fy/invocations", "/runtimes/arn%253Aaws/invocations", "/s%C3%A9ance"],
)  # fmt: skip
def test_a_real_server_decodes_each_spelling_as_urllib_does_and_keeps_it_raw(echo: str, raw: str) -> None:
    for _ in range(2):  # the second time from the cache
        seen = httpx.get(echo + raw, timeout=10).json()
        assert seen == {"path": urllib.parse.unquote(raw), "raw": raw}


def test_the_server_protocol_decodes_through_the_cache(echo: str) -> None:
    raw = "/runtimes/arn%3Aaws%3Acached/invocations"
    httpx.get(echo + raw, timeout=10)
    hits = decoded_paths._remembered.cache_info().hits
    assert httpx.get(echo + raw, timeout=10).json()["path"] == urllib.parse.unquote(raw)
    assert decoded_paths._remembered.cache_info().hits == hits + 1
