"""Counting requests as they are answered: invocations by runtime and outcome with their latencies,
authentication and authorisation refusals by reason, and rate-limit refusals.

The gateway (`gateway.py`) makes every request's `Exchange` first and sends every response through
it, so it sees each answer however it was made (authentication, the rate limit, the policy check,
a route, an error handler); `RequestMetrics` records it once the request is done. The invocation
route adds what only it knows through the request's `Exchange` (`invocation_of`): the runtime
once found, when it began to get the session's worker, and when and how the worker answered.

Server overhead, exactly: time to first byte (arrival at the server to the answer's status line)
minus the time from asking for the session's worker (the lease: starting a worker for a new
session, taking it from the warm pool, or finding it live) to the worker's response head. What
remains is the server's own work: parsing, authentication (including reading and hashing the
body), policy, routing, and relaying; the time the client takes to send its body is in it too.
A call retried on a fresh worker (its first worker had died) counts the retry as worker time.
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import Message, Receive, Scope, Send

from open_agentcore.metrics import UNKNOWN_RUNTIME, Outcome, ServerMetrics

from .authentication import REFUSAL
from .operations import SCOPE_KEY, OperationMatch

EXCHANGE = "agentcore.exchange"
_INVOKE = "InvokeAgentRuntime"
_CANCELLED_STATUS = 499  # what a worker answers for a call cancelled before its answer began
# Refusals made after authentication (by the policy check or the runtime's authorizer), by error code.
_REFUSALS = {
    "AccessDeniedException": "AccessDenied",
    "UnauthorizedException": "Unauthorized",
    "MissingAuthenticationTokenException": "MissingAuthentication",
}


class Exchange:
    """One request and its answer, as metrics and the server's span see it; times are
    `time.perf_counter()`. Its `send` and `receive` watch the answer and the client on their way."""

    __slots__ = (
        "_receive", "_send", "answered_at", "arrived", "body_bytes", "disconnected", "ended_at", "error_type",
        "failure", "first_byte_at", "leasing_at", "runtime_id", "status", "worker_status",
    )  # fmt: skip

    def __init__(self, arrived: float, send: Send | None = None, receive: Receive | None = None) -> None:
        self.arrived = arrived
        self._send = send
        self._receive = receive
        self.body_bytes = 0
        self.runtime_id: str | None = None
        self.leasing_at: float | None = None
        self.answered_at: float | None = None
        self.worker_status: int | None = None
        self.status: int | None = None
        self.error_type: str | None = None
        self.first_byte_at: float | None = None
        self.ended_at: float | None = None
        self.disconnected = False
        self.failure: BaseException | None = None

    async def send(self, message: Message) -> None:
        """Pass a response message on, noting its status, first byte, size and end."""
        kind = message["type"]
        if kind == "http.response.body":
            self.body_bytes += len(message.get("body", b""))
            if not message.get("more_body", False):
                self.ended_at = time.perf_counter()
        elif kind == "http.response.start" or kind == "websocket.http.response.start":
            self.first_byte_at = time.perf_counter()
            status = self.status = message["status"]
            if status >= 400:
                for name, value in message.get("headers", ()):
                    if name.lower() == b"x-amzn-errortype":
                        self.error_type = value.decode("latin-1")
        assert self._send is not None  # only the gateway's exchanges are sent through
        await self._send(message)

    async def receive(self) -> Message:
        """The client's next message, noting a disconnect."""
        assert self._receive is not None
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.disconnected = True
        return message

    def leasing(self) -> None:
        """The route begins to get the session's worker."""
        self.leasing_at = time.perf_counter()

    def answered(self, status: int) -> None:
        """The worker's response head arrived with `status`."""
        self.answered_at = time.perf_counter()
        self.worker_status = status

    def outcome(self) -> Outcome:
        """How the call ended (see `Outcome`)."""
        status = self.status
        if status is None:
            cancelled = self.disconnected or isinstance(self.failure, asyncio.CancelledError)
            return Outcome.CANCELLED if cancelled else Outcome.SERVER_ERROR
        if self.ended_at is None:
            return Outcome.CANCELLED if self.disconnected else Outcome.CUT
        if 200 <= status < 300:
            return Outcome.SUCCESS
        if status == 424:
            return Outcome.CANCELLED if self.worker_status == _CANCELLED_STATUS else Outcome.AGENT_ERROR
        if status == 429:
            return Outcome.THROTTLED
        return Outcome.CLIENT_ERROR if status < 500 else Outcome.SERVER_ERROR


class _Unobserved(Exchange):
    """What the invocation route marks when the server runs without metrics: nothing is kept."""

    __slots__ = ()

    def leasing(self) -> None:
        pass

    def answered(self, status: int) -> None:
        pass


_UNOBSERVED = _Unobserved(0.0)


def invocation_of(scope: Scope, runtime_id: str) -> Exchange:
    """The request's exchange, now that its runtime `runtime_id` was found (a bounded label)."""
    exchange: Exchange = scope.get("state", {}).get(EXCHANGE, _UNOBSERVED)
    exchange.runtime_id = runtime_id
    return exchange


class RequestMetrics:
    """Records each request's `Exchange` in `metrics` once the request is done."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    def record(self, scope: Scope, exchange: Exchange) -> None:
        """Count the answer (refusals, throttling) and, for an invocation, its outcome and latencies."""
        found = scope.get(SCOPE_KEY)
        operation = found.operation.name if isinstance(found, OperationMatch) else None
        status = exchange.status
        if status is not None and status >= 400:
            reason = scope.get("state", {}).get(REFUSAL) or _REFUSALS.get(exchange.error_type or "")
            if reason is not None:
                self.metrics.auth_failures.labels(reason).inc()
            if status == 429 and exchange.error_type == "ThrottlingException":
                self.metrics.rate_limited.labels(operation or "unknown").inc()
        if operation == _INVOKE and scope["type"] == "http":
            self._record_invocation(exchange)

    def _record_invocation(self, exchange: Exchange) -> None:
        series = self.metrics.invocation_series(exchange.runtime_id or UNKNOWN_RUNTIME)
        series.counted(exchange.outcome())
        first_byte, leasing, answered = exchange.first_byte_at, exchange.leasing_at, exchange.answered_at
        if first_byte is None or leasing is None or answered is None:
            return  # it never reached a worker: its latency says nothing of serving agents
        ended = exchange.ended_at or time.perf_counter()
        series.duration.observe(ended - exchange.arrived)
        series.first_byte.observe(first_byte - exchange.arrived)
        overhead = (first_byte - exchange.arrived) - (answered - leasing)
        series.overhead.observe(max(0.0, overhead))


__all__ = ["EXCHANGE", "Exchange", "RequestMetrics", "invocation_of"]
