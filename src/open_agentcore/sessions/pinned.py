"""Process-backend sessions on a store shared by several replicas: each worker runs on the
machine of the replica that started it, which no other replica can reach.

A call reaching a replica that holds no entry for a session another replica holds is refused with
`SessionOnAnotherReplica`, rather than answered by a second worker with none of the session's
memory.
"""

from __future__ import annotations

from open_agentcore.backends import Backend

from .manager import LiveSession, OwnerLookup, SessionConfig, SessionListener, SessionManager, SessionTarget
from .shared import SessionDirectory


class SessionOnAnotherReplica(Exception):
    """The session's worker runs on another server replica's machine (process backend)."""


class PinnedSessionManager(SessionManager):
    """A `SessionManager` that refuses, on a start, a session the store says another replica holds."""

    def __init__(
        self,
        backend: Backend,
        config: SessionConfig,
        directory: SessionDirectory,
        listener: SessionListener | None = None,
        recorded_owner: OwnerLookup | None = None,
    ) -> None:
        super().__init__(backend, config, listener, recorded_owner)
        self._directory = directory

    async def _start(self, target: SessionTarget, session_id: str, owner: str | None) -> LiveSession:
        record = await self._directory.lookup(target.runtime_id, session_id)
        holder = record.shared.get("replica") if record is not None and record.state == "ACTIVE" else None
        if isinstance(holder, str) and holder and holder != self._directory.replica:
            raise SessionOnAnotherReplica(
                f"session {session_id!r} is live on server replica {holder}, whose machine runs its worker "
                "(--backend process); send its calls to that replica, stop it there, or run the replicas "
                "with --backend ray to share sessions"
            )
        return await super()._start(target, session_id, owner)


__all__ = ["PinnedSessionManager", "SessionOnAnotherReplica"]
