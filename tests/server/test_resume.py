"""Resumable streams through a real server and real workers (`server/streams.py`, `streams/`):
every SSE frame carries `<request id>:<n>`, and `Last-Event-ID` gets the missed frames, then the rest."""

from __future__ import annotations

import contextlib
import json
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import wait_until
from tests.security.attack import Key, Target, allow, signed_headers
from tests.server.conftest import KEY_ID, SECRET, Server, running_server

ADMIN = Key(KEY_ID, SECRET)

# Streams frames 1..5, then waits for a {"go": true} call in the same session, then streams the
# rest; that call answers only once the stream has been produced to its end.
AGENT = """
import threading

from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()
go, done = threading.Event(), threading.Event()


@app.entrypoint
def invoke(payload):
    if payload.get("go"):
        go.set()
        return {"finished": done.wait(30)}
    pad = "x" * payload.get("pad", 0)

    def frames():
        for n in range(1, payload.get("total", 20) + 1):
            if n == 6 and payload.get("hold", True):
                go.wait(30)
            yield {"n": n, "pad": pad}
        done.set()

    return frames()
"""

MEMORY, HISTORY = 8 * 1024, 512 * 1024


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    data_dir = Path(tempfile.mkdtemp(prefix="oacr-", dir="/tmp"))
    try:
        with running_server(data_dir, stream_memory=MEMORY, stream_history=HISTORY) as server:
            runtime = server.deploy({"agent.py": AGENT}, "streamer")
            target = Target(server, {"streamer": runtime})
            target.add_key("bob", allow(["bedrock-agentcore:InvokeAgentRuntime"], target.id("streamer")))
            yield target
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def url(target: Target) -> str:
    return f"{target.server.url}/runtimes/{quote(target.arn('streamer'), safe='')}/invocations"


@contextlib.contextmanager
def call(
    target: Target, session: str, payload: dict[str, Any] | None = None, last_event_id: str | None = None,
    key: Key = ADMIN,
) -> Iterator[httpx.Response]:  # fmt: skip
    body = json.dumps(payload).encode() if payload is not None else b""
    headers = {"x-amzn-bedrock-agentcore-runtime-session-id": session, "content-type": "application/json"}
    if last_event_id is not None:
        headers["last-event-id"] = last_event_id
    signed = signed_headers(key, "POST", url(target), body, headers)
    with httpx.stream("POST", url(target), content=body, headers=signed, timeout=60) as reply:
        yield reply


def events(reply: httpx.Response, limit: int | None = None) -> list[tuple[str, int]]:
    """(id, n) of each event, reading at most `limit` of them."""
    got: list[tuple[str, int]] = []
    fields: dict[str, str] = {}
    for line in reply.iter_lines():
        if line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
            continue
        if fields:
            got.append((fields["id"], json.loads(fields["data"])["n"]))
            fields = {}
            if limit is not None and len(got) == limit:
                break
    return got


def numbered(request_id: str, numbers: range) -> list[tuple[str, int]]:
    return [(f"{request_id}:{n}", n) for n in numbers]


def leave_after_five(target: Target, session: str, **payload: Any) -> str:
    """Start a stream, read five frames, hang up; returns its request id."""
    with call(target, session, {"total": 20, **payload}) as reply:
        assert reply.status_code == 200, reply.read()
        request_id = reply.headers["x-amzn-requestid"]
        assert events(reply, 5) == numbered(request_id, range(1, 6))
    return request_id


def go(target: Target, session: str) -> bool:
    with call(target, session, {"go": True}) as reply:
        return bool(json.loads(reply.read())["finished"])


def error_of(reply: httpx.Response) -> tuple[int, str | None, str]:
    return reply.status_code, reply.headers.get("x-amzn-errortype"), json.loads(reply.read())["message"]


def test_a_client_that_left_mid_stream_resumes_and_gets_every_frame_once(target: Target) -> None:
    first = leave_after_five(target, "resume-live-" + "0" * 20)
    with call(target, "resume-live-" + "0" * 20, last_event_id=f"{first}:5") as resumed:
        assert resumed.status_code == 200
        assert resumed.headers["content-type"].startswith("text/event-stream")
        assert resumed.headers["x-amzn-requestid"] == first
        # The agent is still holding frame 6: it is released while the resumed client waits.
        released = threading.Thread(target=go, args=(target, "resume-live-" + "0" * 20))
        released.start()
        rest = events(resumed)
        released.join(60)
    assert numbered(first, range(1, 6)) + rest == numbered(first, range(1, 21))


def test_the_worker_runs_to_the_end_after_its_client_left_and_a_resume_gets_the_rest(target: Target) -> None:
    session = "resume-after-" + "0" * 20
    first = leave_after_five(target, session, pad=8000)
    # Answers only once the agent produced its last frame, with no client reading the stream.
    assert go(target, session) is True
    with call(target, session, last_event_id=f"{first}:5") as resumed:
        assert events(resumed) == numbered(first, range(6, 21))  # then a clean end: no exception


def test_a_bare_request_id_resumes_from_the_first_frame(target: Target) -> None:
    session = "resume-bare-" + "0" * 20
    first = leave_after_five(target, session)
    assert go(target, session)
    with call(target, session, last_event_id=first) as resumed:
        assert events(resumed) == numbered(first, range(1, 21))


def test_another_principal_cannot_resume_a_stream(target: Target) -> None:
    session = "resume-owner-" + "0" * 20
    first = leave_after_five(target, session, hold=False)
    with call(target, session, last_event_id=f"{first}:5", key=target.keys["bob"]) as refused:
        status, error, message = error_of(refused)
    assert (status, error) == (403, "AccessDeniedException") and "another principal" in message


@pytest.mark.parametrize(
    ("last_event_id", "status", "error", "words"),
    [
        ("not an id", 400, "ValidationException", "Last-Event-ID must be"),
        ("{request}:-3", 400, "ValidationException", "Last-Event-ID must be"),
        ("{request}:21", 400, "ValidationException", "was never sent"),
        ("0f0f0f0f-0000-4000-8000-000000000000:1", 404, "ResourceNotFoundException", "has no stream"),
    ],
)
def test_bad_resumes_get_a_typed_error(
    target: Target, last_event_id: str, status: int, error: str, words: str
) -> None:
    session = "resume-bad-" + "0" * 20
    with call(target, session, {"total": 20, "hold": False}) as reply:
        request_id = reply.headers["x-amzn-requestid"]
        assert len(events(reply)) == 20
    with call(target, session, last_event_id=last_event_id.format(request=request_id)) as refused:
        got_status, got_error, message = error_of(refused)
    assert (got_status, got_error) == (status, error) and words in message


def test_a_request_id_of_another_session_is_not_found(target: Target) -> None:
    first = leave_after_five(target, "resume-mine-" + "0" * 20, hold=False)
    with call(target, "resume-other-" + "0" * 20, last_event_id=f"{first}:1") as refused:
        status, error, message = error_of(refused)
    assert (status, error) == (404, "ResourceNotFoundException") and "has no stream" in message


def test_frames_dropped_past_the_bound_are_refused_and_the_kept_ones_replay(target: Target) -> None:
    session = "resume-dropped-" + "0" * 20
    # 20 frames of 40 KB: more than the 512 KiB the session keeps.
    with call(target, session, {"total": 20, "pad": 40_000, "hold": False}) as reply:
        request_id = reply.headers["x-amzn-requestid"]
        assert len(events(reply)) == 20
    with call(target, session, last_event_id=f"{request_id}:0") as refused:
        status, error, message = error_of(refused)
    assert (status, error) == (404, "ResourceNotFoundException") and "no longer kept" in message
    with call(target, session, last_event_id=f"{request_id}:15") as resumed:
        assert events(resumed) == numbered(request_id, range(16, 21))


def stream_files(server: Server) -> list[Path]:
    return [path for path in (server.data_dir / "streams").rglob("*") if path.is_file()]


def test_past_the_memory_cap_frames_are_spilled_privately_replayed_and_removed_with_the_session(
    target: Target,
) -> None:
    session = "resume-spill-" + "0" * 20
    before = set(stream_files(target.server))
    with call(target, session, {"total": 20, "pad": 2000, "hold": False}) as reply:
        request_id = reply.headers["x-amzn-requestid"]
        whole = reply.read()
    spilled = set(stream_files(target.server)) - before
    assert spilled, "40 KB of frames past an 8 KiB memory cap left nothing on disk"
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in spilled)
    assert all(not path.is_relative_to(target.server.data_dir / "w") for path in spilled)
    with call(target, session, last_event_id=f"{request_id}:0") as replayed:
        assert replayed.read() == whole
    target.server.data.stop_runtime_session(agentRuntimeArn=target.arn("streamer"), runtimeSessionId=session)
    wait_until(lambda: not (spilled & set(stream_files(target.server))), timeout=10)
    with call(target, session, last_event_id=f"{request_id}:0") as gone:
        status, error, _ = error_of(gone)
    assert (status, error) == (404, "ResourceNotFoundException")


def test_boto3_sees_the_request_id_that_the_frames_carry(target: Target) -> None:
    reply = target.server.data.invoke_agent_runtime(
        agentRuntimeArn=target.arn("streamer"), runtimeSessionId="resume-boto3-" + "0" * 20,
        payload=json.dumps({"total": 3, "hold": False}).encode(),
    )  # fmt: skip
    request_id = reply["ResponseMetadata"]["RequestId"]
    body = reply["response"].read().decode()
    frames = [f'data: {{"n": {n}, "pad": ""}}\nid: {request_id}:{n}\n\n' for n in (1, 2, 3)]
    assert body == "".join(frames)


def test_an_empty_last_event_id_is_an_ordinary_invocation(target: Target) -> None:
    with call(target, "resume-empty-" + "0" * 20, {"total": 3, "hold": False}, last_event_id="") as reply:
        request_id = reply.headers["x-amzn-requestid"]
        assert events(reply) == numbered(request_id, range(1, 4))


def test_a_stream_named_by_its_caller_resumes_under_that_name(target: Target) -> None:
    # A caller-chosen request id (what makes a call cancellable before its answer begins) may hold
    # `.`, `~` and `:`; the stream is recorded under it, and its frame ids split at the last colon.
    session, chosen = "named-" + "n" * 34, "job.7:a~b"
    body = json.dumps({"total": 8, "hold": False}).encode()
    headers = {
        "x-amzn-bedrock-agentcore-runtime-session-id": session,
        "x-amzn-bedrock-agentcore-runtime-request-id": chosen,
        "content-type": "application/json",
    }
    signed = signed_headers(ADMIN, "POST", url(target), body, headers)
    with httpx.stream("POST", url(target), content=body, headers=signed, timeout=60) as reply:
        assert reply.headers["x-amzn-requestid"] == chosen
        assert events(reply) == numbered(chosen, range(1, 9))
    with call(target, session, last_event_id=f"{chosen}:3") as resumed:
        assert resumed.status_code == 200
        assert events(resumed) == numbered(chosen, range(4, 9))
