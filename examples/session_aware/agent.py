"""Per-session state: counts how often each session has called, in this process's memory.

Run:     python agent.py
Invoke:  curl -s http://127.0.0.1:8080/invocations -H 'Content-Type: application/json' \
              -H 'X-Amzn-Bedrock-AgentCore-Runtime-Session-Id: alice' -d '{}'
         → {"session_id": "alice", "count": 1, "request_id": "…"}   (count grows per call)

Hosted by a runtime server, each session gets its own process, so the counter is private to the
session; run directly, one process serves every session and keeps one counter for each.
"""

import os
import threading
from collections import Counter
from typing import Any

from bedrock_agentcore import BedrockAgentCoreApp, BedrockAgentCoreContext, RequestContext

app = BedrockAgentCoreApp()

_calls: Counter[str] = Counter()
# Sync handlers run in a thread pool, so concurrent calls may update the counter together.
_calls_lock = threading.Lock()


def _current_request_id() -> str | None:
    # Code that is not handed the context can still read the current request's identifiers.
    return BedrockAgentCoreContext.get_request_id()


@app.entrypoint
def invoke(payload: Any, context: RequestContext) -> dict[str, Any]:
    session_id = context.session_id or "anonymous"
    with _calls_lock:
        _calls[session_id] += 1
        count = _calls[session_id]
    return {
        "session_id": context.session_id,
        "same_as_context": BedrockAgentCoreContext.get_session_id() == context.session_id,
        "count": count,
        "request_id": _current_request_id(),
    }


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "8080")))
