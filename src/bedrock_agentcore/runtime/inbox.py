"""Handing callbacks to an event loop from other threads, one wake-up for many callbacks.

`loop.call_soon_threadsafe` writes to the loop's self-pipe on every call; a system call that
costs tens of microseconds on some virtual machines, paid twice per invocation (into a worker,
back to the server). An inbox queues callbacks and wakes its loop only when no wake-up is already
pending; the server loop posting work sends its wake-up at the end of its iteration. Under load
a burst of requests or results costs one write, not one per request.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import weakref
from collections.abc import Callable
from typing import Any


class LoopInbox:
    """Callbacks for one loop, posted from any thread, run in order on that loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = collections.deque()
        self._lock = threading.Lock()
        self._wake_pending = False

    def post(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run `callback(*args)` soon on the inbox's loop, waking it now unless a wake-up is pending."""
        if self._enqueue(callback, args):
            self._wake()

    def post_batched(self, callback: Callable[..., Any], *args: Any) -> None:
        """Like `post`, called from another event loop: the wake-up leaves when that loop ends its
        current iteration, so everything it posts in one iteration travels together.

        Only for loops that never run blocking code (the server's), or the wake-up could wait.
        """
        if self._enqueue(callback, args):
            asyncio.get_running_loop().call_soon(self._wake)

    def _enqueue(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        """Queue one callback; True when the caller must arrange the wake-up."""
        with self._lock:
            self._items.append((callback, args))
            if self._wake_pending:
                return False
            self._wake_pending = True
            return True

    def _wake(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:
            with self._lock:
                self._wake_pending = False
                self._items.clear()  # the loop is closed: nobody will run them

    def _drain(self) -> None:
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self._wake_pending = False
        for callback, args in items:
            callback(*args)


_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopInbox] = weakref.WeakKeyDictionary()
_inboxes_lock = threading.Lock()


def inbox_for(loop: asyncio.AbstractEventLoop) -> LoopInbox:
    """The one inbox of `loop`, created on first use."""
    inbox = _inboxes.get(loop)
    if inbox is None:
        with _inboxes_lock:
            inbox = _inboxes.get(loop)
            if inbox is None:
                inbox = _inboxes[loop] = LoopInbox(loop)
    return inbox


__all__ = ["LoopInbox", "inbox_for"]
