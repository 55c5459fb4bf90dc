"""Runtimes, versions and client tokens: `store/repository.py`, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from open_agentcore.store import (
    DEFAULT_ENDPOINT,
    ClientTokenConflict,
    EndpointStatus,
    RuntimeNameConflict,
    RuntimeNotFound,
    RuntimeStatus,
    SessionState,
    Store,
    VersionNotFound,
)

ACCOUNT = "123456789012"
CONFIG: dict[str, Any] = {
    "agentRuntimeArtifact": {
        "codeConfiguration": {
            "code": {"s3": {"bucket": "agentcore-artifacts", "prefix": "abc.zip"}},
            "runtime": "PYTHON_3_12",
            "entryPoint": ["agent.py"],
        }
    },
    "roleArn": "arn:aws:iam::123456789012:role/agent",
    "networkConfiguration": {"networkMode": "PUBLIC"},
    "protocolConfiguration": {"serverProtocol": "HTTP"},
    "lifecycleConfiguration": {"idleRuntimeSessionTimeout": 900, "maxLifetime": 28800},
    "environmentVariables": {"GREETING": "hello"},
    "description": "greeter",
}


def create(store: Store, name: str = "agent", **extra: Any) -> str:
    return store.create_runtime(name, "us-east-1", ACCOUNT, CONFIG, **extra)[0].id


def test_create_allocates_id_arn_version_1_and_default_endpoint(store: Store) -> None:
    runtime, version = store.create_runtime("hello", "eu-west-1", ACCOUNT, CONFIG, "greeter")
    assert runtime.id.startswith("hello-") and len(runtime.id) == len("hello-") + 10
    assert runtime.id[len("hello-") :].isalnum()
    assert runtime.arn == f"arn:aws:bedrock-agentcore:eu-west-1:{ACCOUNT}:runtime/{runtime.id}"
    assert (runtime.status, runtime.latest_version, runtime.description) == (
        RuntimeStatus.CREATING,
        1,
        "greeter",
    )
    assert (version.version, version.status, version.config) == (1, RuntimeStatus.CREATING, CONFIG)
    assert runtime.version == version
    default = store.get_endpoint(runtime.id, DEFAULT_ENDPOINT)
    assert default.arn == f"{runtime.arn}/runtime-endpoint/DEFAULT"
    assert (default.target_version, default.live_version, default.status) == (
        1,
        None,
        EndpointStatus.CREATING,
    )
    assert runtime.created_at.tzinfo is not None


def test_duplicate_name_is_a_name_conflict(store: Store) -> None:
    create(store, "hello")
    with pytest.raises(RuntimeNameConflict, match="hello"):
        create(store, "hello")


def test_get_runtime_describes_the_version_asked_for(store: Store) -> None:
    runtime_id = create(store)
    store.add_version(runtime_id, {**CONFIG, "description": "second"})
    assert store.get_runtime(runtime_id).version.config["description"] == "second"
    assert store.get_runtime(runtime_id, version=1).version.config == CONFIG
    assert store.get_runtime(runtime_id, version=1).latest_version == 2


def test_unknown_runtime_and_version_are_not_found(store: Store) -> None:
    runtime_id = create(store)
    with pytest.raises(RuntimeNotFound):
        store.get_runtime("nope-0123456789")
    with pytest.raises(VersionNotFound):
        store.get_runtime(runtime_id, version=7)
    with pytest.raises(VersionNotFound):
        store.get_version(runtime_id, 7)
    with pytest.raises(RuntimeNotFound):
        store.add_version("nope-0123456789", CONFIG)
    with pytest.raises(RuntimeNotFound):
        store.list_versions("nope-0123456789")
    with pytest.raises(RuntimeNotFound):
        store.delete_runtime("nope-0123456789")


def test_add_version_is_updating_and_numbers_count_up(store: Store) -> None:
    runtime_id = create(store)
    second = store.add_version(runtime_id, CONFIG, description="new words")
    third = store.add_version(runtime_id, CONFIG)
    assert (second.version, third.version, third.status) == (2, 3, RuntimeStatus.UPDATING)
    runtime = store.get_runtime(runtime_id)
    assert (runtime.latest_version, runtime.status, runtime.description) == (
        3,
        RuntimeStatus.UPDATING,
        "new words",
    )
    assert [v.version for v in store.list_versions(runtime_id).items] == [3, 2, 1]


def test_version_snapshots_never_change(store: Store) -> None:
    runtime_id = create(store)
    first = store.get_version(runtime_id, 1)
    store.add_version(runtime_id, {"roleArn": "other", "environmentVariables": {"GREETING": "bye"}})
    store.set_version_status(runtime_id, 1, RuntimeStatus.READY, artifact_key="k.zip", environment_hash="e1")
    first.config["roleArn"] = "changed by a caller"  # a record's JSON is the caller's own copy
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.config = {}  # type: ignore[misc]
    assert store.get_version(runtime_id, 1).config == CONFIG


def test_no_store_method_can_rewrite_a_snapshot() -> None:
    takes_config = {
        name
        for name, method in inspect.getmembers(Store, inspect.isfunction)
        if not name.startswith("_") and "config" in inspect.signature(method).parameters
    }
    assert takes_config == {"create_runtime", "add_version"}  # both only ever insert a new version


def test_set_version_status_records_build_fields(store: Store) -> None:
    runtime_id = create(store)
    store.set_version_status(runtime_id, 1, RuntimeStatus.CREATING, artifact_key="abc.zip")
    built = store.set_version_status(runtime_id, 1, RuntimeStatus.READY, environment_hash="sha256:e")
    assert (built.status, built.artifact_key, built.environment_hash) == (
        RuntimeStatus.READY,
        "abc.zip",
        "sha256:e",
    )
    assert store.get_runtime(runtime_id).status is RuntimeStatus.READY
    with pytest.raises(ValueError, match="DELETING"):
        store.set_version_status(runtime_id, 1, RuntimeStatus.DELETING)


def test_a_failed_build_carries_its_reason_to_the_runtime(store: Store) -> None:
    runtime_id = create(store)
    failed = store.finish_version(runtime_id, 1, failure="entryPoint 'agent.py' is not in the code")
    assert (failed.status, failed.failure_reason) == (RuntimeStatus.CREATE_FAILED, failed.failure_reason)
    runtime = store.get_runtime(runtime_id)
    assert runtime.status is RuntimeStatus.CREATE_FAILED and "agent.py" in (runtime.failure_reason or "")
    store.add_version(runtime_id, CONFIG)
    assert store.get_runtime(runtime_id).failure_reason is None
    assert store.finish_version(runtime_id, 2, failure="boom").status is RuntimeStatus.UPDATE_FAILED


def test_an_older_build_finishing_does_not_change_the_runtime_status(store: Store) -> None:
    runtime_id = create(store)
    store.add_version(runtime_id, CONFIG)
    store.finish_version(runtime_id, 1)
    assert store.get_runtime(runtime_id).status is RuntimeStatus.UPDATING


def test_set_runtime_status(store: Store) -> None:
    runtime_id = create(store)
    record = store.set_runtime_status(runtime_id, RuntimeStatus.CREATE_FAILED, "no container engine")
    assert (record.status, record.failure_reason) == (RuntimeStatus.CREATE_FAILED, "no container engine")
    assert store.get_runtime(runtime_id).status is RuntimeStatus.CREATE_FAILED
    with pytest.raises(RuntimeNotFound):
        store.set_runtime_status("nope-0123456789", RuntimeStatus.READY)


def test_delete_removes_everything_and_frees_the_name(store: Store) -> None:
    runtime_id = create(store)
    store.add_version(runtime_id, CONFIG)
    store.create_endpoint(runtime_id, "beta", 1)
    store.upsert_session(runtime_id, "s-1", state=SessionState.ACTIVE, backend="process")
    store.put_resource_policy(runtime_id, {"Version": "2012-10-17", "Statement": []})
    deleted = store.delete_runtime(runtime_id)
    assert (deleted.id, deleted.status, deleted.latest_version) == (runtime_id, RuntimeStatus.DELETING, 2)
    with pytest.raises(RuntimeNotFound):
        store.get_runtime(runtime_id)
    with store.engine.connect() as connection:
        for table in ("runtime_versions", "endpoints", "sessions", "resource_policies"):
            assert connection.execute(text(f"select count(*) from {table}")).scalar() == 0, table
    assert create(store) != runtime_id


def test_create_with_the_same_client_token_returns_the_same_runtime(store: Store) -> None:
    first, version = store.create_runtime("agent", "us-east-1", ACCOUNT, CONFIG, client_token="tok-1")
    again, version_again = store.create_runtime("agent", "us-east-1", ACCOUNT, CONFIG, client_token="tok-1")
    assert (again.id, version_again) == (first.id, version)
    assert len(store.list_runtimes().items) == 1


def test_a_client_token_reused_for_another_request_is_a_conflict(store: Store) -> None:
    create(store, "agent", client_token="tok-1")
    with pytest.raises(ClientTokenConflict):
        create(store, "other", client_token="tok-1")


def test_a_client_token_of_a_deleted_runtime_creates_afresh(store: Store) -> None:
    runtime_id = create(store, client_token="tok-1")
    store.delete_runtime(runtime_id)
    assert create(store, client_token="tok-1") != runtime_id


def test_add_version_with_the_same_client_token_adds_one_version(store: Store) -> None:
    runtime_id = create(store)
    first = store.add_version(runtime_id, CONFIG, client_token="upd-1")
    assert store.add_version(runtime_id, CONFIG, client_token="upd-1") == first
    assert store.get_runtime(runtime_id).latest_version == 2
    with pytest.raises(ClientTokenConflict):
        store.add_version(runtime_id, {"roleArn": "different"}, client_token="upd-1")


def test_remember_and_recall_tokens_for_other_operations(store: Store) -> None:
    assert store.recall_token("StopRuntimeSession", "t-1") is None
    store.remember_token("StopRuntimeSession", "t-1", "agent-abc/s-1", request_digest="d1")
    assert store.recall_token("StopRuntimeSession", "t-1") == "agent-abc/s-1"
    assert store.recall_token("StopRuntimeSession", "t-1", request_digest="d1") == "agent-abc/s-1"
    with pytest.raises(ClientTokenConflict):
        store.recall_token("StopRuntimeSession", "t-1", request_digest="d2")


_names = (f"h{i}" for i in itertools.count())
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=st.dictionaries(st.text(max_size=12), json_values, max_size=6))
def test_any_json_configuration_round_trips(store: Store, config: dict[str, Any]) -> None:
    runtime, version = store.create_runtime(next(_names), "us-east-1", ACCOUNT, config)
    assert version.config == config
    assert store.get_version(runtime.id, 1).config == config
    assert store.add_version(runtime.id, config).config == config
    assert store.list_versions(runtime.id).items[0].config == config
