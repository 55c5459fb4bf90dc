"""Span credentials: what a worker holds to post its own spans, and nothing else.

A worker's credential names its worker id and runtime, signed with a key this server process made
at start; it is checked without any lookup. The session a worker serves is bound when the session
starts, so what a worker posts is stamped with its own runtime and session whatever it claims. The
credential authenticates `POST /v1/traces` only: every other operation refuses bearer tokens, and
the read API is SigV4 only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

PREFIX = "oac-span."
_ENDED_KEPT = 100_000


class InvalidSpanCredential(Exception):
    """Not a span credential this server issued (or one of a worker that has ended)."""


@dataclass(frozen=True)
class SpanSource:
    """Where a worker's spans come from, as the server knows it."""

    worker_id: str
    runtime_id: str
    session_id: str | None


class SpanCredentials:
    """Issues and checks the span credentials of this server's workers."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._sessions: dict[str, str] = {}  # worker id -> the session it serves
        self._ended: dict[str, None] = {}  # insertion-ordered, so the oldest are forgotten first

    def issue(self, worker_id: str, runtime_id: str) -> str:
        """The credential of a worker about to start."""
        body = base64.urlsafe_b64encode(f"{worker_id}/{runtime_id}".encode()).decode().rstrip("=")
        return f"{PREFIX}{body}.{self._sign(body)}"

    def bind(self, worker_id: str, session_id: str) -> None:
        """The worker now serves this session (for its whole life)."""
        self._sessions[worker_id] = session_id

    def end(self, worker_id: str) -> None:
        """The worker is gone: its credential is refused from now on."""
        self._sessions.pop(worker_id, None)
        self._ended[worker_id] = None
        if len(self._ended) > _ENDED_KEPT:
            del self._ended[next(iter(self._ended))]

    def source(self, token: str) -> SpanSource:
        """Whose spans a request with this credential carries; `InvalidSpanCredential` otherwise."""
        if not token.startswith(PREFIX):
            raise InvalidSpanCredential("not a span credential")
        body, _, signature = token[len(PREFIX) :].partition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            raise InvalidSpanCredential("the span credential is not one this server issued")
        worker_id, _, runtime_id = (
            base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode().partition("/")
        )
        if worker_id in self._ended:
            raise InvalidSpanCredential("the span credential's worker has ended")
        return SpanSource(worker_id, runtime_id, self._sessions.get(worker_id))

    def _sign(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


__all__ = ["PREFIX", "InvalidSpanCredential", "SpanCredentials", "SpanSource"]
