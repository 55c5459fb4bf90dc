"""Rate limits: a token bucket per access key (per IP when unsigned), ThrottlingException past it.

The buckets are tested on their own with a clock the test moves; the server tests use a rate slow
enough (one call per 5 s) that two calls in a row always meet an empty bucket.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import boto3
import botocore.config
import botocore.exceptions
import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from bedrock_agentcore.runtime import AgentCoreRuntimeClient
from open_agentcore.server.ratelimit import TokenBuckets
from tests.conftest import wait_until
from tests.server.conftest import KEY_ID, SECRET, Server, running_server, sign

SLOW = 0.2  # one call per 5 s, a burst of one
MISSING = "arn:aws:bedrock-agentcore:us-east-1:000000000000:runtime/missing-AAAAAAAAAA"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_caller_gets_a_burst_of_n_then_one_call_per_refill() -> None:
    clock = Clock()
    buckets = TokenBuckets(4, clock=clock)
    assert [buckets.take("a") for _ in range(5)] == [True] * 4 + [False]
    clock.now += 0.2  # less than one token
    assert not buckets.take("a")
    clock.now += 0.05
    assert buckets.take("a") and not buckets.take("a")
    clock.now += 60  # refills to the burst, no further
    assert [buckets.take("a") for _ in range(5)] == [True] * 4 + [False]


def test_callers_have_their_own_buckets() -> None:
    buckets = TokenBuckets(1, clock=Clock())
    assert buckets.take("key:A") and not buckets.take("key:A")
    assert buckets.take("key:B") and buckets.take("ip:127.0.0.1")


def test_a_rate_below_one_still_admits_one_call_per_period() -> None:
    clock = Clock()
    buckets = TokenBuckets(0.1, clock=clock)
    assert buckets.take("a") and not buckets.take("a")
    clock.now += 9.9
    assert not buckets.take("a")
    clock.now += 0.1
    assert buckets.take("a")


def test_idle_buckets_are_forgotten_and_memory_stays_bounded() -> None:
    clock = Clock()
    buckets = TokenBuckets(10, max_buckets=100, clock=clock)
    for caller in range(50):
        buckets.take(f"ip:{caller}")
    clock.now += 1  # every bucket is full again: the same as no bucket
    buckets.take("ip:new")
    assert len(buckets) == 1
    for caller in range(10_000):
        buckets.take(f"ip:{caller}")
    assert len(buckets) == 100
    # The most recent callers are the ones kept: a caller still spending stays limited.
    assert [buckets.take("ip:9999") for _ in range(10)] == [True] * 9 + [False]


@pytest.fixture
def limited(short_data_dir: Path) -> Iterator[Server]:
    with running_server(short_data_dir, rate_limit=SLOW) as server:
        settings = {
            "region_name": "us-east-1", "endpoint_url": server.url,
            "aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET,
            "config": botocore.config.Config(retries={"total_max_attempts": 1}),
        }  # fmt: skip
        server.control = boto3.client("bedrock-agentcore-control", **settings)
        server.data = boto3.client("bedrock-agentcore", **settings)
        yield server


def test_boto3_gets_a_throttling_exception_past_the_burst(limited: Server) -> None:
    assert limited.control.list_agent_runtimes()["agentRuntimes"] == []
    with pytest.raises(limited.control.exceptions.ThrottlingException) as throttled:
        limited.control.list_agent_runtimes()
    error = throttled.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert error["Error"]["Message"].startswith("Rate exceeded")


def test_the_bucket_refills(limited: Server) -> None:
    limited.control.list_agent_runtimes()

    def admitted() -> bool:
        try:
            limited.control.list_agent_runtimes()
        except limited.control.exceptions.ThrottlingException:
            return False
        return True

    assert not admitted()
    wait_until(admitted, timeout=60, interval=0.5)


def test_the_health_check_is_never_limited(limited: Server) -> None:
    for _ in range(10):
        assert httpx.get(limited.url + "/_agentcore/health").status_code == 200


def test_refused_signatures_spend_nothing(limited: Server) -> None:
    for _ in range(3):
        refused = limited.signed("POST", "/runtimes/", b"{}", secret="not-the-secret")
        assert (refused.status_code, refused.headers["x-amzn-errortype"]) == (
            403,
            "InvalidSignatureException",
        )
    assert limited.control.list_agent_runtimes()["agentRuntimes"] == []


def test_unsigned_calls_are_limited_by_client_ip_apart_from_keys(limited: Server) -> None:
    limited.control.list_agent_runtimes()  # the admin key's only token
    url = f"{limited.url}/runtimes/{quote(MISSING, safe='')}/invocations"
    headers = {"authorization": "Bearer some-token", "content-type": "application/json"}
    first = httpx.post(url, content=b"{}", headers=headers)
    assert first.status_code not in (429, 500), first.text  # the route answered: the IP had a token
    second = httpx.post(url, content=b"{}", headers=headers)
    assert (second.status_code, second.headers["x-amzn-errortype"]) == (429, "ThrottlingException")
    assert json.loads(second.content)["message"].startswith("Rate exceeded")


def test_a_websocket_handshake_past_the_burst_is_refused_with_429(
    limited: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    client = AgentCoreRuntimeClient(region="us-east-1", endpoint_url=limited.url)
    statuses = []
    for _ in range(2):
        with pytest.raises(InvalidStatus) as refused:
            connect(client.generate_presigned_url(MISSING), open_timeout=60)
        statuses.append(
            (refused.value.response.status_code, refused.value.response.headers["x-amzn-errortype"])
        )
    assert statuses == [(404, "ResourceNotFoundException"), (429, "ThrottlingException")]


def test_without_a_limit_nothing_is_throttled(short_data_dir: Path) -> None:
    with running_server(short_data_dir) as server:
        for _ in range(20):
            reply = httpx.get(server.url + "/runtimes/", headers=sign("GET", server.url + "/runtimes/"))
            assert reply.status_code != 429
