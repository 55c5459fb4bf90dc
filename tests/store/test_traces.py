"""The spans table (store migration 4) on SQLite and PostgreSQL: batches in, traces listed newest
first with their roots, filters, pagination, and retention by age and by count."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import delete, inspect, text

from open_agentcore.store import InvalidPaginationToken, SpanRecord, Store
from open_agentcore.store.tables import SchemaMigration


def span(trace_id: str, start: int, parent: str = "", name: str = "step", runtime: str | None = None,
         session: str | None = None, status: str = "UNSET") -> SpanRecord:  # fmt: skip
    return SpanRecord(
        trace_id=trace_id, span_id=secrets.token_hex(8), parent_span_id=parent, name=name, kind="INTERNAL",
        service="svc", start_ns=start, end_ns=start + 1000, attributes={"n": start, "tags": ["a", "b"]},
        status_code=status, runtime_id=runtime, session_id=session,
        events=[{"name": "e", "timeUnixNano": str(start), "attributes": {}}],
    )  # fmt: skip


def a_trace(store: Store, start: int, runtime: str | None = None, session: str | None = None,
            failed: bool = False) -> str:  # fmt: skip
    trace_id = secrets.token_hex(16)
    root = span(trace_id, start, name="root", runtime=runtime, session=session)
    child = span(trace_id, start + 10, parent=root.span_id, name="child", runtime=runtime, session=session,
                 status="ERROR" if failed else "OK")  # fmt: skip
    store.add_spans([child, root])
    return trace_id


def test_spans_round_trip_and_traces_list_newest_first(store: Store) -> None:
    old = a_trace(store, 1_000, "rt-0123456789", "s1")
    new = a_trace(store, 5_000, "rt-0123456789", "s2", failed=True)
    page = store.list_traces()
    assert [t.trace_id for t in page.items] == [new, old] and page.next_token is None
    newest = page.items[0]
    assert (newest.root_name, newest.span_count, newest.start_ns, newest.duration_ns) == (
        "root",
        2,
        5_000,
        1_010,
    )
    assert (newest.runtime_id, newest.session_id, newest.status) == ("rt-0123456789", "s2", "ERROR")
    assert page.items[1].status == "OK"
    spans = store.get_trace(old)
    assert [s.name for s in spans] == ["root", "child"]
    assert spans[0].attributes == {"n": 1_000, "tags": ["a", "b"]} and spans[0].events[0]["name"] == "e"
    assert spans[1].parent_span_id == spans[0].span_id
    assert store.get_trace(secrets.token_hex(16)) == []


def test_every_field_of_a_span_comes_back_as_written(store: Store) -> None:
    # SQLite's spans are written by the driver's executemany, not SQLAlchemy: field order and
    # JSON encoding must still match what reading them expects.
    written = SpanRecord(
        trace_id=secrets.token_hex(16), span_id=secrets.token_hex(8), parent_span_id=secrets.token_hex(8),
        name="séance ✓", kind="SERVER", service="svc-1", start_ns=1_700_000_000_000_000_001,
        end_ns=1_700_000_000_000_000_999,
        attributes={"n": 2**53, "f": 0.5, "b": True, "s": "é\u0000", "l": [1]},
        status_code="ERROR", status_message="it broke", runtime_id="rt-0123456789", session_id="s ✓",
        events=[{"name": "e", "attributes": {"k": None}}],
    )  # fmt: skip
    store.add_spans([written])
    assert store.get_trace(written.trace_id) == [written]


def test_filters_by_runtime_and_session_and_unscoped(store: Store) -> None:
    mine = a_trace(store, 1, "mine-0123456789", "a")
    theirs = a_trace(store, 2, "them-0123456789", "b")
    control = a_trace(store, 3)
    assert {t.trace_id for t in store.list_traces(["mine-0123456789"], include_unscoped=False).items} == {
        mine
    }
    assert {t.trace_id for t in store.list_traces(["mine-0123456789"]).items} == {mine, control}
    assert {t.trace_id for t in store.list_traces(session_id="b").items} == {theirs}
    assert {t.trace_id for t in store.list_traces([], include_unscoped=False).items} == set()
    assert store.traced_runtime_ids() == ["mine-0123456789", "them-0123456789"]


def test_pages_follow_each_other_without_repeats(store: Store) -> None:
    made = [a_trace(store, start) for start in range(10, 80, 10)]
    seen: list[str] = []
    token = None
    while True:
        page = store.list_traces(max_results=3, next_token=token)
        seen += [t.trace_id for t in page.items]
        if page.next_token is None:
            break
        token = page.next_token
    assert seen == list(reversed(made))
    with pytest.raises(InvalidPaginationToken):
        store.list_traces(
            ["other-0123456789"], max_results=3, next_token=store.list_traces(max_results=3).next_token
        )


def test_a_root_with_a_parent_elsewhere_is_still_the_root(store: Store) -> None:
    trace_id = secrets.token_hex(16)
    store.add_spans([span(trace_id, 1, parent="b7ad6b7169203331", name="InvokeAgentRuntime")])
    assert store.list_traces().items[0].root_name == "InvokeAgentRuntime"


def test_retention_drops_the_oldest_past_the_count_and_all_past_the_age(store: Store) -> None:
    traces = [a_trace(store, start) for start in range(5)]  # 10 spans, in arrival order
    assert store.prune_spans(max_age=3600, max_spans=4) == 6
    assert store.count_spans() == 4
    assert {t.trace_id for t in store.list_traces().items} == set(traces[-2:])
    assert store.prune_spans(max_age=1e-9, max_spans=100) == 4
    assert store.count_spans() == 0


def test_migration_4_adds_the_spans_table_to_an_older_database(store_url: str) -> None:
    with Store.open(store_url) as first:
        with first.engine.begin() as connection:
            connection.execute(text("DROP TABLE spans"))
            connection.execute(delete(SchemaMigration).where(SchemaMigration.version >= 4))
        assert "spans" not in inspect(first.engine).get_table_names()
    with Store.open(store_url) as upgraded:
        assert "spans" in inspect(upgraded.engine).get_table_names()
        upgraded.add_spans([span(secrets.token_hex(16), 1)])
        assert upgraded.count_spans() == 1
