"""The web console's own routes: its pages and assets, and logging in and out.

Pages and assets hold no data and are public; everything the pages show comes from the server's
other operations, called with the console cookie (see `console_auth.py`). Every console response
forbids framing and inline script, so an injected string can never run as code.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from open_agentcore.console import COOKIE_NAME, STATIC_DIR, ConsoleSession

from .access import AccessDirectory
from .console_auth import ConsoleAuthenticator, ConsoleRefused, refuse_cross_site, require_same_origin
from .errors import ServiceError, Throttled, Unauthorized, ValidationError
from .ratelimit import TokenBuckets

logger = logging.getLogger("open_agentcore.server.console")

CONSOLE_PATH = "/_agentcore/console"
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}
_NO_STORE = {"cache-control": "no-store"}
_MEDIA = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml", "png": "image/png"}
_MAX_LOGIN_BODY = 4096
_GENERIC_FAILURE = "the access key id or secret access key is not right"


class AssetNotFound(ServiceError):
    code = "ResourceNotFoundException"
    status = 404


async def to_page(request: Request) -> Response:
    """`/_agentcore/console` → `/_agentcore/console/`, where the page's relative asset URLs resolve."""
    return RedirectResponse(CONSOLE_PATH + "/", status_code=308, headers=SECURITY_HEADERS)


async def page(request: Request) -> Response:
    """The console's one HTML page; the client-side router shows each view under it."""
    return FileResponse(
        STATIC_DIR / "index.html", media_type="text/html; charset=utf-8",
        headers={**SECURITY_HEADERS, "cache-control": "no-cache"},
    )  # fmt: skip


async def asset(request: Request) -> Response:
    name = request.path_params["asset"]
    if not (STATIC_DIR / name).is_file():
        raise AssetNotFound(f"the console has no asset {name!r}")
    media = _MEDIA[name.rsplit(".", 1)[1]]
    return FileResponse(
        STATIC_DIR / name, media_type=media, headers={**SECURITY_HEADERS, "cache-control": "no-cache"}
    )


async def login(request: Request) -> Response:
    """`{"accessKeyId", "secretAccessKey"}` → the session cookie and the CSRF token that goes with it."""
    authenticator = _authenticator(request)
    headers = _lower(request)
    try:
        require_same_origin(request.scope, headers)
    except ConsoleRefused as refused:
        return _refused(refused)
    client = request.client.host if request.client else "unknown"
    if not _login_attempts(request).take(client):
        raise Throttled("too many login attempts from this address; wait a few seconds")
    key_id, secret = _login_fields(await _bounded_body(request))
    directory: AccessDirectory = authenticator.directory
    credential = await directory.credential(key_id)
    # Compared even for an unknown key, so the answer's timing does not tell which keys exist.
    expected = credential.secret_access_key if credential is not None else "-" * 40
    if not hmac.compare_digest(secret.encode(), expected.encode()) or credential is None:
        # %r: the key id is the caller's text, and must not be able to forge log lines.
        logger.info("console login refused for access key id %r from %s", key_id[:128], client)
        raise Unauthorized(_GENERIC_FAILURE)
    value, session = (await authenticator.signer()).mint(credential.access_key_id)
    caller = await authenticator.caller_of(session)
    logger.info("console login: %s from %s", caller.describe(), client)
    response = JSONResponse(_describe(session, caller.principal or "", caller.admin), headers=_NO_STORE)
    response.set_cookie(
        COOKIE_NAME, value, max_age=authenticator.lifetime, path="/", httponly=True, samesite="strict",
        secure=request.url.scheme in ("https", "wss"),
    )  # fmt: skip
    return response


async def logout(request: Request) -> Response:
    """Clear the cookie (same-origin only, so another site cannot log anyone out)."""
    try:
        require_same_origin(request.scope, _lower(request))
    except ConsoleRefused as refused:
        return _refused(refused)
    response = JSONResponse({"loggedOut": True}, headers=_NO_STORE)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return response


async def whoami(request: Request) -> Response:
    """Who the cookie says is logged in, and the CSRF token for changes (401 when nobody is)."""
    authenticator = _authenticator(request)
    headers = _lower(request)
    try:
        refuse_cross_site(request.scope, headers)
        session = await authenticator.session(headers)
        caller = await authenticator.caller_of(session)
    except ConsoleRefused as refused:
        return _refused(refused)
    return JSONResponse(_describe(session, caller.principal or "", caller.admin), headers=_NO_STORE)


def _describe(session: ConsoleSession, principal: str, admin: bool) -> dict[str, Any]:
    return {
        "accessKeyId": session.access_key_id,
        "principal": principal,
        "admin": admin,
        "csrfToken": session.csrf_token,
        "expiresAt": session.expires_at,
    }


def _authenticator(request: Request) -> ConsoleAuthenticator:
    authenticator: ConsoleAuthenticator = request.app.state.console
    return authenticator


def _login_attempts(request: Request) -> TokenBuckets:
    if (buckets := getattr(request.app.state, "console_logins", None)) is None:
        # Guessing secrets online: ten logins at once per client address, then one every five seconds.
        buckets = request.app.state.console_logins = TokenBuckets(rate=0.2, burst=10)
    found: TokenBuckets = buckets
    return found


def _lower(request: Request) -> dict[str, str]:
    return {name.lower(): value for name, value in request.headers.items()}


def _refused(refused: ConsoleRefused) -> Response:
    return JSONResponse(
        {"message": str(refused)}, status_code=refused.status,
        headers={"x-amzn-errortype": refused.code, **_NO_STORE},
    )  # fmt: skip


async def _bounded_body(request: Request) -> bytes:
    # A public route: authentication did not bound this body, so it is bounded here.
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_LOGIN_BODY:
            raise ValidationError("the login request is too large")
    return body


def _login_fields(body: bytes) -> tuple[str, str]:
    try:
        document = json.loads(body)
    except ValueError:
        raise ValidationError(
            'the login body must be JSON: {"accessKeyId": ..., "secretAccessKey": ...}'
        ) from None
    key_id = document.get("accessKeyId") if isinstance(document, dict) else None
    secret = document.get("secretAccessKey") if isinstance(document, dict) else None
    if not isinstance(key_id, str) or not key_id or not isinstance(secret, str) or not secret:
        raise ValidationError("give both accessKeyId and secretAccessKey", field="accessKeyId")
    if len(key_id) > 128 or len(secret) > 256:
        raise Unauthorized(_GENERIC_FAILURE)
    return key_id, secret


__all__ = [
    "CONSOLE_PATH",
    "SECURITY_HEADERS",
    "AssetNotFound",
    "asset",
    "login",
    "logout",
    "page",
    "to_page",
    "whoami",
]
