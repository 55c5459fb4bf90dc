"""What `RayBackend` asks of its Ray head (to take over another replica's session, to end an
actor) in the moment after the head is gone and before its head watch has noticed (the watch looks
every half second, a call can come in between).

Ray's client stands in here for one reason: the moment cannot be held open with a real head. Ray's
own answer to a named-actor lookup on a head that is gone is to wait (up to a minute), which is
what `BlockedRay` does; everything else is real: the head's address is a real TCP port, refusing
or answering, and the watch is the backend's own `HeadWatch`. The whole path under a real
`agentcore server run` and a real head killed is in `tests/scale/test_head_loss.py`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from open_agentcore.backends.ray import RayBackend
from open_agentcore.backends.ray_cluster import RayConfig
from open_agentcore.backends.ray_head import HeadUnreachable, HeadWatch
from tests.conftest import free_port, listening, wait_until

pytestmark = pytest.mark.timeout(60)

RECORDED = {"actor": "r1.w-1", "host": "127.0.0.1", "port": 1, "secret": "s", "node": "n", "pid": 7}


class BlockedRay:
    """Ray's client as it is with its head gone: a named-actor lookup or a kill waits (until
    released)."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.released = threading.Event()
        self.shut_down = threading.Event()

    def get_actor(self, name: str, namespace: str) -> object:
        self.asked.append(name)
        self.released.wait(30)
        raise ValueError(f"no actor {name!r}")

    def kill(self, actor: object, no_restart: bool) -> None:
        self.asked.append(f"kill {actor}")
        self.released.wait(30)

    def shutdown(self) -> None:
        self.shut_down.set()


@pytest.fixture
def ray() -> Iterator[BlockedRay]:
    stand_in = BlockedRay()
    yield stand_in
    stand_in.released.set()


def backend_on(port: int, ray: BlockedRay) -> RayBackend:
    """A backend joined to the head at 127.0.0.1:`port` through `ray`, its watch not started;
    `close()` it."""
    backend = RayBackend.__new__(RayBackend)
    backend.config = RayConfig(address=f"127.0.0.1:{port}", replica="r2")
    backend._ray = ray
    backend._connection = 0
    backend._loop = None
    backend._head_lost = asyncio.Event()
    backend._lost_reason = ""
    backend._late_kills = set()
    backend._head_calls = ThreadPoolExecutor(2)
    backend._joined = False
    backend._head = HeadWatch(backend.config.address, backend._let_go, backend._rejoin, interval=0.05)
    return backend


def test_a_session_is_not_looked_up_on_a_head_that_stopped_answering_before_the_watch_noticed(
    ray: BlockedRay, tmp_path: Path
) -> None:
    async def adopt() -> object:
        backend = backend_on(free_port(), ray)  # nothing listens there: the head is gone
        try:
            assert backend.cluster_status().reachable  # the watch has not noticed
            return await asyncio.wait_for(backend.adopt("w-1", RECORDED, tmp_path), timeout=10)
        finally:
            backend.close()

    assert asyncio.run(adopt()) is None
    assert ray.asked == []


def test_a_lookup_the_head_is_lost_during_is_refused_naming_the_head(ray: BlockedRay, tmp_path: Path) -> None:
    port = free_port()
    listener = listening(port)

    async def adopt() -> object:
        backend = backend_on(port, ray)
        assert backend._head is not None
        lookup = asyncio.ensure_future(backend.adopt("w-1", RECORDED, tmp_path))
        try:
            await asyncio.to_thread(wait_until, lambda: ray.asked == ["r1.w-1"], 10)
            backend._head.start()
            listener.close()  # the head goes while Ray is asked for the session's actor
            return await asyncio.wait_for(lookup, timeout=20)
        finally:
            backend.close()
            ray.released.set()

    try:
        with pytest.raises(HeadUnreachable) as refused:
            asyncio.run(adopt())
    finally:
        listener.close()

    assert f"the Ray head at 127.0.0.1:{port} cannot be reached" in str(refused.value)
    assert ray.shut_down.is_set()  # the watch let go of Ray, as it does of a real one


def test_a_kill_the_head_is_lost_during_is_given_up_and_the_loop_goes_on(ray: BlockedRay) -> None:
    port = free_port()
    listener = listening(port)

    async def kill() -> int:
        backend = backend_on(port, ray)
        assert backend._head is not None
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticking = asyncio.ensure_future(tick())
        killing = asyncio.ensure_future(backend._kill("actor-1"))
        try:
            await asyncio.to_thread(wait_until, lambda: ray.asked == ["kill actor-1"], 10)
            asked_at = ticks
            backend._head.start()
            listener.close()  # the head goes while Ray waits on it to end the actor
            await asyncio.wait_for(killing, timeout=20)
            return ticks - asked_at
        finally:
            ticking.cancel()
            backend.close()
            ray.released.set()

    try:
        ticked_meanwhile = asyncio.run(kill())
    finally:
        listener.close()

    assert ticked_meanwhile > 0  # the event loop was not held while Ray waited
