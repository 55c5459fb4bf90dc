"""`agentcore server run|start --rate-limit N/s --log-level LEVEL`: parsed, and forwarded by `start`
to the background server."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import botocore.config
import pytest

from open_agentcore.cli.main import parser
from tests.conftest import free_port


def agentcore(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "AGENTCORE_HOME": str(home)}
    for name in ("AGENTCORE_ADMIN_ACCESS_KEY_ID", "AGENTCORE_ADMIN_SECRET_ACCESS_KEY"):
        environment.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "open_agentcore.cli", *args],
        capture_output=True, text=True, timeout=120, env=environment,
    )  # fmt: skip


@pytest.fixture
def home() -> Iterator[Path]:
    # Short: worker sockets live under the data dir, and unix socket paths max out at 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="oaco-", dir="/tmp"))
    yield path
    pid_file = path / "server" / "server.pid"
    if pid_file.exists():
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    shutil.rmtree(path, ignore_errors=True)


def test_start_forwards_the_rate_limit_and_the_log_level(home: Path) -> None:
    port = free_port()
    started = agentcore(
        home, "server", "start", "--port", str(port), "--warm-pool", "0",
        "--rate-limit", "0.2/s", "--log-level", "info",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    exported = dict(
        line.removeprefix("export ").split("=", 1)
        for line in agentcore(home, "server", "credentials", "--port", str(port)).stdout.splitlines()
    )
    control = boto3.client(
        "bedrock-agentcore-control", region_name="us-east-1", endpoint_url=exported["AWS_ENDPOINT_URL"],
        aws_access_key_id=exported["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=exported["AWS_SECRET_ACCESS_KEY"],
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )  # fmt: skip
    control.list_agent_runtimes()
    # One call per 5 s: the next one, right after, finds the bucket empty.
    with pytest.raises(control.exceptions.ThrottlingException):
        control.list_agent_runtimes()
    assert agentcore(home, "server", "stop").returncode == 0
    log = (home / "server" / "server.log").read_text()
    assert '"POST /runtimes/ HTTP/1.1" 429' in log  # an access line: logged at info, not at warning


@pytest.mark.parametrize("rate", ["fast", "0/s", "-1/s", "5/m", "inf/s"])
def test_a_malformed_rate_limit_is_a_usage_error(rate: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["server", "run", f"--rate-limit={rate}"])
    assert exited.value.code == 2 and "expected requests per second as N/s" in capsys.readouterr().err


@pytest.mark.parametrize(("rate", "parsed"), [("20/s", 20.0), ("0.5/s", 0.5), ("3", 3.0)])
def test_a_rate_limit_is_requests_per_second(rate: str, parsed: float) -> None:
    assert parser().parse_args(["server", "run", "--rate-limit", rate]).rate_limit == parsed
