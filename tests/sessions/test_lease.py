"""The session lease with real workers: `sessions/lease.py` and its one retry rule."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

from open_agentcore.backends import ProcessBackend, WorkerHandle
from open_agentcore.sessions import LiveSession, SessionConfig, SessionEnded, SessionManager
from tests.sessions.test_manager import scenario, target, until

AGENT = """
import os
import uuid
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()
INSTANCE = uuid.uuid4().hex
calls = 0


@app.entrypoint
def invoke(payload):
    global calls
    calls += 1
    if payload.get("die"):
        os._exit(3)
    return {"calls": calls, "instance": INSTANCE}
"""


async def answer(sessions: SessionManager, session_target: Any, session_id: str, **payload: Any) -> Any:
    async with sessions.lease(session_target, session_id) as lease:
        reply = await lease.send(
            "POST", "/invocations", [("content-type", "application/json")], json.dumps(payload).encode()
        )
        return json.loads(await reply.read())


def test_a_worker_unreachable_before_the_call_is_sent_is_replaced_and_the_call_goes_through(
    tmp_path: Path,
) -> None:
    session_target = target(tmp_path)
    (session_target.code_dir / "agent.py").write_text(textwrap.dedent(AGENT))

    async def body(sessions: SessionManager) -> tuple[Any, str, bool]:
        async with sessions.lease(session_target, "s") as lease:
            first = lease.live
            # No call has been made: no kept-alive connection, so nothing can reach this worker.
            first.client.socket_path.unlink()
            reply = await lease.send("POST", "/invocations", [("content-type", "application/json")], b"{}")
            answered = json.loads(await reply.read())
            replaced = lease.live is not first
        return answered, first.end_reason, replaced and first.in_flight == 0

    answered, reason, replaced = scenario(tmp_path, body)
    assert answered["calls"] == 1
    assert reason.startswith("worker unreachable")
    assert replaced  # and the first session's hold was released


class HeadlessBackend(ProcessBackend):
    """A real process backend that, like Ray's after losing its head, knows why its workers
    stopped answering before it sees them exit."""

    async def unreachable_reason(self, handle: WorkerHandle) -> str | None:
        return f"the cluster holding {handle.worker_id} is gone"


def test_a_worker_that_stops_answering_ends_with_the_reason_its_backend_knows(tmp_path: Path) -> None:
    session_target = target(tmp_path)
    (session_target.code_dir / "agent.py").write_text(textwrap.dedent(AGENT))
    work_root = Path(tempfile.mkdtemp(prefix="oac-", dir="/tmp"))

    async def run() -> tuple[str, str]:
        sessions = SessionManager(
            HeadlessBackend(sandbox="none"), SessionConfig(work_root=work_root, warm_pool=0)
        )
        try:
            async with sessions.lease(session_target, "s") as lease:
                first = lease.live
                first.client.socket_path.unlink()  # the worker lives on but cannot be reached
                await lease.send("POST", "/invocations", [("content-type", "application/json")], b"{}")
            return first.end_reason, first.handle.worker_id
        finally:
            await sessions.close()
            shutil.rmtree(work_root, ignore_errors=True)

    reason, worker_id = asyncio.run(run())
    assert reason == f"the cluster holding {worker_id} is gone"


def test_a_call_the_worker_received_is_never_sent_twice(tmp_path: Path) -> None:
    session_target = target(tmp_path)
    (session_target.code_dir / "agent.py").write_text(textwrap.dedent(AGENT))

    async def body(sessions: SessionManager) -> tuple[str, bool]:
        await answer(sessions, session_target, "s")
        with pytest.raises(SessionEnded) as ended:
            await answer(sessions, session_target, "s", die=True)
        # Retried, the call would have started a fresh worker for the session.
        return ended.value.reason, sessions.get(session_target.runtime_id, "s") is None

    reason, no_fresh_worker = scenario(tmp_path, body)
    assert reason == "worker exited with code 3"
    assert no_fresh_worker


def test_leaving_the_lease_releases_the_session_however_the_call_ends(tmp_path: Path) -> None:
    session_target = target(tmp_path)

    async def body(sessions: SessionManager) -> list[int]:
        seen = []
        with pytest.raises(RuntimeError, match="caller gave up"):
            async with sessions.lease(session_target, "s") as lease:
                seen.append(lease.live.in_flight)
                raise RuntimeError("caller gave up")
        live = sessions.get(session_target.runtime_id, "s")
        assert live is not None
        seen.append(live.in_flight)
        return seen

    assert scenario(tmp_path, body) == [1, 0]


MARKING_AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    print(f"received {payload['marker']}", flush=True)
    return {"ok": True}
"""


def test_a_first_call_reaches_the_worker_while_its_start_is_recorded_and_answers_only_after(
    tmp_path: Path,
) -> None:
    session_target = target(tmp_path)
    (session_target.code_dir / "agent.py").write_text(textwrap.dedent(MARKING_AGENT))

    async def body(sessions: SessionManager) -> list[str]:
        record: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        events: list[str] = []

        def listener(event: str, live: LiveSession, reason: str) -> asyncio.Future[None] | None:
            return record if event == "started" else None  # the store's write, held by the test

        sessions._listener = listener

        async def first_call() -> None:
            await answer(sessions, session_target, "s", marker="first-call-17")
            events.append("answered")

        calling = asyncio.ensure_future(first_call())

        def received() -> bool:
            live = sessions.get(session_target.runtime_id, "s")
            return live is not None and "received first-call-17" in live.handle.log_path.read_text()

        await until(received)  # the worker has the call although the start is not on record yet
        events.append("recorded")
        record.set_result(None)
        await calling
        return events

    assert scenario(tmp_path, body) == ["recorded", "answered"]
