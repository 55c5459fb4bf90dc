"""`agentcore` run as a user runs it: a real process in the project's directory with its own
AGENTCORE_HOME, through `open_agentcore.cli.main`.

Run as a script, this file is that process, with `dev`, `create` and `configure` registered when
main.py does not register them yet, plus stand-ins that call the functions behind `deploy --local`,
`destroy --local` and `deploy --local-build` directly (while `deploy` is written elsewhere):
    local-deploy [--agent A] [--port P] [--foreground] [--env K=V]
    local-stop [--agent A]
    local-build [--agent A]
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HARNESS = Path(__file__).resolve()


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "AGENTCORE_HOME": str(home), "PYTHONUNBUFFERED": "1", **extra}
    for name in ("AGENTCORE_ADMIN_ACCESS_KEY_ID", "AGENTCORE_ADMIN_SECRET_ACCESS_KEY"):
        env.pop(name, None)
    return env


def agentcore(
    home: Path, cwd: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one command to its end."""
    return subprocess.run(
        [sys.executable, str(HARNESS), *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env or environment(home),
    )  # fmt: skip


def start_agentcore(home: Path, cwd: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """Start a long-running command (`dev`, `local-deploy --foreground`); its output goes to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, str(HARNESS), *args],
            cwd=cwd, env=environment(home), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _parser_with_our_commands(build: Any) -> Any:
    from open_agentcore.cli import configure, dev, templates

    def parser(argv: Any = None) -> argparse.ArgumentParser:
        top = build()  # every command: the stand-ins below may be named
        commands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
        for module, name in ((dev, "dev"), (templates, "create"), (configure, "configure")):
            if name not in commands.choices:
                module.add_commands(commands)
        _add_stand_ins(commands)
        return top

    return parser


def _add_stand_ins(commands: Any) -> None:
    deploy = commands.add_parser("local-deploy")
    deploy.add_argument("--agent")
    deploy.add_argument("--port", type=int)
    deploy.add_argument("--foreground", action="store_true")
    deploy.add_argument("--env", action="append", default=[])
    deploy.set_defaults(handler=_local_deploy)
    stop = commands.add_parser("local-stop")
    stop.add_argument("--agent")
    stop.set_defaults(handler=_local_stop)
    build = commands.add_parser("local-build")
    build.add_argument("--agent")
    build.set_defaults(handler=_local_build)


def _local_deploy(args: argparse.Namespace) -> int:
    from open_agentcore.cli.local import deploy_local
    from open_agentcore.cli.project import Project

    project = Project.load()
    agent = project.agent(args.agent)
    environment = {**agent.environment, **dict(pair.split("=", 1) for pair in args.env)}
    return deploy_local(project, agent, args.port, args.foreground, environment)


def _local_stop(args: argparse.Namespace) -> int:
    from open_agentcore.cli.local import stop_local
    from open_agentcore.cli.project import Project

    project = Project.load()
    print("stopped" if stop_local(project, project.agent(args.agent)) else "nothing was running")
    return 0


def _local_build(args: argparse.Namespace) -> int:
    from open_agentcore.cli.container import deploy_local_build
    from open_agentcore.cli.project import Project

    project = Project.load()
    agent = project.agent(args.agent)
    return deploy_local_build(project, agent, dict(agent.environment))


if __name__ == "__main__":
    cli = importlib.import_module("open_agentcore.cli.main")
    cli.parser = _parser_with_our_commands(cli.parser)  # type: ignore[attr-defined]
    sys.exit(cli.main(sys.argv[1:]))
