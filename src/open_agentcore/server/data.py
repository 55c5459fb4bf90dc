"""Data-plane routes: InvokeAgentRuntime and StopRuntimeSession, as boto3's `bedrock-agentcore` sends them."""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Scope

from open_agentcore.auth import Caller
from open_agentcore.runtimes import RuntimeService
from open_agentcore.sessions import LiveSession, SessionManager, SessionTarget, WorkerReply, WorkerUnreachable

from .authorization import admitted_route
from .errors import NotFound, RuntimeClientError, ValidationError
from .operations import MAX_SESSION_ID
from .streams import LAST_EVENT_ID, recorded, resumed

logger = logging.getLogger("open_agentcore.server.data")

SESSION_HEADER = "x-amzn-bedrock-agentcore-runtime-session-id"
SESSION_HEADER_BYTES = SESSION_HEADER.encode()
USER_HEADER = "x-amzn-bedrock-agentcore-runtime-user-id"
# Forwarded to the worker as they came; Authorization and custom headers only when allowlisted.
_PASSED = (
    "content-type", "accept", SESSION_HEADER, USER_HEADER,
    "x-amzn-trace-id", "traceparent", "tracestate", "baggage", "mcp-session-id", "mcp-protocol-version",
)  # fmt: skip
CUSTOM_PREFIX = "x-amzn-bedrock-agentcore-runtime-custom-"
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
        return str(uuid.uuid4())
    if isinstance(raw, bytes):
        try:
            session_id = raw.decode("utf-8")
        except UnicodeDecodeError:
            session_id = raw.decode("latin-1")
    else:
        session_id = raw
    if not 1 <= len(session_id) <= MAX_SESSION_ID or any(ord(c) < 0x20 or c == "\x7f" for c in session_id):
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
    route, caller = await admitted_route(
        service, request.scope, request.headers, request.path_params["runtime_id"],
        request.query_params.get("qualifier"),
    )  # fmt: skip
    target, config = route.target, route.config
    if last_event_id := request.headers.get(LAST_EVENT_ID, "").strip():
        resume_headers = {"content-type": "text/event-stream", SESSION_HEADER: on_the_wire(session_id)}
        return resumed(
            request.app.state.streams, sessions, target.runtime_id, session_id, caller, last_event_id,
            resume_headers,
        )  # fmt: skip
    allowlist = config.get("requestHeaderConfiguration", {}).get("requestHeaderAllowlist", [])
    headers = worker_headers(request.headers.items(), session_id, allowlist, caller.subject)
    body = await request.body()
    path = _WORKER_PATHS[protocol_of(config)]
    live, reply = await _call(sessions, target, session_id, caller, path, headers, body)
    if not 200 <= reply.status < 300:
        text = await _drain(reply)
        sessions.release(live)
        raise RuntimeClientError(f"the agent answered {reply.status}: {text}")
    content_type = dict(reply.headers).get("content-type", "application/json")
    answer_headers = {"content-type": content_type, SESSION_HEADER: on_the_wire(session_id)}
    if content_type.startswith("text/event-stream"):
        # Recorded for resumption; the worker is read to its end even if the client leaves.
        finish = functools.partial(_finish, sessions, live, reply)
        return recorded(request.app.state.streams, target.runtime_id, session_id, _relay(reply),
                        answer_headers, finish)  # fmt: skip
    if reply.length is not None and reply.length <= _WHOLE_ANSWER:
        # A small answer of known size (most JSON results): relayed in one piece, no chunking.
        try:
            body = await reply.read()
        except WorkerUnreachable as error:
            reason = await sessions.lost(live, error)
            raise RuntimeClientError(f"the agent's session ended: {reason}") from None
        finally:
            sessions.release(live)
        return Response(body, headers=answer_headers)
    return StreamingResponse(
        _relay(reply),
        status_code=200,
        media_type=None,
        headers=answer_headers,
        background=BackgroundTask(_finish, sessions, live, reply),
    )


def protocol_of(config: dict[str, Any]) -> str:
    return str(config.get("protocolConfiguration", {}).get("serverProtocol", "HTTP"))


async def _call(
    sessions: SessionManager, target: SessionTarget, session_id: str, caller: Caller, path: str,
    headers: list[tuple[str, str]], body: bytes,
) -> tuple[LiveSession, WorkerReply]:  # fmt: skip
    """Send to the session's worker; one that died since its last call is replaced first.

    A worker that crashed after answering is only noticed when the next call cannot connect:
    nothing of that call reached it, so a fresh worker takes it instead of the caller seeing 424.
    """
    for attempt in (1, 2):
        live = await sessions.acquire(target, session_id, caller.owner, caller.admin)
        try:
            return live, await live.client.send("POST", path, headers, body)
        except WorkerUnreachable as error:
            sessions.release(live)
            reason = await sessions.lost(live, error)
            if error.sent or attempt == 2:
                raise RuntimeClientError(f"the agent's session ended: {reason}") from None
    raise AssertionError("unreachable")


async def _relay(reply: WorkerReply) -> AsyncIterator[bytes]:
    # Chunk by chunk, as the worker writes them: each send waits for the client, so a slow
    # reader holds the worker back instead of growing server memory.
    try:
        async for chunk in reply.body:
            yield chunk
    except WorkerUnreachable as error:
        logger.warning("Worker stream broke off: %s", error)


async def _finish(sessions: SessionManager, live: LiveSession, reply: WorkerReply) -> None:
    await reply.close()
    sessions.release(live)


async def _drain(reply: WorkerReply, limit: int = _ERROR_BODY_LIMIT) -> str:
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in reply.body:
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                break
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
        request.query_params.get("qualifier"),
    )  # fmt: skip
    runtime, target, config = route.runtime, route.target, route.config
    if (protocol := protocol_of(config)) != "A2A":
        raise NotFound(f"agent runtime {runtime.id} serves {protocol}; only A2A agents have an agent card")
    live = await sessions.acquire(target, session_id, caller.owner, caller.admin)
    try:
        reply = await live.client.send(
            "GET", AGENT_CARD_PATH, [(SESSION_HEADER, on_the_wire(session_id))], b""
        )
        text = await _drain(reply, limit=1024 * 1024)
    except WorkerUnreachable as error:
        raise RuntimeClientError(f"the agent's worker is not reachable: {error}") from None
    finally:
        sessions.release(live)
    if reply.status != 200:
        detail = text[:_ERROR_BODY_LIMIT]
        raise RuntimeClientError(f"the agent answered {reply.status} for its agent card: {detail}")
    try:
        card = json.loads(text)
    except ValueError:
        raise RuntimeClientError("the agent's card is not JSON") from None
    return JSONResponse(card, headers={SESSION_HEADER: on_the_wire(session_id)})


async def stop_session(request: Request) -> Response:
    service: RuntimeService = request.app.state.runtimes
    sessions: SessionManager = request.app.state.sessions
    route, caller = await admitted_route(
        service, request.scope, request.headers, request.path_params["runtime_id"],
        request.query_params.get("qualifier"),
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
    "CUSTOM_PREFIX",
    "SESSION_HEADER",
    "SESSION_HEADER_BYTES",
    "agent_card",
    "header_bytes",
    "invoke",
    "on_the_wire",
    "session_id_of",
    "stop_session",
    "worker_headers",
]
