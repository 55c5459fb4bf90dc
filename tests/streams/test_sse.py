"""SSE framing (`streams/sse.py`): events cut wherever chunks break, ids added, Last-Event-ID parsed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from open_agentcore.streams import EventSplitter, MalformedEventId, event_id, parse_event_id, with_id

LINE_ENDS = st.sampled_from(["\n", "\r\n", "\r"])
EVENT = st.lists(
    st.sampled_from(["data: a", 'data: {"x": 1}', ": keepalive", "event: e", "data: é", "retry: 5"]),
    min_size=1,
    max_size=3,
)


def split_all(data: bytes, cuts: list[int]) -> list[bytes]:
    splitter = EventSplitter()
    events: list[bytes] = []
    start = 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        events += splitter.feed(data[start:cut])
        start = cut
    assert splitter.rest() == b""
    return events


def test_one_event_per_chunk_as_the_sdk_writes_them() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b'data: "a"\n\n') == [b'data: "a"']
    assert splitter.feed(b'data: "b"\n\ndata: "c"\n\n') == [b'data: "b"', b'data: "c"']


def test_an_event_across_chunks_is_one_event() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b"data: x\r") == []
    assert splitter.feed(b"\ndata: y\r\n") == []
    assert splitter.feed(b"\r\n") == [b"data: x\r\ndata: y"]


def test_a_line_ending_in_two_newlines_is_not_cut_early() -> None:
    assert EventSplitter().feed(b"data: a\n\n\n") == [b"data: a"]


def test_an_unended_event_is_the_rest() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b"data: a\n\ndata: b") == [b"data: a"]
    assert splitter.rest() == b"data: b"


@given(st.lists(st.tuples(EVENT, LINE_ENDS), min_size=1, max_size=6), st.lists(st.integers(0, 500)))
def test_events_survive_any_chunking(events: list[tuple[list[str], str]], cuts: list[int]) -> None:
    data = "".join(end.join(lines) + end + end for lines, end in events).encode()
    expected = [end.join(lines).encode() for lines, end in events]
    assert split_all(data, cuts) == expected


def test_the_id_comes_last_so_it_overrides_the_workers() -> None:
    assert with_id(b"id: 7\ndata: x", b"r:1") == b"id: 7\ndata: x\nid: r:1\n\n"


@given(st.from_regex(r"[A-Za-z0-9-]{1,128}", fullmatch=True), st.integers(0, 10**12))
def test_event_ids_read_back(request_id: str, number: int) -> None:
    assert parse_event_id(event_id(request_id, number)) == (request_id, number)


def test_a_bare_request_id_means_from_the_start() -> None:
    assert parse_event_id("abc-123") == ("abc-123", 0)


@pytest.mark.parametrize("text", ["", ":1", "abc:", "abc:-1", "abc:1.5", "a b:1", "abc:\u0661", "x" * 300])
def test_malformed_event_ids_are_refused(text: str) -> None:
    with pytest.raises(MalformedEventId):
        parse_event_id(text)
