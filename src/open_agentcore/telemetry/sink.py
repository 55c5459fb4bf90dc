"""Where finished spans go: a bounded queue drained by one thread into the store, in batches, and
on to an external collector when one is configured.

Nothing here runs on the event loop but `submit`, which only appends to a queue: a request never
waits for a database write or a collector.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence

from open_agentcore.store import Store
from open_agentcore.store.traces import SpanRecord

from .config import TracingConfig
from .forward import Forwarder
from .pace import Pace

logger = logging.getLogger("open_agentcore.telemetry")

_PRUNE_EVERY = 5.0  # seconds between retention passes
Convert = Callable[[object], SpanRecord]


class SpanSink:
    """Batches spans into the store (and a forwarder); `start` and `close` bound its thread's life.

    Items are `SpanRecord`s, or anything `convert` turns into one (the server's own spans are
    queued as they end and converted on the sink's thread, not the request's). Queuing is a deque
    append: the thread is not woken per span, only when a batch is full or every `flush_interval`.
    """

    def __init__(self, config: TracingConfig, convert: Convert | None = None) -> None:
        self._store: Store | None = None
        self._config = config
        self._convert = convert
        self._pending: collections.deque[object] = collections.deque()
        self._forwarder = Forwarder(config.otlp_endpoint) if config.otlp_endpoint else None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._wake = threading.Event()
        self._busy = False
        self.dropped = 0
        self._last_prune = 0.0

    def start(self, store: Store) -> None:
        """Begin writing to `store` (spans queued before this are written first)."""
        self._store = store
        self._thread = threading.Thread(target=self._run, name="agentcore-spans", daemon=True)
        self._thread.start()

    def submit(self, item: object) -> None:
        """Queue one span; past the queue's bound it is dropped (and counted), never waited for."""
        pending = self._pending
        if len(pending) >= self._config.queue_limit:
            self.dropped += 1
            return
        pending.append(item)
        if len(pending) == self._config.batch_size:
            self._wake.set()

    def submit_many(self, records: Sequence[SpanRecord]) -> int:
        """Queue received spans; returns how many were dropped for want of room."""
        room = max(0, self._config.queue_limit - len(self._pending))
        self._pending.extend(records[:room])
        if len(self._pending) >= self._config.batch_size:
            self._wake.set()
        dropped = len(records) - min(room, len(records))
        self.dropped += dropped
        return dropped

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (for shutdown and tests)."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        while self._pending or self._busy:
            if time.monotonic() > deadline or self._thread is None or not self._thread.is_alive():
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread and the forwarder."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._forwarder is not None:
            self._forwarder.close()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._config.flush_interval)
            self._wake.clear()
            self._busy = True
            try:
                pace = Pace()
                while batch := self._take(pace):  # `_take` steps after every span it converts
                    self._write(batch)
                    pace.step()
                if time.monotonic() - self._last_prune > _PRUNE_EVERY:
                    self._prune()
            finally:
                self._busy = False
            if self._stopping and not self._pending:
                return

    def _take(self, pace: Pace) -> list[SpanRecord]:
        batch: list[SpanRecord] = []
        pending = self._pending
        while pending and len(batch) < self._config.batch_size:
            item = pending.popleft()
            if isinstance(item, SpanRecord):
                batch.append(item)
                continue
            try:
                if self._convert is not None:
                    batch.append(self._convert(item))
            except Exception:  # a span we cannot convert is lost, not the thread
                logger.exception("A span could not be converted; dropped")
            pace.step()
        return batch

    def _write(self, batch: list[SpanRecord]) -> None:
        assert self._store is not None
        try:
            self._store.add_spans(batch)
        except Exception:  # the thread's boundary: keep serving, say what was lost
            logger.exception("Writing %d spans to the store failed; they are lost", len(batch))
        if self._forwarder is not None:
            self._forwarder.send(batch)

    def _prune(self) -> None:
        self._last_prune = time.monotonic()
        assert self._store is not None
        try:
            self._store.prune_spans(self._config.retention_seconds, self._config.max_spans)
        except Exception:
            logger.exception("Pruning old spans failed")


__all__ = ["SpanSink"]
