"""Access keys and resource policies: `store/access.py`, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from open_agentcore.store import (
    AccessKeyConflict,
    AccessKeyNotFound,
    ResourcePolicyNotFound,
    RuntimeNotFound,
    Store,
)
from tests.store.test_repository import create

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "bedrock-agentcore:*"}]}


def test_access_key_round_trip(store: Store) -> None:
    created = store.create_access_key("AKIAEXAMPLE000000001", SECRET, "alice", POLICY)
    fetched = store.get_access_key("AKIAEXAMPLE000000001")
    assert fetched == created
    assert (fetched.secret, fetched.principal, fetched.policy, fetched.active) == (
        SECRET,
        "alice",
        POLICY,
        True,
    )
    assert SECRET not in repr(fetched)


def test_an_access_key_without_a_policy(store: Store) -> None:
    store.create_access_key("AKIAEXAMPLE000000002", SECRET, "admin")
    assert store.get_access_key("AKIAEXAMPLE000000002").policy is None


def test_duplicate_access_key_is_a_conflict(store: Store) -> None:
    store.create_access_key("AKIAEXAMPLE000000001", SECRET, "alice")
    with pytest.raises(AccessKeyConflict):
        store.create_access_key("AKIAEXAMPLE000000001", "other", "bob")


def test_a_revoked_key_is_found_only_when_asked_for(store: Store) -> None:
    store.create_access_key("AKIAEXAMPLE000000001", SECRET, "alice")
    store.create_access_key("AKIAEXAMPLE000000002", SECRET, "bob")
    revoked = store.revoke_access_key("AKIAEXAMPLE000000001")
    assert not revoked.active and revoked.revoked_at is not None
    assert store.revoke_access_key("AKIAEXAMPLE000000001").revoked_at == revoked.revoked_at
    with pytest.raises(AccessKeyNotFound):
        store.get_access_key("AKIAEXAMPLE000000001")
    assert store.get_access_key("AKIAEXAMPLE000000001", include_revoked=True) == revoked
    assert [k.principal for k in store.list_access_keys()] == ["bob"]
    assert [k.principal for k in store.list_access_keys(include_revoked=True)] == ["alice", "bob"]


def test_unknown_access_key(store: Store) -> None:
    with pytest.raises(AccessKeyNotFound):
        store.get_access_key("AKIANOTHERE000000000")
    with pytest.raises(AccessKeyNotFound):
        store.revoke_access_key("AKIANOTHERE000000000")


def test_resource_policy_put_get_replace_delete(store: Store) -> None:
    runtime_id = create(store)
    with pytest.raises(ResourcePolicyNotFound):
        store.get_resource_policy(runtime_id)
    assert store.put_resource_policy(runtime_id, POLICY).policy == POLICY
    replaced = {"Version": "2012-10-17", "Statement": []}
    store.put_resource_policy(runtime_id, replaced)
    assert store.get_resource_policy(runtime_id).policy == replaced
    store.delete_resource_policy(runtime_id)
    with pytest.raises(ResourcePolicyNotFound):
        store.delete_resource_policy(runtime_id)


def test_resource_policy_of_an_unknown_runtime(store: Store) -> None:
    for call in (store.get_resource_policy, store.delete_resource_policy):
        with pytest.raises(RuntimeNotFound):
            call("nope-0123456789")
    with pytest.raises(RuntimeNotFound):
        store.put_resource_policy("nope-0123456789", POLICY)
