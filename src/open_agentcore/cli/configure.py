"""`agentcore configure`: record an agent in `.bedrock_agentcore.yaml` (and `list`, `set-default`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .errors import CliError
from .project import PROTOCOLS, AgentConfig, Project, check_name

ENTRYPOINT_NAMES = ("agent.py", "app.py", "main.py", "__main__.py")
LIFECYCLE_RANGE = (60, 28800)


def add_commands(commands: Any) -> None:
    configure = commands.add_parser(
        "configure",
        help="record an agent's entrypoint and settings in .bedrock_agentcore.yaml",
        description="Record an agent in .bedrock_agentcore.yaml in this directory. Without "
        "--non-interactive, anything not given as a flag is asked for.",
        epilog="example: agentcore configure --entrypoint my_agent.py --non-interactive",
    )
    configure.add_argument("--entrypoint", "-e", help="the agent's Python file, or a directory holding it")
    configure.add_argument("--name", "-n", help="agent name (default: from the entrypoint's name)")
    configure.add_argument("--requirements-file", "-r", help="requirements.txt or pyproject.toml to install")
    configure.add_argument("--protocol", type=str.upper, choices=PROTOCOLS, help="server protocol (HTTP)")
    configure.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="repeatable")
    configure.add_argument("--authorizer-config", metavar="JSON", help="customJWTAuthorizer config as JSON")
    configure.add_argument("--request-header-allowlist", metavar="A,B", help="headers passed to the agent")
    configure.add_argument(
        "--idle-timeout", type=int, metavar="SECONDS", help="idle session timeout (60-28800)"
    )
    configure.add_argument("--max-lifetime", type=int, metavar="SECONDS", help="session lifetime (60-28800)")
    configure.add_argument("--non-interactive", "-y", action="store_true", help="never prompt")
    configure.set_defaults(handler=run_configure)
    sub = configure.add_subparsers(dest="configure_command", metavar="[list|set-default]")
    listing = sub.add_parser(
        "list", help="list the configured agents", epilog="example: agentcore configure list"
    )
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=list_agents)
    default = sub.add_parser(
        "set-default",
        help="choose the agent commands use",
        epilog="example: agentcore configure set-default hello",
    )
    default.add_argument("name")
    default.set_defaults(handler=set_default)


def run_configure(args: argparse.Namespace) -> int:
    project = Project.load()
    interactive = not args.non_interactive and sys.stdin.isatty()
    entry = args.entrypoint or (_ask("Entrypoint file", "agent.py") if interactive else None)
    if not entry:
        raise CliError("--entrypoint is required (the agent's .py file or its directory)")
    entrypoint = resolve_entrypoint(project.root, Path(entry))
    name = check_name(args.name or (_ask("Agent name", default_name(entrypoint)) if interactive else None)
                      or default_name(entrypoint))  # fmt: skip
    requirements = _requirements(project.root, entrypoint, args.requirements_file)
    if requirements is None and interactive:
        answer = _ask("Requirements file (empty for none)", "")
        requirements = _requirements(project.root, entrypoint, answer) if answer else None
    agent = AgentConfig(
        name=name,
        entrypoint=_relative(project.root, entrypoint),
        requirements_file=_relative(project.root, requirements) if requirements else None,
        protocol=args.protocol or "HTTP",
        environment=parse_env(args.env),
        authorizer_config=_authorizer(args.authorizer_config),
        request_header_allowlist=_allowlist(args.request_header_allowlist),
        idle_timeout=_lifecycle("--idle-timeout", args.idle_timeout),
        max_lifetime=_lifecycle("--max-lifetime", args.max_lifetime),
    )
    previous = project.agents.get(name)
    project.agents[name] = agent
    if project.default_agent is None or len(project.agents) == 1:
        project.default_agent = name
    project.save()
    verb = "updated" if previous else "configured"
    print(f"{verb} agent {name!r}: entrypoint {agent.entrypoint}", end="")
    print(
        f", requirements {agent.requirements_file}" if agent.requirements_file else ", no requirements file"
    )
    print(f"saved in {project.config_path}")
    target = project.agent_option(name)
    print(
        f"next: agentcore deploy{target}        (or: agentcore deploy --local{target}, agentcore dev{target})"
    )
    return 0


def resolve_entrypoint(root: Path, given: Path) -> Path:
    path = (root / given).resolve() if not given.is_absolute() else given.resolve()
    if path.is_dir():
        found = [path / name for name in ENTRYPOINT_NAMES if (path / name).is_file()]
        if len(found) != 1:
            names = ", ".join(ENTRYPOINT_NAMES)
            what = "none" if not found else " and ".join(p.name for p in found)
            raise CliError(f"{given} must hold exactly one of {names} (found {what}): name the file instead")
        path = found[0]
    if not path.is_file():
        raise CliError(f"entrypoint {given} does not exist")
    if path.suffix != ".py":
        raise CliError(f"entrypoint {given} is not a Python file")
    if not path.is_relative_to(root):
        raise CliError(
            f"entrypoint {given} is outside this project ({root}); run configure from its directory"
        )
    return path


def default_name(entrypoint: Path) -> str:
    stem = (
        entrypoint.parent.name if entrypoint.stem in ("agent", "app", "main", "__main__") else entrypoint.stem
    )
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in stem).lstrip("_0123456789")
    return (cleaned or "agent")[:48]


def _requirements(root: Path, entrypoint: Path, given: str | None) -> Path | None:
    if given:
        path = (root / given).resolve()
        if not path.is_file():
            raise CliError(f"requirements file {given} does not exist")
        if path.name != "requirements.txt" and path.suffix not in (".txt", ".toml"):
            raise CliError(f"{given} is neither a requirements .txt nor a pyproject.toml")
        return path
    for directory in (entrypoint.parent, root):
        for name in ("requirements.txt", "pyproject.toml"):
            if (directory / name).is_file():
                return directory / name
    return None


def parse_env(pairs: list[str]) -> dict[str, str]:
    environment = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise CliError(f"--env takes KEY=VALUE with a variable name as KEY, not {pair!r}")
        environment[key] = value
    return environment


def _authorizer(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        config = json.loads(text)
    except ValueError as error:
        raise CliError(f"--authorizer-config is not JSON: {error}") from None
    if not isinstance(config, dict) or "customJWTAuthorizer" not in config:
        raise CliError('--authorizer-config must be {"customJWTAuthorizer": {"discoveryUrl": ..., ...}}')
    jwt = config["customJWTAuthorizer"]
    if not isinstance(jwt, dict) or not str(jwt.get("discoveryUrl", "")).endswith(
        "/.well-known/openid-configuration"
    ):
        raise CliError("--authorizer-config needs a discoveryUrl ending in /.well-known/openid-configuration")
    return config


def _allowlist(text: str | None) -> list[str]:
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def _lifecycle(flag: str, value: int | None) -> int | None:
    low, high = LIFECYCLE_RANGE
    if value is not None and not low <= value <= high:
        raise CliError(f"{flag} must be between {low} and {high} seconds, not {value}")
    return value


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def _ask(question: str, default: str) -> str:
    suffix = f" [{default}]" if default else ""
    try:
        answer = input(f"{question}{suffix}: ").strip()
    except EOFError:
        answer = ""
    return answer or default


def list_agents(args: argparse.Namespace) -> int:
    project = Project.load()
    if args.json:
        agents = {name: agent.to_yaml() for name, agent in project.agents.items()}
        print(json.dumps({"default_agent": project.default_agent, "agents": agents}, indent=2))
        return 0
    if not project.agents:
        print("no agents configured here (agentcore configure --entrypoint agent.py)")
        return 0
    for name, agent in sorted(project.agents.items()):
        state = project.state(name)
        marker = "*" if name == project.default_agent else " "
        where = state.runtime_arn or ("local" if state.mode == "local" else "not deployed")
        print(f"{marker} {name:<24} {agent.entrypoint:<28} {where}")
    return 0


def set_default(args: argparse.Namespace) -> int:
    project = Project.load()
    project.agent(args.name)  # a clear error when it is not configured
    project.default_agent = args.name
    project.save()
    print(f"default agent: {args.name}")
    return 0


__all__ = ["add_commands", "parse_env", "resolve_entrypoint"]
