"""The session table with real worker processes: `sessions/manager.py`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from open_agentcore.backends import ProcessBackend
from open_agentcore.sessions import (
    LiveSession,
    SessionConfig,
    SessionLimitReached,
    SessionManager,
    SessionOwnedByAnother,
    SessionTarget,
)

_T = TypeVar("_T")

COUNTER_AGENT = """
import os
from bedrock_agentcore import BedrockAgentCoreApp, PingStatus

app = BedrockAgentCoreApp()
count = 0


@app.entrypoint
def invoke(payload):
    global count
    if payload.get("busy"):
        app.force_ping_status(PingStatus.HEALTHY_BUSY)
    count += 1
    return {"count": count, "pid": os.getpid()}
"""


def target(root: Path, **lifecycle: float) -> SessionTarget:
    code = root / "code"
    code.mkdir(exist_ok=True)
    (code / "agent.py").write_text(textwrap.dedent(COUNTER_AGENT))
    return SessionTarget(
        runtime_id="counter-Ab12Cd34Ef",
        runtime_arn="arn:aws:bedrock-agentcore:us-east-1:000000000000:runtime/counter-Ab12Cd34Ef",
        version=1,
        python=Path(sys.executable),
        code_dir=code,
        entrypoint="agent.py",
        environment={},
        **lifecycle,
    )


def manager(root: Path, **config: Any) -> SessionManager:
    # Worker sockets live under the work root; pytest's tmp paths are too long for a unix socket.
    work_root = Path(tempfile.mkdtemp(prefix="oac-", dir="/tmp"))
    settings = SessionConfig(work_root=work_root, **{"warm_pool": 0, **config})
    return SessionManager(ProcessBackend(sandbox="none"), settings)


async def call(
    sessions: SessionManager, session_target: SessionTarget, session_id: str, owner: str | None = None,
    **payload: Any,
) -> Any:  # fmt: skip
    live = await sessions.acquire(session_target, session_id, owner)
    try:
        reply = await live.client.send("POST", "/invocations", [("content-type", "application/json")],
                                       json.dumps(payload).encode())  # fmt: skip
        body = b"".join([chunk async for chunk in reply.body])
        await reply.close()
        return json.loads(body)
    finally:
        sessions.release(live)


def scenario(root: Path, body: Callable[[SessionManager], Awaitable[_T]], **config: Any) -> _T:
    async def run() -> _T:
        sessions = manager(root, **config)
        try:
            return await body(sessions)
        finally:
            await sessions.close()
            shutil.rmtree(sessions.config.work_root, ignore_errors=True)

    return asyncio.run(run())


async def until(predicate: Callable[[], Any], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def test_a_session_keeps_its_worker_and_memory_and_sessions_are_apart(tmp_path: Path) -> None:
    session_target = target(tmp_path)

    async def body(sessions: SessionManager) -> list[Any]:
        return [
            await call(sessions, session_target, "alice"),
            await call(sessions, session_target, "alice"),
            await call(sessions, session_target, "bob"),
        ]

    first, second, other = scenario(tmp_path, body)
    assert (first["count"], second["count"], other["count"]) == (1, 2, 1)
    assert first["pid"] == second["pid"] != other["pid"]


def test_stop_and_crash_both_end_the_session_and_the_next_call_starts_fresh(tmp_path: Path) -> None:
    session_target = target(tmp_path)

    async def body(sessions: SessionManager) -> list[int]:
        counts = [(await call(sessions, session_target, "s"))["count"]]
        counts.append((await call(sessions, session_target, "s"))["count"])
        assert await sessions.stop(session_target.runtime_id, "s") is True
        assert await sessions.stop(session_target.runtime_id, "s") is False
        counts.append((await call(sessions, session_target, "s"))["count"])
        live = sessions.get(session_target.runtime_id, "s")
        assert live is not None
        os.kill(live.handle.pid, signal.SIGKILL)
        await until(lambda: sessions.get(session_target.runtime_id, "s") is None)
        counts.append((await call(sessions, session_target, "s"))["count"])
        return counts

    assert scenario(tmp_path, body) == [1, 2, 1, 1]


def test_the_session_limit_is_enforced(tmp_path: Path) -> None:
    session_target = target(tmp_path)

    async def body(sessions: SessionManager) -> None:
        await call(sessions, session_target, "one")
        await call(sessions, session_target, "two")
        with pytest.raises(SessionLimitReached, match="--max-sessions 2"):
            await call(sessions, session_target, "three")
        await call(sessions, session_target, "one")  # existing sessions still work

    scenario(tmp_path, body, max_sessions=2)


def test_idle_sessions_are_reaped_unless_busy_and_lifetime_is_capped(tmp_path: Path) -> None:
    idle = target(tmp_path, idle_timeout=0.3, max_lifetime=3600)

    async def body(sessions: SessionManager) -> None:
        await call(sessions, idle, "quiet")
        await call(sessions, idle, "busy", busy=True)
        live: LiveSession | None = sessions.get(idle.runtime_id, "quiet")
        assert live is not None
        await until(lambda: live.idle_seconds() >= 0.3)
        assert await sessions.reap_once() == ["quiet"]
        assert sessions.get(idle.runtime_id, "busy") is not None  # HealthyBusy keeps it alive

    scenario(tmp_path, body)

    short_lived = target(tmp_path, idle_timeout=3600, max_lifetime=0.3)

    async def lifetime(sessions: SessionManager) -> None:
        await call(sessions, short_lived, "busy", busy=True)
        live = sessions.get(short_lived.runtime_id, "busy")
        assert live is not None
        # Its own timer ends it, without waiting for a reaper pass.
        await until(lambda: sessions.get(short_lived.runtime_id, "busy") is None)
        assert live.end_reason == "maxLifetime reached: the session may live 0.3 s"

    scenario(tmp_path, lifetime)


def test_a_warm_worker_serves_the_next_new_session(tmp_path: Path) -> None:
    session_target = target(tmp_path)

    async def body(sessions: SessionManager) -> tuple[int, int]:
        await call(sessions, session_target, "first")
        key = session_target.key
        await until(lambda: len(sessions._warm.get(key, [])) == 1)
        warm_pid = sessions._warm[key][0].pid
        reply = await call(sessions, session_target, "second")
        return warm_pid, reply["pid"]

    warm_pid, served_by = scenario(tmp_path, body, warm_pool=1)
    assert warm_pid == served_by


def test_close_stops_every_worker(tmp_path: Path) -> None:
    session_target = target(tmp_path)
    pids: list[int] = []

    async def body(sessions: SessionManager) -> None:
        for name in ("a", "b"):
            pids.append((await call(sessions, session_target, name))["pid"])

    scenario(tmp_path, body)

    def dead(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    assert all(dead(pid) for pid in pids)


def test_a_session_is_its_creators_and_stays_so_when_its_worker_is_replaced(tmp_path: Path) -> None:
    session_target = target(tmp_path)
    journal: dict[tuple[str, str], str | None] = {}  # what the server's journal keeps in the store

    def record(event: str, live: LiveSession, reason: str) -> None:
        if event == "started":
            journal.setdefault((live.target.runtime_id, live.session_id), live.owner)

    async def recorded(runtime_id: str, session_id: str) -> str | None:
        return journal.get((runtime_id, session_id))

    async def body(sessions: SessionManager) -> None:
        sessions._listener, sessions._recorded_owner = record, recorded
        await call(sessions, session_target, "s", "key:alice")
        with pytest.raises(SessionOwnedByAnother):
            await call(sessions, session_target, "s", "key:bob")
        with pytest.raises(SessionOwnedByAnother):
            await sessions.stop(session_target.runtime_id, "s", owner="key:bob", privileged=False)
        live = sessions.get(session_target.runtime_id, "s")
        assert live is not None
        os.kill(live.handle.pid, signal.SIGKILL)
        await until(lambda: not live.handle.alive())
        with pytest.raises(SessionOwnedByAnother):  # a fresh worker, the same owner
            await call(sessions, session_target, "s", "key:bob")
        assert (await call(sessions, session_target, "s", "key:alice"))["count"] == 1
        privileged = await sessions.acquire(session_target, "s", "key:admin", privileged=True)
        sessions.release(privileged)
        assert privileged.owner == "key:alice"

    scenario(tmp_path, body)


def test_a_recorded_owner_is_asked_for_before_a_new_worker_starts(tmp_path: Path) -> None:
    session_target = target(tmp_path)
    asked: list[tuple[str, str]] = []

    async def recorded(runtime_id: str, session_id: str) -> str | None:
        asked.append((runtime_id, session_id))
        return "key:alice" if session_id == "old" else None

    async def body(sessions: SessionManager) -> None:
        sessions._recorded_owner = recorded
        with pytest.raises(SessionOwnedByAnother):
            await call(sessions, session_target, "old", "key:bob")
        assert sessions.workers() == 0  # refused before any worker started
        await call(sessions, session_target, "new", "key:bob")
        await call(sessions, session_target, "new", "key:bob")  # live: not asked again

    scenario(tmp_path, body)
    assert asked == [(session_target.runtime_id, "old"), (session_target.runtime_id, "new")]


def test_shared_sessions_admit_anyone(tmp_path: Path) -> None:
    session_target = target(tmp_path)

    async def body(sessions: SessionManager) -> int:
        await call(sessions, session_target, "s", "key:alice")
        return int((await call(sessions, session_target, "s", "key:bob"))["count"])

    assert scenario(tmp_path, body, shared_sessions=True) == 2


def test_warm_workers_count_toward_the_limit_and_give_way_to_sessions(tmp_path: Path) -> None:
    session_target = target(tmp_path)
    other = dataclasses.replace(session_target, runtime_id="other-Ab12Cd34Ef")

    async def body(sessions: SessionManager) -> None:
        await sessions.prepare(session_target)
        await sessions.prepare(other)
        await until(lambda: sessions.workers() == 2 and not sessions._warming)
        assert sum(len(handles) for handles in sessions._warm.values()) == 2
        await call(sessions, session_target, "a")  # takes its version's warm worker
        await until(lambda: not sessions._warming)
        assert sessions.workers() == 2  # no refill past the limit
        await call(sessions, other, "b")  # takes the other warm worker
        with pytest.raises(SessionLimitReached, match="warm workers included"):
            await call(sessions, session_target, "c")
        assert sessions.workers() == 2

    scenario(tmp_path, body, warm_pool=1, max_sessions=2)


def test_a_cold_start_evicts_a_warm_worker_of_another_version(tmp_path: Path) -> None:
    session_target = target(tmp_path)
    other = dataclasses.replace(session_target, runtime_id="other-Ab12Cd34Ef")

    async def body(sessions: SessionManager) -> None:
        await sessions.prepare(other)
        await until(lambda: sessions.workers() == 1 and not sessions._warming)
        await call(sessions, session_target, "a")
        assert sessions.workers() == 1
        assert not any(sessions._warm.values())

    scenario(tmp_path, body, warm_pool=1, max_sessions=1)
