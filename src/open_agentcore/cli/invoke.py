"""`agentcore invoke`: send a payload to the agent (deployed or local) and print what comes back.

Server-sent events are printed as they arrive: JSON strings as running text, other values one JSON
document per line. `--raw` prints the bytes as received, `--json` one result object at the end.
`--ws` talks to the agent's WebSocket instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .errors import CliError
from .project import AgentState, Project
from .remote import SESSION_HEADER, USER_HEADER, RuntimeServer, remote_error, runtime_path

if TYPE_CHECKING:
    import httpx

CUSTOM_PREFIX = "X-Amzn-Bedrock-AgentCore-Runtime-Custom-"


def add_commands(commands: Any) -> None:
    invoke = commands.add_parser(
        "invoke",
        help="invoke the agent with a payload and print its answer",
        description='Send PAYLOAD (JSON, or plain text sent as {"prompt": text}) to the agent: the '
        "deployed runtime after `deploy`, the local process after `deploy --local` (or force one "
        "with --remote / --local). The session id is sticky: later invokes reuse it until "
        "--new-session.",
        epilog='examples: agentcore invoke \'{"prompt": "hi"}\' · agentcore invoke hello --session-id s1 · '
        "agentcore invoke '{\"n\": 3}' --ws",
    )
    invoke.add_argument("payload", help="JSON, or plain text")
    invoke.add_argument("--agent", "-a", help="which configured agent (default: the default one)")
    invoke.add_argument("--session-id", "-s", help="session to use (1-256 characters); remembered")
    invoke.add_argument("--new-session", action="store_true", help="start a new session id")
    invoke.add_argument("--user-id", "-u", help="sent as the runtime user id header")
    invoke.add_argument("--bearer-token", help="OAuth token for a JWT runtime (or $AGENTCORE_BEARER_TOKEN)")
    invoke.add_argument("--headers", metavar="K:v,K2:v", help="custom headers; the custom prefix is added")
    target = invoke.add_mutually_exclusive_group()
    target.add_argument("--local", action="store_true", help="invoke the local agent")
    target.add_argument("--remote", action="store_true", help="invoke the deployed runtime")
    output = invoke.add_mutually_exclusive_group()
    output.add_argument("--raw", action="store_true", help="print the response bytes as received")
    output.add_argument("--json", action="store_true", help="print one JSON result object")
    invoke.add_argument("--ws", action="store_true", help="use the agent's WebSocket (/ws)")
    invoke.add_argument("--timeout", type=float, default=None, help="seconds to wait (default: no limit)")
    invoke.set_defaults(handler=run_invoke)


def run_invoke(args: argparse.Namespace) -> int:
    project = Project.load()
    agent = project.agent(args.agent)
    state = project.state(agent.name)
    payload = encode_payload(args.payload)
    session_id = _session(args, state)
    headers = {SESSION_HEADER: session_id, "content-type": "application/json"}
    if args.user_id:
        headers[USER_HEADER] = args.user_id
    headers.update(custom_headers(args.headers))
    token = args.bearer_token or os.environ.get("AGENTCORE_BEARER_TOKEN")
    local = args.local or (not args.remote and state.mode == "local")
    if local and not state.local_port:
        raise CliError(f"agent {agent.name!r} is not running locally: agentcore deploy --local")
    if not local and not state.runtime_arn:
        raise CliError(f"agent {agent.name!r} is not deployed: agentcore deploy (or deploy --local)")
    state.session_id = session_id
    project.save_state(agent.name, state)
    if args.ws:
        from .websocket import talk

        return talk(state, local, payload, headers, token, args)
    if local:
        url = f"http://127.0.0.1:{state.local_port}/invocations"
        return _post(url, payload, headers, session_id, args, server=None)
    server = RuntimeServer.connect()
    path = runtime_path(state.runtime_arn or "") + "/invocations"
    if token:
        # A bearer token replaces the SigV4 signature (a runtime with a JWT authorizer).
        headers = {**headers, "authorization": f"Bearer {token}"}
        return _post(server.url + path, payload, headers, session_id, args, server=server)
    with server.stream("POST", path, payload, headers, timeout=args.timeout) as reply:
        return show(reply, session_id, args)


def _post(
    url: str, payload: bytes, headers: dict[str, str], session_id: str, args: argparse.Namespace,
    server: RuntimeServer | None,
) -> int:  # fmt: skip
    """An unsigned POST, streamed: to the local agent, or with a bearer token to the server."""
    import httpx

    verify = server.tls() if server is not None else True
    try:
        with httpx.stream(
            "POST", url, content=payload, headers=headers, verify=verify,
            timeout=httpx.Timeout(60.0, read=args.timeout),
        ) as reply:  # fmt: skip
            if reply.status_code >= 400:
                reply.read()
                if server is not None:
                    raise remote_error(reply)
                raise CliError(f"the agent answered {reply.status_code}: {reply.text.strip()[:500]}")
            return show(reply, session_id, args)
    except httpx.HTTPError as error:
        where = "the runtime server" if server is not None else f"the local agent at {url}"
        raise CliError(f"{where} did not answer: {error}") from None


def encode_payload(text: str) -> bytes:
    try:
        json.loads(text)
    except ValueError:
        return json.dumps({"prompt": text}).encode()
    return text.encode()


def custom_headers(text: str | None) -> dict[str, str]:
    headers = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition(":")
        name = name.strip()
        if not sep or not name:
            raise CliError(f"--headers takes Name:value pairs separated by commas, not {item.strip()!r}")
        if not name.lower().startswith(CUSTOM_PREFIX.lower()):
            name = CUSTOM_PREFIX + name
        headers[name] = value.strip()
    return headers


def _session(args: argparse.Namespace, state: AgentState) -> str:
    if args.session_id:
        if not 1 <= len(args.session_id) <= 256:
            raise CliError("--session-id must be 1 to 256 characters")
        return str(args.session_id)
    if args.new_session or not state.session_id:
        return str(uuid.uuid4())
    return state.session_id


def show(reply: httpx.Response, session_id: str, args: argparse.Namespace) -> int:
    """Print a response as it streams in."""
    content_type = reply.headers.get("content-type", "")
    if args.raw:
        for chunk in reply.iter_raw():
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
        return 0
    if content_type.startswith("text/event-stream"):
        events: list[Any] | None = [] if args.json else None
        texts_open = False
        for data in sse_data(reply.iter_text()):
            value = _parse(data)
            if events is not None:
                events.append(value)
            elif isinstance(value, str):
                print(value, end="", flush=True)
                texts_open = True
            else:
                if texts_open:
                    print()
                    texts_open = False
                print(json.dumps(value), flush=True)
        if texts_open:
            print()
        if events is not None:
            print(json.dumps({"sessionId": session_id, "contentType": content_type, "events": events}))
        return 0
    body = reply.read().decode(errors="replace")
    if args.json:
        print(json.dumps({"sessionId": session_id, "contentType": content_type, "response": _parse(body)}))
    else:
        print(body.rstrip("\n"))
    return 0


def sse_data(chunks: Iterator[str]) -> Iterator[str]:
    """The `data` of each server-sent event, joined over its `data:` lines."""
    buffer = ""
    lines: list[str] = []
    for chunk in chunks:
        buffer += chunk
        while "\n" in buffer:
            line, buffer = buffer.split("\n", 1)
            line = line.rstrip("\r")
            if line == "":
                if lines:
                    yield "\n".join(lines)
                    lines = []
            elif line.startswith("data:"):
                lines.append(line[5:].removeprefix(" "))
    if lines:
        yield "\n".join(lines)


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


__all__ = ["add_commands", "custom_headers", "encode_payload", "sse_data"]
