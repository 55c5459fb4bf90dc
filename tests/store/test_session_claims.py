"""Sessions shared by replicas: `store/session_claims.py`, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime
import threading

from open_agentcore.store import Activity, SessionState, Store
from open_agentcore.store.transactions import utcnow
from tests.store.conftest import StoreFactory
from tests.store.test_repository import create


def claim(store: Store, runtime_id: str, who: str, replacing: str | None = None, ttl: float = 60.0) -> bool:
    won = store.claim_session_start(
        runtime_id, "s-1", backend="ray", claimant={"workerId": f"claim-{who}", "replica": who},
        owner=f"key:{who}", version=1, claim_ttl=ttl, replacing=replacing,
    )  # fmt: skip
    return won.won


def started(store: Store, runtime_id: str, worker_id: str) -> None:
    store.upsert_session(
        runtime_id, "s-1", state=SessionState.ACTIVE, backend="ray", worker={"workerId": worker_id}, version=1
    )


def test_of_replicas_claiming_one_new_session_at_once_exactly_one_wins(open_stores: StoreFactory) -> None:
    stores = [open_stores() for _ in range(4)]
    runtime_id = create(stores[0])
    barrier = threading.Barrier(len(stores))
    outcomes: list[bool] = []

    def race(index: int) -> None:
        barrier.wait(timeout=30)
        outcomes.append(claim(stores[index], runtime_id, f"r{index}"))

    threads = [threading.Thread(target=race, args=(index,)) for index in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == [False, False, False, True]
    assert stores[0].get_session(runtime_id, "s-1").state is SessionState.STARTING


def test_a_claim_is_refused_while_the_session_is_held_and_won_once_it_stopped(store: Store) -> None:
    runtime_id = create(store)
    assert claim(store, runtime_id, "a")
    started(store, runtime_id, "w1")
    assert not claim(store, runtime_id, "b")
    store.end_session(runtime_id, "s-1", "stopped")
    assert claim(store, runtime_id, "b")
    record = store.get_session(runtime_id, "s-1")
    assert (record.state, record.worker["replica"], record.owner) == (SessionState.STARTING, "b", "key:a")


def test_a_claim_replacing_a_dead_worker_wins_only_while_the_record_names_it(store: Store) -> None:
    runtime_id = create(store)
    claim(store, runtime_id, "a")
    started(store, runtime_id, "w1")
    assert not claim(store, runtime_id, "b", replacing="w0")
    assert claim(store, runtime_id, "b", replacing="w1")
    # Another replica that saw the same dead worker arrives second: the record names a claim now.
    assert not claim(store, runtime_id, "c", replacing="w1")


def test_a_claim_left_by_a_dead_replica_is_taken_over_after_its_ttl(store: Store) -> None:
    runtime_id = create(store)
    assert claim(store, runtime_id, "a")
    assert not claim(store, runtime_id, "b", ttl=60.0)
    assert claim(store, runtime_id, "b", ttl=0.0)


def test_ending_by_worker_is_won_once_and_never_ends_a_replacement(store: Store) -> None:
    runtime_id = create(store)
    claim(store, runtime_id, "a")
    started(store, runtime_id, "w1")
    assert store.end_worker_session(runtime_id, "s-1", "w1", "idle timeout")
    assert not store.end_worker_session(runtime_id, "s-1", "w1", "idle timeout")
    claim(store, runtime_id, "b")
    started(store, runtime_id, "w2")
    assert not store.end_worker_session(runtime_id, "s-1", "w1", "its Ray actor died")
    record = store.get_session(runtime_id, "s-1")
    assert (record.state, record.worker["workerId"]) == (SessionState.ACTIVE, "w2")
    assert not store.end_worker_session(runtime_id, "missing", "w1", "x")


def test_activity_moves_last_activity_forward_only_and_feeds_the_review(store: Store) -> None:
    runtime_id = create(store)
    claim(store, runtime_id, "a")
    started(store, runtime_id, "w1")
    recorded = store.get_session(runtime_id, "s-1").last_activity_at
    later = recorded + datetime.timedelta(seconds=30)
    store.record_activity([Activity(runtime_id, "s-1", "w1", later)])
    store.record_activity([Activity(runtime_id, "s-1", "w1", recorded)])
    assert store.get_session(runtime_id, "s-1").last_activity_at == later
    # Active in the future: not idle since a second ago, only since a minute from now.
    assert store.sessions_to_review("ray", utcnow() - datetime.timedelta(seconds=1)) == []
    ahead = utcnow() + datetime.timedelta(seconds=60)
    (due,) = store.sessions_to_review("ray", ahead)
    assert due == store.get_session(runtime_id, "s-1")
    assert store.sessions_to_review("process", ahead) == []
