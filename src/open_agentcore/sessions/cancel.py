"""Cancelling one call in flight in a session, through its worker's private cancel route.

The worker's launcher (`backends/worker_main.py`) serves `POST /_agentcore/requests/{id}/cancel`
on the worker's unix socket, which only the server reaches. The session stays as it was: the same
worker takes the session's next call.
"""

from __future__ import annotations

import json

from .manager import SessionManager
from .worker_client import WorkerUnreachable

_ANSWER_LIMIT = 4096


class InvocationNotFound(Exception):
    """No call with that request id is in flight in that session (finished, or never made)."""


class InvocationNotCancellable(Exception):
    """The call cannot be interrupted (its handler is a sync function); the message says why."""


async def cancel_invocation(
    sessions: SessionManager, runtime_id: str, session_id: str, request_id: str, owner: str | None,
    privileged: bool = False,
) -> None:  # fmt: skip
    """Cancel the call `request_id` of a session; its owner (or a `privileged` caller) only.

    Raises `SessionOwnedByAnother`, `InvocationNotFound`, `InvocationNotCancellable`. An async
    handler gets `CancelledError` at its next `await`; the call's caller gets a cancelled answer.
    """
    live = sessions.get_owned(runtime_id, session_id, owner, privileged)
    if live is None:
        raise InvocationNotFound(
            f"session {session_id!r} of agent runtime {runtime_id} is not live: no invocation {request_id!r} "
            "is in flight there"
        )
    try:
        # A new connection: a kept-alive one may have been closed by the worker while idle.
        path = f"/_agentcore/requests/{request_id}/cancel"
        reply = await live.client.send("POST", path, [], b"", fresh=True)
        text = (await reply.read())[:_ANSWER_LIMIT].decode(errors="replace")
    except WorkerUnreachable as error:
        raise InvocationNotFound(f"the session's worker is not answering ({error})") from None
    if reply.status == 200:
        return
    message = _message(text) or f"the worker answered {reply.status}"
    if reply.status == 409:
        raise InvocationNotCancellable(message)
    raise InvocationNotFound(message)


def _message(text: str) -> str:
    try:
        answer = json.loads(text)
    except ValueError:
        return text.strip()
    return str(answer.get("error", "")) if isinstance(answer, dict) else text.strip()


__all__ = ["InvocationNotCancellable", "InvocationNotFound", "cancel_invocation"]
