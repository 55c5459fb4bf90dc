"""A fresh worker started for the warm pool (no session yet) prepares its first call before it
answers its first ping (`worker_main.serve`): nobody waits for its readiness, and preparing later
would take the CPU, under the session's small quota, that its first session's call needs. A
worker started for a session answers first and prepares afterwards, as before.

The agent's app is a bare ASGI callable whose `warm_up` (what `worker_main` prepares) takes a
while and leaves a mark, so the order is seen from outside: real processes, real sockets."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from open_agentcore.backends import ProcessBackend, WorkerSpec

AGENT = """
import os
import time

class App:
    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    def warm_up(self):
        # A session's worker prepares after it is ready: held here until the test has looked.
        # A pool worker prepares before: a pause it must sit out before it counts as ready.
        gate = os.environ.get("GATE")
        deadline = time.monotonic() + 60
        while gate and not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.01)
        if not gate:
            time.sleep(2)
        with open(os.path.join(os.environ["HOME"], "prepared"), "w") as mark:
            mark.write("done")

app = App()
"""


@pytest.mark.parametrize(("session_id", "prepared_when_ready"), [("", True), ("s-1", False)])
def test_a_pool_worker_is_prepared_before_it_is_ready_and_a_session_s_worker_after(
    session_id: str, prepared_when_ready: bool
) -> None:
    root = Path(tempfile.mkdtemp(prefix="oap-", dir="/tmp"))  # unix socket paths are short
    code = root / "code"
    code.mkdir()
    (code / "agent.py").write_text(AGENT)
    gate = root / "looked"
    environment = {"AGENTCORE_SESSION_ID": session_id, **({} if prepared_when_ready else {"GATE": str(gate)})}
    spec = WorkerSpec("wpool1", Path(sys.executable), code, "agent.py", root / "w", environment=environment)
    backend = ProcessBackend(sandbox="none", session_start="fresh")

    async def started_then_stopped() -> bool:
        worker = await backend.start(spec)
        try:
            return (spec.work_dir / "home" / "prepared").exists()
        finally:
            gate.touch()
            await backend.stop(worker, grace=1)

    try:
        assert asyncio.run(started_then_stopped()) is prepared_when_ready
    finally:
        backend.close()
        shutil.rmtree(root, ignore_errors=True)
