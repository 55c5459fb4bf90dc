"""Endpoints and how they follow builds: `store/endpoints.py`, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from open_agentcore.store import (
    DEFAULT_ENDPOINT,
    ClientTokenConflict,
    DefaultEndpointProtected,
    EndpointNameConflict,
    EndpointNotFound,
    EndpointStatus,
    RuntimeNotFound,
    Store,
    VersionNotFound,
)
from tests.store.test_repository import ACCOUNT, CONFIG, create


def test_a_ready_build_moves_default_and_a_failed_one_does_not(store: Store) -> None:
    runtime_id = create(store)
    store.finish_version(runtime_id, 1)
    default = store.get_endpoint(runtime_id, DEFAULT_ENDPOINT)
    assert (default.live_version, default.status) == (1, EndpointStatus.READY)
    store.add_version(runtime_id, CONFIG)
    default = store.get_endpoint(runtime_id, DEFAULT_ENDPOINT)
    assert (default.target_version, default.live_version, default.status) == (2, 1, EndpointStatus.UPDATING)
    store.finish_version(runtime_id, 2)
    assert store.get_endpoint(runtime_id, DEFAULT_ENDPOINT).live_version == 2
    store.add_version(runtime_id, CONFIG)
    store.finish_version(runtime_id, 3, failure="pip: no matching distribution")
    default = store.get_endpoint(runtime_id, DEFAULT_ENDPOINT)
    assert (default.live_version, default.status) == (2, EndpointStatus.UPDATE_FAILED)


def test_default_never_goes_back_to_an_older_build_finishing_late(store: Store) -> None:
    runtime_id = create(store)
    store.add_version(runtime_id, CONFIG)
    store.finish_version(runtime_id, 2)
    store.finish_version(runtime_id, 1)
    default = store.get_endpoint(runtime_id, DEFAULT_ENDPOINT)
    assert (default.target_version, default.live_version, default.status) == (2, 2, EndpointStatus.READY)


def test_a_failed_first_build_fails_default_creation(store: Store) -> None:
    runtime_id = create(store)
    store.finish_version(runtime_id, 1, failure="boom")
    assert store.get_endpoint(runtime_id, DEFAULT_ENDPOINT).status is EndpointStatus.CREATE_FAILED


def test_a_pinned_endpoint_stays_on_its_version(store: Store) -> None:
    runtime_id = create(store)
    store.finish_version(runtime_id, 1)
    pinned = store.create_endpoint(runtime_id, "stable", 1, "prod traffic")
    assert (pinned.live_version, pinned.status, pinned.description) == (
        1,
        EndpointStatus.READY,
        "prod traffic",
    )
    assert pinned.arn.endswith(f"runtime/{runtime_id}/runtime-endpoint/stable")
    store.add_version(runtime_id, CONFIG)
    store.finish_version(runtime_id, 2)
    assert store.get_endpoint(runtime_id, "stable").live_version == 1


def test_an_endpoint_on_an_unbuilt_version_goes_live_when_it_is_built(store: Store) -> None:
    runtime_id = create(store)
    beta = store.create_endpoint(runtime_id, "beta")
    assert (beta.target_version, beta.live_version, beta.status) == (1, None, EndpointStatus.CREATING)
    store.finish_version(runtime_id, 1)
    assert store.get_endpoint(runtime_id, "beta").status is EndpointStatus.READY


def test_update_retargets_and_keeps_serving_until_the_target_is_built(store: Store) -> None:
    runtime_id = create(store)
    store.finish_version(runtime_id, 1)
    store.create_endpoint(runtime_id, "beta", 1)
    store.add_version(runtime_id, CONFIG)
    moved = store.update_endpoint(runtime_id, "beta", 2, description="canary")
    assert (moved.target_version, moved.live_version, moved.status) == (2, 1, EndpointStatus.UPDATING)
    assert moved.description == "canary"
    store.finish_version(runtime_id, 2)
    assert store.get_endpoint(runtime_id, "beta").live_version == 2
    back = store.update_endpoint(runtime_id, "beta", 1)
    assert (back.live_version, back.status) == (1, EndpointStatus.READY)


def test_update_to_a_failed_version_is_update_failed(store: Store) -> None:
    runtime_id = create(store)
    store.finish_version(runtime_id, 1)
    store.create_endpoint(runtime_id, "beta", 1)
    store.add_version(runtime_id, CONFIG)
    store.finish_version(runtime_id, 2, failure="boom")
    moved = store.update_endpoint(runtime_id, "beta", 2)
    assert (moved.live_version, moved.status) == (1, EndpointStatus.UPDATE_FAILED)


def test_endpoint_name_conflict(store: Store) -> None:
    runtime_id = create(store)
    store.create_endpoint(runtime_id, "beta", 1)
    with pytest.raises(EndpointNameConflict, match="beta"):
        store.create_endpoint(runtime_id, "beta", 1)


def test_unknown_endpoint_version_or_runtime(store: Store) -> None:
    runtime_id = create(store)
    with pytest.raises(VersionNotFound):
        store.create_endpoint(runtime_id, "gamma", 9)
    with pytest.raises(EndpointNotFound):
        store.get_endpoint(runtime_id, "nope")
    with pytest.raises(EndpointNotFound):
        store.update_endpoint(runtime_id, "nope", 1)
    with pytest.raises(EndpointNotFound):
        store.delete_endpoint(runtime_id, "nope")
    store.create_endpoint(runtime_id, "beta", 1)
    with pytest.raises(VersionNotFound):
        store.update_endpoint(runtime_id, "beta", 9)
    with pytest.raises(RuntimeNotFound):
        store.get_endpoint("nope-0123456789", DEFAULT_ENDPOINT)
    with pytest.raises(RuntimeNotFound):
        store.create_endpoint("nope-0123456789", "beta")


def test_default_cannot_be_created_retargeted_or_deleted_by_hand(store: Store) -> None:
    runtime_id = create(store)
    store.add_version(runtime_id, CONFIG)
    with pytest.raises(DefaultEndpointProtected):
        store.create_endpoint(runtime_id, DEFAULT_ENDPOINT, 1)
    with pytest.raises(DefaultEndpointProtected):
        store.update_endpoint(runtime_id, DEFAULT_ENDPOINT, 1)
    with pytest.raises(DefaultEndpointProtected):
        store.delete_endpoint(runtime_id, DEFAULT_ENDPOINT)
    assert store.update_endpoint(runtime_id, DEFAULT_ENDPOINT, description="main").description == "main"


def test_delete_endpoint_returns_it_deleting(store: Store) -> None:
    runtime_id = create(store)
    store.create_endpoint(runtime_id, "beta", 1)
    deleted = store.delete_endpoint(runtime_id, "beta")
    assert (deleted.name, deleted.status) == ("beta", EndpointStatus.DELETING)
    assert [e.name for e in store.list_endpoints(runtime_id).items] == [DEFAULT_ENDPOINT]
    store.create_endpoint(runtime_id, "beta", 1)  # the name is free again


def test_create_endpoint_with_the_same_client_token_is_one_endpoint(store: Store) -> None:
    runtime_id = create(store)
    first = store.create_endpoint(runtime_id, "beta", 1, client_token="ep-1")
    assert store.create_endpoint(runtime_id, "beta", 1, client_token="ep-1") == first
    with pytest.raises(ClientTokenConflict):
        store.create_endpoint(runtime_id, "gamma", 1, client_token="ep-1")


def test_list_endpoints_pages_by_name(store: Store) -> None:
    runtime_id = store.create_runtime("agent", "us-east-1", ACCOUNT, CONFIG)[0].id
    for name in ("e3", "e1", "e2"):
        store.create_endpoint(runtime_id, name, 1)
    first = store.list_endpoints(runtime_id, max_results=2)
    rest = store.list_endpoints(runtime_id, max_results=2, next_token=first.next_token)
    assert [e.name for e in first.items + rest.items] == [DEFAULT_ENDPOINT, "e1", "e2", "e3"]
    assert rest.next_token is None


def test_get_route_reads_the_runtime_the_endpoint_and_its_live_version_together(store: Store) -> None:
    runtime_id = create(store)
    runtime, endpoint, live = store.get_route(runtime_id, DEFAULT_ENDPOINT)
    assert (runtime.id, endpoint.name, live) == (runtime_id, DEFAULT_ENDPOINT, None)  # not built yet
    store.finish_version(runtime_id, 1)
    store.add_version(runtime_id, {**CONFIG, "description": "second"})
    runtime, endpoint, live = store.get_route(runtime_id, DEFAULT_ENDPOINT)
    assert (runtime.latest_version, runtime.version.version, endpoint.live_version) == (2, 2, 1)
    assert live is not None and (live.version, live.config) == (1, CONFIG)  # what still serves
    # The same records, field for field, as the single reads give.
    assert runtime == store.get_runtime(runtime_id)
    assert endpoint == store.get_endpoint(runtime_id, DEFAULT_ENDPOINT)
    assert live == store.get_version(runtime_id, 1)
    with pytest.raises(EndpointNotFound):
        store.get_route(runtime_id, "missing")
    with pytest.raises(RuntimeNotFound):
        store.get_route("nope-0123456789", DEFAULT_ENDPOINT)
