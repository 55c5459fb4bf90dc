"""`/runtimes/{arn}/ws`: a client's WebSocket proxied both ways to its session worker's `/ws`.

The caller is authenticated before this runs (SigV4 headers or a presigned query). Anything that
fails before the client is accepted (unknown runtime, worker that cannot start or refuses the
handshake) is refused as an HTTP response with the AWS error shape, like any other route; after
that, each side's close code and reason are passed to the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, unix_connect
from websockets.asyncio.client import connect as tcp_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from open_agentcore.runtimes import RuntimeService
from open_agentcore.sessions import (
    SECRET_HEADER,
    LiveSession,
    SessionLease,
    SessionManager,
    WorkerUnreachable,
)

from .authorization import admitted_route
from .data import (
    CUSTOM_PREFIX,
    SESSION_HEADER,
    SESSION_HEADER_BYTES,
    header_bytes,
    on_the_wire,
    session_id_of,
    worker_headers,
)
from .errors import RuntimeClientError, ServiceError
from .tracing import QUALIFIER_STATE, SESSION_STATE, START_STATE, VERSION_STATE
from .wire import wire_error

logger = logging.getLogger("open_agentcore.server.websocket")

# Codes a peer may report but never send: 1005 "no status" and 1006 "abnormal closure".
_NO_STATUS, _ABNORMAL = 1005, 1006
_MAX_MESSAGE = 100 * 1024 * 1024


async def proxy(websocket: WebSocket) -> None:
    async with contextlib.AsyncExitStack() as held:
        try:
            lease, upstream = await _open_upstream(websocket, held)
        except Exception as error:  # every failure before accepting is refused in the AWS shape
            await _refuse(websocket, wire_error(error))
            return
        await websocket.accept(subprotocol=upstream.subprotocol)
        await _pump(websocket, upstream, lease)


async def _open_upstream(
    websocket: WebSocket, held: contextlib.AsyncExitStack
) -> tuple[SessionLease, ClientConnection]:
    """The session's lease and the worker's WebSocket, both released when `held` closes."""
    service: RuntimeService = websocket.app.state.runtimes
    sessions: SessionManager = websocket.app.state.sessions
    # Browsers cannot set headers on a WebSocket: a presigned URL carries them in its query.
    query = [(name.lower(), value) for name, value in websocket.query_params.multi_items()]
    from_query = dict(query)
    session_id = session_id_of(
        header_bytes(websocket.scope, SESSION_HEADER_BYTES) or from_query.get(SESSION_HEADER)
    )
    route, caller = await admitted_route(
        service, websocket.scope, websocket.headers, websocket.path_params["runtime_id"],
        from_query.get("qualifier"),
    )  # fmt: skip
    target, config = route.target, route.config
    state = websocket.scope["state"]
    state[SESSION_STATE], state[VERSION_STATE] = session_id, target.version
    state[QUALIFIER_STATE] = from_query.get("qualifier") or "DEFAULT"
    allowlist = config.get("requestHeaderConfiguration", {}).get("requestHeaderAllowlist", [])
    incoming = [*websocket.headers.items()]
    incoming += [(name, on_the_wire(value)) for name, value in query if name.startswith(CUSTOM_PREFIX)]
    headers = worker_headers(incoming, session_id, allowlist, caller.subject)
    subprotocols = _subprotocols(websocket) or None

    async def connect(live: LiveSession) -> ClientConnection:
        options: dict[str, Any] = {
            "subprotocols": subprotocols, "max_size": _MAX_MESSAGE, "open_timeout": 10, "ping_interval": None,
        }  # fmt: skip
        address = live.client.address
        try:
            if address is not None:  # a worker on TCP (the Ray backend's): its secret opens it
                return await tcp_connect(
                    f"ws://{address.host}:{address.port}/ws",
                    additional_headers=[*headers, (SECRET_HEADER, address.secret)],
                    proxy=None,
                    **options,
                )
            return await unix_connect(
                str(live.client.socket_path), uri="ws://worker/ws", additional_headers=headers, **options
            )
        except InvalidStatus as error:
            raise RuntimeClientError(
                _refusal_reason(error.response.status_code, error.response.body)
            ) from None
        except (ConnectionRefusedError, FileNotFoundError) as error:
            raise WorkerUnreachable(str(error), sent=False) from None  # the lease's retry rule decides
        except (InvalidHandshake, OSError, TimeoutError) as error:
            raise RuntimeClientError(f"the agent's WebSocket is not reachable: {error}") from None

    lease = await held.enter_async_context(sessions.lease(target, session_id, caller.owner, caller.admin))
    upstream = await lease.call(connect, lambda upstream: upstream.close())
    state[START_STATE] = lease.started
    held.push_async_callback(upstream.close)
    return lease, upstream


def _refusal_reason(status: int, body: bytes | bytearray | None) -> str:
    detail = (body or b"")[:300].decode("utf-8", "replace").strip()
    if detail:  # our SDK says why (no handler registered, ...)
        return f"the agent refused the WebSocket with HTTP {status}: {detail}"
    if status in (403, 404):  # what an ASGI app without a /ws route or handler answers
        return (
            f"the agent has no WebSocket handler: its /ws refused the upgrade with HTTP {status} "
            "(an agent serves WebSockets with an @app.websocket handler)"
        )
    return f"the agent refused the WebSocket with HTTP {status}"


def _subprotocols(websocket: WebSocket) -> list[Any]:
    offered = websocket.headers.get("sec-websocket-protocol", "")
    return [name.strip() for name in offered.split(",") if name.strip()]


async def _pump(websocket: WebSocket, upstream: ClientConnection, lease: SessionLease) -> None:
    """Relay messages both ways until one side closes, then close the other with its code."""
    to_worker = asyncio.create_task(_client_to_worker(websocket, upstream))
    to_client = asyncio.create_task(_worker_to_client(websocket, upstream, lease))
    try:
        await asyncio.wait({to_worker, to_client}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (to_worker, to_client):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _client_to_worker(websocket: WebSocket, upstream: ClientConnection) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            code = message.get("code", 1000)
            reason = message.get("reason") or ""
            await upstream.close(code=1000 if code in (_NO_STATUS, _ABNORMAL) else code, reason=reason)
            return
        try:
            if message.get("text") is not None:
                await upstream.send(message["text"])
            elif message.get("bytes") is not None:
                await upstream.send(message["bytes"])
        except ConnectionClosed:
            return  # the worker side's own task reports its close


async def _worker_to_client(websocket: WebSocket, upstream: ClientConnection, lease: SessionLease) -> None:
    try:
        async for message in upstream:
            if isinstance(message, str):
                await websocket.send_text(message)
            else:
                await websocket.send_bytes(message)
    except ConnectionClosed:
        pass
    except WebSocketDisconnect:
        return
    code = upstream.close_code
    reason = upstream.close_reason or ""
    if code is None or code == _ABNORMAL:
        # The worker went away without closing: its session ends, and the client is told why.
        ended = await lease.broke_off(WorkerUnreachable("the worker dropped the WebSocket"))
        logger.warning("WebSocket of session %s cut off: %s", lease.live.session_id, ended)
        code, reason = 1011, _close_reason(f"the agent's session ended: {ended}")
    elif code == _NO_STATUS:
        code = 1000
    with contextlib.suppress(Exception):
        await websocket.close(code=code, reason=reason)


def _close_reason(text: str) -> str:
    """A close reason that fits the frame: at most 123 bytes of UTF-8."""
    return text.encode()[:123].decode(errors="ignore")


async def _refuse(websocket: WebSocket, error: ServiceError) -> None:
    logger.info("Refused WebSocket %s: %s", websocket.url.path, error.message)
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error.response())
    else:
        await websocket.close(code=1008, reason=error.message[:120])


__all__ = ["proxy"]
