"""`cancel`: cancel one invocation in flight on the runtime server; its session stays warm."""

from __future__ import annotations

import argparse
from typing import Any

from .errors import CliError


def add_commands(commands: Any) -> None:
    cancel = commands.add_parser(
        "cancel",
        help="cancel one invocation in flight (its session and worker stay)",
        epilog="examples:\n"
        "  agentcore cancel                 # the invocation `agentcore invoke` sent last\n"
        "  agentcore cancel job-1 -s my-session\n"
        "the request id is the one the call was sent with (`invoke --request-id`, or the "
        "X-Amzn-Bedrock-AgentCore-Runtime-Request-Id header) or its answer named (x-amzn-RequestId)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cancel.add_argument(
        "request_id",
        metavar="REQUEST_ID",
        nargs="?",
        help="the invocation's request id (default: the last one `agentcore invoke` sent)",
    )
    cancel.add_argument("--agent", "-a", help="which configured agent (default: the default one)")
    cancel.add_argument(
        "--session-id", "-s", help="the invocation's session (default: the one `invoke` last used)"
    )
    cancel.set_defaults(handler=cancel_invocation)


def cancel_invocation(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    from .project import Project
    from .remote import RuntimeServer

    project = Project.load()
    agent = project.agent(args.agent)
    state = project.state(agent.name)
    if not state.runtime_arn:
        raise CliError(
            f"agent {agent.name!r} is not deployed to a runtime server: "
            f"agentcore deploy{project.agent_option(agent.name)}"
        )
    session_id = args.session_id or state.session_id
    if not session_id:
        raise CliError("no session to look in: no invoke has used one yet (pass --session-id)")
    request_id = args.request_id or state.request_id
    if not request_id:
        raise CliError("which invocation? no invoke has sent one yet: agentcore cancel REQUEST_ID")
    path = (
        f"/_agentcore/runtimes/{quote(state.runtime_arn, safe='')}/sessions/{quote(session_id, safe='')}"
        f"/requests/{quote(request_id, safe='')}/cancel"
    )
    RuntimeServer.connect().request("POST", path)
    print(f"cancelled invocation {request_id} of session {session_id}; the session stays warm")
    return 0


__all__ = ["add_commands"]
