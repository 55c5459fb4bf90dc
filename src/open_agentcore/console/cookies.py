"""The console's session cookie and its CSRF token: minted at login, verified on every request.

A cookie names an access key and an expiry, signed with HMAC-SHA256. The signing key is derived
from a secret the store keeps for itself, so every replica sharing the store verifies the cookies
of every other. The cookie proves only that someone logged in with that key's secret: each
request still looks the key up, so a revoked key's cookie stops working as the key does.
The CSRF token is derived from the cookie; a page of another site can neither read the cookie
(HttpOnly) nor the token (same-origin JSON), so it cannot forge a change.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

COOKIE_NAME = "agentcore_console"
CSRF_HEADER = "x-agentcore-csrf"
CSRF_QUERY = "csrf"  # a browser's WebSocket handshake cannot carry our header
DEFAULT_LIFETIME = 8 * 3600
_LABEL = b"open-agentcore console session cookie v1"
_FORMAT = re.compile(r"v1\.([A-Za-z0-9]{1,128})\.([0-9]{1,12})\.([A-Za-z0-9_-]{16,64})\.([A-Za-z0-9_-]{43})")


class CookieRejected(Exception):
    """The cookie is malformed, forged, or expired; the message says which (never its value)."""


@dataclass(frozen=True)
class ConsoleSession:
    """A verified cookie: whose key it names, until when, and the CSRF token that goes with it."""

    access_key_id: str
    expires_at: int
    csrf_token: str


class CookieSigner:
    """Mints and verifies console cookies with a key derived from the store's own secret."""

    def __init__(self, store_secret: str, lifetime: int = DEFAULT_LIFETIME) -> None:
        self._key = hmac.new(store_secret.encode(), _LABEL, hashlib.sha256).digest()
        self.lifetime = lifetime

    def mint(self, access_key_id: str, now: float | None = None) -> tuple[str, ConsoleSession]:
        """A new cookie value for `access_key_id`, and the session it stands for."""
        expires = int(now if now is not None else time.time()) + self.lifetime
        nonce = secrets.token_urlsafe(18)
        body = f"v1.{access_key_id}.{expires}.{nonce}"
        value = f"{body}.{self._mac(body)}"
        return value, ConsoleSession(access_key_id, expires, self._csrf(nonce))

    def verify(self, value: str, now: float | None = None) -> ConsoleSession:
        """The session of a cookie this signer (or a replica sharing its store) minted."""
        found = _FORMAT.fullmatch(value)
        if found is None:
            raise CookieRejected("the console cookie is malformed")
        access_key_id, expires, nonce, mac = found.groups()
        body = value.rsplit(".", 1)[0]
        if not hmac.compare_digest(mac, self._mac(body)):
            raise CookieRejected("the console cookie's signature does not match")
        if int(expires) <= (now if now is not None else time.time()):
            raise CookieRejected("the console session has expired; log in again")
        return ConsoleSession(access_key_id, int(expires), self._csrf(nonce))

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _csrf(self, nonce: str) -> str:
        return self._mac(f"csrf.{nonce}")


def csrf_matches(session: ConsoleSession, sent: str | None) -> bool:
    """Whether `sent` is the session's CSRF token (compared in constant time)."""
    return sent is not None and hmac.compare_digest(sent.encode(), session.csrf_token.encode())


__all__ = [
    "COOKIE_NAME",
    "CSRF_HEADER",
    "CSRF_QUERY",
    "DEFAULT_LIFETIME",
    "ConsoleSession",
    "CookieRejected",
    "CookieSigner",
    "csrf_matches",
]
