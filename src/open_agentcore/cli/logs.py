"""`agentcore logs`: what the agent's workers wrote, as `time level message` lines.

The SDK writes one JSON object per line (`timestamp`, `level`, `message`, a `stackTrace` list when an
exception is logged); those are rendered for people, with tracebacks as Python prints them. Other
lines (print(), uvicorn) are shown as they are. `--json` prints the lines exactly as stored.
`--follow` asks the server for what follows the last complete line it printed, every half second.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CliError
from .project import Project

if TYPE_CHECKING:
    from .remote import RuntimeServer

POLL_SECONDS = 0.5
_DURATION = re.compile(r"(\d+)([smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

EXAMPLES = """examples:
  agentcore logs
  agentcore logs --follow
  agentcore logs --session-id s1 --since 10m
  agentcore logs --json
"""


def add_commands(commands: Any) -> None:
    logs = commands.add_parser(
        "logs",
        help="print what the agent's workers wrote (the local log after deploy --local)",
        description="Print a session's log (default: the session `invoke` last used, else the "
        "newest one): the agent's JSON log lines as time, level and message, tracebacks as "
        "tracebacks, and anything else it printed as it is. When there is nothing yet it says so "
        "on standard error.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    logs.add_argument("--agent", "-a", help="which configured agent (default: the default one)")
    logs.add_argument("--session-id", "-s", help="one session (default: the one `invoke` last used)")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines (Ctrl-C stops)")
    logs.add_argument(
        "--since", metavar="DURATION", help="only lines of the last 30s, 10m, 2h, 1d (JSON logs)"
    )
    logs.add_argument("--json", action="store_true", help="the log lines as stored (JSON lines), unrendered")
    logs.set_defaults(handler=show_logs)


@dataclass
class Chunk:
    """Bytes of a log from `start` on; `missing` when there is no log at all (yet)."""

    start: int
    data: bytes
    missing: bool = False


Reader = Callable[[int], Chunk]


def show_logs(args: argparse.Namespace) -> int:
    project = Project.load()
    agent = project.agent(args.agent)
    state = project.state(agent.name)
    since = parse_since(args.since) if args.since else None
    if state.mode == "local" and not args.session_id:
        path = project.state_dir(agent.name) / "local.log"
        return follow(_file_reader(path), args, since, f"the local agent's log {path}")
    if not state.runtime_id:
        from .dev import running_dev

        if running_dev(state) is not None:
            raise CliError(
                f"{agent.name} runs under `agentcore dev`, which prints its log in its own terminal"
            )
        raise CliError(f"agent {agent.name!r} is not deployed to a runtime server: agentcore deploy")
    from .remote import RuntimeServer

    server = RuntimeServer.connect()
    runtime_id = state.runtime_id
    session_id = args.session_id or state.session_id
    if not session_id:
        sessions = server.sessions(runtime_id, every=True)
        if not sessions:
            print(
                f"agentcore: runtime {runtime_id} has no sessions yet: agentcore invoke starts one",
                file=sys.stderr,
            )
            return 0
        session_id = str(sessions[-1]["sessionId"])
    return follow(_server_reader(server, runtime_id, session_id), args, since, f"session {session_id}")


def follow(read: Reader, args: argparse.Namespace, since: float | None, what: str) -> int:
    """Print the log once, or with `--follow` keep printing complete lines as they are written."""
    offset = 0
    said_empty = False
    try:
        while True:
            chunk = read(offset)
            # Only complete lines: a line being written is printed whole on a later read.
            complete = chunk.data[: chunk.data.rfind(b"\n") + 1] if args.follow else chunk.data
            for line in complete.decode(errors="replace").splitlines():
                if since is None or _recent(line, since):
                    print(line if args.json else render(line), flush=True)
            offset = chunk.start + len(complete)
            if offset == 0 and not said_empty:
                said_empty = True
                reason = "has no log yet" if chunk.missing else "has no output yet"
                print(f"agentcore: {what} {reason}" + (": waiting" if args.follow else ""), file=sys.stderr)
            if not args.follow:
                return 0
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        return 0


def render(line: str) -> str:
    """A JSON log line as `time level message` (then its traceback); any other line unchanged."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict) or not isinstance(record.get("message"), str):
        return line
    parts = [_time(record.get("timestamp")), str(record.get("level", "")).ljust(5), record["message"]]
    text = " ".join(part for part in parts if part)
    trace = record.get("stackTrace")
    if isinstance(trace, list):
        text += "\n" + "".join(str(item) for item in trace).rstrip("\n")
    elif isinstance(trace, str) and trace:
        text += "\n" + trace.rstrip("\n")
    return text


def _time(stamp: Any) -> str:
    """The local time of an ISO timestamp: the time of day for today's, date and time otherwise."""
    if not isinstance(stamp, str):
        return ""
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return stamp
    shown = moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    return shown if moment.date() == datetime.now().astimezone().date() else f"{moment:%Y-%m-%d} {shown}"


def _file_reader(path: Path) -> Reader:
    def read(offset: int) -> Chunk:
        try:
            with path.open("rb") as log:
                size = log.seek(0, 2)
                start = offset if offset <= size else 0  # rewritten by a new deploy --local
                log.seek(start)
                return Chunk(start, log.read())
        except FileNotFoundError:
            return Chunk(0, b"", missing=True)

    return read


def _server_reader(server: RuntimeServer, runtime_id: str, session_id: str) -> Reader:
    from urllib.parse import quote

    from .remote import RemoteError

    # One path segment whatever the id holds ("/", "?", non-ASCII): the server decodes it once.
    path = f"/_agentcore/runtimes/{runtime_id}/sessions/{quote(session_id, safe='')}/logs"

    def read(offset: int) -> Chunk:
        try:
            reply = server.request("GET", f"{path}?offset={offset}")
        except RemoteError as error:
            if error.code == "ResourceNotFoundException":
                return Chunk(0, b"", missing=True)
            raise
        header = reply.headers.get("x-agentcore-log-offset")
        if header is not None:
            return Chunk(int(header), reply.content)
        # A server without offsets sends the whole log: skip what was printed, unless it shrank.
        if len(reply.content) < offset:
            return Chunk(0, reply.content)
        return Chunk(offset, reply.content[offset:])

    return read


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
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() >= since
    except ValueError:
        return True


__all__ = ["add_commands", "follow", "parse_since", "render", "show_logs"]
