"""`agentcore deploy --local-build`: build the agent's container image with Finch, Docker or Podman.

The project's own `Dockerfile` is used when it has one. Otherwise the image is generated: the
host's Python on a slim base, the agent's requirements installed with uv, our SDK and worker
launcher copied in, a non-root user, and the agent served on port 8080 as the runtime expects.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import bedrock_agentcore
from open_agentcore.artifacts.environments import _REFERENCE_SDK, SDK_DEPENDENCIES
from open_agentcore.backends.process import LAUNCHER

from .errors import CliError
from .local import find_requirements
from .packaging import package
from .progress import Progress
from .project import AgentConfig, Project

ENGINES = ("finch", "docker", "podman")
PROBE_TIMEOUT = 30.0
CONTAINER_PORT = 8080
INSTALL_HINT = (
    "install one: Docker (https://docs.docker.com/engine/install/), Podman (apt-get install podman) "
    "or Finch (https://github.com/runfinch/finch)"
)


@dataclass(frozen=True)
class Engine:
    """A container engine whose `version` command works here."""

    name: str
    path: str


def deploy_local_build(project: Project, agent: AgentConfig, environment: dict[str, str]) -> int:
    """Build `agentcore-<name>:latest` with the first working engine; 0 once it is built.

    The image is not deployed: the runtime server has no container backend yet (it answers
    CREATE_FAILED for containerConfiguration), which the closing lines say.
    """
    progress = Progress()
    engine = detect_engine()
    progress.done(f"container engine: {engine.name} ({engine.path})")
    tag = image_tag(agent)
    own = project.root / "Dockerfile"
    if own.is_file():
        context, dockerfile = project.root, own
        progress.done("using the project's Dockerfile")
    else:
        context = stage_context(project, agent)
        dockerfile = context / "Dockerfile"
        progress.done(f"generated a Dockerfile in {context.relative_to(project.root)}")
    command = [engine.path, "build", "-t", tag, "-f", str(dockerfile), str(context)]
    print(f"$ {engine.name} build -t {tag} -f {dockerfile} {context}", flush=True)
    done = subprocess.run(command, check=False)  # noqa: S603 - the engine found on PATH, our arguments
    if done.returncode != 0:
        raise CliError(f"{engine.name} build failed with exit code {done.returncode} (its output is above)")
    progress.done(f"built image {tag}")
    # The environment is the container's at run time, not baked into the image.
    environment_flags = "".join(f" -e {key}=..." for key in sorted(environment))
    print(
        f"run it here: {engine.name} run --rm -p {CONTAINER_PORT}:{CONTAINER_PORT}{environment_flags} {tag}"
    )
    print(
        "not deployed: deploying container images needs a container backend on the runtime server, "
        "which it does not have yet (it answers CREATE_FAILED for containerConfiguration). "
        "Deploy the code instead with `agentcore deploy`, or run it with `agentcore deploy --local`."
    )
    return 0


def detect_engine() -> Engine:
    """The first of finch, docker, podman on PATH whose `version` exits 0.

    An engine that is installed but failing (its daemon not running, say) is skipped; its own
    error goes into the message when none works.
    """
    problems = []
    for name in ENGINES:
        path = shutil.which(name)
        if path is None:
            continue
        try:
            done = subprocess.run(  # noqa: S603 - the engine found on PATH, a fixed argument
                [path, "version"], capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            problems.append(f"`{name} version` failed: {error}")
            continue
        if done.returncode == 0:
            return Engine(name, path)
        problems.append(
            f"`{name} version` exited {done.returncode}: {_telling_line(done.stderr, done.stdout)}"
        )
    tried = ", ".join(ENGINES)
    if problems:
        raise CliError(f"no working container engine (tried {tried}): {'; '.join(problems)}")
    raise CliError(f"no container engine found (tried {tried}): {INSTALL_HINT}")


def image_tag(agent: AgentConfig) -> str:
    # Image names are lower case; agent names may not be.
    return f"agentcore-{agent.name.lower()}:latest"


def stage_context(project: Project, agent: AgentConfig) -> Path:
    """A build context in the agent's state dir: app/ (the code as `deploy` would ship it),
    requirements/, agentcore/ (our SDK and launcher) and a generated Dockerfile."""
    context = project.state_dir(agent.name) / "image"
    shutil.rmtree(context, ignore_errors=True)
    (context / "app").mkdir(parents=True)
    with zipfile.ZipFile(io.BytesIO(package(project.root).archive)) as archive:
        archive.extractall(context / "app")
    requirements = find_requirements(project, agent)
    staged_requirements = None
    if requirements is not None:
        (context / "requirements").mkdir()
        staged_requirements = f"requirements/{requirements.name}"
        shutil.copyfile(requirements, context / staged_requirements)
    sdk = Path(bedrock_agentcore.__file__).parent
    shutil.copytree(
        sdk, context / "agentcore" / "sdk" / sdk.name, ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copyfile(LAUNCHER, context / "agentcore" / "worker_main.py")
    reference_sdk = requirements is not None and _lists_reference_sdk(requirements)
    (context / "Dockerfile").write_text(
        dockerfile(agent.entrypoint, staged_requirements, reference_sdk=reference_sdk)
    )
    return context


def dockerfile(
    entrypoint: str, requirements: str | None, reference_sdk: bool = False, python_version: str | None = None
) -> str:
    """The generated Dockerfile for a context laid out by `stage_context`."""
    version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    command = [
        "python", "/opt/agentcore/worker_main.py", "--code-dir", "/app", "--entrypoint", entrypoint,
        "--host", "0.0.0.0", "--port", str(CONTAINER_PORT),
    ]  # fmt: skip
    lines = [
        "# Generated by `agentcore deploy --local-build`. To change it, put your own Dockerfile",
        "# next to .bedrock_agentcore.yaml: it is used instead.",
        f"FROM python:{version}-slim",
        "ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 DOCKER_CONTAINER=1",
        "RUN pip install --no-cache-dir uv",
    ]
    if requirements is not None:
        lines += [
            f"COPY {requirements} /tmp/{requirements}",
            f"RUN uv pip install --system --no-cache -r /tmp/{requirements}",
        ]
    if reference_sdk:
        lines.append("# The requirements list Amazon's bedrock-agentcore: that SDK serves the agent.")
    else:
        lines += [
            f"RUN uv pip install --system --no-cache {' '.join(SDK_DEPENDENCIES)}",
            "COPY agentcore/sdk /opt/agentcore/sdk",
            "ENV PYTHONPATH=/opt/agentcore/sdk",
        ]
    lines += [
        "COPY agentcore/worker_main.py /opt/agentcore/worker_main.py",
        "RUN useradd --create-home --uid 1000 agent",
        "WORKDIR /app",
        "COPY app/ /app/",
        "USER agent",
        f"EXPOSE {CONTAINER_PORT}",
        "CMD " + json.dumps(command),
    ]
    return "\n".join(lines) + "\n"


def _lists_reference_sdk(requirements: Path) -> bool:
    # The worker environments' own test: Amazon's SDK listed means that SDK, not ours.
    return _REFERENCE_SDK.search(requirements.read_text(errors="replace")) is not None


def _telling_line(*outputs: str) -> str:
    for output in outputs:
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        if lines:
            return lines[-1][:300]
    return "no output"


__all__ = [
    "ENGINES",
    "Engine",
    "deploy_local_build",
    "detect_engine",
    "dockerfile",
    "image_tag",
    "stage_context",
]
