"""Background work: an invocation starts a job and returns; `/ping` says HealthyBusy until it ends.

A runtime server keeps a session alive while its agent reports `HealthyBusy`, so work that outlives
the request is not cut short by the idle timeout.

Run:     python agent.py
Invoke:  curl -s http://127.0.0.1:8080/invocations -H 'Content-Type: application/json' \
              -d '{"action": "start", "seconds": 5}'          → {"started": "job-1"}
         curl -s http://127.0.0.1:8080/ping                   → {"status": "HealthyBusy", ...}
         curl -s http://127.0.0.1:8080/invocations -H 'Content-Type: application/json' \
              -d '{"action": "status"}'                      → {"finished": [], "running": 1, ...}
         (five seconds later /ping says "Healthy" and "status" lists job-1 as finished)
"""

import asyncio
import itertools
import os
from typing import Any

from bedrock_agentcore import BedrockAgentCoreApp, PingStatus

app = BedrockAgentCoreApp()

_job_ids = itertools.count(1)
_finished: list[str] = []
# asyncio keeps only weak references to tasks; holding them here keeps a job from vanishing.
_jobs: set[asyncio.Task[None]] = set()


@app.async_task
async def run_job(job_id: str, seconds: float) -> None:
    await asyncio.sleep(seconds)  # stands in for real work: a long tool call, a batch, ...
    _finished.append(job_id)


@app.ping
def health() -> PingStatus:
    # A custom handler replaces the automatic status, so it decides about running jobs itself;
    # this is also the place to add conditions of your own (a queue, a lock held, ...).
    if app.get_async_task_info()["active_count"] > 0:
        return PingStatus.HEALTHY_BUSY
    return PingStatus.HEALTHY


@app.entrypoint
async def invoke(payload: dict[str, Any]) -> dict[str, Any]:
    if payload.get("action") == "start":
        job_id = f"job-{next(_job_ids)}"
        task = asyncio.create_task(run_job(job_id, float(payload.get("seconds", 5))))
        _jobs.add(task)
        task.add_done_callback(_jobs.discard)
        await asyncio.sleep(0)  # let the job register itself before we answer
        return {"started": job_id}
    info = app.get_async_task_info()
    return {"finished": list(_finished), "running": info["active_count"], "jobs": info["running_jobs"]}


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "8080")))
