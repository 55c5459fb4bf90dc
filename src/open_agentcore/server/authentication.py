"""Who is calling: classify a request by the operation table, then authenticate it as its operation requires.

Everything a request's headers can prove is checked before its body is read: the signature's form,
its credential scope (this service, this server's region), its date, and that its key exists (and
the whole signature too, when the client declares the body's hash). Only then is the body read,
hashed as it arrives and bounded by the operation's limit, and the signature checked against it;
the route sees the body after that, replayed. Presigned URLs authenticate WebSocket handshakes
only. Data-plane operations pass bearer tokens (and anonymous calls) on to the route, where the
runtime's JWT authorizer decides. A request that claims none of these but bears a web console
cookie is judged by the cookie (`console_auth.py`). The result is a typed `Caller` in
`scope["state"]["caller"]`. The gateway (`gateway.py`) asks for it once per request.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

from starlette.types import Receive, Scope, Send

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
from open_agentcore.auth.sigv4 import EMPTY_SHA256, HeaderValues, header_values

from .access import AccessDirectory
from .bodies import BodyTooLarge, ClientGone, RequestBody, limited
from .console_auth import ConsoleAuthenticator, ConsoleRefused, has_cookie, inert
from .operations import Auth, Operation, OperationTable

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


class Admission:
    """A request authentication let through: its caller, and the `receive`/`send` the rest of its
    handling uses (the body replayed, bounded, or marked inert for a browser). `close()` always."""

    __slots__ = ("body", "caller", "receive", "send")

    def __init__(self, caller: Caller, receive: Receive, send: Send, body: RequestBody | None = None) -> None:
        self.caller = caller
        self.receive = receive
        self.send = send
        self.body = body

    def close(self) -> None:
        """Let go of the body (a spilled one's temporary file)."""
        if self.body is not None:
            self.body.close()


class Authenticator:
    """Authenticates a classified request as its operation requires (see the module docstring)."""

    def __init__(
        self,
        table: OperationTable,
        directory: AccessDirectory,
        max_payload: int,
        spool_dir: Path | None = None,
        console: ConsoleAuthenticator | None = None,
    ) -> None:
        self.console = console
        self.table = table
        self.directory = directory
        self.max_payload = max_payload
        self.spool_dir = spool_dir

    async def admit(
        self, scope: Scope, receive: Receive, send: Send, operation: Operation | None
    ) -> Admission | None:
        """The request's `Admission`, or None once it was refused (the refusal already sent).

        The caller is also put in `scope["state"]["caller"]`, where routes read it (`caller_of`).
        """
        state = scope["state"]
        if operation is not None and operation.auth is Auth.PUBLIC:
            state["caller"] = ANONYMOUS
            return Admission(ANONYMOUS, receive, send)
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if _ambiguous(raw_path):
            # The signature covers the normalised path, routing sees the path as sent: refuse
            # anything where the two could differ rather than route on one and verify the other.
            await refuse(
                scope, send, 400, "ValidationException", "the request path has empty or dot segments"
            )
            return None
        http = scope["type"] == "http"
        limit = operation.max_body if operation is not None and operation.max_body else self.max_payload
        headers = header_values(scope["headers"])
        raw_query = scope["query_string"].decode("latin-1")
        method = scope.get("method", "GET")
        body = RequestBody(self.spool_dir)
        try:
            scheme = authorization_scheme(headers, raw_query)
            if scheme is None and self.console is not None and has_cookie(scope["headers"]):
                # Only a request that claims nothing else is judged by its console cookie.
                caller = state["caller"] = await self.console.caller(scope, operation)
                if http:
                    return Admission(caller, limited(receive, limit), inert(send))
                return Admission(caller, receive, send)
            if scheme in ("bearer", None) and operation is not None and operation.bearer:
                caller = state["caller"] = Caller(Scheme.BEARER) if scheme == "bearer" else ANONYMOUS
                return Admission(caller, limited(receive, limit) if http else receive, send)
            if scheme == "bearer":
                raise MissingAuthentication(
                    "bearer tokens are accepted only for invoking agent runtimes with a JWT authorizer; "
                    "sign this request with SigV4"
                )
            pending = self._begin(scheme, operation, method, raw_path, raw_query, headers)
            known = await self.directory.credential(pending.access_key_id)
            if known is None or pending.declared_sha256 is not None or not http:
                # Nothing of the body is needed to check the signature: check it before reading any.
                declared = pending.declared_sha256 or ""
                credential = pending.verify(known, declared.lower() or EMPTY_SHA256)
            if http:
                await body.read(receive, limit)
                credential = pending.verify(known, body.sha256)
        except SignatureError as error:
            logger.info("Refused %s %s: %s", method, scope["path"], type(error).__name__)
            state[REFUSAL] = type(error).__name__
            status = 403 if isinstance(error, MissingAuthentication) else error.status
            body.close()
            await refuse(scope, send, status, error.wire_name, str(error))
            return None
        except (_Refused, ConsoleRefused) as refused:
            body.close()
            await refuse(scope, send, refused.status, refused.code, str(refused))
            return None
        except BodyTooLarge:
            body.close()
            message = f"the request body is too large: at most {limit} bytes"
            await refuse(scope, send, 413, "ValidationException", message)
            return None
        except ClientGone:
            body.close()
            return None
        caller = state["caller"] = Caller(
            Scheme.SIGV4,
            principal=credential.principal,
            access_key_id=credential.access_key_id,
            admin=self.directory.is_admin(credential),
        )
        return Admission(caller, body.replay(receive) if http else receive, send, body)

    def _begin(
        self, scheme: str | None, operation: Operation | None, method: str, raw_path: str, raw_query: str,
        headers: HeaderValues,
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


@functools.lru_cache(maxsize=1024)  # a pure function of the path, and clients call few paths
def _ambiguous(raw_path: str) -> bool:
    segments = raw_path.split("/")[1:]
    # A trailing slash (the control plane's `/runtimes/`) is normal; empty segments elsewhere are not.
    inner = segments[:-1] if segments and segments[-1] == "" else segments
    return any(segment in ("", ".", "..") for segment in inner)


async def refuse(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
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


__all__ = ["REFUSAL", "Admission", "Authenticator", "caller_of", "refuse"]
