"""Data-plane routes: InvokeAgentRuntime and StopRuntimeSession, as boto3's `bedrock-agentcore` sends them,
GetAgentCard, and our CancelRuntimeInvocation.

A streamed answer reaches the client through one async iterator, `relayed`; anything that must see
every relayed byte (a frame journal) wraps that iterator where `invoke` builds the response.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from open_agentcore.runtimes import RuntimeService
from open_agentcore.sessions import (
    SessionEnded,
    SessionLease,
    SessionManager,
    WorkerReply,
    WorkerUnreachable,
    cancel_invocation,
)

from .authorization import admitted_route
from .errors import NotFound, RuntimeClientError, ValidationError
from .identifiers import random_id
from .operations import MAX_SESSION_ID, REQUEST_ID
from .queries import qualifier_of
from .request_metrics import invocation_of
from .streams import LAST_EVENT_ID, recorded, resumed
from .tracing import QUALIFIER_STATE, SESSION_STATE, START_STATE, VERSION_STATE

logger = logging.getLogger("open_agentcore.server.data")

SESSION_HEADER = "x-amzn-bedrock-agentcore-runtime-session-id"
SESSION_HEADER_BYTES = SESSION_HEADER.encode()
USER_HEADER = "x-amzn-bedrock-agentcore-runtime-user-id"
REQUEST_ID_HEADER = "x-amzn-bedrock-agentcore-runtime-request-id"
AWS_REQUEST_ID_HEADER = "x-amzn-requestid"  # botocore reads it into ResponseMetadata.RequestId
_AWS_REQUEST_ID_BYTES = AWS_REQUEST_ID_HEADER.encode()
_REQUEST_ID_BYTES = REQUEST_ID_HEADER.encode()
_LAST_EVENT_ID_BYTES = LAST_EVENT_ID.encode()
# Forwarded to the worker as they came; Authorization and custom headers only when allowlisted.
_PASSED = (
    "content-type", "accept", SESSION_HEADER, USER_HEADER,
    "x-amzn-trace-id", "traceparent", "tracestate", "baggage", "mcp-session-id", "mcp-protocol-version",
)  # fmt: skip
CUSTOM_PREFIX = "x-amzn-bedrock-agentcore-runtime-custom-"
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f]")
_ERROR_BODY_LIMIT = 2000
_WHOLE_ANSWER = 64 * 1024
# Where each server protocol's agent listens inside its worker (AgentCore's service contract).
_WORKER_PATHS = {"HTTP": "/invocations", "MCP": "/mcp", "A2A": "/", "AGUI": "/invocations"}
AGENT_CARD_PATH = "/.well-known/agent-card.json"


def session_id_of(raw: bytes | str | None, required: bool = False) -> str:
    """The session id the caller sent, else a new one (boto3 always sends one; curl may not).

    Header bytes that are UTF-8 are read as UTF-8, so "séance" sent by curl stays "séance" in the
    session table, its logs route and the worker's context; bytes that are not (http.client, so
    boto3, sends latin-1) are read as latin-1. Send it on with `on_the_wire`.
    """
    if not raw:
        if required:
            raise ValidationError("runtimeSessionId is required", field="runtimeSessionId")
        return random_id()
    if isinstance(raw, bytes):
        try:
            session_id = raw.decode("utf-8")
        except UnicodeDecodeError:
            session_id = raw.decode("latin-1")
    else:
        session_id = raw
    if not 1 <= len(session_id) <= MAX_SESSION_ID or _CONTROL_CHARACTER.search(session_id):
        raise ValidationError(
            f"runtimeSessionId must be 1 to {MAX_SESSION_ID} printable characters", field="runtimeSessionId"
        )
    return session_id


def on_the_wire(text: str) -> str:
    """A header value as ASGI servers and our worker client carry it: the UTF-8 bytes as latin-1."""
    return text.encode("utf-8").decode("latin-1")


def header_bytes(scope: Scope, name: bytes) -> bytes | None:
    """A request header's raw value (the first, when repeated)."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


_MAY_PASS = frozenset(name.encode() for name in (*_PASSED, "authorization"))
_CUSTOM_PREFIX_BYTES = CUSTOM_PREFIX.encode()


def forwardable(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """The request's headers that `worker_headers` may pass on, decoded (as latin-1, like ASGI's
    text); the rest (signature, host, lengths, ...) are skipped before any decoding."""
    return [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in raw
        if name in _MAY_PASS or name.startswith(_CUSTOM_PREFIX_BYTES)
    ]


def worker_headers(
    incoming: Iterable[tuple[str, str]], session_id: str, allowlist: list[str], token_user: str | None = None
) -> list[tuple[str, str]]:
    """What the worker is sent of the caller's (lower-cased) headers.

    With a verified bearer token, the user id is the token's subject, whatever the caller sent.
    """
    allowed = {name.lower() for name in allowlist}
    headers = [(SESSION_HEADER, on_the_wire(session_id))]
    if token_user is not None:
        headers.append((USER_HEADER, token_user))
    for name, value in incoming:
        if name == SESSION_HEADER or (token_user is not None and name == USER_HEADER):
            continue
        if name in _PASSED or (
            name in allowed and (name == "authorization" or name.startswith(CUSTOM_PREFIX))
        ):
            headers.append((name, value))
    return headers


async def invoke(request: Request) -> Response:
    service: RuntimeService = request.app.state.runtimes
    sessions: SessionManager = request.app.state.sessions
    session_id = session_id_of(header_bytes(request.scope, SESSION_HEADER_BYTES))
    qualifier = qualifier_of(request.scope)
    route, caller = await admitted_route(
        service, request.scope, request.headers, request.path_params["runtime_id"], qualifier
    )
    target, config = route.target, route.config
    observed = invocation_of(request.scope, target.runtime_id)
    state = request.scope["state"]
    state[SESSION_STATE], state[VERSION_STATE] = session_id, target.version
    state[QUALIFIER_STATE] = qualifier or "DEFAULT"
    scope = request.scope
    if last_event_id := _header_text(scope, _LAST_EVENT_ID_BYTES).strip():
        resume_headers = {"content-type": "text/event-stream", SESSION_HEADER: on_the_wire(session_id)}
        return resumed(
            request.app.state.streams, sessions, target.runtime_id, session_id, caller, last_event_id,
            resume_headers,
        )  # fmt: skip
    allowlist = config.get("requestHeaderConfiguration", {}).get("requestHeaderAllowlist", [])
    request_id = request_id_of(header_bytes(scope, _REQUEST_ID_BYTES))
    headers = worker_headers(forwardable(scope["headers"]), session_id, allowlist, caller.subject)
    headers.append((REQUEST_ID_HEADER, request_id))
    body = await whole_body(request.receive)
    path = _WORKER_PATHS[protocol_of(config)]
    observed.leasing()
    # Held by hand rather than by an AsyncExitStack (a measurable share of a small call): the lease
    # and the reply are let go here unless a streamed answer takes them over (`handed_over`).
    lease = sessions.lease(target, session_id, caller.owner, caller.admin)
    await lease.__aenter__()
    handed_over = False
    try:
        reply = await lease.send("POST", path, headers, body)
        observed.answered(reply.status)
        state[START_STATE] = lease.started

        async def release() -> None:
            try:
                await reply.close()
            finally:
                await lease.__aexit__(None, None, None)

        try:
            if not 200 <= reply.status < 300:
                text = await _drain(reply)
                raise RuntimeClientError(f"the agent answered {reply.status}: {text}")
            content_type = next((v for n, v in reply.headers if n == "content-type"), "application/json")
            session_on_the_wire = on_the_wire(session_id)
            if content_type.startswith("text/event-stream"):
                # Recorded for resumption: a task reads the worker to its end, even if the client
                # leaves, and releases the lease then; the stream's frames carry `<request id>:<n>`
                # ids, and the recording names the request id in the answer's headers.
                answer_headers = {"content-type": content_type, SESSION_HEADER: session_on_the_wire}
                handed_over = True
                return recorded(
                    request.app.state.streams, target.runtime_id, session_id,
                    relayed(lease, reply, sse=True), answer_headers, release, request_id,
                )  # fmt: skip
            if reply.length is not None and reply.length <= _WHOLE_ANSWER:
                # A small answer of known size (most JSON results): relayed in one piece, no chunking.
                try:
                    whole = await reply.read()
                except WorkerUnreachable as error:
                    raise SessionEnded(await lease.broke_off(error)) from None
                return _Whole(whole, content_type, session_on_the_wire, request_id)
            answer_headers = {
                "content-type": content_type, SESSION_HEADER: session_on_the_wire,
                AWS_REQUEST_ID_HEADER: request_id,
            }  # fmt: skip
            handed_over = True
            return _Relay(relayed(lease, reply, sse=False), answer_headers, release)
        finally:
            if not handed_over:
                await reply.close()
    finally:
        if not handed_over:
            await lease.__aexit__(None, None, None)


async def whole_body(receive: Receive) -> bytes:
    """The request's body, read to its end (what Starlette's `Request.body` does, with no stream
    of chunks in between: authentication has already read and replays it in one message)."""
    message = await receive()
    chunks: list[bytes] = []
    while True:
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if not chunks:
                return chunk
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)
        message = await receive()


def _header_text(scope: Scope, name: bytes) -> str:
    raw = header_bytes(scope, name)
    return "" if raw is None else raw.decode("latin-1")


def request_id_of(text: bytes | str | None) -> str:
    """The invocation's request id: the caller's `X-Amzn-Bedrock-AgentCore-Runtime-Request-Id` (so it
    can cancel a call whose answer has not begun), else a new one. Every answer names it."""
    if text is None:
        return random_id()
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    if not REQUEST_ID.fullmatch(text):
        raise ValidationError(
            "the request id is 1 to 128 letters, digits and . _ ~ : -", field="runtimeRequestId"
        )
    return text


def protocol_of(config: dict[str, Any]) -> str:
    return str(config.get("protocolConfiguration", {}).get("serverProtocol", "HTTP"))


class StreamCut(Exception):
    """The worker stopped answering in the middle of a streamed reply; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def relayed(lease: SessionLease, reply: WorkerReply, sse: bool) -> AsyncIterator[bytes]:
    """The worker's answer as relayed to the client, chunk by chunk as the worker writes it.

    This iterator is the one place the bytes of a streamed answer pass through on their way to
    the client. Each chunk waits for the client, so a slow reader holds the worker back instead
    of growing server memory. When the worker breaks off, its session ends (its record says why),
    an event stream gets a last error event naming the reason, and `StreamCut` is raised so the
    client sees an abnormal end, never a clean one.
    """
    try:
        async for chunk in reply.body:
            yield chunk
    except WorkerUnreachable as error:
        reason = await lease.broke_off(error)
        logger.warning("Answer of session %s cut off: %s", lease.live.session_id, reason)
        if sse:
            yield cut_frame(reason)
        raise StreamCut(reason) from None


def cut_frame(reason: str) -> bytes:
    """The last event of a stream the worker broke off, in the SDK's error-frame shape."""
    frame = {
        "error": f"the agent's session ended: {reason}",
        "error_type": RuntimeClientError.code,
        "message": "The agent's worker stopped in the middle of its answer; the stream ends here.",
    }
    return b"data: " + json.dumps(frame).encode() + b"\n\n"


class _Whole(Response):
    """A small answer relayed in one piece (most invocations): its few headers encoded directly."""

    def __init__(self, body: bytes, content_type: str, session_id: str, request_id: str) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = [
            (b"content-type", content_type.encode("latin-1")),
            (SESSION_HEADER_BYTES, session_id.encode("latin-1")),
            (_AWS_REQUEST_ID_BYTES, request_id.encode("latin-1")),
            (b"content-length", str(len(body)).encode()),
        ]


class _Relay(StreamingResponse):
    """A streamed answer that holds its session lease until the last byte, and ends abnormally
    (the connection closed without the final chunk, so HTTP clients raise) when it was cut."""

    def __init__(
        self, chunks: AsyncIterator[bytes], headers: dict[str, str], release: Callable[[], Awaitable[None]]
    ) -> None:
        super().__init__(chunks, status_code=200, media_type=None, headers=headers)
        self._release = release

    async def stream_response(self, send: Send) -> None:
        with contextlib.suppress(StreamCut):  # returning without the last body message: uvicorn closes
            await super().stream_response(send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._release()


async def _drain(reply: WorkerReply, limit: int = _ERROR_BODY_LIMIT) -> str:
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in reply.body:
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                break
    except WorkerUnreachable:
        pass  # what arrived is the best account of the failure there is
    finally:
        await reply.close()
    return b"".join(chunks).decode(errors="replace")[:limit]


async def agent_card(request: Request) -> Response:
    """GetAgentCard: the A2A agent's card, as its worker serves it; no card for other protocols."""
    service: RuntimeService = request.app.state.runtimes
    sessions: SessionManager = request.app.state.sessions
    session_id = session_id_of(header_bytes(request.scope, SESSION_HEADER_BYTES))
    route, caller = await admitted_route(
        service, request.scope, request.headers, request.path_params["runtime_id"],
        qualifier_of(request.scope),
    )  # fmt: skip
    runtime, target, config = route.runtime, route.target, route.config
    if (protocol := protocol_of(config)) != "A2A":
        raise NotFound(f"agent runtime {runtime.id} serves {protocol}; only A2A agents have an agent card")
    async with sessions.lease(target, session_id, caller.owner, caller.admin) as lease:
        reply = await lease.send("GET", AGENT_CARD_PATH, [(SESSION_HEADER, on_the_wire(session_id))], b"")
        text = await _drain(reply, limit=1024 * 1024)
    if reply.status != 200:
        detail = text[:_ERROR_BODY_LIMIT]
        raise RuntimeClientError(f"the agent answered {reply.status} for its agent card: {detail}")
    try:
        card = json.loads(text)
    except ValueError:
        raise RuntimeClientError("the agent's card is not JSON") from None
    return JSONResponse(card, headers={SESSION_HEADER: on_the_wire(session_id)})


async def cancel(request: Request) -> Response:
    """Cancel one invocation in flight (ours): by the session's owner, like StopRuntimeSession; the
    session and its worker stay."""
    service: RuntimeService = request.app.state.runtimes
    sessions: SessionManager = request.app.state.sessions
    route, caller = await admitted_route(
        service, request.scope, request.headers, request.path_params["runtime_id"],
        qualifier_of(request.scope),
    )  # fmt: skip
    session_id, request_id = request.path_params["session_id"], request.path_params["request_id"]
    await cancel_invocation(sessions, route.runtime.id, session_id, request_id, caller.owner, caller.admin)
    body = {"runtimeSessionId": session_id, "requestId": request_id, "status": "CANCELLED"}
    return JSONResponse(body, headers={SESSION_HEADER: on_the_wire(session_id)})


async def stop_session(request: Request) -> Response:
    service: RuntimeService = request.app.state.runtimes
    sessions: SessionManager = request.app.state.sessions
    route, caller = await admitted_route(
        service, request.scope, request.headers, request.path_params["runtime_id"],
        qualifier_of(request.scope),
    )  # fmt: skip
    session_id = session_id_of(header_bytes(request.scope, SESSION_HEADER_BYTES), required=True)
    runtime_id = route.runtime.id
    stopped = await sessions.stop(
        runtime_id, session_id, "stopped by StopRuntimeSession", caller.owner, caller.admin
    )
    if not stopped:
        raise NotFound(f"no active session {session_id!r} on agent runtime {runtime_id}")
    return JSONResponse({}, headers={SESSION_HEADER: on_the_wire(session_id)})


__all__ = [
    "AWS_REQUEST_ID_HEADER",
    "CUSTOM_PREFIX",
    "REQUEST_ID_HEADER",
    "SESSION_HEADER",
    "SESSION_HEADER_BYTES",
    "StreamCut",
    "agent_card",
    "cancel",
    "cut_frame",
    "forwardable",
    "header_bytes",
    "invoke",
    "on_the_wire",
    "relayed",
    "request_id_of",
    "session_id_of",
    "stop_session",
    "worker_headers",
]
