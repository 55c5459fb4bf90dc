"""Only the admin key manages access keys, whatever a key's policy says and however the path is written.

The attack: a caller with a broad key (`"Action": "*"`) mints itself a fresh key, lists every
principal, or revokes someone else's; or one without a key tries anonymously, with a bearer token,
with a leaked presigned URL, or through another spelling of `/_agentcore/access-keys`. Every
attempt here is made against a real server, and afterwards the keys are checked to be unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest

from tests.security.attack import Key, Reply, raw_request, short_data_dir
from tests.server.conftest import KEY_ID, SECRET, Server, running_server

PATH = "/_agentcore/access-keys"
ADMIN = Key(KEY_ID, SECRET)
POLICIES: dict[str, list[dict[str, Any]]] = {
    "almighty": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    "every-agentcore-action": [{"Effect": "Allow", "Action": "bedrock-agentcore:*", "Resource": "*"}],
    "named-actions": [{"Effect": "Allow", "Resource": "*", "Action": [
        "bedrock-agentcore:CreateAccessKey", "bedrock-agentcore:ListAccessKeys",
        "bedrock-agentcore:RevokeAccessKey"]}],
}  # fmt: skip


class Keys:
    """The server under attack, its attackers' keys and the key they try to revoke."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.attackers = {name: self.create(name, statements) for name, statements in POLICIES.items()}
        self.victim = self.create("victim", POLICIES["almighty"])

    def create(self, name: str, statements: list[dict[str, Any]] | None = None) -> Key:
        body = {"principal": name, **({"policy": {"Statement": statements}} if statements else {})}
        reply = self.call("POST", PATH, ADMIN, json.dumps(body).encode())
        assert reply.status == 200, reply.body
        return Key(reply.json()["accessKeyId"], reply.json()["secretAccessKey"])

    def call(self, method: str, raw_path: str, key: Key | None, body: bytes = b"") -> Reply:
        headers = {"content-type": "application/json"}
        return raw_request(self.server.url, method, raw_path, body, key=key, headers=headers)

    def state(self) -> list[tuple[str, str, str]]:
        """Every key the store has, revoked or not, as the admin lists them."""
        reply = self.call("GET", f"{PATH}?state=all", ADMIN)
        assert reply.status == 200, reply.body
        return sorted((k["accessKeyId"], k["principal"], k["status"]) for k in reply.json()["accessKeys"])


@pytest.fixture(scope="module")
def keys() -> Iterator[Keys]:
    with short_data_dir() as data_dir, running_server(data_dir) as server:
        yield Keys(server)


@pytest.fixture
def unchanged(keys: Keys) -> Iterator[None]:
    """Fails the test when the keys after it differ from the keys before it."""
    before = keys.state()
    yield
    assert keys.state() == before


def operations(keys: Keys) -> list[tuple[str, str, bytes]]:
    create = json.dumps({"principal": "minted", "policy": {"Statement": POLICIES["almighty"]}}).encode()
    return [
        ("POST", PATH, create),
        ("GET", PATH, b""),
        ("DELETE", f"{PATH}/{keys.victim.access_key_id}", b""),
    ]


def assert_refused(reply: Reply, error_type: str) -> None:
    assert reply.status == 403 and reply.error_type == error_type, (reply.status, reply.body)
    assert b"secretAccessKey" not in reply.body and b"accessKeys" not in reply.body


@pytest.mark.parametrize("attacker", POLICIES)
@pytest.mark.usefixtures("unchanged")
def test_no_policy_grants_key_management(keys: Keys, attacker: str) -> None:
    for method, path, body in operations(keys):
        reply = keys.call(method, path, keys.attackers[attacker], body)
        assert_refused(reply, "AccessDeniedException")
        assert b"only the server's admin key manages access keys" in reply.body


@pytest.mark.usefixtures("unchanged")
def test_the_attackers_keys_work_elsewhere(keys: Keys) -> None:
    """The refusals above are about key management, not broken keys: the same keys list runtimes."""
    for name in ("almighty", "every-agentcore-action"):
        key = keys.attackers[name]
        assert keys.call("POST", "/runtimes/", key, b"{}").status == 200


@pytest.mark.usefixtures("unchanged")
def test_anonymous_and_bearer_callers_are_refused(keys: Keys) -> None:
    for method, path, body in operations(keys):
        assert_refused(keys.call(method, path, None, body), "MissingAuthenticationTokenException")
        bearer = raw_request(
            keys.server.url, method, path, body, headers={"Authorization": "Bearer eyJ.e30.x"}
        )
        assert_refused(bearer, "MissingAuthenticationTokenException")


@pytest.mark.usefixtures("unchanged")
def test_a_presigned_admin_url_cannot_manage_keys(keys: Keys) -> None:
    for method, path, body in operations(keys):
        request = botocore.awsrequest.AWSRequest(method=method, url=keys.server.url + path, data=body)
        credentials = botocore.credentials.Credentials(KEY_ID, SECRET)
        botocore.auth.SigV4QueryAuth(credentials, "bedrock-agentcore", "us-east-1", expires=60).add_auth(
            request
        )
        presigned = request.url.removeprefix(keys.server.url)
        assert_refused(keys.call(method, presigned, None, body), "AccessDeniedException")


def _percent_encoded(text: str) -> str:
    return "".join(f"%{ord(c):02X}" for c in text)


# Spellings of the three operations' paths. Those marked True select the operation (its literal
# segments as sent, its key id decoded once, well-formed or not): a broad key is refused there.
# The others are no operation at all, for anyone, the admin included: no spelling is an alias.
SPELLINGS: list[tuple[str, str, bool]] = [
    ("GET", f"{PATH}?state=all", True),
    ("GET", "/_agentcore/access%2Dkeys", False),  # literal segments are matched as sent
    ("GET", "/%5Fagentcore/access-keys", False),
    ("GET", f"{PATH}/", False),
    ("GET", "/_AGENTCORE/ACCESS-KEYS", False),
    ("GET", "/_agentcore/Access-Keys", False),
    ("GET", "/_agentcore%2Faccess-keys", False),
    ("GET", "/_agentcore%2faccess-keys", False),
    ("GET", f"{PATH}%2F", False),
    ("GET", "/_agentcore/./access-keys", False),
    ("GET", "/_agentcore//access-keys", False),
    ("GET", "//_agentcore/access-keys", False),
    ("GET", "/x/../_agentcore/access-keys", False),
    ("POST", f"{PATH}/", False),
    ("POST", f"{PATH}%3F", False),
    ("PUT", PATH, False),
    ("DELETE", "{victim_encoded}", True),
    ("DELETE", "{victim_first_letter_encoded}", True),
    ("DELETE", "{victim_double_encoded}", True),
    ("DELETE", f"{PATH}/x%2F..%2F{{victim}}", True),
    ("DELETE", f"{PATH}/{{victim}}/", False),
    ("DELETE", f"{PATH}/{{victim}}%2F", True),  # a key id with a slash: malformed, told to the admin only
    ("DELETE", "/_agentcore/ACCESS-KEYS/{victim}", False),
    ("DELETE", f"{PATH}/../access-keys/{{victim}}", False),
    ("DELETE", f"{PATH}%2F{{victim}}", False),
    ("POST", f"{PATH}/{{victim}}", False),
]


def _spelled(path: str, victim: str) -> str:
    return path.format(
        victim=victim,
        victim_encoded=f"{PATH}/{_percent_encoded(victim)}",
        victim_first_letter_encoded=f"{PATH}/%{ord(victim[0]):02x}{victim[1:]}",
        victim_double_encoded=f"{PATH}/%25{ord(victim[0]):02X}{victim[1:]}",
    )


@pytest.mark.parametrize(("method", "path", "operation"), SPELLINGS)
@pytest.mark.usefixtures("unchanged")
def test_no_spelling_of_the_paths_reaches_them_without_the_admin_key(
    keys: Keys, method: str, path: str, operation: bool
) -> None:
    raw = _spelled(path, keys.victim.access_key_id)
    body = json.dumps({"principal": "minted"}).encode() if method == "POST" else b""
    reply = keys.call(method, raw, keys.attackers["almighty"], body)
    if operation:
        assert_refused(reply, "AccessDeniedException")
    else:
        assert reply.status in (400, 404, 405), (reply.status, reply.body)
        assert b"secretAccessKey" not in reply.body and b"accessKeys" not in reply.body
        for_admin = keys.call(method, raw, ADMIN, body)
        assert for_admin.status in (400, 404, 405), (for_admin.status, for_admin.body)
        assert for_admin.error_type == reply.error_type


def test_each_decoding_of_a_key_id_is_that_key_for_the_admin(keys: Keys) -> None:
    """The control for the spellings above: an encoded key id is the key, decoded once, no more."""
    for spelling in ("{victim_encoded}", "{victim_first_letter_encoded}"):
        disposable = keys.create("disposable").access_key_id
        reply = keys.call("DELETE", _spelled(spelling, disposable), ADMIN)
        assert reply.status == 200 and reply.json()["accessKeyId"] == disposable
    double = keys.call("DELETE", _spelled("{victim_double_encoded}", keys.victim.access_key_id), ADMIN)
    assert double.status == 400 and double.error_type == "ValidationException"
    assert (keys.victim.access_key_id, "victim", "ACTIVE") in keys.state()
