"""Whether the Ray head answers, watched from a thread of its own.

Ray's client in the server's process does not survive its head going away: after 60 s without
it, Ray ends the whole process, and a call still waiting when a new head (a new cluster) answers
at the same address aborts it at once. So the server watches the head's address itself, a TCP
connect every half second, and on losing it lets go of the cluster (`ray.shutdown`) before either
can happen; once a head answers again it joins it anew. Ray is never imported here.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .base import NoRoomForSession

logger = logging.getLogger("open_agentcore.backends.ray")

_PROBE_INTERVAL = 0.5
_PROBE_TIMEOUT = 1.0
# A refused connection is certain; a probe that times out is not: a head on another machine
# is judged gone after this many in a row.
_TIMEOUTS_BEFORE_LOSS = 3
_REJOIN_RETRY = 2.0  # after a failed attempt to join a head that answers again


class HeadUnreachable(NoRoomForSession):
    """The Ray head cannot be reached: no session can be started or reached through Ray now."""


@dataclass(frozen=True)
class HeadStatus:
    """What the server knows of its Ray head, as `/_agentcore/health` shows it."""

    address: str
    reachable: bool
    since: float  # wall-clock seconds: when it was last found reachable, or lost
    reason: str = ""

    def describe(self) -> dict[str, object]:
        """The status as JSON for the health answer."""
        moment = datetime.datetime.fromtimestamp(self.since, datetime.timezone.utc)
        described: dict[str, object] = {
            "address": self.address,
            "reachable": self.reachable,
            "since": moment.isoformat(timespec="seconds"),
        }
        if not self.reachable:
            described["reason"] = self.reason
        return described


@runtime_checkable
class ReportsCluster(Protocol):
    """A backend that depends on a cluster it can lose (`RayBackend`)."""

    def cluster_status(self) -> HeadStatus: ...


class HeadWatch:
    """Probes the head's address from a daemon thread; calls `let_go(reason)` once when it is lost
    and `rejoin()` when a head answers there again (both in the watch's thread; `rejoin` raises
    to be tried again later). `check()` refuses, at once, what needs the head while it is lost."""

    def __init__(
        self, address: str, let_go: Callable[[str], None], rejoin: Callable[[], None],
        interval: float = _PROBE_INTERVAL,
    ) -> None:  # fmt: skip
        host, _, port = address.rpartition(":")
        self.address = address
        self._target = (host.strip("[]"), int(port))
        self._let_go = let_go
        self._rejoin = rejoin
        self._interval = interval
        self._lock = threading.Lock()
        self._status = HeadStatus(address, True, time.time())
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ray-head-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop watching (waits for a let-go or rejoin under way, a few seconds at most)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    @property
    def status(self) -> HeadStatus:
        with self._lock:
            return self._status

    def check(self) -> None:
        """Raise `HeadUnreachable` while the head is lost (or the cluster is being joined again)."""
        status = self.status
        if not status.reachable:
            away = max(0.0, time.time() - status.since)
            raise HeadUnreachable(
                f"the Ray head at {self.address} cannot be reached ({status.reason}; lost {away:.0f} s ago); "
                "no session can be started or reached until it is back"
            )

    def answers(self) -> bool:
        """Whether something accepts a connection at the head's address now (blocks ≤ 1 s)."""
        return self._probe() is None

    def _run(self) -> None:
        timeouts = 0
        while not self._stopping.wait(self._interval):
            failure = self._probe()
            if failure is None:
                timeouts = 0
                continue
            timeouts = timeouts + 1 if failure.startswith("timed out") else _TIMEOUTS_BEFORE_LOSS
            if timeouts >= _TIMEOUTS_BEFORE_LOSS:
                self._lose(failure)
                self._wait_and_rejoin()
                timeouts = 0

    def _probe(self) -> str | None:
        """None when something accepts a connection at the head's address, else what went wrong."""
        try:
            with socket.create_connection(self._target, timeout=_PROBE_TIMEOUT):
                return None
        except TimeoutError:
            return f"timed out connecting for {_PROBE_TIMEOUT:g} s"
        except OSError as error:
            return error.strerror or str(error)

    def _lose(self, failure: str) -> None:
        reason = f"it stopped answering: {failure}"
        with self._lock:
            self._status = HeadStatus(self.address, False, time.time(), reason)
        logger.error(
            "The Ray head at %s is gone (%s): sessions on Ray are lost and new ones refused until it is back",
            self.address, failure,
        )  # fmt: skip
        try:
            self._let_go(reason)
        except Exception:  # the watch must outlive whatever Ray raises while letting go
            logger.exception("Letting go of the lost Ray cluster failed")

    def _wait_and_rejoin(self) -> None:
        while not self._stopping.is_set():
            if self._probe() is None:
                try:
                    self._rejoin()
                except Exception as error:  # a head still starting refuses in several ways
                    logger.warning("The Ray head at %s answers but cannot be joined: %s", self.address, error)
                    self._stopping.wait(_REJOIN_RETRY)
                    continue
                with self._lock:
                    self._status = HeadStatus(self.address, True, time.time())
                logger.warning("Joined the Ray head at %s again: new sessions are accepted", self.address)
                return
            self._stopping.wait(self._interval)


def head_address(ray: object) -> str | None:
    """The `host:port` of the head's GCS this process is connected to, when Ray says."""
    with contextlib.suppress(Exception):  # private to Ray: absent or renamed in some versions
        address = ray._private.worker.global_worker.node.gcs_address  # type: ignore[attr-defined]
        if isinstance(address, str) and ":" in address:
            return address
    return None


__all__ = ["HeadStatus", "HeadUnreachable", "HeadWatch", "ReportsCluster", "head_address"]
