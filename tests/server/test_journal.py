"""The session journal's order: `server/journal.py` with a real store, session table and workers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import shutil
import sqlite3
import tempfile
import textwrap
from pathlib import Path

import pytest

from open_agentcore.backends import ProcessBackend
from open_agentcore.server.journal import SessionJournal
from open_agentcore.sessions import SessionConfig, SessionManager, SessionOwnedByAnother
from open_agentcore.store import Store
from tests.sessions.test_manager import target, until

AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    print("received the first call", flush=True)
    return {"ok": True}
"""


def test_an_owner_lookup_waits_for_the_start_queued_before_it(tmp_path: Path) -> None:
    database = tmp_path / "store.db"
    store = Store.open(f"sqlite:///{database}")
    runtime_id = store.create_runtime("journal", "us-east-1", "000000000000", {})[0].id
    session_target = dataclasses.replace(target(tmp_path), runtime_id=runtime_id)
    (session_target.code_dir / "agent.py").write_text(textwrap.dedent(AGENT))
    journal = SessionJournal(store, "process")
    work_root = Path(tempfile.mkdtemp(prefix="oac-", dir="/tmp"))
    # Another writer holds the database: the journal's write of alice's start waits behind it.
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")

    async def alice_calls(sessions: SessionManager) -> None:
        async with sessions.lease(session_target, "s", "key:alice") as lease:
            reply = await lease.send("POST", "/invocations", [("content-type", "application/json")], b"{}")
            json.loads(await reply.read())

    async def run() -> None:
        sessions = SessionManager(
            ProcessBackend(sandbox="none"), SessionConfig(work_root=work_root, warm_pool=0),
            listener=journal, recorded_owner=journal.recorded_owner,
        )  # fmt: skip
        try:
            alice = asyncio.ensure_future(alice_calls(sessions))

            def received() -> bool:
                live = sessions.get(runtime_id, "s")
                return live is not None and "received the first call" in live.handle.log_path.read_text()

            await until(received)
            # Ended before its start reached the store: the id is still alice's, for every caller after.
            assert await sessions.stop(runtime_id, "s")
            bob = asyncio.ensure_future(sessions.acquire(session_target, "s", "key:bob"))
            blocker.execute("ROLLBACK")
            with pytest.raises(SessionOwnedByAnother):
                await bob
            await asyncio.gather(alice, return_exceptions=True)  # its worker was stopped under it
        finally:
            await sessions.close()

    try:
        asyncio.run(run())
        assert store.session_owner(runtime_id, "s") == "key:alice"
    finally:
        with contextlib.suppress(sqlite3.Error):
            blocker.execute("ROLLBACK")
        blocker.close()
        journal.close()
        store.engine.dispose()
        shutil.rmtree(work_root, ignore_errors=True)
