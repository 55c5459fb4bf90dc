"""`agentcore deploy`: zip the agent, upload it, create or update its runtime, wait until READY."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from . import endpoint
from .configure import parse_env
from .control_client import ControlClient, Runtime, RuntimeVersion
from .errors import CliError
from .packaging import package
from .progress import Progress
from .project import AgentConfig, Project
from .remote import RemoteError, RuntimeServer

READY_TIMEOUT = 900.0
POLL_SECONDS = 0.25
ROLE_ARN = "arn:aws:iam::000000000000:role/open-agentcore-agent"  # stored by the server, not used


def add_commands(commands: Any) -> None:
    deploy = commands.add_parser(
        "deploy",
        help="deploy the agent to the runtime server (or run it locally with --local)",
        description="Zip the agent's directory (honouring .dockerignore and .gitignore), upload it to "
        "the runtime server, create or update its runtime and wait until READY, showing the build "
        "log as it runs. The server is --endpoint-url, else $AGENTCORE_ENDPOINT_URL, else "
        "$AWS_ENDPOINT_URL, else the one `agentcore server start` recorded, else "
        "http://127.0.0.1:8900; a local one that is not running is started for you.",
        epilog="examples: agentcore deploy · agentcore deploy --agent hello · "
        "agentcore deploy --local --port 8081 · agentcore deploy --env MODEL=small",
    )
    deploy.add_argument("--agent", "-a", help="which configured agent (default: the default one)")
    deploy.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="repeatable")
    mode = deploy.add_mutually_exclusive_group()
    mode.add_argument("--local", action="store_true", help="run the agent as a local process instead")
    mode.add_argument("--local-build", action="store_true", help="build a container image and deploy it")
    deploy.add_argument("--port", type=int, help="with --local: the port (default 8080, else the next free)")
    deploy.add_argument(
        "--foreground", action="store_true", help="with --local: stay attached (Ctrl-C stops)"
    )
    deploy.set_defaults(handler=run_deploy)


def run_deploy(args: argparse.Namespace) -> int:
    project = Project.load()
    agent = project.agent(args.agent)
    environment = {**agent.environment, **parse_env(args.env)}
    if (args.port is not None or args.foreground) and not args.local:
        raise CliError("--port and --foreground go with --local")
    if args.local:
        from .local import deploy_local

        return deploy_local(project, agent, args.port, args.foreground, environment)
    if args.local_build:
        from .container import deploy_local_build

        return deploy_local_build(project, agent, environment)
    return deploy_to_server(project, agent, environment)


def deploy_to_server(project: Project, agent: AgentConfig, environment: dict[str, str]) -> int:
    client = ControlClient(RuntimeServer.connect(start=True))
    progress = Progress()
    extra = {}
    if agent.requirements_file:
        requirements = project.path_of(agent.requirements_file)
        # The server installs requirements.txt or pyproject.toml from the zip's root.
        if requirements.parent != project.root and not (project.root / requirements.name).exists():
            extra[requirements.name] = requirements.read_bytes()
    with progress.step("packaging"):
        packed = package(project.root, extra)
    if agent.entrypoint not in packed.files:
        raise CliError(f"the entrypoint {agent.entrypoint} is left out by .dockerignore/.gitignore")
    progress.done(
        f"packaged {len(packed.files)} files ({_size(packed.unpacked_size)} → {_size(len(packed.archive))})"
    )
    with progress.step(f"uploading to {client.url}"):
        key = client.upload(packed.archive)
    state = project.state(agent.name)
    existing = client.get_runtime(state.runtime_id) if state.runtime_id else None
    if state.runtime_id and existing is None:
        progress.done(f"runtime {state.runtime_id} no longer exists on the server: creating a new one")
    request = runtime_request(agent, key, environment)
    if existing is None:
        created = _create_or_adopt(client, agent.name, request)
    else:
        created = client.update_runtime(existing.runtime_id, request)
    state.runtime_id, state.runtime_arn = created.runtime_id, created.arn
    state.endpoint_url, state.artifact_key, state.mode = client.url, key, "server"
    project.save_state(agent.name, state)
    described = wait_ready(client, progress, created)
    if described.status != "READY":
        log = client.build_log(created.runtime_id, created.version).text
        if log:
            print("--- build log (last lines) ---", file=sys.stderr)
            print("\n".join(log.strip().splitlines()[-20:]), file=sys.stderr)
        raise CliError(f"deploy failed: {described.failure_reason or described.status}")
    progress.done(f"runtime {created.runtime_id} version {created.version} is READY")
    print(f"ARN: {state.runtime_arn}")
    target = project.agent_option(agent.name) + endpoint_flag()
    print(f'next: agentcore invoke \'{{"prompt": "hello"}}\'{target}  ·  agentcore status{target}')
    return 0


def endpoint_flag() -> str:
    """` --endpoint-url URL` when this command was pointed at its server by the flag."""
    chosen = endpoint.resolve()
    return f" {endpoint.FLAG} {chosen.url}" if chosen.source == endpoint.FLAG else ""


def _create_or_adopt(client: ControlClient, name: str, request: dict[str, Any]) -> RuntimeVersion:
    try:
        return client.create_runtime(name, request)
    except RemoteError as error:
        if error.code != "ConflictException":
            raise
    # A runtime of this name exists (deployed from another checkout): update it instead.
    found = client.find_runtime(name)
    if found is None:
        raise CliError(f"a runtime named {name!r} exists but could not be found to update it")
    return client.update_runtime(found.runtime_id, request)


def runtime_request(agent: AgentConfig, key: str, environment: dict[str, str]) -> dict[str, Any]:
    """The Create/UpdateAgentRuntime body for this agent's configuration."""
    request: dict[str, Any] = {
        "agentRuntimeArtifact": {
            "codeConfiguration": {
                "code": {"s3": {"bucket": "agentcore-artifacts", "prefix": key}},
                "runtime": f"PYTHON_3_{sys.version_info.minor}",
                "entryPoint": [agent.entrypoint],
            }
        },
        "roleArn": ROLE_ARN,
        "networkConfiguration": {"networkMode": "PUBLIC"},
        "protocolConfiguration": {"serverProtocol": agent.protocol},
    }
    if environment:
        request["environmentVariables"] = environment
    if agent.authorizer_config:
        request["authorizerConfiguration"] = agent.authorizer_config
    if agent.request_header_allowlist:
        request["requestHeaderConfiguration"] = {"requestHeaderAllowlist": agent.request_header_allowlist}
    lifecycle = {
        key: value
        for key, value in (
            ("idleRuntimeSessionTimeout", agent.idle_timeout),
            ("maxLifetime", agent.max_lifetime),
        )
        if value is not None
    }
    if lifecycle:
        request["lifecycleConfiguration"] = lifecycle
    return request


def wait_ready(client: ControlClient, progress: Progress, created: RuntimeVersion) -> Runtime:
    """Poll until the version is built, printing its build log as it grows, with elapsed time."""
    runtime_id, version = created.runtime_id, created.version
    started = time.monotonic()
    deadline = started + READY_TIMEOUT
    offset = 0
    with progress.step(f"building version {version}"):
        while True:
            described = client.get_runtime(runtime_id, version)
            if described is None:
                raise CliError(f"runtime {runtime_id} was deleted while it was being built")
            chunk = client.build_log(runtime_id, version, offset)
            offset = chunk.next_offset
            for line in chunk.text.splitlines():
                if line.strip():
                    progress.note(f"  {time.monotonic() - started:5.1f}s │ {line.rstrip()}")
            if not described.building:
                return described
            if time.monotonic() > deadline:
                raise CliError(f"runtime {runtime_id} is still {described.status} after {READY_TIMEOUT:g}s")
            time.sleep(POLL_SECONDS)


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if count < 1024:
            return f"{count:.0f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return f"{count:.1f} GiB"


__all__ = ["add_commands", "deploy_to_server", "endpoint_flag", "runtime_request"]
