"""How each kind of handler is called, decided once when it is registered.

- sync functions (and sync generator functions) run in the thread pool;
- async functions run on a worker loop (`loops.py`), never on the server's loop, so a handler that
  blocks cannot stall `/ping` or other requests;
- async generator functions are iterated on a worker loop as a stream.
A result that is a generator or async generator becomes a stream; a coroutine returned by a sync
function is awaited on a worker loop.
"""

from __future__ import annotations

import contextvars
import enum
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from .context import RequestContext
from .encoding import dumps
from .loops import LoopPool, WorkerLoop
from .streaming import AsyncProducer, EventStreamResponse, SyncProducer
from .threads import ThreadPool


class HandlerKind(enum.Enum):
    """How a registered handler must be called."""

    SYNC = "sync"
    ASYNC = "async"
    ASYNC_GENERATOR = "async_generator"


def _unwrap(func: Any) -> Any:
    while isinstance(func, functools.partial):
        func = func.func
    return func


def handler_kind(func: Callable[..., Any]) -> HandlerKind:
    """Classify a handler: plain functions, partials and callable objects alike."""
    target = _unwrap(func)
    candidates = (target, getattr(target, "__call__", None))  # noqa: B004 - callable objects too
    if any(inspect.isasyncgenfunction(c) for c in candidates):
        return HandlerKind.ASYNC_GENERATOR
    if any(inspect.iscoroutinefunction(c) for c in candidates):
        return HandlerKind.ASYNC
    return HandlerKind.SYNC


def takes_context(func: Callable[..., Any]) -> bool:
    """True when the handler has room for a second positional argument (whatever its name)."""
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = 0
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return True
        if parameter.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


@dataclass(frozen=True)
class Handler:
    """A registered entrypoint with its calling convention worked out."""

    func: Callable[..., Any]
    kind: HandlerKind
    with_context: bool

    @classmethod
    def of(cls, func: Callable[..., Any]) -> Handler:
        return cls(func=func, kind=handler_kind(func), with_context=takes_context(func))

    @property
    def name(self) -> str:
        return getattr(self.func, "__name__", type(self.func).__name__)


class Encoded(bytes):
    """A plain result already encoded as JSON, where the handler ran (off the server loop)."""


def _settled(result: Any) -> Any:
    """Encode plain values now; streams, responses and coroutines are left for the dispatcher."""
    if (
        isinstance(result, Response)
        or inspect.isgenerator(result)
        or inspect.isasyncgen(result)
        or inspect.iscoroutine(result)
    ):
        return result
    return Encoded(dumps(result).encode("utf-8"))


def _call_and_settle(func: Callable[..., Any], *args: Any) -> Any:
    return _settled(func(*args))


async def _await_and_settle(coro: Any) -> Any:
    return _settled(await coro)


class Dispatcher:
    """Calls handlers where they belong and turns generator results into event streams.

    Plain results are JSON-encoded in the handler's own thread or worker loop, so a large
    result never occupies the server loop.
    """

    def __init__(self, loops: LoopPool, threads: ThreadPool) -> None:
        self.loops = loops
        self.threads = threads

    async def call(self, handler: Handler, payload: Any, context: RequestContext) -> Encoded | Response:
        """The handler's encoded result, its own `Response`, or an `EventStreamResponse`."""
        args = (payload, context) if handler.with_context else (payload,)
        if handler.kind is HandlerKind.SYNC:
            result = await self.threads.run(_call_and_settle, handler.func, *args)
            if inspect.iscoroutine(result):
                return await self._await_on_worker(result)
            return self._stream_or_value(result)
        if handler.kind is HandlerKind.ASYNC_GENERATOR:
            return self._async_stream(handler.func(*args))
        return await self._await_on_worker(handler.func(*args))

    async def _await_on_worker(self, coro: Any) -> Encoded | Response:
        result, worker = await self.loops.run(_await_and_settle(coro), contextvars.copy_context())
        if inspect.isasyncgen(result):
            # Iterate on the loop that made it: it may hold objects bound to that loop.
            return self._async_stream(result, worker)
        return self._stream_or_value(result)

    def _stream_or_value(self, result: Any) -> Encoded | Response:
        if inspect.isgenerator(result):
            return EventStreamResponse(SyncProducer(result, self.threads))
        if inspect.isasyncgen(result):
            return self._async_stream(result)
        return result  # type: ignore[no-any-return]

    def _async_stream(self, iterator: Any, pinned: WorkerLoop | None = None) -> EventStreamResponse:
        return EventStreamResponse(AsyncProducer(iterator, self.loops, pinned))


__all__ = ["Dispatcher", "Encoded", "Handler", "HandlerKind", "handler_kind", "takes_context"]
