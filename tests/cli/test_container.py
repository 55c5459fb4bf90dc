"""`deploy --local-build` (`cli/container.py`) up to the container engine: which engine is used,
the Dockerfile generated, the build context, and the errors when no engine works.

No container engine can exist on this machine, so the engines here are stand-ins: small shell
scripts named `docker`/`podman`/`finch`, placed alone on PATH, that exit 0 or 1 with a message and
record what `build` was asked to do. Everything the CLI decides is real; only the engine is not.
"""

from __future__ import annotations

import json
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from open_agentcore.cli.container import dockerfile
from open_agentcore.cli.project import AgentConfig, Project
from tests.cli.cli_harness import agentcore, environment

HOST_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"

WORKING_ENGINE = """#!/bin/sh
# A stand-in container engine: `version` works; `build` records its arguments and Dockerfile.
if [ "$1" = "version" ]; then echo "Client: {name} 99.0"; exit 0; fi
if [ "$1" = "build" ]; then
    printf '%s\\n' "$@" > "{record}/args"
    while [ $# -gt 0 ]; do
        if [ "$1" = "-f" ]; then /bin/cat "$2" > "{record}/Dockerfile"; fi
        shift
    done
    echo "STEP 1/1: built (stand-in)"
    exit {build_code}
fi
exit 2
"""

BROKEN_ENGINE = """#!/bin/sh
# A stand-in for an installed engine whose daemon is not running.
echo "Client: {name} 99.0"
echo "{message}" >&2
exit 1
"""


@pytest.fixture
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="oacc-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "agent.py").write_text(
        "from bedrock_agentcore import BedrockAgentCoreApp\napp = BedrockAgentCoreApp()\n"
    )
    (root / "requirements.txt").write_text("six==1.16.0\n")
    (root / ".venv").mkdir()
    (root / ".venv" / "junk.py").write_text("")
    Project(root, {"Hello": AgentConfig(name="Hello", entrypoint="agent.py")}, "Hello").save()
    return root


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    return path


def install(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def working(bin_dir: Path, name: str, build_code: int = 0) -> Path:
    record = bin_dir.parent / f"{name}-record"
    record.mkdir()
    install(bin_dir, name, WORKING_ENGINE.format(name=name, record=record, build_code=build_code))
    return record


def broken(bin_dir: Path, name: str, message: str) -> None:
    install(bin_dir, name, BROKEN_ENGINE.format(name=name, message=message))


def build(home: Path, project: Path, bin_dir: Path) -> tuple[int, str, str]:
    # Only the stand-ins on PATH: a real engine elsewhere on this machine must not be found.
    done = agentcore(home, project, "local-build", env=environment(home, PATH=str(bin_dir)))
    return done.returncode, done.stdout, done.stderr


def test_no_engine_is_one_line_naming_what_was_tried(home: Path, project: Path, bin_dir: Path) -> None:
    code, _, stderr = build(home, project, bin_dir)
    assert code == 1
    assert stderr.count("\n") == 1
    assert stderr.startswith(
        "agentcore: no container engine found (tried finch, docker, podman): install one"
    )
    assert "Docker" in stderr and "Podman" in stderr and "Finch" in stderr


def test_an_engine_that_fails_shows_its_own_error(home: Path, project: Path, bin_dir: Path) -> None:
    broken(bin_dir, "docker", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.")
    code, _, stderr = build(home, project, bin_dir)
    assert code == 1
    assert stderr.count("\n") == 1
    assert "tried finch, docker, podman" in stderr
    assert "`docker version` exited 1: Cannot connect to the Docker daemon" in stderr


def test_the_first_working_engine_builds_the_generated_image(
    home: Path, project: Path, bin_dir: Path
) -> None:
    broken(bin_dir, "docker", "Cannot connect to the Docker daemon")
    record = working(bin_dir, "podman")
    code, stdout, stderr = build(home, project, bin_dir)
    assert code == 0, stderr
    assert f"container engine: podman ({bin_dir / 'podman'})" in stdout
    args = (record / "args").read_text().splitlines()
    context = project / ".bedrock_agentcore" / "Hello" / "image"
    assert args == ["build", "-t", "agentcore-hello:latest", "-f", str(context / "Dockerfile"), str(context)]
    assert (record / "Dockerfile").read_text() == (context / "Dockerfile").read_text()
    # The context: the code as deploy ships it, the requirements, our SDK and launcher.
    assert (context / "app" / "agent.py").exists() and not (context / "app" / ".venv").exists()
    assert (context / "requirements" / "requirements.txt").read_text() == "six==1.16.0\n"
    assert (context / "agentcore" / "sdk" / "bedrock_agentcore" / "__init__.py").exists()
    assert (context / "agentcore" / "worker_main.py").exists()
    assert "built image agentcore-hello:latest" in stdout
    assert "podman run --rm -p 8080:8080 agentcore-hello:latest" in stdout
    assert "needs a container backend on the runtime server" in stdout and "CREATE_FAILED" in stdout


def test_finch_comes_first_when_it_works(home: Path, project: Path, bin_dir: Path) -> None:
    working(bin_dir, "docker")
    working(bin_dir, "finch")
    code, stdout, stderr = build(home, project, bin_dir)
    assert code == 0, stderr
    assert "container engine: finch" in stdout


def test_the_projects_own_dockerfile_is_used(home: Path, project: Path, bin_dir: Path) -> None:
    (project / "Dockerfile").write_text("FROM scratch\n")
    record = working(bin_dir, "docker")
    code, stdout, stderr = build(home, project, bin_dir)
    assert code == 0, stderr
    assert "using the project's Dockerfile" in stdout
    args = (record / "args").read_text().splitlines()
    assert args[-3:] == ["-f", str(project / "Dockerfile"), str(project)]
    assert (record / "Dockerfile").read_text() == "FROM scratch\n"


def test_a_failed_build_exits_1(home: Path, project: Path, bin_dir: Path) -> None:
    working(bin_dir, "docker", build_code=1)
    code, _, stderr = build(home, project, bin_dir)
    assert code == 1
    assert stderr.strip() == "agentcore: docker build failed with exit code 1 (its output is above)"


def test_generated_dockerfile_runs_the_agent_as_a_non_root_user_on_8080() -> None:
    text = dockerfile("src/agent.py", "requirements/requirements.txt")
    lines = text.splitlines()
    assert f"FROM python:{HOST_PYTHON}-slim" in lines
    assert "RUN pip install --no-cache-dir uv" in lines
    assert "COPY agentcore/sdk /opt/agentcore/sdk" in lines and "ENV PYTHONPATH=/opt/agentcore/sdk" in lines
    assert any(line.startswith("RUN useradd") for line in lines)
    install = "RUN uv pip install --system --no-cache -r /tmp/requirements/requirements.txt"
    assert install in lines
    assert lines.index("USER agent") > lines.index(install)  # installs run as root, the agent does not
    assert "EXPOSE 8080" in lines
    command = json.loads(lines[-1].removeprefix("CMD "))
    assert command == [
        "python", "/opt/agentcore/worker_main.py", "--code-dir", "/app", "--entrypoint", "src/agent.py",
        "--host", "0.0.0.0", "--port", "8080",
    ]  # fmt: skip


def test_generated_dockerfile_without_requirements_installs_only_the_sdk() -> None:
    text = dockerfile("agent.py", None, python_version="3.12")
    assert text.splitlines()[2] == "FROM python:3.12-slim"
    assert " -r " not in text
    assert "starlette uvicorn websockets anyio" in text


def test_generated_dockerfile_leaves_our_sdk_out_when_the_reference_sdk_is_listed() -> None:
    text = dockerfile("agent.py", "requirements/requirements.txt", reference_sdk=True)
    assert "/opt/agentcore/sdk" not in text
    assert "COPY agentcore/worker_main.py /opt/agentcore/worker_main.py" in text
