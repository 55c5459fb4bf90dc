"""Sync-generator producers taking turns at the interpreter, paced by the server's event loop.

Each sync generator has a pool thread of its own (it may block, say on a model's API). Threads
running Python hold the interpreter lock, and the interpreter hands that lock over without
priorities: with sixteen producers computing, the event loop (which accepts new streams and sends
frames) and a new stream's producer wait behind all of them. So producers that compute step their
generators one at a time, each for a short slice, and the rest wait for their turn without the
lock:

- only a producer whose last `FAST_RUN` steps each took less than `SLOW_STEP` takes turns; one
  whose steps wait (on a socket, a model, a sleep) steps on its own, so it never holds a turn
  while it waits, and a new stream's first steps compete with one producer, not all of them;
- a slice ends after `SLICE` seconds, or when its holder is far enough ahead of its socket; while
  others wait, the loop passes the turn on, so it runs (accepts, sends) between any two slices;
- while producers step, the loop beats every `INTERVAL` seconds; a producer that sees the beat
  late by `STALE_AFTER` waits for the next one (keeping its turn), so the loop runs next. The
  beat stops when no producer has stepped since the last one (streams waiting on a model cost
  the loop no wake-ups) and the next step starts it again;
- a holder whose step has lasted `STUCK_AFTER` (a fast generator that began to wait) has its turn
  passed on by the loop's beat, and steps on its own from then on.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
import weakref

from .inbox import inbox_for

INTERVAL = 0.001
STALE_AFTER = 0.001
SLICE = 0.0005
STUCK_AFTER = 0.002
SLOW_STEP = 0.0005
FAST_RUN = 8
LONGEST_WAIT = 0.1
_LOOP = object()  # the turn's holder between two slices, while the loop passes it on


class Turns:
    """The turns of one event loop's sync producers, and that loop's heartbeat."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._attached = 0  # changed on the loop only
        self._timer: asyncio.TimerHandle | None = None
        self._stepped = False  # a producer stepped since the last beat
        self._restarting = False  # a producer asked the loop to start beating again...
        self._restart_asked = 0.0  # ...at this time
        self._beat = time.monotonic()
        self._beaten = threading.Condition(threading.Lock())
        self._lock = threading.Lock()
        self._holder: object | None = None
        self._waiting: collections.deque[tuple[object, threading.Lock]] = collections.deque()
        self._step_began = 0.0  # when the holder began its current step
        self._slice_ends = 0.0

    # On the loop --------------------------------------------------------------------------

    def attach(self) -> None:
        """One more producer takes turns (and starts the beat). Call on the loop."""
        self._attached += 1
        self._start_beating()

    def _start_beating(self) -> None:
        self._restarting = False
        if self._timer is None and self._attached > 0:
            self._beat = time.monotonic()
            self._timer = self._loop.call_later(INTERVAL, self._tick)
            with self._beaten:
                self._beaten.notify_all()

    def detach(self) -> None:
        """One producer fewer. Call on the loop."""
        self._attached -= 1

    def _tick(self) -> None:
        self._beat = now = time.monotonic()
        with self._beaten:
            self._beaten.notify_all()
        if self._holder is not None and now - self._step_began > STUCK_AFTER:
            with self._lock:
                if self._holder is not None and now - self._step_began > STUCK_AFTER:
                    self._pass_on()
        busy = self._stepped or self._holder is not None or bool(self._waiting)
        self._stepped = False
        self._timer = self._loop.call_later(INTERVAL, self._tick) if self._attached > 0 and busy else None

    # On producer threads ------------------------------------------------------------------

    def take(self, producer: object) -> None:
        """Wait, without the interpreter lock, until `producer` holds the turn; turns go in order."""
        if self._holder is producer:
            return
        with self._lock:
            if self._holder is None:
                self._hand_to(producer)
                return
            gate = threading.Lock()
            gate.acquire()
            self._waiting.append((producer, gate))
        if not gate.acquire(timeout=LONGEST_WAIT):
            # The loop has not passed a blocked turn on for that long: it is closed or blocked.
            # Go on without the turn rather than wait for a loop that may never beat again.
            with self._lock:
                if (producer, gate) in self._waiting:
                    self._waiting.remove((producer, gate))

    def stepping(self, producer: object) -> float:
        """`producer` is about to step its generator: now, noted if it holds the turn (so that a
        blocked step can be told from a busy one)."""
        now = time.monotonic()
        if self._holder is producer:
            self._step_began = now
        self._stepped = True
        if self._timer is None and not self._restarting:
            self._restarting = True
            self._restart_asked = now
            inbox_for(self._loop).post(self._start_beating)
        return now

    def loop_is_late(self) -> bool:
        """True when the loop has missed its beat: it wants the interpreter lock and waits for it."""
        if self._timer is not None:
            return time.monotonic() - self._beat > STALE_AFTER
        return self._restarting and time.monotonic() - self._restart_asked > STALE_AFTER

    def should_pause(self, producer: object) -> bool:
        """True when `producer` should stop stepping: its slice is over, its turn was passed on
        (its step blocked), or the loop is late for its beat."""
        if self._holder is not producer:
            return True
        now = time.monotonic()
        return now > self._slice_ends or now - self._beat > STALE_AFTER

    def pause(self, producer: object) -> None:
        """End `producer`'s slice: let the loop run if it is late (keeping the turn, so no other
        producer runs instead), then have the loop pass the turn on if others wait for it."""
        if self.loop_is_late():
            if self._holder is producer:
                self._step_began = time.monotonic()
            with self._beaten:
                self._beaten.wait(LONGEST_WAIT)
        with self._lock:
            if self._holder is not producer:
                return
            if not self._waiting:
                self._holder = None
                return
            # Through the loop: it gets its iteration between two slices even when a producer
            # would win the interpreter lock from it.
            self._holder = _LOOP
            self._step_began = time.monotonic()
        inbox_for(self._loop).post(self._loop_passes_on)

    def _loop_passes_on(self) -> None:
        with self._lock:
            if self._holder is _LOOP:
                self._pass_on()

    def give(self, producer: object) -> None:
        """Pass the turn on if `producer` holds it."""
        if self._holder is not producer:
            return
        with self._lock:
            if self._holder is producer:
                self._pass_on()

    def _pass_on(self) -> None:
        if self._waiting:
            producer, gate = self._waiting.popleft()
            self._hand_to(producer)
            gate.release()
        else:
            self._holder = None

    def _hand_to(self, producer: object) -> None:
        self._holder = producer
        self._step_began = now = time.monotonic()
        self._slice_ends = now + SLICE


_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Turns] = weakref.WeakKeyDictionary()


def turns_of(loop: asyncio.AbstractEventLoop) -> Turns:
    """The one `Turns` of `loop`, created on first use; call on that loop."""
    turns = _turns.get(loop)
    if turns is None:
        turns = _turns[loop] = Turns(loop)
    return turns


__all__ = [
    "FAST_RUN",
    "INTERVAL",
    "LONGEST_WAIT",
    "SLICE",
    "SLOW_STEP",
    "STALE_AFTER",
    "STUCK_AFTER",
    "Turns",
    "turns_of",
]
