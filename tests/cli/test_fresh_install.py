"""The Quick Start on a fresh virtualenv that has nothing but our package, installed from this checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.cli.test_workflow import readme_quick_start
from tests.conftest import REPO, free_port


# A pip install from the package index, then the whole Quick Start: minutes on a busy machine.
@pytest.mark.timeout(900)
def test_a_fresh_install_runs_the_quick_start() -> None:
    root = Path(tempfile.mkdtemp(prefix="oacf-", dir="/tmp"))  # short: unix socket paths are limited
    try:
        venv = root / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        # A wheel built from the checkout, dependencies from the package index: what a user gets.
        installed = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", str(REPO)],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert installed.returncode == 0, installed.stderr[-2000:]
        agentcore = str(venv / "bin" / "agentcore")
        project = root / "project"
        project.mkdir()
        agent, commands = readme_quick_start()
        (project / "my_agent.py").write_text(agent)
        environment = {
            "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
            "HOME": str(root),
            "AGENTCORE_HOME": str(root / "h"),
            "AGENTCORE_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        }
        try:
            outputs = []
            for command in commands:
                assert command[0] == "agentcore"
                done = subprocess.run(
                    [agentcore, *command[1:]], cwd=project, env=environment, capture_output=True, text=True,
                    timeout=600, stdin=subprocess.DEVNULL,
                )  # fmt: skip
                assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"
                outputs.append(done.stdout)
            assert json.loads(outputs[-1])["message"] == "Hello, Alice!"
        finally:
            subprocess.run(
                [agentcore, "server", "stop"], env=environment, capture_output=True, timeout=60, check=False
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_installed_package_has_no_test_dependency() -> None:
    # The CLI must not need boto3/botocore (dev-only): importing every CLI module without them works.
    probe = (
        "import sys; sys.modules['boto3'] = None; sys.modules['botocore'] = None\n"
        "import open_agentcore.cli.main, open_agentcore.cli.remote, open_agentcore.cli.deploy\n"
        "import open_agentcore.cli.invoke, open_agentcore.cli.manage, open_agentcore.server\n"
        "print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=os.environ
    )
    assert done.stdout.strip() == "ok", done.stderr
