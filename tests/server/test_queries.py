"""The data plane's qualifier, read from the query once per distinct query string."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from open_agentcore.server import queries
from open_agentcore.server.queries import qualifier_of


def _scope(query: bytes) -> dict[str, object]:
    return {"type": "http", "query_string": query}


@given(st.text(alphabet=st.sampled_from("qualifier=&%2Fab+ 1é"), max_size=40))
def test_the_qualifier_is_what_starlette_reads_from_any_query(text: str) -> None:
    query = text.encode("utf-8")
    expected = QueryParams(query).get("qualifier")
    assert qualifier_of(_scope(query)) == expected
    assert qualifier_of(_scope(query)) == expected  # and again, from what was kept


def test_a_repeated_qualifier_reads_as_its_last_value() -> None:
    assert qualifier_of(_scope(b"qualifier=one&qualifier=two")) == "two"


def test_no_query_and_a_query_without_a_qualifier_read_as_none() -> None:
    assert qualifier_of(_scope(b"")) is None
    assert qualifier_of(_scope(b"accountId=123456789012")) is None


def test_a_flood_of_distinct_queries_keeps_memory_bounded_and_answers_right() -> None:
    for number in range(5000):
        assert qualifier_of(_scope(f"qualifier=v{number}".encode())) == f"v{number}"
        assert len(queries._known) <= 1024
