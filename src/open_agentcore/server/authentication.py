"""Who is calling: classify a request by the operation table, then authenticate it as its operation requires.

Everything a request's headers can prove is checked before its body is read: the signature's form,
its credential scope (this service, this server's region), its date, and that its key exists (and
the whole signature too, when the client declares the body's hash). Only then is the body read,
hashed as it arrives and bounded by the operation's limit, and the signature checked against it;
the route sees the body after that, replayed. Presigned URLs authenticate WebSocket handshakes
only. Data-plane operations pass bearer tokens (and anonymous calls) on to the route, where the
runtime's JWT authorizer decides. A request that claims none of these but bears a web console
cookie is judged by the cookie (`console_auth.py`). The result is a typed `Caller` in
`scope["state"]["caller"]`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from open_agentcore.auth import (
    ANONYMOUS,
    Caller,
    MissingAuthentication,
    PendingSignature,
    Scheme,
    SignatureError,
    authorization_scheme,
    begin_headers,
    begin_presigned,
)
from open_agentcore.auth.sigv4 import EMPTY_SHA256

from .access import AccessDirectory
from .bodies import BodyTooLarge, ClientGone, RequestBody, limited
from .console_auth import ConsoleAuthenticator, ConsoleRefused, has_cookie, inert
from .operations import SCOPE_KEY, Auth, Operation, OperationMatch, OperationTable

logger = logging.getLogger("open_agentcore.server.auth")

REFUSAL = "agentcore.refusal"  # in scope["state"]: why the signature was refused (for metrics)

_PRESIGNED_ELSEWHERE = (
    "presigned URLs authenticate WebSocket connections only (/runtimes/{arn}/ws); "
    "sign this request in its Authorization header"
)


def caller_of(scope: Scope) -> Caller:
    """The caller authentication admitted (anonymous for the public health check)."""
    caller: Caller = scope.get("state", {}).get("caller", ANONYMOUS)
    return caller


class Authentication:
    """ASGI middleware: classify, authenticate, and pass the request on with its `Caller`."""

    def __init__(
        self,
        app: ASGIApp,
        table: OperationTable,
        directory: AccessDirectory,
        max_payload: int,
        spool_dir: Path | None = None,
        console: ConsoleAuthenticator | None = None,
    ) -> None:
        self.app = app
        self.console = console
        self.table = table
        self.directory = directory
        self.max_payload = max_payload
        self.spool_dir = spool_dir

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        found = scope[SCOPE_KEY] = self.table.classify(scope)
        operation = found.operation if isinstance(found, OperationMatch) else None
        state = scope.setdefault("state", {})
        if operation is not None and operation.auth is Auth.PUBLIC:
            state["caller"] = ANONYMOUS
            await self.app(scope, receive, send)
            return
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if _ambiguous(raw_path):
            # The signature covers the normalised path, routing sees the path as sent: refuse
            # anything where the two could differ rather than route on one and verify the other.
            await _refuse(
                scope, send, 400, "ValidationException", "the request path has empty or dot segments"
            )
            return
        limit = operation.max_body if operation is not None and operation.max_body else self.max_payload
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        raw_query = scope["query_string"].decode("latin-1")
        method = scope.get("method", "GET")
        body = RequestBody(self.spool_dir)
        try:
            scheme = authorization_scheme(headers, raw_query)
            if scheme is None and self.console is not None and has_cookie(scope["headers"]):
                # Only a request that claims nothing else is judged by its console cookie.
                state["caller"] = await self.console.caller(scope, operation)
                if scope["type"] == "http":
                    await self.app(scope, limited(receive, limit), inert(send))
                else:
                    await self.app(scope, receive, send)
                return
            if scheme in ("bearer", None) and operation is not None and operation.bearer:
                state["caller"] = Caller(Scheme.BEARER) if scheme == "bearer" else ANONYMOUS
                forwarded = limited(receive, limit) if scope["type"] == "http" else receive
                await self.app(scope, forwarded, send)
                return
            if scheme == "bearer":
                raise MissingAuthentication(
                    "bearer tokens are accepted only for invoking agent runtimes with a JWT authorizer; "
                    "sign this request with SigV4"
                )
            pending = self._begin(scheme, operation, method, raw_path, raw_query, headers)
            known = await self.directory.credential(pending.access_key_id)
            if known is None or pending.declared_sha256 is not None or scope["type"] == "websocket":
                # Nothing of the body is needed to check the signature: check it before reading any.
                declared = pending.declared_sha256 or ""
                credential = pending.verify(known, declared.lower() or EMPTY_SHA256)
            if scope["type"] == "http":
                await body.read(receive, limit)
                credential = pending.verify(known, body.sha256)
        except SignatureError as error:
            logger.info("Refused %s %s: %s", method, scope["path"], type(error).__name__)
            state[REFUSAL] = type(error).__name__
            status = 403 if isinstance(error, MissingAuthentication) else error.status
            await _refuse(scope, send, status, error.wire_name, str(error))
            body.close()
            return
        except (_Refused, ConsoleRefused) as refused:
            await _refuse(scope, send, refused.status, refused.code, str(refused))
            body.close()
            return
        except BodyTooLarge:
            message = f"the request body is too large: at most {limit} bytes"
            await _refuse(scope, send, 413, "ValidationException", message)
            body.close()
            return
        except ClientGone:
            body.close()
            return
        state["caller"] = Caller(
            Scheme.SIGV4,
            principal=credential.principal,
            access_key_id=credential.access_key_id,
            admin=self.directory.is_admin(credential),
        )
        try:
            await self.app(scope, body.replay(receive) if scope["type"] == "http" else receive, send)
        finally:
            body.close()

    def _begin(
        self, scheme: str | None, operation: Operation | None, method: str, raw_path: str, raw_query: str,
        headers: list[tuple[str, str]],
    ) -> PendingSignature:  # fmt: skip
        region = self.table.region
        if scheme == "presigned":
            if operation is None or not operation.presigned:
                raise _Refused(_PRESIGNED_ELSEWHERE)
            return begin_presigned(method, raw_path, raw_query, headers, region=region)
        return begin_headers(method, raw_path, raw_query, headers, region=region)


class _Refused(Exception):
    """Refused for what the request is, not for its signature."""

    status = 403
    code = "AccessDeniedException"


def _ambiguous(raw_path: str) -> bool:
    segments = raw_path.split("/")[1:]
    # A trailing slash (the control plane's `/runtimes/`) is normal; empty segments elsewhere are not.
    inner = segments[:-1] if segments and segments[-1] == "" else segments
    return any(segment in ("", ".", "..") for segment in inner)


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


__all__ = ["REFUSAL", "Authentication", "caller_of"]
