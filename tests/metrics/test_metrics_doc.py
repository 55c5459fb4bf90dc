"""docs/metrics.md as written: its signing proxy, run with a key allowed only GetMetrics, serves
the server's metrics to an unsigned scraper; its table names every metric the server has."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from open_agentcore.metrics import ServerMetrics
from tests.conftest import REPO, free_port, wait_until
from tests.metrics.test_metrics import new_key, signed
from tests.server.conftest import Server

DOC = (REPO / "docs" / "metrics.md").read_text()


@pytest.fixture
def proxy(server: Server, tmp_path: Path) -> Iterator[str]:
    (block,) = re.findall(r"```python\n(.*?)```", DOC, re.S)
    (tmp_path / "metrics_proxy.py").write_text(block)
    key = new_key(server, "prometheus", ["bedrock-agentcore:GetMetrics"])
    port = free_port()
    environment = {
        **os.environ, "AWS_ACCESS_KEY_ID": key[0], "AWS_SECRET_ACCESS_KEY": key[1],
        "AGENTCORE_ENDPOINT_URL": server.url, "AWS_REGION": "us-east-1", "PROXY_PORT": str(port),
    }  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "metrics_proxy.py"], cwd=tmp_path, env=environment,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"

        def listening() -> bool:
            try:
                httpx.get(url + "/", timeout=2)
            except httpx.TransportError:
                assert process.poll() is None, "the documented proxy exited"
                return False
            return True

        wait_until(listening, timeout=30, interval=0.05)
        yield url
    finally:
        process.kill()
        process.wait()


def test_the_documented_proxy_serves_the_signed_metrics(proxy: str) -> None:
    reply = httpx.get(proxy + "/metrics", timeout=30)
    assert reply.status_code == 200, reply.text
    names = {family.name for family in text_string_to_metric_families(reply.text)}
    assert "agentcore_invocations" in names
    wanted = {"accept": "application/openmetrics-text; version=1.0.0"}
    reply = httpx.get(proxy + "/metrics", headers=wanted, timeout=30)
    assert reply.headers["content-type"].startswith("application/openmetrics-text")
    assert "agentcore_sessions" in {family.name for family in openmetrics_families(reply.text)}
    assert httpx.get(proxy + "/other", timeout=30).status_code == 404


def test_the_documented_policy_allows_get_metrics_only(server: Server) -> None:
    (policy,) = re.findall(r"cat > metrics-policy.json <<'EOF'\n(.*?)\nEOF", DOC, re.S)
    statement = json.loads(policy)["Statement"]
    key = new_key(server, "documented", [statement[0]["Action"]])
    assert signed("GET", server.url + "/metrics", key).status_code == 200
    assert signed("GET", server.url + "/_agentcore/runtimes/any-AAAAAAAAAA/sessions", key).status_code == 403


def test_every_metric_the_server_has_is_in_the_table_and_nothing_else() -> None:
    families = list(ServerMetrics().registry.collect())
    names = {family.name + ("_total" if family.type == "counter" else "") for family in families}
    table = set(re.findall(r"^\| `(agentcore_[a-z_]+)` \|", DOC, re.M))
    assert names == table
