"""Local mode: `agentcore deploy --local` runs the agent as a process on 127.0.0.1, `destroy --local`
stops it.

The agent runs in the environment its requirements call for (built with uv, cached under
`$AGENTCORE_HOME/cache` and shared with the runtime server's builds), served by the same launcher
the server's workers use. Detached, it outlives the CLI in its own session; its pid and port are
kept in the agent's deployment state so `invoke` can find it and `destroy --local` can stop it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from open_agentcore.artifacts.environments import BuildFailed, EnvironmentBuilder, requirements_file
from open_agentcore.backends.process import LAUNCHER
from open_agentcore.server import agentcore_home

from .errors import CliError
from .ports import DEFAULT_PORT, describe_holder, next_free_port, port_free
from .processes import alive, runs
from .progress import Progress
from .project import AgentConfig, Project

HOST = "127.0.0.1"
LOG_FILE = "local.log"
BUILD_LOG_FILE = "build.log"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 20


def deploy_local(
    project: Project, agent: AgentConfig, port: int | None, foreground: bool, environment: dict[str, str]
) -> int:
    """Run the agent on 127.0.0.1 (default port 8080, else the next free one) and record where.

    Detached by default: returns 0 once `/ping` answers. With `foreground` it stays attached until
    the agent exits or Ctrl-C stops it, and returns the agent's exit code.
    """
    progress = Progress()
    state = project.state(agent.name)
    previous = state.local_pid is not None and is_local_agent(state.local_pid, state.local_port)
    # Chosen before the (maybe long) build, so a taken port fails fast; ours is about to be freed.
    chosen = _choose_port(port, state.local_port if previous else None)
    python = agent_interpreter(project, agent, progress)
    if stop_local(project, agent):
        progress.done("stopped the previous local process of this agent")
    command = launcher_command(python, project, agent, chosen, detached=not foreground)
    process_environment = {**os.environ, **environment, "PYTHONUNBUFFERED": "1"}
    if foreground:
        return _run_attached(project, agent, command, process_environment, chosen)
    log_path = project.state_dir(agent.name) / LOG_FILE
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our launcher, arguments built here
            command,
            cwd=project.root,
            env=process_environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://{HOST}:{chosen}"
    try:
        with progress.step(f"starting {agent.name} on {url}"):
            problem = wait_ready(process, url, START_TIMEOUT)
    except BaseException:  # Ctrl-C while waiting: nothing records it, so nothing may outlive us
        terminate(process)
        raise
    if problem is not None:
        terminate(process)
        _print_tail(log_path)
        raise CliError(f"{problem} (log: {_shown(project, log_path)})")
    _record(project, agent, chosen, process.pid)
    progress.done(f"{agent.name} is running at {url} (pid {process.pid}, log {_shown(project, log_path)})")
    _print_next(url)
    return 0


def stop_local(project: Project, agent: AgentConfig) -> bool:
    """Stop the agent's recorded local process and forget it; False when none was running.

    Only a process whose command line is still our launcher on the recorded port is signalled:
    a recorded pid may since have been reused by something else.
    """
    state = project.state(agent.name)
    pid, port = state.local_pid, state.local_port
    running = False
    if pid is not None and is_local_agent(pid, port):
        _stop_process_group(pid)
        running = True
    if pid is not None or port is not None or state.mode == "local":
        state.local_pid = state.local_port = None
        if state.mode == "local":
            state.mode = "server" if state.runtime_id else None
        project.save_state(agent.name, state)
    return running


def find_requirements(project: Project, agent: AgentConfig) -> Path | None:
    """The configured requirements file, else requirements.txt/pyproject.toml beside the
    entrypoint, then in the project root."""
    if agent.requirements_file:
        path = project.path_of(agent.requirements_file)
        if not path.is_file():
            raise CliError(f"requirements file {agent.requirements_file} does not exist")
        return path
    entrypoint = project.path_of(agent.entrypoint)
    for directory in (entrypoint.parent, project.root):
        found = requirements_file(directory)
        if found is not None:
            return found
    return None


def agent_interpreter(project: Project, agent: AgentConfig, progress: Progress) -> Path:
    """The Python to run the agent with: a cached environment with its requirements, or ours."""
    requirements = find_requirements(project, agent)
    if requirements is None:
        progress.done("no requirements file: the agent runs on this interpreter")
        return Path(sys.executable)
    shown = _shown(project, requirements)
    if not _lists_packages(requirements):
        progress.done(f"{shown} lists no packages: the agent runs on this interpreter")
        return Path(sys.executable)
    log_path = project.state_dir(agent.name) / BUILD_LOG_FILE
    builder = EnvironmentBuilder(agentcore_home() / "cache")
    with progress.step(f"preparing the environment for {shown}"):
        try:
            built = builder.build(_requirements_dir(project, agent, requirements), log_path)
        except BuildFailed as error:
            raise CliError(f"installing {shown} failed: {error.reason} (log: {error.log_path})") from None
    # The builder says in its log whether it reused the environment.
    cached = log_path.read_text(errors="replace").startswith(f"environment {built.env_hash} is cached")
    progress.done(f"environment {built.env_hash[:12]} {'reused from the cache' if cached else 'built'}")
    return built.python


def launcher_command(
    python: Path, project: Project, agent: AgentConfig, port: int, detached: bool
) -> list[str]:
    """The command that serves the agent on 127.0.0.1:`port` with the server's worker launcher."""
    command = [
        str(python), str(LAUNCHER), "--code-dir", str(project.root), "--entrypoint", agent.entrypoint,
        "--host", HOST, "--port", str(port),
    ]  # fmt: skip
    return [*command, "--no-die-with-parent"] if detached else command


def wait_ready(process: subprocess.Popen[bytes], url: str, timeout: float) -> str | None:
    """None once `url/ping` answers 200; else why not (the process exited, or `timeout` passed)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while True:
            code = process.poll()
            if code is not None:
                return f"the agent exited with code {code} before answering /ping"
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url + "/ping").status_code == 200:
                    return None
            if time.monotonic() > deadline:
                return f"the agent did not answer {url}/ping within {timeout:g}s"
            time.sleep(0.05)


def is_local_agent(pid: int, port: int | None) -> bool:
    """True when `pid` is alive and its command line is our launcher (serving `port`, if given)."""
    return runs(pid, LAUNCHER.name, port)


def _choose_port(port: int | None, ours: int | None) -> int:
    """The asked-for port (an error when taken), else 8080 or the next free one; `ours` counts as free."""
    if port is not None:
        if port != ours and not port_free(port, HOST):
            raise CliError(f"port {port} is {describe_holder(port)}: stop it, or pass another --port")
        return port
    if ours == DEFAULT_PORT:
        return ours
    taken = not port_free(DEFAULT_PORT, HOST)
    chosen = ours if ours is not None and taken else next_free_port(DEFAULT_PORT, HOST)
    if chosen != DEFAULT_PORT:
        print(f"port {DEFAULT_PORT} is {describe_holder(DEFAULT_PORT)}: using {chosen} instead", flush=True)
    return chosen


def _run_attached(
    project: Project, agent: AgentConfig, command: list[str], environment: dict[str, str], port: int
) -> int:
    url = f"http://{HOST}:{port}"
    with interruptible():
        # Its own session: Ctrl-C reaches only us, and we stop the agent with one clean SIGTERM.
        process = subprocess.Popen(  # noqa: S603 - our launcher, arguments built here
            command, cwd=project.root, env=environment, stdin=subprocess.DEVNULL, start_new_session=True
        )
        try:
            problem = wait_ready(process, url, START_TIMEOUT)
            if problem is not None:
                raise CliError(problem)
            _record(project, agent, port, process.pid)
            print(f"{agent.name} is running at {url} (pid {process.pid}); Ctrl-C stops it", flush=True)
            _print_next(url)
            code = process.wait()
        except KeyboardInterrupt:
            code = terminate(process)
        finally:
            if process.poll() is None:
                terminate(process)
            if project.state(agent.name).local_pid == process.pid:
                stop_local(project, agent)
    # A signal death is reported the way shells do.
    return code if code >= 0 else 128 - code


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Within: Ctrl-C and SIGTERM raise KeyboardInterrupt, so an attached child gets stopped.

    SIGINT is reset too: a shell starts background jobs with it ignored.
    """
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def terminate(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM the process group we started, SIGKILL after STOP_TIMEOUT; its exit code."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.wait(STOP_TIMEOUT)


def _stop_process_group(pid: int) -> None:
    """Stop a process we may not have started (no Popen): its group when it leads one, else it."""
    try:
        leads_group = os.getpgid(pid) == pid
    except ProcessLookupError:
        return

    def send(signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            if leads_group:
                os.killpg(pid, signum)
            else:
                os.kill(pid, signum)

    send(signal.SIGTERM)
    if _gone_within(pid, STOP_TIMEOUT):
        return
    send(signal.SIGKILL)
    if not _gone_within(pid, STOP_TIMEOUT):
        raise CliError(f"the local agent (pid {pid}) did not stop")


def _gone_within(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _record(project: Project, agent: AgentConfig, port: int, pid: int) -> None:
    state = project.state(agent.name)
    state.mode, state.local_port, state.local_pid = "local", port, pid
    project.save_state(agent.name, state)


def _print_next(url: str) -> None:
    payload = '{"prompt": "hello"}'
    print(f"next: agentcore invoke '{payload}'  ·  agentcore destroy --local")
    print(f"      curl -s {url}/invocations -H 'Content-Type: application/json' -d '{payload}'", flush=True)


def _print_tail(log_path: Path) -> None:
    lines = log_path.read_text(errors="replace").strip().splitlines()[-LOG_TAIL_LINES:]
    if lines:
        print(f"--- {log_path.name} (last lines) ---", file=sys.stderr)
        print("\n".join(lines), file=sys.stderr, flush=True)


def _lists_packages(requirements: Path) -> bool:
    """False for a requirements.txt that holds only comments and blank lines (nothing to build)."""
    if requirements.suffix == ".toml":
        return True
    lines = requirements.read_text(errors="replace").splitlines()
    return any(line.strip() and not line.strip().startswith("#") for line in lines)


def _requirements_dir(project: Project, agent: AgentConfig, requirements: Path) -> Path:
    """A directory whose requirements file is `requirements` (the builder takes a directory)."""
    if requirements_file(requirements.parent) == requirements:
        return requirements.parent
    staged = project.state_dir(agent.name) / "requirements"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    name = "pyproject.toml" if requirements.suffix == ".toml" else "requirements.txt"
    shutil.copyfile(requirements, staged / name)
    return staged


def _shown(project: Project, path: Path) -> str:
    return str(path.relative_to(project.root)) if path.is_relative_to(project.root) else str(path)


__all__ = [
    "agent_interpreter",
    "deploy_local",
    "find_requirements",
    "interruptible",
    "launcher_command",
    "stop_local",
    "terminate",
    "wait_ready",
]
