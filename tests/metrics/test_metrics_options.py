"""Metrics options of the server: rate-limit refusals counted, `--no-metrics`, a busy
`--metrics-port`, and the flags as `agentcore server run|start` parse and forward them."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from open_agentcore.cli.errors import CliError
from open_agentcore.cli.main import parser
from open_agentcore.cli.server import _forwarded, config_of
from open_agentcore.server import ServerConfig
from open_agentcore.server.app import build_app
from open_agentcore.server.metrics import MetricsPortUnavailable
from tests.conftest import free_port
from tests.metrics.test_metrics import samples, signed, value
from tests.server.conftest import KEY_ID, SECRET, running_server


def test_rate_limited_requests_are_counted_by_operation(short_data_dir: Path) -> None:
    port = free_port()
    # One call per 5 s: the second call in a row finds its caller's bucket empty.
    with running_server(short_data_dir, rate_limit=0.2, metrics_port=port) as server:
        assert server.signed("GET", "/_agentcore/access-keys").status_code == 200
        throttled = server.signed("GET", "/_agentcore/access-keys")
        assert throttled.status_code == 429
        assert throttled.headers["x-amzn-errortype"] == "ThrottlingException"
        # The metrics port has no caller and no bucket: it is never throttled.
        found = samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text)
    assert value(found, "agentcore_rate_limited_requests_total", operation="ListAccessKeys") == 1
    assert [name for name, _ in found if name == "agentcore_auth_failures_total"] == []


def test_without_metrics_get_metrics_is_not_found(short_data_dir: Path) -> None:
    with running_server(short_data_dir, metrics=False) as server:
        reply = signed("GET", server.url + "/metrics")
    assert reply.status_code == 404
    assert reply.headers["x-amzn-errortype"] == "ResourceNotFoundException"
    assert "--no-metrics" in reply.json()["message"]


def test_a_busy_metrics_port_is_refused_before_the_server_serves(
    short_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTCORE_ADMIN_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AGENTCORE_ADMIN_SECRET_ACCESS_KEY", SECRET)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsPortUnavailable, match=f"--metrics-port {port}"):
            build_app(ServerConfig(data_dir=short_data_dir, warm_pool=0, metrics_port=port))


def test_server_run_says_in_one_line_that_the_metrics_port_is_busy() -> None:
    home = Path(tempfile.mkdtemp(prefix="oacm-", dir="/tmp"))
    environment = {**os.environ, "AGENTCORE_HOME": str(home)}
    with socket.socket() as taken, contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, home, True)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "open_agentcore.cli", "server", "run", "--port", str(free_port()),
             "--sandbox", "none", "--metrics-port", str(port)],
            capture_output=True, text=True, timeout=60, env=environment,
        )  # fmt: skip
    assert done.returncode == 1
    assert f"--metrics-port {port} on 127.0.0.1" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("port", ["0", "65536", "nine", "-1"])
def test_a_malformed_metrics_port_is_a_usage_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["server", "run", "--metrics-port", port])
    assert exited.value.code == 2
    assert "--metrics-port" in capsys.readouterr().err


def test_the_metrics_flags_reach_the_config_and_start_forwards_them() -> None:
    arguments = ["server", "start", "--metrics-port", "9464", "--metrics-host", "0.0.0.0", "--no-metrics"]
    args = parser().parse_args(arguments)
    config = config_of(args)
    assert (config.metrics, config.metrics_port, config.metrics_host) == (False, 9464, "0.0.0.0")
    forwarded = _forwarded(args, config)
    assert "--no-metrics" in forwarded
    assert forwarded[forwarded.index("--metrics-port") + 1] == "9464"
    assert forwarded[forwarded.index("--metrics-host") + 1] == "0.0.0.0"


def test_the_metrics_port_cannot_be_the_servers_own() -> None:
    with pytest.raises(CliError, match="--metrics-port 8900 is the server's own --port"):
        config_of(parser().parse_args(["server", "run", "--metrics-port", "8900"]))


def test_metrics_are_on_and_the_port_is_off_by_default() -> None:
    config = config_of(parser().parse_args(["server", "run"]))
    assert (config.metrics, config.metrics_port, config.metrics_host) == (True, None, "127.0.0.1")
