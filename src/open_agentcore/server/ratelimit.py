"""Per-caller request rates: a token bucket per access key, or per client IP for unsigned calls.

The limit is applied after SigV4 authentication, so a bucket belongs to a verified key: naming
someone else's key id spends nothing of theirs, and refused signatures spend nothing at all.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import Receive, Scope, Send

from open_agentcore.auth import Caller

from .errors import Throttled

DEFAULT_MAX_BUCKETS = 100_000


class TokenBuckets:
    """One token bucket per caller: `rate` tokens a second, at most `burst` (default: `rate`) held.

    Memory is bounded: a bucket left alone until it is full again is the same as no bucket and is
    dropped; past `max_buckets` the least recently used goes first, even if not yet full.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        max_buckets: int = DEFAULT_MAX_BUCKETS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"the rate must be positive, got {rate}")
        self.rate = rate
        # Below one token a bucket could never admit anything: a slow rate still allows one call.
        self.burst = max(rate if burst is None else burst, 1.0)
        self.max_buckets = max_buckets
        self._clock = clock
        self._refill_seconds = self.burst / rate
        # caller -> (tokens, when counted); least recently used first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, caller: str) -> bool:
        """Spend one of `caller`'s tokens; False (and nothing spent) when none is left."""
        now = self._clock()
        bucket = self._buckets.pop(caller, None)
        self._forget(now)
        if bucket is None:
            tokens = self.burst
        else:
            held, counted = bucket
            tokens = min(self.burst, held + (now - counted) * self.rate)
        admitted = tokens >= 1.0
        self._buckets[caller] = (tokens - 1.0 if admitted else tokens, now)
        return admitted

    def _forget(self, now: float) -> None:
        buckets = self._buckets
        while buckets:
            _, counted = next(iter(buckets.values()))
            if now - counted < self._refill_seconds and len(buckets) < self.max_buckets:
                return
            buckets.popitem(last=False)


def bucket_of(scope: Scope, caller: Caller) -> str:
    """The verified access key id, else the client's IP (bearer and anonymous data-plane calls)."""
    key = caller.access_key_id
    if key:
        return f"key:{key}"
    client = scope.get("client")
    return f"ip:{client[0] if client else 'unknown'}"


class RateLimit:
    """429 ThrottlingException once a caller has spent its bucket; the gateway asks after
    authentication, so a bucket belongs to a verified caller.

    The health check is never limited (the gateway does not ask for public operations). A refused
    WebSocket handshake gets the same 429 response where the server can send one, else a close
    with 1013 (try again later).
    """

    def __init__(self, rate: float, max_buckets: int = DEFAULT_MAX_BUCKETS) -> None:
        self.buckets = TokenBuckets(rate, max_buckets=max_buckets)
        self.message = f"Rate exceeded: at most {rate:g} requests per second per caller"

    def admits(self, scope: Scope, caller: Caller) -> bool:
        """Spend one of the caller's tokens; False when none was left."""
        return self.buckets.take(bucket_of(scope, caller))

    async def refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the request with the throttling error."""
        if scope["type"] == "websocket" and "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1013})
            return
        # Starlette's Response prefixes its messages with `websocket.` for a handshake refusal.
        await Throttled(self.message).response()(scope, receive, send)


__all__ = ["RateLimit", "TokenBuckets", "bucket_of"]
