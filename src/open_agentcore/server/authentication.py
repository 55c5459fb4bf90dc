"""Every request but the health check must carry a valid SigV4 signature (headers or presigned URL).

The body is read here, once, to check its hash against the signature, then replayed to the route.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from open_agentcore.auth import (
    KeyLookup,
    MissingAuthentication,
    SignatureError,
    authorization_scheme,
    verify_headers,
    verify_presigned,
)

logger = logging.getLogger("open_agentcore.server.auth")

PUBLIC_PATHS = frozenset({"/_agentcore/health"})
# Data-plane calls on one runtime: the ones a runtime's JWT authorizer may admit with a bearer token.
_INVOCATION = re.compile(r"^/runtimes/[^/]+(?:/[^/]+)*/(invocations|stopruntimesession)$")
_AGENT_CARD = re.compile(r"^/runtimes/[^/]+(?:/[^/]+)*/invocations/\.well-known/agent-card\.json$")
_WEBSOCKET = re.compile(r"^/runtimes/[^/]+(?:/[^/]+)*/ws$")


def is_invocation(scope: Scope) -> bool:
    """A call on one runtime's data plane, by the method and protocol its operation uses."""
    path = scope["path"]
    if scope["type"] == "websocket":
        return _WEBSOCKET.match(path) is not None
    method = scope.get("method")
    if method == "POST":
        return _INVOCATION.match(path) is not None
    return method == "GET" and _AGENT_CARD.match(path) is not None


class PayloadTooLarge(Exception):
    pass


class SigV4Authentication:
    """ASGI middleware: verify, then pass the request on with the caller's principal in `state`."""

    def __init__(self, app: ASGIApp, lookup: KeyLookup, max_body: Callable[[str], int]) -> None:
        self.app = app
        self.lookup = lookup
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if _ambiguous(raw_path):
            # The signature covers the normalised path, routing sees the path as sent: refuse
            # anything where the two could differ rather than route on one and verify the other.
            message = "the request path has empty or dot segments"
            await _refuse(scope, send, 400, "ValidationException", message)
            return
        raw_query = scope["query_string"].decode("latin-1")
        body = b""
        if scope["type"] == "http":
            try:
                body = await _read_body(receive, self.max_body(scope["path"]))
            except PayloadTooLarge:
                await _refuse(scope, send, 413, "ValidationException", "the request body is too large")
                return
        method = scope.get("method", "GET")
        state = scope.setdefault("state", {})
        try:
            scheme = authorization_scheme(dict((k.lower(), v) for k, v in headers), raw_query)
            if scheme in ("bearer", None) and is_invocation(scope):
                # Whether a bearer token (or nothing) will do is the runtime's to say: its JWT
                # authorizer checks the token once the route knows which runtime is called.
                state["principal"], state["scheme"] = None, scheme
                await self.app(scope, _replay(body, receive) if scope["type"] == "http" else receive, send)
                return
            if scheme == "bearer":
                raise MissingAuthentication(
                    "bearer tokens are accepted only for invoking agent runtimes with a JWT authorizer; "
                    "sign this request with SigV4"
                )
            if scheme == "presigned":
                credential = verify_presigned(method, raw_path, raw_query, headers, self.lookup)
            else:
                digest = hashlib.sha256(body).hexdigest()
                credential = verify_headers(method, raw_path, raw_query, headers, digest, self.lookup)
        except SignatureError as error:
            logger.info("Refused %s %s: %s", method, scope["path"], type(error).__name__)
            status = 403 if isinstance(error, MissingAuthentication) else error.status
            await _refuse(scope, send, status, error.wire_name, str(error))
            return
        state["principal"], state["scheme"] = credential.principal, "sigv4"
        state["access_key_id"] = credential.access_key_id
        await self.app(scope, _replay(body, receive) if scope["type"] == "http" else receive, send)


def _ambiguous(raw_path: str) -> bool:
    segments = raw_path.split("/")[1:]
    # A trailing slash (the control plane's `/runtimes/`) is normal; empty segments elsewhere are not.
    inner = segments[:-1] if segments and segments[-1] == "" else segments
    return any(segment in ("", ".", "..") for segment in inner)


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    """An AWS error response; a WebSocket handshake is refused with the same response when the
    server can send one (else plainly: uvicorn then answers 403)."""
    if scope["type"] == "websocket":
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1008})
            return
        prefix = "websocket.http.response"
    else:
        prefix = "http.response"
    body = json.dumps({"message": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"x-amzn-errortype", code.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": f"{prefix}.start", "status": status, "headers": headers})
    await send({"type": f"{prefix}.body", "body": body})


__all__ = ["PUBLIC_PATHS", "SigV4Authentication", "is_invocation"]
