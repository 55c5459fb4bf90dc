"""Progress output for long work: a spinner on a terminal, plain lines when piped or logged."""

from __future__ import annotations

import contextlib
import itertools
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class Progress:
    """`step` wraps a slow piece of work; `done` reports a result. Colour and motion only on a TTY."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty()
        self._lock = threading.Lock()  # the spinner and `note` share the terminal's last line

    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[None]:
        started = time.monotonic()
        if not self.live:
            print(f"{text}...", file=self.stream, flush=True)
            yield
            return
        stop = threading.Event()
        spinner = threading.Thread(target=self._spin, args=(text, started, stop), daemon=True)
        spinner.start()
        try:
            yield
        except BaseException:
            stop.set()
            spinner.join()
            self.stream.write(f"\r\033[K\033[31m✗\033[0m {text}\n")
            raise
        stop.set()
        spinner.join()
        self.stream.write(f"\r\033[K\033[32m✓\033[0m {text} ({time.monotonic() - started:.1f}s)\n")
        self.stream.flush()

    def _spin(self, text: str, started: float, stop: threading.Event) -> None:
        for frame in itertools.cycle(_FRAMES):
            with self._lock:
                self.stream.write(f"\r\033[K{frame} {text}... {time.monotonic() - started:.0f}s")
                self.stream.flush()
            if stop.wait(0.1):
                return

    def note(self, text: str) -> None:
        """A line of output while a step runs (a build log line): above the spinner on a TTY."""
        with self._lock:
            self.stream.write(f"\r\033[K{text}\n" if self.live else f"{text}\n")
            self.stream.flush()

    def done(self, text: str) -> None:
        mark = "\033[32m✓\033[0m " if self.live else ""
        print(f"{mark}{text}", file=self.stream, flush=True)


__all__ = ["Progress"]
