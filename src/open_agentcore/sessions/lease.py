"""A call's hold on its session's worker: acquiring, the one retry rule, and releasing, in one place.

Every route that reaches a worker (invocations, the agent card, WebSockets) holds a `SessionLease`
for as long as it talks to the worker, streamed answers included:

    async with sessions.lease(target, session_id, owner) as lease:
        reply = await lease.send("POST", "/invocations", headers, body)

While a lease is held its session counts as busy, so the idle reaper leaves it alone; leaving the
block marks it idle again however the call ended.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from .worker_client import WorkerReply, WorkerUnreachable

if TYPE_CHECKING:
    from .manager import LiveSession, SessionManager, SessionTarget

_T = TypeVar("_T")


class SessionEnded(Exception):
    """The session's worker went away during the call (crashed, stopped, or past its maxLifetime).

    `reason` is what the session's record says; the session is already ended when this is raised.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SessionLease:
    """One call's use of a session's worker, as an async context manager (see the module doc)."""

    def __init__(
        self, manager: SessionManager, target: SessionTarget, session_id: str, owner: str | None,
        privileged: bool,
    ) -> None:  # fmt: skip
        self._manager = manager
        self._target = target
        self._session_id = session_id
        self._owner = owner
        self._privileged = privileged
        self._live: LiveSession | None = None
        self.started: str | None = None  # "cold" or "warm" when this call started the session

    @property
    def live(self) -> LiveSession:
        """The session this call holds (after a retry, the one with the fresh worker)."""
        if self._live is None:
            raise RuntimeError("the lease is not held: use it as `async with`")
        return self._live

    async def __aenter__(self) -> SessionLease:
        await self._acquire()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._release()

    async def _acquire(self) -> None:
        manager = self._manager
        live = self._live = await manager.acquire(
            self._target, self._session_id, self._owner, self._privileged
        )
        if live.fresh:
            live.fresh = False
            self.started = live.start

    def _release(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            self._manager.release(live)

    async def call(
        self, reach: Callable[[LiveSession], Awaitable[_T]],
        discard: Callable[[_T], Awaitable[None]] | None = None,
    ) -> _T:  # fmt: skip
        """`reach(live)`: the call's first exchange with the worker, which raises `WorkerUnreachable`
        when it cannot be made. Its result is returned once the session's start is on record
        (`LiveSession.on_record`); `discard` is given it if that wait is cancelled.

        The rule: when no byte of the call reached the worker, it is tried once more. On the same
        worker when the cause was only a kept-alive connection it had closed while idle; otherwise
        the worker has died since the session's last call, its session ends, and the call goes to
        a fresh worker for the same session id. Once anything was sent, the call is not repeated
        (the agent may have acted on it): the session ends and `SessionEnded` says why.
        """
        reconnected = replaced = False
        while True:
            try:
                reached = await reach(self.live)
            except WorkerUnreachable as error:
                if error.stale and not reconnected:
                    reconnected = True
                    continue
                reason = await self._manager.lost(self.live, error)
                if error.sent or replaced:
                    raise SessionEnded(reason) from None
                replaced = True
                self._release()
                await self._acquire()
                continue
            try:
                await self.live.on_record()
            except BaseException:
                if discard is not None:
                    await discard(reached)
                raise
            return reached

    async def send(
        self, method: str, path: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> WorkerReply:
        """Send a request to the session's worker (under the rule of `call`); its reply's head."""
        return await self.call(lambda live: live.client.send(method, path, headers, body), WorkerReply.close)

    async def broke_off(self, error: WorkerUnreachable) -> str:
        """End the session whose worker stopped answering in the middle of a reply; returns why."""
        return await self._manager.lost(self.live, error)


__all__ = ["SessionEnded", "SessionLease"]
