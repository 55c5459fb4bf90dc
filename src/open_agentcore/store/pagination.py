"""Opaque `nextToken`s: the last key of a page, bound to its listing and signed, so none can be forged.

Listings page by key (not offset), so a row inserted or deleted between two calls neither repeats
nor skips another. The signing key lives in the database: every replica honours every token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

from .errors import InvalidPaginationToken

Key = str | int


class PageTokens:
    """Issues and checks the tokens of every listing of one store."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def issue(self, listing: str, last: Key) -> str:
        """The token for the page after the one ending at `last`, valid only for `listing`."""
        body = _b64(json.dumps([listing, last], separators=(",", ":")).encode())
        return f"{body}.{self._sign(body)}"

    def resume(self, listing: str, token: str | None) -> Key | None:
        """The key to continue after, None to start at the beginning; `InvalidPaginationToken` if forged."""
        if token is None or token == "":
            return None
        body, _, signature = token.partition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            raise InvalidPaginationToken("nextToken is not one this server issued for this listing")
        try:
            issued_for, last = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (ValueError, TypeError, binascii.Error):
            raise InvalidPaginationToken("nextToken is malformed") from None
        if issued_for != listing or not isinstance(last, (str, int)):
            raise InvalidPaginationToken("nextToken belongs to another listing")
        return last

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest()[:18])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


__all__ = ["PageTokens"]
