"""`agentcore invoke`: send a payload to the agent (deployed, local or `dev`) and print what comes back.

Server-sent events are printed as they arrive: JSON strings as running text, other values one JSON
document per line. `--output raw` prints the bytes as received, `--output json` one result object
at the end. `--ws` talks to the agent's WebSocket instead (`websocket.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import CliError
from .payloads import content_type, encode_payload
from .project import AgentConfig, AgentState, Project

if TYPE_CHECKING:
    import httpx

    from .remote import RuntimeServer

CUSTOM_PREFIX = "X-Amzn-Bedrock-AgentCore-Runtime-Custom-"
SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
USER_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-User-Id"
REQUEST_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Request-Id"
REQUEST_ID = re.compile(r"[A-Za-z0-9._~:-]{1,128}")  # as the runtime server accepts a caller's own
OUTPUTS = ("text", "json", "raw")

EXAMPLES = """examples:
  agentcore invoke '{"prompt": "hi"}'
  agentcore invoke 'plain text becomes {"prompt": ...}' --session-id s1
  agentcore invoke '{"n": 3}' --output json
  agentcore invoke --local '{"prompt": "hi"}'
  agentcore invoke --resume        # the rest of a streamed answer whose connection broke
  agentcore invoke '{"prompt": "long"}' --request-id job-1   # then: agentcore cancel job-1
  agentcore invoke --ws 'hello' --messages 2
  agentcore invoke --ws --interactive --raw
  echo '{"prompt": "from a file"}' | agentcore invoke -
"""


def add_commands(commands: Any) -> None:
    invoke = commands.add_parser(
        "invoke",
        help="invoke the agent with a payload and print its answer",
        description='Send PAYLOAD to the agent: JSON as written, plain text as {"prompt": text}, '
        "or exactly as written with --raw. Text that looks like JSON but does not parse is an "
        "error. It goes to the `agentcore dev` server while one runs for the agent, else where the "
        "last deploy went (force one with --local / --remote). The session id is sticky: later "
        "invokes reuse it until --new-session. With --ws the payload, then each line of standard "
        "input, is one WebSocket message; it ends when the agent closes, after --messages N "
        "replies, or at the end of input once the agent has answered.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    invoke.add_argument("payload", nargs="?", help="JSON, or plain text; - reads it from standard input")
    invoke.add_argument("--agent", "-a", help="which configured agent (default: the default one)")
    invoke.add_argument("--session-id", "-s", help="session to use (1-256 characters); remembered")
    invoke.add_argument("--new-session", action="store_true", help="start a new session id")
    invoke.add_argument("--user-id", "-u", help="sent as the runtime user id header")
    invoke.add_argument(
        "--request-id",
        metavar="ID",
        help="the invocation's id (1-128 of A-Z a-z 0-9 . _ ~ : -; default: a new UUID); "
        "`agentcore cancel` without an id cancels the last one",
    )
    invoke.add_argument("--bearer-token", help="OAuth token for a JWT runtime (or $AGENTCORE_BEARER_TOKEN)")
    invoke.add_argument("--headers", metavar="K:v,K2:v", help="custom headers; the custom prefix is added")
    invoke.add_argument("--raw", action="store_true", help='send the text as it is, not as {"prompt": ...}')
    invoke.add_argument(
        "--resume", action="store_true",
        help="print the rest of the last streamed answer from the runtime server (from where it stopped)",
    )  # fmt: skip
    target = invoke.add_mutually_exclusive_group()
    target.add_argument("--local", action="store_true", help="invoke the `dev` server or the local agent")
    target.add_argument("--remote", action="store_true", help="invoke the deployed runtime")
    output = invoke.add_mutually_exclusive_group()
    output.add_argument(
        "--output", "-o", choices=OUTPUTS, default="text",
        help="text (default); json: one result object; raw: the bytes as received",
    )  # fmt: skip
    output.add_argument("--json", dest="output", action="store_const", const="json", help="--output json")
    invoke.add_argument("--ws", action="store_true", help="use the agent's WebSocket (/ws)")
    invoke.add_argument("--messages", type=int, metavar="N", help="with --ws: end after N messages back")
    invoke.add_argument(
        "--interactive", "-i", action="store_true", help="with --ws: a prompt; each line is a message"
    )
    invoke.add_argument("--timeout", type=float, default=None, help="seconds to wait (default: no limit)")
    invoke.set_defaults(handler=run_invoke, usage_error=invoke.error)


@dataclass
class Target:
    """Where an invocation goes: a process on this machine (`local_url`), else the runtime server."""

    agent: str
    local_url: str | None
    runtime_arn: str | None


def run_invoke(args: argparse.Namespace) -> int:
    _check_arguments(args)
    project = Project.load()
    agent = _agent(project, args)
    state = project.state(agent.name)
    payload = _payload(args)
    if args.resume:
        return _resume(project, agent.name, state, args)
    target = choose_target(agent, state, args)
    session_id = _session(args, state)
    headers = {SESSION_HEADER: session_id}
    if args.user_id:
        headers[USER_HEADER] = args.user_id
    headers.update(custom_headers(args.headers))
    token = args.bearer_token or os.environ.get("AGENTCORE_BEARER_TOKEN")
    state.session_id = session_id
    if not args.ws:
        # Chosen here and saved before sending, so `agentcore cancel` from another terminal finds it.
        state.request_id = headers[REQUEST_HEADER] = args.request_id or str(uuid.uuid4())
    project.save_state(agent.name, state)
    if args.ws:
        from .websocket import talk

        return talk(target, payload, headers, token, args)
    assert payload is not None  # _payload reads one for HTTP
    headers["content-type"] = content_type(payload)
    if target.local_url is not None:
        return _post(target.local_url + "/invocations", payload, headers, session_id, args, server=None)
    from .remote import RuntimeServer, runtime_path

    server = RuntimeServer.connect()
    path = runtime_path(target.runtime_arn or "") + "/invocations"
    progress = StreamProgress(project, agent.name, state, session_id)
    if token:
        # A bearer token replaces the SigV4 signature (a runtime with a JWT authorizer).
        headers = {**headers, "authorization": f"Bearer {token}"}
        return _post(server.url + path, payload, headers, session_id, args, server=server, progress=progress)
    with server.stream("POST", path, payload, headers, timeout=args.timeout) as reply:
        return show(reply, session_id, args, progress)


def _resume(project: Project, agent: str, state: AgentState, args: argparse.Namespace) -> int:
    """The frames of the last streamed answer after the last one printed, then its live rest."""
    from .remote import RuntimeServer, runtime_path

    if not (state.runtime_arn and state.stream_session_id and state.stream_event_id):
        raise CliError(
            f"nothing to resume: no streamed answer of the runtime server is recorded for {agent!r}"
        )
    session_id = state.stream_session_id
    headers = {SESSION_HEADER: session_id, "last-event-id": state.stream_event_id}
    progress = StreamProgress(project, agent, state, session_id)
    server = RuntimeServer.connect()
    path = runtime_path(state.runtime_arn) + "/invocations"
    token = args.bearer_token or os.environ.get("AGENTCORE_BEARER_TOKEN")
    if token:
        headers["authorization"] = f"Bearer {token}"
        return _post(server.url + path, b"", headers, session_id, args, server=server, progress=progress)
    with server.stream("POST", path, b"", headers, timeout=args.timeout) as reply:
        return show(reply, session_id, args, progress)


class StreamProgress:
    """How far a streamed answer from the runtime server got printed, saved for `--resume`.

    Saved when the answer starts (a bare request id: resume from its first frame) and when the
    command ends, however it ends; the id of each event is taken once the event is printed.
    """

    def __init__(self, project: Project, agent: str, state: AgentState, session_id: str) -> None:
        self.project, self.agent, self.state, self.session_id = project, agent, state, session_id
        self.last: str | None = None

    def started(self, request_id: str) -> None:
        self.last = request_id
        self.save()

    def seen(self, event_id: str) -> None:
        self.last = event_id

    def save(self) -> None:
        if self.last is not None:
            self.state.stream_session_id, self.state.stream_event_id = self.session_id, self.last
            self.project.save_state(self.agent, self.state)


def choose_target(agent: AgentConfig, state: AgentState, args: argparse.Namespace) -> Target:
    """The `dev` server while it runs, else the `deploy --local` process or the deployed runtime.

    `--remote` skips the local processes; `--local` refuses the runtime. Without either, the last
    deploy decides between a local process and the runtime.
    """
    from .dev import running_dev

    if not args.remote:
        dev_port = running_dev(state)
        if dev_port is not None:
            if not args.local and state.runtime_arn:
                print(
                    f"(invoking the `agentcore dev` server on port {dev_port}; --remote for the runtime)",
                    file=sys.stderr,
                )
            return Target(agent.name, f"http://127.0.0.1:{dev_port}", None)
    local = args.local or (not args.remote and state.mode == "local")
    if local:
        if not state.local_port:
            raise CliError(
                f"agent {agent.name!r} is not running locally: start it with agentcore dev "
                "(or agentcore deploy --local)"
            )
        return Target(agent.name, f"http://127.0.0.1:{state.local_port}", None)
    if not state.runtime_arn:
        raise CliError(f"agent {agent.name!r} is not deployed: agentcore deploy (or deploy --local, or dev)")
    return Target(agent.name, None, state.runtime_arn)


def _check_arguments(args: argparse.Namespace) -> None:
    """Combinations argparse cannot express: usage errors, exit code 2 like its own."""
    if (args.messages is not None or args.interactive) and not args.ws:
        args.usage_error("--messages and --interactive go with --ws")
    if args.messages is not None and args.messages < 1:
        args.usage_error("--messages takes a number of messages, 1 or more")
    if args.resume and (args.payload is not None or args.ws or args.local):
        args.usage_error("--resume takes no payload and goes to the runtime server (not --ws or --local)")
    if args.request_id is not None and (args.ws or args.resume):
        args.usage_error("--request-id names a new HTTP invocation (not --ws or --resume)")
    if args.request_id is not None and not REQUEST_ID.fullmatch(args.request_id):
        args.usage_error(f"--request-id {args.request_id!r}: use 1-128 characters of A-Z a-z 0-9 . _ ~ : -")
    if args.payload is None and not args.ws and not args.resume:
        args.usage_error(
            "the following arguments are required: payload (JSON or text; - reads standard input)"
        )


def _agent(project: Project, args: argparse.Namespace) -> AgentConfig:
    """The configured agent; in an unconfigured directory, the one `agentcore dev` runs there."""
    if project.agents or args.remote:
        return project.agent(args.agent)
    from .dev import dev_agent, running_dev

    agent = dev_agent(project, args.agent)
    if running_dev(project.state(agent.name)) is None:
        return project.agent(args.agent)  # says what to configure
    return agent


def _payload(args: argparse.Namespace) -> bytes | None:
    """The first message: PAYLOAD, or all of standard input for `-` (without --ws)."""
    if args.payload is None:
        return None
    text = args.payload
    if text == "-" and not args.ws:
        text = sys.stdin.read().removesuffix("\n")
    return encode_payload(text, args.raw)


def _post(
    url: str, payload: bytes, headers: dict[str, str], session_id: str, args: argparse.Namespace,
    server: RuntimeServer | None, progress: StreamProgress | None = None,
) -> int:  # fmt: skip
    """An unsigned POST, streamed: to the local agent, or with a bearer token to the server."""
    import httpx

    from .remote import remote_error

    verify = server.tls() if server is not None else True
    try:
        with httpx.stream(
            "POST", url, content=payload, headers=headers, verify=verify, trust_env=server is not None,
            timeout=httpx.Timeout(60.0, read=args.timeout),
        ) as reply:  # fmt: skip
            if reply.status_code >= 400:
                reply.read()
                if server is not None:
                    raise remote_error(reply)
                raise CliError(f"the agent answered {reply.status_code}: {reply.text.strip()[:500]}")
            return show(reply, session_id, args, progress)
    except httpx.HTTPError as error:
        where = "the runtime server" if server is not None else f"the local agent at {url}"
        raise CliError(f"{where} did not answer: {error}") from None


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


def show(
    reply: httpx.Response, session_id: str, args: argparse.Namespace, progress: StreamProgress | None = None
) -> int:
    """Print a response as it streams in; with `progress`, record how far a stream got."""
    content_type = reply.headers.get("content-type", "")
    request_id = reply.headers.get("x-amzn-requestid")
    if progress is None or request_id is None or not content_type.startswith("text/event-stream"):
        return _show(reply, content_type, session_id, args, None)
    progress.started(request_id)
    try:
        return _show(reply, content_type, session_id, args, progress.seen)
    finally:
        progress.save()


def _show(
    reply: httpx.Response, content_type: str, session_id: str, args: argparse.Namespace,
    on_id: Callable[[str], None] | None,
) -> int:  # fmt: skip
    if args.output == "raw":
        if on_id is None:
            for chunk in reply.iter_raw():
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
        else:
            for event_id, _ in sse_events(_written(reply)):
                if event_id is not None:
                    on_id(event_id)
        return 0
    as_json = args.output == "json"
    if content_type.startswith("text/event-stream"):
        events: list[Any] | None = [] if as_json else None
        texts_open = False
        for event_id, data in sse_events(reply.iter_text()):
            with _uninterrupted(on_id is not None):
                value = _parse(data) if data is not None else None
                if data is None:
                    pass  # a comment, or an event with only an id
                elif events is not None:
                    events.append(value)
                elif isinstance(value, str):
                    print(value, end="", flush=True)
                    texts_open = True
                else:
                    if texts_open:
                        print()
                        texts_open = False
                    print(json.dumps(value), flush=True)
                if event_id is not None and on_id is not None:
                    on_id(event_id)  # printed: a resume starts after it
        if texts_open:
            print()
        if events is not None:
            print(json.dumps({"sessionId": session_id, "contentType": content_type, "events": events}))
        return 0
    body = reply.read().decode(errors="replace")
    if as_json:
        print(json.dumps({"sessionId": session_id, "contentType": content_type, "response": _parse(body)}))
    else:
        print(body.rstrip("\n"))
    return 0


class _uninterrupted:  # lower case: read as a `with` block, like contextlib's
    """Ctrl-C waits until an event is both printed and recorded, so a resume neither repeats nor
    skips it."""

    def __init__(self, active: bool) -> None:
        self.active = active

    def __enter__(self) -> None:
        if self.active:
            import signal

            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

    def __exit__(self, *exc: object) -> None:
        if self.active:
            import signal

            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _written(reply: httpx.Response) -> Iterator[str]:
    """The response's bytes written to standard output as they arrive, and passed on as text."""
    for chunk in reply.iter_raw():
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        yield chunk.decode("utf-8", "replace")


def sse_data(chunks: Iterator[str]) -> Iterator[str]:
    """The `data` of each server-sent event, joined over its `data:` lines."""
    return (data for _, data in sse_events(chunks) if data is not None)


def sse_events(chunks: Iterator[str]) -> Iterator[tuple[str | None, str | None]]:
    """(`id`, `data`) of each server-sent event; `data` is None for an event with none (a
    comment), and an event cut off at the end has no `id` (it was not received whole)."""
    buffer = ""
    lines: list[str] = []
    event_id: str | None = None
    for chunk in chunks:
        buffer += chunk
        while "\n" in buffer:
            line, buffer = buffer.split("\n", 1)
            line = line.rstrip("\r")
            if line == "":
                if lines or event_id is not None:
                    yield event_id, "\n".join(lines) if lines else None
                lines, event_id = [], None
            elif line.startswith("data:"):
                lines.append(line[5:].removeprefix(" "))
            elif line.startswith("id:"):
                event_id = line[3:].removeprefix(" ")
    if lines:
        yield None, "\n".join(lines)


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


__all__ = [
    "StreamProgress",
    "Target",
    "add_commands",
    "choose_target",
    "custom_headers",
    "encode_payload",
    "sse_data",
    "sse_events",
]
