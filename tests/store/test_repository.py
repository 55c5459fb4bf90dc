"""The store on a real SQLite file: `store/`."""

from __future__ import annotations

import concurrent.futures
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from open_agentcore.store import (
    DEFAULT_ENDPOINT,
    EndpointNameConflict,
    EndpointNotFound,
    EndpointStatus,
    InvalidPaginationToken,
    RuntimeNameConflict,
    RuntimeNotFound,
    RuntimeStatus,
    SchemaTooNew,
    Store,
    VersionNotFound,
)
from tests.conftest import wait_until

CONFIG = {"agentRuntimeArtifact": {"codeConfiguration": {"entryPoint": ["agent.py"]}}, "roleArn": "r"}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'state.db'}")


def test_create_gives_an_id_arn_version_1_and_a_default_endpoint(store: Store) -> None:
    runtime, version = store.create_runtime("hello", "us-east-1", "000000000000", CONFIG, "greeter")
    assert runtime.id.startswith("hello-") and len(runtime.id) == len("hello-") + 10
    assert runtime.arn == f"arn:aws:bedrock-agentcore:us-east-1:000000000000:runtime/{runtime.id}"
    assert (runtime.status, runtime.latest_version, version.version) == (RuntimeStatus.CREATING, 1, 1)
    assert version.config == CONFIG
    default = store.get_endpoint(runtime.id, DEFAULT_ENDPOINT)
    assert (
        default.arn == f"{runtime.arn}/runtime-endpoint/DEFAULT" and default.status is EndpointStatus.CREATING
    )
    with pytest.raises(RuntimeNameConflict, match="hello"):
        store.create_runtime("hello", "us-east-1", "000000000000", CONFIG)


def test_a_ready_build_moves_default_and_a_failed_one_does_not(store: Store) -> None:
    runtime, _ = store.create_runtime("agent", "us-east-1", "000000000000", CONFIG)
    store.finish_version(runtime.id, 1)
    assert store.get_runtime(runtime.id).status is RuntimeStatus.READY
    pinned = store.create_endpoint(runtime.id, "stable", 1)
    assert (pinned.live_version, pinned.status) == (1, EndpointStatus.READY)
    second = store.add_version(runtime.id, {**CONFIG, "description": "v2"})
    assert (second.version, store.get_runtime(runtime.id).status) == (2, RuntimeStatus.UPDATING)
    store.finish_version(runtime.id, 2)
    assert store.get_endpoint(runtime.id, DEFAULT_ENDPOINT).live_version == 2
    assert store.get_endpoint(runtime.id, "stable").live_version == 1
    store.add_version(runtime.id, CONFIG)
    store.finish_version(runtime.id, 3, failure="pip: No matching distribution found for nothing==9")
    failed = store.get_runtime(runtime.id)
    assert failed.status is RuntimeStatus.UPDATE_FAILED and "nothing==9" in (failed.failure_reason or "")
    assert store.get_endpoint(runtime.id, DEFAULT_ENDPOINT).live_version == 2
    assert store.get_version(runtime.id, 1).config == CONFIG  # versions never change


def test_listing_pages_through_everything_once(store: Store) -> None:
    created = {store.create_runtime(f"r{i}", "us-east-1", "000000000000", CONFIG)[0].id for i in range(25)}
    seen: list[str] = []
    token = None
    while True:
        page = store.list_runtimes(10, token)
        seen += [r.id for r in page.items]
        if page.next_token is None:
            break
        token = page.next_token
    assert sorted(seen) == sorted(created) and len(seen) == 25
    with pytest.raises(InvalidPaginationToken):
        store.list_runtimes(10, "not-a-token")


def test_endpoint_errors(store: Store) -> None:
    runtime, _ = store.create_runtime("agent", "us-east-1", "000000000000", CONFIG)
    store.create_endpoint(runtime.id, "beta", 1)
    with pytest.raises(EndpointNameConflict):
        store.create_endpoint(runtime.id, "beta", 1)
    with pytest.raises(VersionNotFound):
        store.create_endpoint(runtime.id, "gamma", 9)
    with pytest.raises(EndpointNotFound):
        store.get_endpoint(runtime.id, "nope")
    assert store.delete_endpoint(runtime.id, "beta").name == "beta"
    assert [e.name for e in store.list_endpoints(runtime.id).items] == [DEFAULT_ENDPOINT]


def test_delete_removes_versions_and_endpoints(store: Store) -> None:
    runtime, _ = store.create_runtime("agent", "us-east-1", "000000000000", CONFIG)
    store.delete_runtime(runtime.id)
    with pytest.raises(RuntimeNotFound):
        store.get_runtime(runtime.id)
    with store.engine.connect() as connection:
        assert connection.execute(text("select count(*) from runtime_versions")).scalar() == 0
        assert connection.execute(text("select count(*) from endpoints")).scalar() == 0
    store.create_runtime("agent", "us-east-1", "000000000000", CONFIG)  # the name is free again


def test_client_tokens_make_creates_idempotent(store: Store) -> None:
    assert store.recall_token("CreateAgentRuntime", "t-1") is None
    store.remember_token("CreateAgentRuntime", "t-1", "agent-abc")
    assert store.recall_token("CreateAgentRuntime", "t-1") == "agent-abc"


def test_concurrent_writers_do_not_trip_over_each_other(store: Store) -> None:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        created = list(
            pool.map(lambda i: store.create_runtime(f"c{i}", "us-east-1", "0" * 12, CONFIG), range(40))
        )
    assert len({runtime.id for runtime, _ in created}) == 40


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = Store.open(url)
    with store.engine.begin() as connection:
        connection.execute(text("update schema_version set version = 99"))
    with pytest.raises(SchemaTooNew, match="99"):
        Store.open(url)


def test_committed_data_survives_kill_9(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    marker = tmp_path / "written"
    writer = textwrap.dedent(
        f"""
        import pathlib, time
        from open_agentcore.store import Store
        store = Store.open("sqlite:///{database}")
        store.create_runtime("survivor", "us-east-1", "000000000000", {{"a": 1}})
        pathlib.Path({str(marker)!r}).write_text("done")
        time.sleep(60)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", writer])
    try:
        wait_until(marker.exists, timeout=30)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    names = [r.name for r in Store.open(f"sqlite:///{database}").list_runtimes().items]
    assert names == ["survivor"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.text(min_size=1, max_size=12), json_values, max_size=6))
def test_any_configuration_round_trips(store: Store, config: dict[str, object]) -> None:
    runtime, _ = store.create_runtime(f"h{abs(hash(str(config))) % 10**9}x", "us-east-1", "0" * 12, config)
    assert store.get_version(runtime.id, 1).config == config
    store.delete_runtime(runtime.id)
