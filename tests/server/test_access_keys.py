"""The admin's access-key operations (`/_agentcore/access-keys`) through a real server: what they
return, that a revocation bites at once, that replicas sharing a store agree, and every bad input
as a typed `ValidationException`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import botocore.exceptions
import httpx
import pytest

from open_agentcore.server.access import CACHE_SECONDS
from tests.conftest import wait_until
from tests.server.conftest import KEY_ID, SECRET, Server, running_server

PATH = "/_agentcore/access-keys"
EVERYTHING = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def call(
    server: Server, method: str, path: str, payload: Any = None, key: tuple[str, str] = (KEY_ID, SECRET),
    raw: bytes | None = None,
) -> httpx.Response:  # fmt: skip
    """A request signed as boto3 signs, with the admin key unless `key` says otherwise."""
    body = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else b"")
    url = server.url + path
    request = botocore.awsrequest.AWSRequest(
        method=method, url=url, data=body, headers={"content-type": "application/json"}
    )
    credentials = botocore.credentials.Credentials(*key)
    botocore.auth.SigV4Auth(credentials, "bedrock-agentcore", "us-east-1").add_auth(request)
    return httpx.request(method, url, content=body, headers=dict(request.headers), timeout=60)


def create(server: Server, principal: str, policy: Any = None) -> dict[str, Any]:
    reply = call(server, "POST", PATH, {"principal": principal, **({"policy": policy} if policy else {})})
    assert reply.status_code == 200, reply.text
    created: dict[str, Any] = reply.json()
    return created


def control(server: Server, key: tuple[str, str]) -> Any:
    return boto3.client(
        "bedrock-agentcore-control", region_name="us-east-1", endpoint_url=server.url,
        aws_access_key_id=key[0], aws_secret_access_key=key[1],
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )  # fmt: skip


def error_code(call: Any) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        call()
    return str(refused.value.response["Error"]["Code"])


def test_create_returns_the_secret_once_and_the_key_works(server: Server) -> None:
    created = create(server, "ci-bot", EVERYTHING)
    assert created["accessKeyId"].startswith("AKIA") and len(created["accessKeyId"]) == 20
    assert len(created["secretAccessKey"]) == 40
    assert created["principal"] == "ci-bot"
    assert created["principalArn"] == "arn:aws:iam::000000000000:user/ci-bot"
    assert created["status"] == "ACTIVE" and created["revokedAt"] is None
    assert created["policy"] == EVERYTHING
    key = (created["accessKeyId"], created["secretAccessKey"])
    again = call(server, "POST", PATH, {"principal": "ci-bot"})
    assert again.headers["cache-control"] == "no-store"  # the one copy of a secret is never cached
    assert control(server, key).list_agent_runtimes()["agentRuntimes"] == []


def test_a_policy_may_be_sent_as_json_text(server: Server) -> None:
    created = create(server, "texted", json.dumps(EVERYTHING))
    assert created["policy"] == EVERYTHING


def test_list_never_carries_a_secret(server: Server) -> None:
    first, second = create(server, "alice", EVERYTHING), create(server, "bob")
    reply = call(server, "GET", PATH)
    assert reply.status_code == 200
    listed = reply.json()["accessKeys"]
    assert sorted(k["principal"] for k in listed) == ["alice", "bob"]
    assert sorted(k["accessKeyId"] for k in listed) == sorted([first["accessKeyId"], second["accessKeyId"]])
    assert all("secretAccessKey" not in k for k in listed)
    for secret in (first["secretAccessKey"], second["secretAccessKey"], SECRET):
        assert secret not in reply.text
    assert next(k for k in listed if k["principal"] == "bob")["policy"] is None


def test_revoke_hides_the_key_from_the_list_unless_all_are_asked_for(server: Server) -> None:
    created = create(server, "temp", EVERYTHING)
    reply = call(server, "DELETE", f"{PATH}/{created['accessKeyId']}")
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "REVOKED" and reply.json()["revokedAt"]
    assert "secretAccessKey" not in reply.json()
    assert call(server, "GET", PATH).json()["accessKeys"] == []
    everything = call(server, "GET", f"{PATH}?state=all").json()["accessKeys"]
    assert [(k["accessKeyId"], k["status"]) for k in everything] == [(created["accessKeyId"], "REVOKED")]
    again = call(server, "DELETE", f"{PATH}/{created['accessKeyId']}")
    assert again.status_code == 200 and again.json()["revokedAt"] == reply.json()["revokedAt"]


def test_a_revoked_key_is_refused_at_once(server: Server) -> None:
    created = create(server, "short-lived", EVERYTHING)
    client = control(server, (created["accessKeyId"], created["secretAccessKey"]))
    client.list_agent_runtimes()  # the server now has the key in its cache
    assert call(server, "DELETE", f"{PATH}/{created['accessKeyId']}").status_code == 200
    assert error_code(client.list_agent_runtimes) == "UnrecognizedClientException"


def test_a_key_without_a_policy_may_do_nothing(server: Server) -> None:
    created = create(server, "nobody")
    client = control(server, (created["accessKeyId"], created["secretAccessKey"]))
    assert error_code(client.list_agent_runtimes) == "AccessDeniedException"


def test_revoking_an_unknown_key_is_resource_not_found(server: Server) -> None:
    reply = call(server, "DELETE", f"{PATH}/AKIANOSUCHKEY0000000")
    assert reply.status_code == 404
    assert reply.headers["x-amzn-errortype"] == "ResourceNotFoundException"
    assert "AKIANOSUCHKEY0000000" in reply.json()["message"]


def test_the_admin_key_cannot_be_revoked(server: Server) -> None:
    reply = call(server, "DELETE", f"{PATH}/{KEY_ID}")
    assert reply.status_code == 400 and reply.headers["x-amzn-errortype"] == "ValidationException"
    assert "admin key" in reply.json()["message"]
    assert call(server, "GET", PATH).status_code == 200  # and it still works


ANYONE = json.dumps(
    {"principal": "p", "policy": {"Statement": [{"Effect": "Allow", "Action": "*", "Principal": "*"}]}}
).encode()
TOO_LARGE = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": ["r" * 100] * 300}]}
BAD_CREATES: dict[str, tuple[bytes, str | None]] = {
    "no principal": (b'{"policy": null}', "principal"),
    "an empty principal": (b'{"principal": ""}', "principal"),
    "a principal with a slash": (b'{"principal": "a/b"}', "principal"),
    "a principal of 65 characters": (json.dumps({"principal": "a" * 65}).encode(), "principal"),
    "a principal that is not a string": (b'{"principal": 7}', "principal"),
    "the admin's principal": (b'{"principal": "admin"}', "principal"),
    "the admin's principal in capitals": (b'{"principal": "ADMIN"}', "principal"),
    "a policy with a bad Effect": (
        b'{"principal": "p", "policy": {"Statement": [{"Effect": "Maybe", "Action": "*"}]}}',
        "policy",
    ),
    "a policy without statements": (b'{"principal": "p", "policy": {"Statement": []}}', "policy"),
    "a policy naming a Principal": (ANYONE, "policy"),
    "a policy that is not JSON": (b'{"principal": "p", "policy": "{not json"}', "policy"),
    "a policy that is a list": (b'{"principal": "p", "policy": [1]}', "policy"),
    "a policy too large": (json.dumps({"principal": "p", "policy": TOO_LARGE}).encode(), "policy"),
    "an unknown field": (b'{"principal": "p", "secretAccessKey": "mine"}', "secretAccessKey"),
    "a body that is not JSON": (b"principal=p", None),
    "a body that is a list": (b'["p"]', None),
}


@pytest.mark.parametrize("case", BAD_CREATES)
def test_a_bad_create_is_a_validation_error_and_creates_nothing(server: Server, case: str) -> None:
    body, field = BAD_CREATES[case]
    reply = call(server, "POST", PATH, raw=body)
    assert reply.status_code == 400, reply.text
    assert reply.headers["x-amzn-errortype"] == "ValidationException"
    if field is not None:
        assert reply.json()["fieldList"][0]["name"] == field
    assert call(server, "GET", f"{PATH}?state=all").json()["accessKeys"] == []


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", f"{PATH}?state=revoked", "state"),
        ("DELETE", f"{PATH}/AKIA-0000", "accessKeyId"),
        ("DELETE", f"{PATH}/AKIA%0A", "accessKeyId"),
        ("DELETE", f"{PATH}/{'A' * 129}", "accessKeyId"),
    ],
)
def test_a_bad_list_or_revoke_is_a_validation_error(
    server: Server, method: str, path: str, field: str
) -> None:
    reply = call(server, method, path)
    assert reply.status_code == 400, reply.text
    assert reply.headers["x-amzn-errortype"] == "ValidationException"
    assert reply.json()["fieldList"][0]["name"] == field


@pytest.fixture
def replicas(short_data_dir: Any) -> Iterator[tuple[Server, Server]]:
    """Two servers on one data dir and store, as replicas behind a load balancer would share one."""
    with running_server(short_data_dir) as first, running_server(short_data_dir) as second:
        yield first, second


def test_replicas_sharing_a_store_serve_one_set_of_keys(replicas: tuple[Server, Server]) -> None:
    first, second = replicas
    created = create(first, "everywhere", EVERYTHING)
    key = (created["accessKeyId"], created["secretAccessKey"])
    assert control(second, key).list_agent_runtimes()["agentRuntimes"] == []
    assert [k["principal"] for k in call(second, "GET", PATH).json()["accessKeys"]] == ["everywhere"]
    assert call(second, "DELETE", f"{PATH}/{key[0]}").status_code == 200
    # The first replica never cached the key (it created it, and dropped it from its cache then).
    assert error_code(control(first, key).list_agent_runtimes) == "UnrecognizedClientException"


def test_a_key_revoked_on_another_replica_is_refused_within_the_cache_bound(
    replicas: tuple[Server, Server],
) -> None:
    """The first replica has the key cached when the second revokes it: it cannot hear of that, and
    refuses the key once its cache entry is `CACHE_SECONDS` old (the bound docs/security.md states)."""
    first, second = replicas
    created = create(first, "cached-elsewhere", EVERYTHING)
    key = (created["accessKeyId"], created["secretAccessKey"])
    assert control(first, key).list_agent_runtimes()["agentRuntimes"] == []  # now cached on the first
    assert call(second, "DELETE", f"{PATH}/{key[0]}").status_code == 200
    assert error_code(control(second, key).list_agent_runtimes) == "UnrecognizedClientException"

    def refused_by_the_first() -> bool:
        try:
            control(first, key).list_agent_runtimes()
        except botocore.exceptions.ClientError as refused:
            return bool(refused.response["Error"]["Code"] == "UnrecognizedClientException")
        return False

    wait_until(refused_by_the_first, timeout=CACHE_SECONDS + 10, interval=0.2)
