"""`status`, `stop-session`, `logs` and `destroy`: looking after a deployed (or local) agent."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any
from urllib.parse import quote

from .control_client import ControlClient
from .errors import CliError
from .project import AgentConfig, AgentState, Project
from .remote import RemoteError, RuntimeServer

_DURATION = re.compile(r"(\d+)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_commands(commands: Any) -> None:
    status = commands.add_parser(
        "status",
        help="show the agent's configuration, runtime, endpoints and live sessions",
        epilog="examples: agentcore status · agentcore status --json",
    )
    status.add_argument("--agent", "-a", help="which configured agent (default: the default one)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=show_status)

    stop = commands.add_parser(
        "stop-session",
        help="stop a session of the deployed agent (default: the last one used)",
        epilog="example: agentcore stop-session -s my-session",
    )
    stop.add_argument("--agent", "-a", help="which configured agent (default: the default one)")
    stop.add_argument("--session-id", "-s", help="the session (default: the one `invoke` last used)")
    stop.set_defaults(handler=stop_session)

    logs = commands.add_parser(
        "logs",
        help="print what the agent's workers wrote (the local log after deploy --local)",
        epilog="examples: agentcore logs · agentcore logs --follow · agentcore logs -s s1 --since 10m",
    )
    logs.add_argument("--agent", "-a", help="which configured agent (default: the default one)")
    logs.add_argument("--session-id", "-s", help="one session (default: the one `invoke` last used)")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines (Ctrl-C stops)")
    logs.add_argument(
        "--since", metavar="DURATION", help="only lines of the last 30s, 10m, 2h, 1d (JSON logs)"
    )
    logs.set_defaults(handler=show_logs)

    destroy = commands.add_parser(
        "destroy",
        help="delete the agent's runtime (and endpoints, sessions) and its configuration",
        epilog="examples: agentcore destroy --dry-run · agentcore destroy --force",
    )
    destroy.add_argument("--agent", "-a", help="which configured agent (default: the default one)")
    destroy.add_argument("--dry-run", action="store_true", help="say what would be deleted, delete nothing")
    destroy.add_argument("--force", action="store_true", help="do not ask for confirmation")
    destroy.add_argument("--local", action="store_true", help="only stop the local agent process")
    destroy.set_defaults(handler=destroy_agent)


# status -------------------------------------------------------------------------------------


def show_status(args: argparse.Namespace) -> int:
    project = Project.load()
    agent = project.agent(args.agent)
    state = project.state(agent.name)
    report: dict[str, Any] = {
        "agent": agent.name,
        "config": agent.to_yaml(),
        "mode": state.mode,
        "lastSessionId": state.session_id,
    }
    if state.mode == "local" or state.local_port:
        report["local"] = {"port": state.local_port, "pid": state.local_pid}
    if state.runtime_id:
        report["runtime"] = _runtime_report(state)
        report["runtime"].setdefault("server", state.endpoint_url)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(f"agent {agent.name}  (entrypoint {agent.entrypoint}, protocol {agent.protocol})")
    if "local" in report:
        print(f"  local: http://127.0.0.1:{state.local_port} (pid {state.local_pid})")
    runtime = report.get("runtime")
    target = project.agent_option(agent.name)
    if runtime is None:
        print(f"  not deployed: agentcore deploy{target}")
        return 0
    if runtime.get("status") == "NOT_FOUND":
        print(
            f"  runtime {state.runtime_id} no longer exists on {runtime['server']}: "
            f"agentcore deploy{target} creates a new one"
        )
        return 0
    print(f"  server {runtime['server']}")
    print(f"  runtime {runtime['id']}: {runtime['status']}, version {runtime['version']}")
    print(f"  ARN {runtime['arn']}")
    if runtime.get("failureReason"):
        print(f"  failure: {runtime['failureReason']}")
    for endpoint in runtime["endpoints"]:
        print(f"  endpoint {endpoint['name']}: {endpoint['status']} → version {endpoint.get('liveVersion')}")
    print(f"  versions: {', '.join(runtime['versions'])}")
    sessions = runtime["sessions"]
    print(f"  live sessions: {len(sessions)}")
    for session in sessions:
        print(f"    {session['sessionId']}  {session['state']}  idle {session['idleSeconds']:.0f}s")
    return 0


def _runtime_report(state: AgentState) -> dict[str, Any]:
    client = ControlClient(RuntimeServer.connect())
    runtime_id = state.runtime_id or ""
    described = client.get_runtime(runtime_id)
    if described is None:
        return {"id": runtime_id, "status": "NOT_FOUND", "server": client.url}
    return {
        "id": runtime_id,
        "server": client.url,
        "arn": described.arn,
        "status": described.status,
        "version": described.version,
        "failureReason": described.failure_reason,
        "endpoints": [
            {"name": e.name, "status": e.status, "liveVersion": e.live_version}
            for e in client.list_endpoints(runtime_id)
        ],
        "versions": [v.version for v in client.list_versions(runtime_id)],
        "sessions": client.server.sessions(runtime_id),
    }


# stop-session -------------------------------------------------------------------------------


def stop_session(args: argparse.Namespace) -> int:
    project = Project.load()
    agent = project.agent(args.agent)
    state = _deployed(project, agent)
    session_id = args.session_id or state.session_id
    if not session_id:
        if state.stopped_session_id:
            print(
                f"session {state.stopped_session_id} is already stopped; no invoke has used a session since"
            )
            return 0
        raise CliError("no session to stop: no invoke has used one yet (or pass --session-id)")
    client = ControlClient(RuntimeServer.connect())
    if client.stop_session(state.runtime_arn or "", session_id):
        print(f"stopped session {session_id}")
    else:
        print(f"session {session_id} has no running worker: already stopped, ended or never started")
    if session_id == state.session_id:
        state.session_id, state.stopped_session_id = None, session_id
        project.save_state(agent.name, state)
    return 0


# logs ---------------------------------------------------------------------------------------


def show_logs(args: argparse.Namespace) -> int:
    project = Project.load()
    agent = project.agent(args.agent)
    state = project.state(agent.name)
    since = parse_since(args.since) if args.since else None
    if state.mode == "local" and not args.session_id:
        path = project.state_dir(agent.name) / "local.log"
        if not path.exists():
            raise CliError(f"no local log yet at {path}")
        return _print_file(path.read_bytes, args.follow, since)
    state = _deployed(project, agent)
    server = RuntimeServer.connect()
    runtime_id = state.runtime_id or ""
    session_id = args.session_id or state.session_id
    if not session_id:
        sessions = server.sessions(runtime_id, every=True)
        if not sessions:
            raise CliError("the runtime has no sessions yet: agentcore invoke starts one")
        session_id = sessions[-1]["sessionId"]
    # One path segment whatever the id holds ("/", "?", non-ASCII): the server decodes it once.
    log_path = f"/_agentcore/runtimes/{runtime_id}/sessions/{quote(session_id, safe='')}/logs"

    def read() -> bytes:
        try:
            return server.request("GET", log_path).content
        except RemoteError as error:
            if error.code == "ResourceNotFoundException":
                raise CliError(f"session {session_id} has no log on the server") from None
            raise

    return _print_file(read, args.follow, since)


def _print_file(read: Any, follow: bool, since: float | None) -> int:
    printed = 0
    try:
        while True:
            data: bytes = read()
            if len(data) < printed:
                printed = 0  # a new worker for this session: its log starts again
            fresh = data[printed:]
            complete = fresh[: fresh.rfind(b"\n") + 1] if follow else fresh
            for line in complete.decode(errors="replace").splitlines():
                if since is None or _recent(line, since):
                    print(line, flush=True)
            printed += len(complete)
            if not follow:
                return 0
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0


def parse_since(text: str) -> float:
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise CliError(f"--since takes a duration like 30s, 10m, 2h or 1d, not {text!r}")
    return time.time() - int(match.group(1)) * _SECONDS[match.group(2)]


def _recent(line: str, since: float) -> bool:
    """Lines that carry a timestamp (our JSON logs) are filtered by it; other lines are kept."""
    try:
        record = json.loads(line)
    except ValueError:
        return True
    stamp = record.get("timestamp") if isinstance(record, dict) else None
    if not isinstance(stamp, str):
        return True
    from datetime import datetime

    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() >= since
    except ValueError:
        return True


# destroy ------------------------------------------------------------------------------------


def destroy_agent(args: argparse.Namespace) -> int:
    project = Project.load()
    agent = project.agent(args.agent)
    state = project.state(agent.name)
    if args.local:
        from .local import stop_local

        if args.dry_run:
            print(f"would stop the local process of {agent.name} (pid {state.local_pid})")
            return 0
        print("stopped the local agent" if stop_local(project, agent) else "no local agent was running")
        return 0
    plan = []
    if state.local_pid:
        plan.append(f"stop the local process (pid {state.local_pid})")
    if state.runtime_id:
        plan.append(
            f"delete runtime {state.runtime_id} with its endpoints and sessions on {state.endpoint_url}"
        )
    plan.append(f"remove agent {agent.name!r} from {project.config_path.name} and its deployment state")
    if args.dry_run:
        print("would:")
        for step in plan:
            print(f"  - {step}")
        return 0
    if not args.force:
        if not sys.stdin.isatty():
            raise CliError("destroy deletes the runtime: confirm with --force (or see --dry-run)")
        print("this will:\n" + "\n".join(f"  - {step}" for step in plan))
        if input("continue? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    if state.local_pid:
        from .local import stop_local

        stop_local(project, agent)
    if state.runtime_id:
        client = ControlClient(RuntimeServer.connect())
        if client.delete_runtime(state.runtime_id):
            print(f"deleted runtime {state.runtime_id}")
        else:
            print(f"runtime {state.runtime_id} was already gone")
    project.forget(agent.name)
    print(f"removed agent {agent.name!r} from {project.config_path.name}")
    return 0


def _deployed(project: Project, agent: AgentConfig) -> AgentState:
    state = project.state(agent.name)
    if not state.runtime_id:
        raise CliError(
            f"agent {agent.name!r} is not deployed to a runtime server: "
            f"agentcore deploy{project.agent_option(agent.name)}"
        )
    return state


__all__ = ["add_commands", "parse_since"]
