"""A key allowed on runtime A never reaches runtime B, whatever the path's encoding.

The attack: the policy check and the route once parsed the path separately, so a path that read
as runtime A to one and as runtime B to the other (`x:runtime/<B>/%253Aruntime%252F<A>`) invoked,
stopped, probed or rewrote the resource policy of B with a key allowed only A. Every disguise here
is tried on every data-plane operation and on resource policies, through a real server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import wait_until
from tests.security.attack import (
    Key,
    Reply,
    Target,
    allow,
    encoded,
    raw_request,
    short_data_dir,
    signed_headers,
    two_runtimes,
)

DATA_PLANE = [
    "bedrock-agentcore:InvokeAgentRuntime",
    "bedrock-agentcore:InvokeAgentRuntimeWithWebSocketStream",
    "bedrock-agentcore:StopRuntimeSession",
    "bedrock-agentcore:GetAgentCard",
]
POLICIES = [
    "bedrock-agentcore:PutResourcePolicy",
    "bedrock-agentcore:GetResourcePolicy",
    "bedrock-agentcore:DeleteResourcePolicy",
]
SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
SESSION = "victim-session-of-runtime-b-000000000001"

# Each disguise is a runtime reference (the path segment(s) between /runtimes/ and the operation)
# that a naive parser reads as A when it decodes twice and as B when it decodes once.
Disguise = Callable[[Target], str]
DISGUISES: dict[str, Disguise] = {
    "the issue's path": lambda t: f"x:runtime/{t.id('b')}/%253Aruntime%252F{t.id('a')}",
    "all in one segment": lambda t: f"x%3Aruntime%2F{t.id('b')}%2F%253Aruntime%252F{t.id('a')}",
    "B's ARN, then A": lambda t: f"{encoded(t.arn('b'))}%2F%253Aruntime%252F{t.id('a')}",
    "B's ARN, a slash, then A": lambda t: f"{encoded(t.arn('b'))}/%253Aruntime%252F{t.id('a')}",
    "lower-case escapes": lambda t: f"x%3aruntime%2f{t.id('b')}%2f%253aruntime%252f{t.id('a')}",
    "A's ARN, dot-dot, B": lambda t: f"{encoded(t.arn('a'))}%2F..%2F{t.id('b')}",
    "B in the unencoded ARN": lambda t: f"{t.arn('b')}/%253Aruntime%252F{t.id('a')}",
}


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    with short_data_dir() as data_dir, two_runtimes(data_dir) as running:
        running.add_key("only-a", allow(DATA_PLANE + POLICIES, running.id("a")))
        running.add_key("nobody")
        yield running


def only_a(target: Target) -> Key:
    return target.keys["only-a"]


def answered_by_b(target: Target, reply: Reply) -> bool:
    """Whether B's agent wrote this body (an error message may quote the path, B's ARN and all)."""
    try:
        body = reply.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("runtime") == target.arn("b")


def invoke(target: Target, name: str, key: Key) -> Reply:
    path = f"/runtimes/{encoded(target.arn(name))}/invocations"
    return raw_request(target.server.url, "POST", path, b"{}", key=key)


def assert_refused(target: Target, reply: Reply) -> None:
    assert reply.status in (400, 403, 404), (reply.status, reply.body)
    assert reply.error_type is not None, reply.headers
    assert not answered_by_b(target, reply), reply.body


def test_the_key_works_on_a_and_not_on_b(target: Target) -> None:
    ok = invoke(target, "a", only_a(target))
    assert ok.status == 200 and ok.json()["runtime"] == target.arn("a")
    denied = invoke(target, "b", only_a(target))
    assert (denied.status, denied.error_type) == (403, "AccessDeniedException")


@pytest.mark.parametrize("disguise", DISGUISES, ids=list(DISGUISES))
def test_invoke_through_a_disguised_path_never_reaches_b(target: Target, disguise: str) -> None:
    path = f"/runtimes/{DISGUISES[disguise](target)}/invocations"
    assert_refused(target, raw_request(target.server.url, "POST", path, b"{}", key=only_a(target)))


@pytest.mark.parametrize("disguise", DISGUISES, ids=list(DISGUISES))
def test_agent_card_through_a_disguised_path_never_reaches_b(target: Target, disguise: str) -> None:
    path = f"/runtimes/{DISGUISES[disguise](target)}/invocations/.well-known/agent-card.json"
    assert_refused(target, raw_request(target.server.url, "GET", path, key=only_a(target)))


@pytest.mark.parametrize("disguise", DISGUISES, ids=list(DISGUISES))
def test_stop_through_a_disguised_path_leaves_b_running(target: Target, disguise: str) -> None:
    admin = target.server
    admin.data.invoke_agent_runtime(agentRuntimeArn=target.arn("b"), runtimeSessionId=SESSION, payload=b"{}")
    path = f"/runtimes/{DISGUISES[disguise](target)}/stopruntimesession"
    reply = raw_request(
        target.server.url, "POST", path, b"{}", key=only_a(target), headers={SESSION_HEADER: SESSION}
    )
    assert_refused(target, reply)
    assert SESSION in live_sessions(target, "b")


@pytest.mark.parametrize("disguise", DISGUISES, ids=list(DISGUISES))
def test_websocket_through_a_disguised_path_never_reaches_b(target: Target, disguise: str) -> None:
    path = f"/runtimes/{DISGUISES[disguise](target)}/ws"
    url = target.server.url + path
    headers = signed_headers(only_a(target), "GET", url)
    try:
        with connect(
            url.replace("http://", "ws://", 1), additional_headers=headers, open_timeout=30
        ) as socket:
            message = socket.recv(timeout=30)
    except InvalidStatus as refused:
        assert refused.response.status_code in (400, 403, 404)
        return
    raise AssertionError(f"the WebSocket was accepted and said {message!r}")


@pytest.mark.parametrize("disguise", DISGUISES, ids=list(DISGUISES))
def test_resource_policy_of_b_cannot_be_written_through_a_disguise(target: Target, disguise: str) -> None:
    nobody = target.keys["nobody"]
    document = {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::000000000000:user/nobody"},
            "Action": "bedrock-agentcore:InvokeAgentRuntime",
            "Resource": target.arn("b"),
        }],
    }  # fmt: skip
    body = json.dumps({"policy": json.dumps(document)}).encode()
    reference = DISGUISES[disguise](target)
    reply = raw_request(target.server.url, "PUT", f"/resourcepolicy/{reference}", body, key=only_a(target))
    assert_refused(target, reply)
    with pytest.raises(target.server.control.exceptions.ResourceNotFoundException):
        target.server.control.get_resource_policy(resourceArn=target.arn("b"))
    # The escalation it would have enabled: a key with no policy at all invoking B.
    escalated = invoke(target, "b", nobody)
    assert (escalated.status, escalated.error_type) == (403, "AccessDeniedException")


def test_each_encoding_of_a_reaches_a(target: Target) -> None:
    """The strict parse is not a refusal of everything unusual: A's own ARN in each spelling works."""
    arn = target.arn("a")
    lower_escapes = re.sub(r"%[0-9A-F]{2}", lambda escape: escape.group(0).lower(), encoded(arn))
    for reference in (encoded(arn), lower_escapes, target.id("a"), encoded(arn).replace("%3A", ":")):
        reply = raw_request(
            target.server.url, "POST", f"/runtimes/{reference}/invocations", b"{}", key=only_a(target)
        )
        assert reply.status == 200 and reply.json()["runtime"] == arn, (reference, reply.body)


def test_an_arn_of_another_account_or_region_is_not_this_servers_runtime(target: Target) -> None:
    for arn in (
        target.arn("a").replace(":000000000000:", ":999999999999:"),
        target.arn("a").replace(":us-east-1:", ":eu-west-1:"),
    ):
        reply = raw_request(target.server.url, "POST", f"/runtimes/{encoded(arn)}/invocations", b"{}",
                            key=target.keys["only-a"])  # fmt: skip
        assert (reply.status, reply.error_type) == (404, "ResourceNotFoundException"), reply.body


def live_sessions(target: Target, name: str) -> list[str]:
    reply = target.server.signed("GET", f"/_agentcore/runtimes/{target.id(name)}/sessions")
    assert reply.status_code == 200, reply.text
    return [entry["sessionId"] for entry in reply.json()["sessions"]]


def test_stop_with_the_real_path_and_another_runtimes_key_is_refused(target: Target) -> None:
    target.server.data.invoke_agent_runtime(
        agentRuntimeArn=target.arn("b"), runtimeSessionId=SESSION, payload=b"{}"
    )
    wait_until(lambda: SESSION in live_sessions(target, "b"))
    path = f"/runtimes/{encoded(target.arn('b'))}/stopruntimesession"
    reply = raw_request(
        target.server.url, "POST", path, b"{}", key=only_a(target), headers={SESSION_HEADER: SESSION}
    )
    assert (reply.status, reply.error_type) == (403, "AccessDeniedException")
    assert SESSION in live_sessions(target, "b")
