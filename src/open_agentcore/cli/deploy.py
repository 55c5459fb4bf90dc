"""`agentcore deploy`: zip the agent, upload it, create or update its runtime, wait until READY."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .configure import parse_env
from .errors import CliError
from .packaging import package
from .progress import Progress
from .project import AgentConfig, Project
from .remote import RemoteError, RuntimeServer

READY_TIMEOUT = 900.0
ROLE_ARN = "arn:aws:iam::000000000000:role/open-agentcore-agent"  # stored by the server, not used


def add_commands(commands: Any) -> None:
    deploy = commands.add_parser(
        "deploy",
        help="deploy the agent to the runtime server (or run it locally with --local)",
        description="Zip the agent's directory (honouring .dockerignore and .gitignore), upload it to "
        "the runtime server at $AGENTCORE_ENDPOINT_URL (default http://127.0.0.1:8900, started for "
        "you when it is local and not running), create or update its runtime and wait until READY.",
        epilog="examples: agentcore deploy · agentcore deploy --local --port 8081 · "
        "agentcore deploy --env MODEL=small",
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
    server = RuntimeServer.connect(start=True)
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
    with progress.step(f"uploading to {server.url}"):
        key = server.upload(packed.archive)
    state = project.state(agent.name)
    existing = server.get_runtime(state.runtime_id) if state.runtime_id else None
    if state.runtime_id and existing is None:
        progress.done(f"runtime {state.runtime_id} no longer exists on the server: creating a new one")
    request = runtime_request(agent, key, environment)
    if existing is None:
        request["agentRuntimeName"] = agent.name
        try:
            created = server.json("PUT", "/runtimes/", request)
        except RemoteError as error:
            if error.code != "ConflictException":
                raise
            created = _adopt_by_name(server, agent.name, request)
    else:
        created = server.json("PUT", f"/runtimes/{state.runtime_id}/", request)
    runtime_id, version = created["agentRuntimeId"], created["agentRuntimeVersion"]
    state.runtime_id, state.runtime_arn = runtime_id, created["agentRuntimeArn"]
    state.endpoint_url, state.artifact_key, state.mode = server.url, key, "server"
    project.save_state(agent.name, state)
    described = wait_ready(server, progress, runtime_id, version)
    if described["status"] != "READY":
        reason = described.get("failureReason") or described["status"]
        log = server.build_log(runtime_id, version)
        if log:
            print("--- build log (last lines) ---", file=sys.stderr)
            print("\n".join(log.strip().splitlines()[-20:]), file=sys.stderr)
        raise CliError(f"deploy failed: {reason}")
    progress.done(f"runtime {runtime_id} version {version} is READY")
    print(f"ARN: {state.runtime_arn}")
    print('next: agentcore invoke \'{"prompt": "hello"}\'  ·  agentcore status  ·  agentcore logs')
    return 0


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


def _adopt_by_name(server: RuntimeServer, name: str, request: dict[str, Any]) -> dict[str, Any]:
    """A runtime of this name exists (deployed from another checkout): update it instead."""
    token = None
    while True:
        page = server.json(
            "POST", "/runtimes/", {"maxResults": 100, **({"nextToken": token} if token else {})}
        )
        for runtime in page.get("agentRuntimes", []):
            if runtime["agentRuntimeName"] == name:
                request.pop("agentRuntimeName", None)
                updated: dict[str, Any] = server.json(
                    "PUT", f"/runtimes/{runtime['agentRuntimeId']}/", request
                )
                return updated
        token = page.get("nextToken")
        if not token:
            raise CliError(f"a runtime named {name!r} exists but could not be found to update it")


def wait_ready(server: RuntimeServer, progress: Progress, runtime_id: str, version: str) -> dict[str, Any]:
    deadline = time.monotonic() + READY_TIMEOUT
    with progress.step(f"building version {version}"):
        while True:
            described: dict[str, Any] = server.json("GET", f"/runtimes/{runtime_id}/?version={version}")
            if described["status"] not in ("CREATING", "UPDATING"):
                return described
            if time.monotonic() > deadline:
                raise CliError(
                    f"runtime {runtime_id} is still {described['status']} after {READY_TIMEOUT:g}s"
                )
            time.sleep(0.25)


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if count < 1024:
            return f"{count:.0f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return f"{count:.1f} GiB"


__all__ = ["add_commands", "deploy_to_server", "runtime_request"]
