"""`agentcore dev`: the agent on 127.0.0.1 with hot reload, restarted whenever a .py file is saved.

No runtime server and no credentials: the agent runs in its own environment (as `deploy --local`
builds it) under uvicorn's reloader (`reloader.py`), watching the project directory. While it runs,
its port and pid are kept in the agent's deployment state, so `agentcore invoke` reaches it.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from .errors import CliError
from .ports import DEFAULT_PORT, describe_holder, next_free_port
from .processes import runs
from .project import AgentConfig, AgentState, Project

HOST = "127.0.0.1"
RELOADER = Path(__file__).with_name("reloader.py").resolve()
READY_TIMEOUT = 60.0
ENTRYPOINT_NAMES = ("agent.py", "app.py", "main.py")
EXAMPLES = """examples:
  agentcore dev
  agentcore dev --port 9000 --agent hello
  agentcore invoke '{"prompt": "hi"}'    # in another terminal: goes to the dev server
"""


def add_commands(commands: Any) -> None:
    """Register `dev` on the top-level parser."""
    dev = commands.add_parser(
        "dev",
        help="run the agent locally with hot reload",
        description="Serve the agent on 127.0.0.1 and restart it whenever a .py file in the project "
        "changes. Uses the configured agent, else agent.py (or app.py, main.py) in this directory. "
        "Needs no runtime server and no credentials. While it runs, `agentcore invoke` (and "
        "invoke --local) goes to it. Ctrl-C stops it.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dev.add_argument(
        "--port", type=int, help=f"port to try first (default {DEFAULT_PORT}; the next free one)"
    )
    dev.add_argument("--agent", "-a", help="which configured agent (default: the default one)")
    dev.set_defaults(handler=run_dev)


def running_dev(state: AgentState) -> int | None:
    """The port of the agent's `dev` server while it runs, else None."""
    if state.dev_pid is None or state.dev_port is None:
        return None
    return state.dev_port if runs(state.dev_pid, RELOADER.name, state.dev_port) else None


def run_dev(args: argparse.Namespace) -> int:
    from open_agentcore.backends.process import LAUNCHER

    from .local import agent_interpreter, interruptible, terminate, wait_ready
    from .progress import Progress

    project = Project.load()
    agent = dev_agent(project, args.agent)
    wanted = args.port or DEFAULT_PORT
    port = next_free_port(wanted, HOST)
    if port != wanted:
        print(f"port {wanted} is {describe_holder(wanted)}: using {port} instead", flush=True)
    python = agent_interpreter(project, agent, Progress())
    command = [
        str(python), str(RELOADER), "--launcher", str(LAUNCHER), "--code-dir", str(project.root),
        "--entrypoint", agent.entrypoint, "--host", HOST, "--port", str(port),
    ]  # fmt: skip
    environment = {**os.environ, **agent.environment, "PYTHONUNBUFFERED": "1"}
    url = f"http://{HOST}:{port}"
    with interruptible():
        # Its own session: Ctrl-C reaches only us, and we stop the reloader with one SIGTERM.
        process = subprocess.Popen(  # noqa: S603 - our reloader, arguments built here
            command, cwd=project.root, env=environment, stdin=subprocess.DEVNULL, start_new_session=True
        )
        try:
            problem = wait_ready(process, url, READY_TIMEOUT)
            if process.poll() is not None:
                raise CliError(f"the dev server exited with code {process.returncode}")
            _record(project, agent.name, port, process.pid)
            _print_ready(agent, project.root, url, problem)
            code = process.wait()
        except KeyboardInterrupt:
            terminate(process)
            return 0
        finally:
            if process.poll() is None:
                terminate(process)
            _forget(project, agent.name, process.pid)
    if code != 0:
        raise CliError(f"the dev server exited with code {code}")
    return 0


def dev_agent(project: Project, name: str | None) -> AgentConfig:
    """The configured agent; unconfigured, the one entrypoint file in this directory."""
    if project.agents or name:
        return project.agent(name)
    found = [entry for entry in ENTRYPOINT_NAMES if (project.root / entry).is_file()]
    if len(found) != 1:
        raise CliError(
            "no agent is configured here and no single agent.py/app.py/main.py to run: "
            "run `agentcore configure --entrypoint FILE` first"
        )
    stem = re.sub(r"\W", "_", project.root.name).lstrip("_0123456789")[:48]
    return AgentConfig(name=stem or "agent", entrypoint=found[0])


def _record(project: Project, name: str, port: int, pid: int) -> None:
    state = project.state(name)
    state.dev_port, state.dev_pid = port, pid
    project.save_state(name, state)


def _forget(project: Project, name: str, pid: int) -> None:
    """Clear the record, unless another `dev` of this agent has replaced it since."""
    state = project.state(name)
    if state.dev_pid == pid:
        state.dev_port = state.dev_pid = None
        project.save_state(name, state)


def _print_ready(agent: AgentConfig, root: Path, url: str, problem: str | None) -> None:
    if problem is None:
        print(f"{agent.name} is running at {url} with hot reload (watching {root}); Ctrl-C stops it")
    else:
        print(f"{url} does not answer yet ({problem}): fix the errors above and save; it reloads")
    payload = '{"prompt": "hello"}'
    print(f"try: agentcore invoke '{payload}'", flush=True)
    print(f"     curl -s {url}/invocations -H 'Content-Type: application/json' -d '{payload}'", flush=True)


__all__ = ["add_commands", "dev_agent", "run_dev", "running_dev"]
