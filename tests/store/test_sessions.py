"""Runtime sessions in the store: `store/sessions.py`, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime

import pytest

from open_agentcore.store import RuntimeNotFound, SessionNotFound, SessionState, Store
from tests.store.test_repository import create

WORKER = {"pid": 4242, "socket": "/run/agentcore/w1.sock"}


def test_upsert_creates_then_updates_one_session(store: Store) -> None:
    runtime_id = create(store)
    started = store.upsert_session(
        runtime_id, "s-1", state=SessionState.STARTING, backend="process", endpoint="DEFAULT", version=1
    )
    assert (started.state, started.backend, started.worker, started.version) == (
        SessionState.STARTING,
        "process",
        {},
        1,
    )
    active = store.upsert_session(
        runtime_id, "s-1", state=SessionState.ACTIVE, backend="process", worker=WORKER
    )
    assert (active.state, active.worker, active.created_at) == (
        SessionState.ACTIVE,
        WORKER,
        started.created_at,
    )
    assert active.last_activity_at >= started.last_activity_at
    assert store.get_session(runtime_id, "s-1") == active


def test_the_same_session_id_on_two_runtimes_is_two_sessions(store: Store) -> None:
    first, second = create(store, "one"), create(store, "two")
    store.upsert_session(first, "s-1", state=SessionState.ACTIVE, backend="process", worker={"pid": 1})
    store.upsert_session(second, "s-1", state=SessionState.ACTIVE, backend="ray", worker={"pid": 2})
    assert store.get_session(first, "s-1").worker == {"pid": 1}
    assert store.get_session(second, "s-1").backend == "ray"


def test_end_session_records_why_once(store: Store) -> None:
    runtime_id = create(store)
    store.upsert_session(runtime_id, "s-1", state=SessionState.ACTIVE, backend="process")
    ended = store.end_session(runtime_id, "s-1", "idle timeout")
    assert (ended.state, ended.end_reason) == (SessionState.STOPPED, "idle timeout")
    assert ended.ended_at is not None
    again = store.end_session(runtime_id, "s-1", "stopped")
    assert (again.end_reason, again.ended_at) == ("idle timeout", ended.ended_at)


def test_reusing_a_stopped_session_id_starts_afresh(store: Store) -> None:
    runtime_id = create(store)
    first = store.upsert_session(runtime_id, "s-1", state=SessionState.ACTIVE, backend="process")
    store.end_session(runtime_id, "s-1", "worker crashed")
    fresh = store.upsert_session(runtime_id, "s-1", state=SessionState.STARTING, backend="process")
    assert (fresh.state, fresh.ended_at, fresh.end_reason) == (SessionState.STARTING, None, None)
    assert fresh.created_at > first.created_at


def test_list_sessions_and_active_sessions(store: Store) -> None:
    runtime_id, other = create(store, "one"), create(store, "two")
    for session_id in ("s-3", "s-1", "s-2"):
        store.upsert_session(runtime_id, session_id, state=SessionState.ACTIVE, backend="process")
    store.upsert_session(other, "s-9", state=SessionState.STOPPING, backend="process")
    store.end_session(runtime_id, "s-2", "stopped")
    page = store.list_sessions(runtime_id, max_results=2)
    rest = store.list_sessions(runtime_id, max_results=2, next_token=page.next_token)
    assert [s.session_id for s in page.items + rest.items] == ["s-1", "s-2", "s-3"]
    assert [s.session_id for s in store.list_sessions(runtime_id, active_only=True).items] == ["s-1", "s-3"]
    assert [s.session_id for s in store.list_active_sessions(runtime_id)] == ["s-1", "s-3"]
    assert {(s.runtime_id, s.session_id) for s in store.list_active_sessions()} == {
        (runtime_id, "s-1"),
        (runtime_id, "s-3"),
        (other, "s-9"),
    }


def test_touch_session_moves_last_activity(store: Store) -> None:
    runtime_id = create(store)
    store.upsert_session(runtime_id, "s-1", state=SessionState.ACTIVE, backend="process")
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
    store.touch_session(runtime_id, "s-1", at=later)
    assert store.get_session(runtime_id, "s-1").last_activity_at == later
    with pytest.raises(SessionNotFound):
        store.touch_session(runtime_id, "nope")


def test_delete_ended_sessions_forgets_only_old_stopped_ones(store: Store) -> None:
    runtime_id = create(store)
    for session_id in ("old", "live"):
        store.upsert_session(runtime_id, session_id, state=SessionState.ACTIVE, backend="process")
    store.end_session(runtime_id, "old", "idle timeout")
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=60)
    assert store.delete_ended_sessions(soon) == 1
    assert [s.session_id for s in store.list_sessions(runtime_id).items] == ["live"]


def test_unknown_session_or_runtime(store: Store) -> None:
    runtime_id = create(store)
    with pytest.raises(SessionNotFound):
        store.get_session(runtime_id, "nope")
    with pytest.raises(SessionNotFound):
        store.end_session(runtime_id, "nope", "stopped")
    with pytest.raises(RuntimeNotFound):
        store.upsert_session("nope-0123456789", "s-1", state=SessionState.STARTING, backend="process")
    with pytest.raises(RuntimeNotFound):
        store.list_sessions("nope-0123456789")


def test_a_session_keeps_the_owner_it_was_first_recorded_with(store: Store) -> None:
    runtime_id = create(store)
    first = store.upsert_session(
        runtime_id, "s-1", state=SessionState.ACTIVE, backend="process", owner="key:alice"
    )
    assert first.owner == "key:alice"
    store.end_session(runtime_id, "s-1", "idle timeout")
    again = store.upsert_session(
        runtime_id, "s-1", state=SessionState.ACTIVE, backend="process", owner="key:admin"
    )
    assert again.owner == "key:alice"  # restarted by the admin, still alice's
    assert store.get_session(runtime_id, "s-1").owner == "key:alice"


def test_a_session_recorded_without_an_owner_takes_the_next_one(store: Store) -> None:
    runtime_id = create(store)
    store.upsert_session(runtime_id, "s-1", state=SessionState.ACTIVE, backend="process")
    claimed = store.upsert_session(
        runtime_id, "s-1", state=SessionState.ACTIVE, backend="process", owner="key:bob"
    )
    assert claimed.owner == "key:bob"


def test_session_owner_names_who_first_used_the_id_and_none_for_an_unused_one(store: Store) -> None:
    runtime_id = create(store)
    assert store.session_owner(runtime_id, "s-1") is None
    store.upsert_session(runtime_id, "s-1", state=SessionState.ACTIVE, backend="process", owner="key:alice")
    store.end_session(runtime_id, "s-1", "stopped")
    assert store.session_owner(runtime_id, "s-1") == "key:alice"  # an ended session stays its owner's
    assert store.session_owner(runtime_id, "s-2") is None
    assert store.session_owner("nope-0123456789", "s-1") is None


def test_an_upsert_that_stops_a_session_keeps_its_start_and_says_when_it_ended(store: Store) -> None:
    runtime_id = create(store)
    started = store.upsert_session(runtime_id, "s-1", state=SessionState.ACTIVE, backend="process")
    stopped = store.upsert_session(runtime_id, "s-1", state=SessionState.STOPPED, backend="process")
    assert stopped.state is SessionState.STOPPED and stopped.created_at == started.created_at
    assert stopped.ended_at is not None and stopped.end_reason is None
    restarted = store.upsert_session(
        runtime_id, "s-1", state=SessionState.ACTIVE, backend="process", worker=WORKER
    )
    assert restarted.created_at > started.created_at and restarted.ended_at is None
    assert store.get_session(runtime_id, "s-1") == restarted
