"""The head watch on a real TCP listener standing in for a Ray head's address (no Ray needed)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest

from open_agentcore.backends import NoRoomForSession
from open_agentcore.backends.ray_head import HeadUnreachable, HeadWatch
from tests.conftest import free_port, listening, wait_until


class Calls:
    """What the watch asked of its backend, in order."""

    def __init__(self, rejoin_failures: int = 0) -> None:
        self.seen: list[str] = []
        self.lock = threading.Lock()
        self.rejoin_failures = rejoin_failures

    def let_go(self, reason: str) -> None:
        with self.lock:
            self.seen.append(f"let go: {reason}")

    def rejoin(self) -> None:
        with self.lock:
            if self.rejoin_failures:
                self.rejoin_failures -= 1
                self.seen.append("rejoin refused")
                raise ConnectionError("the head is still starting")
            self.seen.append("rejoined")


@contextlib.contextmanager
def watching(port: int, calls: Calls) -> Iterator[HeadWatch]:
    watch = HeadWatch(f"127.0.0.1:{port}", calls.let_go, calls.rejoin, interval=0.05)
    watch.start()
    try:
        yield watch
    finally:
        watch.close()


def test_a_head_that_answers_is_reachable_and_nothing_is_let_go() -> None:
    port, calls = free_port(), Calls()
    with listening(port), watching(port, calls) as watch:
        wait_until(lambda: watch._thread.is_alive(), timeout=5)
        watch.check()
        assert watch.status.reachable
    assert calls.seen == []


def test_a_closed_head_is_let_go_once_and_refused_with_its_address() -> None:
    port, calls = free_port(), Calls()
    listener = listening(port)
    with watching(port, calls) as watch:
        listener.close()
        wait_until(lambda: not watch.status.reachable, timeout=10)
        with pytest.raises(HeadUnreachable) as refused:
            watch.check()
        assert f"the Ray head at 127.0.0.1:{port} cannot be reached" in str(refused.value)
        assert isinstance(refused.value, NoRoomForSession)  # the wire maps it to ServiceQuotaExceeded
        assert watch.status.describe()["reachable"] is False
        assert "refused" in str(watch.status.describe()["reason"]).lower()
        wait_until(lambda: calls.seen, timeout=5)
    assert len(calls.seen) == 1 and calls.seen[0].startswith("let go: it stopped answering")


def test_a_head_answering_again_is_joined_again_after_refused_attempts() -> None:
    port, calls = free_port(), Calls(rejoin_failures=1)
    listener = listening(port)
    with watching(port, calls) as watch:
        listener.close()
        wait_until(lambda: not watch.status.reachable, timeout=10)
        with listening(port):
            wait_until(lambda: watch.status.reachable, timeout=20)
            watch.check()
    assert [call.split(":")[0] for call in calls.seen] == ["let go", "rejoin refused", "rejoined"]


def test_a_head_lost_twice_is_let_go_twice() -> None:
    port, calls = free_port(), Calls()
    listener = listening(port)
    with watching(port, calls) as watch:
        listener.close()
        wait_until(lambda: not watch.status.reachable, timeout=10)
        listener = listening(port)
        wait_until(lambda: watch.status.reachable, timeout=10)
        listener.close()
        wait_until(lambda: not watch.status.reachable, timeout=10)
    assert [call.split(":")[0] for call in calls.seen] == ["let go", "rejoined", "let go"]
