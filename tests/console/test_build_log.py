"""The build log in headless Chromium: followed while its version builds, until it is READY.

The build is held in place by a requirement of the test's own: a local package whose build backend
waits for a file the test creates, so the page opens mid-build and the rest arrives afterwards.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.console.agents import HELLO
from tests.console.browser import Page
from tests.console.conftest import log_in
from tests.server.conftest import Server, artifact

# A PEP 517 backend with no build requirements (nothing to download): it writes a one-module wheel
# once the release file exists, and fails after a bound if it never does.
BACKEND = """
import base64, hashlib, os, time, zipfile

RELEASE = {release!r}


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    deadline = time.monotonic() + 120
    while not os.path.exists(RELEASE):
        if time.monotonic() > deadline:
            raise RuntimeError("the test never released the build")
        time.sleep(0.05)
    name = "held_build-0.1-py3-none-any.whl"
    files = {{
        "held_build/__init__.py": b"",
        "held_build-0.1.dist-info/METADATA": b"Metadata-Version: 2.1\\nName: held-build\\nVersion: 0.1\\n",
        "held_build-0.1.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
        ),
    }}
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{{path}},sha256={{digest}},{{len(data)}}")
        record.append("held_build-0.1.dist-info/RECORD,,")
        wheel.writestr("held_build-0.1.dist-info/RECORD", "\\n".join(record) + "\\n")
    return name
"""

PYPROJECT = """
[build-system]
requires = []
build-backend = "held_backend"
backend-path = ["."]

[project]
name = "held-build"
version = "0.1"
"""


@pytest.fixture
def held_package(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A local package whose build waits for the returned release file (created at the end, always)."""
    package, release = tmp_path / "held_build", tmp_path / "release"
    package.mkdir()
    (package / "held_backend.py").write_text(textwrap.dedent(BACKEND.format(release=str(release))))
    (package / "pyproject.toml").write_text(PYPROJECT)
    try:
        yield package, release
    finally:
        release.touch()  # never leave a build waiting


def test_the_build_log_is_followed_while_the_version_builds(
    server: Server, page: Page, held_package: tuple[Path, Path]
) -> None:
    package, release = held_package
    key = server.upload({"agent.py": HELLO, "requirements.txt": f"held-build @ {package.as_uri()}\n"})
    role = "arn:aws:iam::000000000000:role/agent"
    created = server.control.create_agent_runtime(
        agentRuntimeName="held", roleArn=role, agentRuntimeArtifact=artifact(key)
    )
    runtime_id = created["agentRuntimeId"]
    log_in(page, server.url)
    page.goto(f"{server.url}/_agentcore/console/#/runtimes/{runtime_id}")
    log = "(document.getElementById('build-log')?.textContent ?? '')"
    page.wait_for(f"{log}.includes('$ uv pip install')", timeout=60)  # the page opened mid-build
    page.wait_for("document.getElementById('build-log-status').textContent.includes('building')")
    assert "Installed" not in page.text("#build-log")
    page.evaluate("window.sameDocument = true")  # gone if anything reloaded the page

    release.touch()
    server.wait_ready(runtime_id)
    page.wait_for(f"{log}.includes('Installed')", timeout=30)
    page.wait_for("!document.getElementById('build-log-status').textContent.includes('building')")
    assert page.evaluate("window.sameDocument === true") is True
    # What arrived later was appended once: the page shows the log exactly as the server has it.
    on_disk = wait_until(lambda: _build_log(server, runtime_id), timeout=10)
    assert page.text("#build-log").strip() == on_disk.strip()


def _build_log(server: Server, runtime_id: str) -> str:
    reply = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/versions/1/build-log")
    return reply.text if reply.status_code == 200 else ""
