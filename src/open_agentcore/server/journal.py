"""The session table in the store: which worker holds each session, and why ended ones ended.

The session manager tells the journal when sessions start and end; the journal writes that to
the store on one background thread, in order, so the event loop never waits on the database.
After a crash of the server the journal finds the sessions it left ACTIVE, makes sure their
workers are gone, and marks them ended. Sessions on workers every replica can reach (Ray) are
not its to end: they outlive the replica, and their records say how to reach them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging

from open_agentcore.backends import kill_orphan
from open_agentcore.sessions import LiveSession
from open_agentcore.store import SessionState, Store, StoreError

logger = logging.getLogger("open_agentcore.server.journal")

RESTART_REASON = "the server restarted"


class SessionJournal:
    def __init__(self, store: Store, backend: str, replica: str = "") -> None:
        self.store = store
        self.backend = backend
        self.replica = replica
        # Workers any replica reaches are ended by worker: a replica's stale entry for a worker
        # since replaced must not end the session its replacement now holds.
        self._shared = backend == "ray"
        self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="session-journal")
        self._starts: set[asyncio.Future[None]] = set()  # "started" writes not done yet

    def __call__(self, event: str, live: LiveSession, reason: str) -> asyncio.Future[None]:
        """The session manager's listener: queue the write; the future says when it is done.

        Writes run in order on one thread. A session's first call waits for "started" before the
        worker's answer is relayed (a session is on record before its first answer, so a restart
        after `kill -9` finds it), while the call itself goes to the worker; nothing waits for "ended".
        """
        written = asyncio.get_running_loop().run_in_executor(
            self._writer, self._write, event, live.target.runtime_id, live.session_id, live, reason
        )
        if event == "started":
            self._starts.add(written)
            written.add_done_callback(self._starts.discard)
        return written

    def _write(self, event: str, runtime_id: str, session_id: str, live: LiveSession, reason: str) -> None:
        try:
            if event == "started":
                worker: dict[str, object] = {
                    "workerId": live.handle.worker_id,
                    "pid": live.handle.pid,
                    "sandboxed": live.handle.sandboxed,
                    "replica": self.replica,
                }
                shared = getattr(live.handle, "shared", None)
                if callable(shared):
                    # How other replicas reach it, and the timeouts they reap it by.
                    worker.update(shared())
                    worker["idleTimeout"] = live.target.idle_timeout
                    worker["maxLifetime"] = live.target.max_lifetime
                self.store.upsert_session(
                    runtime_id, session_id, state=SessionState.ACTIVE, backend=self.backend,
                    worker=worker, version=live.target.version, owner=live.owner,
                )  # fmt: skip
            elif self._shared:
                self.store.end_worker_session(runtime_id, session_id, live.handle.worker_id, reason)
            else:
                self.store.end_session(runtime_id, session_id, reason)
        except StoreError as error:
            # A runtime deleted meanwhile takes its sessions with it: nothing left to record.
            logger.info("Session %s not recorded (%s): %s", session_id, event, error)

    async def recorded_owner(self, runtime_id: str, session_id: str) -> str | None:
        """Who created this session id, if it was ever used (the session manager's owner lookup).

        Asked only for a session that is not live on this server. Its start may still be under way
        (a first call overlaps it), so the read waits for every start written or queued before it
        was asked: a session that ended just after it started is still its creator's. (Only starts
        set owners; the read itself runs beside the writes, on a thread of its own.)
        """
        if self._starts:
            await asyncio.wait(set(self._starts))
        return await asyncio.to_thread(self._owner, runtime_id, session_id)

    def _owner(self, runtime_id: str, session_id: str) -> str | None:
        return self.store.session_owner(runtime_id, session_id)

    def recover(self) -> int:
        """End the sessions a previous run of this server left ACTIVE; returns how many. Call
        before serving.

        Only process-backend sessions (their workers ran on this machine) of this replica, or
        of any replica when the store is SQLite (a file on this machine): sessions on Ray stay.
        """
        local = self.store.engine.dialect.name == "sqlite"
        left = [
            record
            for record in self.store.list_active_sessions()
            if record.backend != "ray" and (local or record.worker.get("replica") in (None, self.replica))
        ]
        for record in left:
            pid, worker_id = record.worker.get("pid"), record.worker.get("workerId")
            # The pid is the host's (of bubblewrap, when sandboxed); its command line names the worker.
            if isinstance(pid, int) and isinstance(worker_id, str) and kill_orphan(pid, worker_id):
                logger.warning("Killed worker %s left over from a previous server", worker_id)
            self.store.end_session(record.runtime_id, record.session_id, RESTART_REASON)
        return len(left)

    def close(self) -> None:
        """Finish the queued writes."""
        self._writer.shutdown(wait=True)


__all__ = ["RESTART_REASON", "SessionJournal"]
