"""Who is calling: the one typed result of authentication that every later decision reads."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Scheme(enum.Enum):
    """How a request proved who sent it (or did not)."""

    SIGV4 = "sigv4"  # signed headers, a presigned URL for a WebSocket, or a console login (`console`)
    BEARER = "bearer"  # an OAuth bearer token, checked by the runtime's JWT authorizer
    ANONYMOUS = "anonymous"  # nothing; only the health check admits it


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: an access key and its principal, or a verified token's subject.

    A bearer-token caller starts with `subject` None: the token is checked by the runtime's JWT
    authorizer once the route knows which runtime is called, which then fills it in.
    """

    scheme: Scheme
    principal: str | None = None
    access_key_id: str | None = None
    subject: str | None = None
    admin: bool = False
    console: bool = False  # the key proven by a console login cookie, not a signature

    @property
    def owner(self) -> str | None:
        """The name a session records as its owner: `key:<principal>` or `token:<subject>`.

        Tokens without a subject (`sub`) are all one owner, `token:`; anonymous callers none.
        """
        if self.scheme is Scheme.SIGV4 and self.principal is not None:
            return f"key:{self.principal}"
        if self.scheme is Scheme.BEARER:
            return f"token:{self.subject or ''}"
        return None

    def describe(self) -> str:
        """For logs and messages: the principal or subject, never a secret."""
        if self.scheme is Scheme.SIGV4:
            via = " through the console" if self.console else ""
            return f"access key {self.access_key_id} ({self.principal}){via}"
        if self.scheme is Scheme.BEARER:
            return f"bearer token of {self.subject}" if self.subject else "an unverified bearer token"
        return "an anonymous caller"


ANONYMOUS = Caller(Scheme.ANONYMOUS)

__all__ = ["ANONYMOUS", "Caller", "Scheme"]
