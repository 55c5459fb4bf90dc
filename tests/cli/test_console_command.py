"""`agentcore console`: the URL of the resolved server's web console."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def agentcore(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "open_agentcore.cli", *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, **environ},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "environ", "url"),
    [
        (["--endpoint-url", "http://127.0.0.1:9911", "console"], {}, "http://127.0.0.1:9911/_agentcore/console/"),
        (["console", "--endpoint-url", "https://agents.example:8443/"], {},
         "https://agents.example:8443/_agentcore/console/"),
        (["console"], {"AGENTCORE_ENDPOINT_URL": "http://10.0.0.5:8900"}, "http://10.0.0.5:8900/_agentcore/console/"),
    ],
)  # fmt: skip
def test_console_prints_the_url_of_the_resolved_server(
    args: list[str], environ: dict[str, str], url: str
) -> None:
    done = agentcore(*args, **environ)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == url


def test_a_bad_endpoint_is_one_line_and_exit_code_1() -> None:
    done = agentcore("console", "--endpoint-url", "ftp://nowhere")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "must be an http(s) URL" in done.stderr
