"""The console cookie as a way to authenticate: which requests it may admit, and as whom.

A request with no `Authorization` header and no presigned query, bearing a console cookie, is
admitted as the cookie's access key: the same `Caller` a SigV4 signature with that key yields, so
every policy check applies unchanged. On top of the cookie: the request must not come from another
site (`Sec-Fetch-Site`, `Origin`); every change (any method but GET and HEAD, and every WebSocket
handshake) must carry the CSRF token tied to the cookie; and access-key management stays with
signed requests. A request that carries a signature is never judged by its cookie.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlsplit

from starlette.types import Message, Scope, Send

from open_agentcore.auth import Caller, Scheme
from open_agentcore.console import (
    COOKIE_NAME,
    CSRF_HEADER,
    CSRF_QUERY,
    DEFAULT_LIFETIME,
    ConsoleSession,
    CookieRejected,
    CookieSigner,
    csrf_matches,
)
from open_agentcore.store import Store
from open_agentcore.store.engine import PAGINATION_KEY, read_setting

from .access import AccessDirectory
from .operations import Operation

_SAFE_METHODS = ("GET", "HEAD")
# An answer to a cookie-authenticated request may be the agent's own (an agent card, an
# invocation's body, with the content type the agent chose): were it HTML opened in a tab, it must
# not run as this origin, where it could call the server as the signed-in key.
_INERT = [
    (b"content-security-policy", b"sandbox; default-src 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
]
_INERT_NAMES = {name for name, _ in _INERT}


class ConsoleRefused(Exception):
    """The console cookie does not admit this request; `status` and `code` are the wire error's."""

    def __init__(self, message: str, status: int = 403, code: str = "AccessDeniedException") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ConsoleAuthenticator:
    """Verifies console cookies for the authentication middleware and the console's own routes."""

    def __init__(self, directory: AccessDirectory, lifetime: int = DEFAULT_LIFETIME) -> None:
        self.directory = directory
        self.lifetime = lifetime
        self._signer: CookieSigner | None = None

    async def signer(self) -> CookieSigner:
        """The signer, its key derived from the store's own secret (read once, off the event loop)."""
        if self._signer is None:
            store: Store | None = self.directory.store
            if store is None:
                raise ConsoleRefused("the server is starting", 503, "ServiceUnavailableException")
            secret = await asyncio.to_thread(read_setting, store.engine, PAGINATION_KEY)
            self._signer = CookieSigner(secret, self.lifetime)
        return self._signer

    async def caller(self, scope: Scope, operation: Operation | None) -> Caller:
        """The caller a cookie-bearing request is admitted as, or `ConsoleRefused` saying why not."""
        headers = _headers(scope)
        refuse_cross_site(scope, headers)
        session = await self.session(headers)
        if operation is not None and operation.admin_only:
            raise ConsoleRefused(
                "access keys are managed with signed requests (agentcore server keys), not the console"
            )
        if scope["type"] == "websocket" or scope.get("method", "GET") not in _SAFE_METHODS:
            require_same_origin(scope, headers)
            if scope["type"] == "websocket":
                query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
                sent = query.get(CSRF_QUERY)
            else:
                sent = headers.get(CSRF_HEADER)
            if not csrf_matches(session, sent):
                raise ConsoleRefused("the console's CSRF token is missing or wrong; reload the console")
        return await self.caller_of(session)

    async def session(self, headers: dict[str, str]) -> ConsoleSession:
        """The verified session of the request's cookie (401 when there is none or it is bad)."""
        value = cookie_value(headers.get("cookie", ""))
        if value is None:
            raise ConsoleRefused("log in to the console first", 401, "UnauthorizedException")
        signer = await self.signer()
        try:
            return signer.verify(value)
        except CookieRejected as rejected:
            raise ConsoleRefused(str(rejected), 401, "UnauthorizedException") from None

    async def caller_of(self, session: ConsoleSession) -> Caller:
        """The caller of a verified session, while its key is still active."""
        credential = await self.directory.credential(session.access_key_id)
        if credential is None:
            raise ConsoleRefused("the access key of this console session is no longer active", 401,
                                 "UnauthorizedException")  # fmt: skip
        return Caller(
            Scheme.SIGV4,
            principal=credential.principal,
            access_key_id=credential.access_key_id,
            admin=self.directory.is_admin(credential),
            console=True,
        )


def inert(send: Send) -> Send:
    """`send` with every answer marked inert for a browser: sandboxed, no script, no sniffing."""

    async def marked(message: Message) -> None:
        if message["type"] == "http.response.start":
            kept = [
                (name, value)
                for name, value in message.get("headers", [])
                if name.lower() not in _INERT_NAMES
            ]
            message = {**message, "headers": kept + _INERT}
        await send(message)

    return marked


def has_cookie(raw_headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """Whether the request carries a console cookie at all (cheap: no parsing beyond a search)."""
    marker = COOKIE_NAME.encode() + b"="
    return any(name == b"cookie" and marker in value for name, value in raw_headers)


def cookie_value(header: str) -> str | None:
    """The console cookie's value in a `Cookie` header, if there is one."""
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE_NAME and value:
            return value
    return None


def refuse_cross_site(scope: Scope, headers: dict[str, str]) -> None:
    """Refuse a request a browser says another site made, or whose `Origin` is another host."""
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise ConsoleRefused(f"the console refuses {site} requests")
    origin = headers.get("origin")
    if origin is not None and not _same_host(origin, headers):
        raise ConsoleRefused("the console refuses requests from another origin")


def require_same_origin(scope: Scope, headers: dict[str, str]) -> None:
    """A change must say where it comes from: browsers send `Origin` (or `Sec-Fetch-Site`) on one."""
    refuse_cross_site(scope, headers)
    if "origin" not in headers and headers.get("sec-fetch-site") != "same-origin":
        raise ConsoleRefused("a change through the console must come from the console's own origin")


def _same_host(origin: str, headers: dict[str, str]) -> bool:
    # The host, not the scheme: behind a proxy that ends TLS the server sees http while the
    # browser's Origin says https; another host is what marks another site.
    host = headers.get("host")
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    return host is not None and netloc.lower() == host.lower()


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


__all__ = [
    "ConsoleAuthenticator",
    "ConsoleRefused",
    "cookie_value",
    "has_cookie",
    "inert",
    "refuse_cross_site",
    "require_same_origin",
]
