"""Sessions forked by their version's fork server (`--session-start fork`), with real processes:
`backends/fork_server.py` and `backends/fork_main.py`."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from open_agentcore.backends import LimitMode, ProcessBackend, ProcessWorker, SessionLimits, process
from open_agentcore.backends.limits import detect_limits
from open_agentcore.backends.process import probe_bwrap
from open_agentcore.sessions import SessionConfig, SessionManager, SessionTarget
from tests.conftest import wait_until
from tests.sessions.test_manager import call, until

_T = TypeVar("_T")

PROBE_AGENT = """
import os, random
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()
{import_time}


def links():
    found = {{}}
    for name in os.listdir("/proc/self/fd"):
        try:
            found[name] = os.readlink(f"/proc/self/fd/{{name}}")
        except OSError:
            pass
    return found


@app.entrypoint
def invoke(payload):
    return {{
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "home": os.environ.get("HOME"),
        "session": os.environ.get("AGENTCORE_SESSION_ID"),
        "secret": os.environ.get("SERVER_SECRET"),
        "span_credential": os.environ.get("OTEL_EXPORTER_OTLP_HEADERS"),
        "random": random.random(),
        "fds": links(),
    }}
"""


def target(root: Path, import_time: str = "", runtime_id: str = "probe-Ab12Cd34Ef") -> SessionTarget:
    code = root / runtime_id
    code.mkdir(exist_ok=True)
    (code / "agent.py").write_text(textwrap.dedent(PROBE_AGENT.format(import_time=import_time)))
    return SessionTarget(
        runtime_id=runtime_id,
        runtime_arn=f"arn:aws:bedrock-agentcore:us-east-1:000000000000:runtime/{runtime_id}",
        version=1,
        python=Path(sys.executable),
        code_dir=code,
        entrypoint="agent.py",
        environment={"VERSION_SETTING": "1"},
    )


def scenario(
    body: Callable[[SessionManager, ProcessBackend], Awaitable[_T]], sandbox: str = "none",
    worker_environment: Callable[[SessionTarget, str], dict[str, str]] | None = None, **backend: Any,
) -> _T:  # fmt: skip
    async def run() -> _T:
        # Short: worker sockets live under the work root, and socket paths max out at 107 bytes.
        work_root = Path(tempfile.mkdtemp(prefix="oacf-", dir="/tmp"))
        backend.setdefault("fork_linger", 0.0)  # fork servers stop with their last worker, unless asked
        process_backend = await asyncio.to_thread(ProcessBackend, sandbox, session_start="fork", **backend)
        config = SessionConfig(work_root=work_root, warm_pool=0, worker_environment=worker_environment)
        sessions = SessionManager(process_backend, config)
        try:
            return await body(sessions, process_backend)
        finally:
            await sessions.close()
            shutil.rmtree(work_root, ignore_errors=True)

    return asyncio.run(run())


def log_of(sessions: SessionManager, session_target: SessionTarget, session_id: str) -> str:
    live = sessions.get(session_target.runtime_id, session_id)
    assert live is not None
    return live.handle.log_path.read_text()


def started_by(sessions: SessionManager, session_target: SessionTarget, session_id: str) -> str:
    live = sessions.get(session_target.runtime_id, session_id)
    assert live is not None
    assert isinstance(live.handle, ProcessWorker)
    return live.handle.started_by


def start_story(sessions: SessionManager, session_target: SessionTarget, session_ids: Sequence[str]) -> str:
    """How each session started, and the end of its log (a fresh start says why there): what a
    failed expectation about fork servers prints, as it was seen in CI and not reproduced."""
    told = []
    for session_id in session_ids:
        live = sessions.get(session_target.runtime_id, session_id)
        if live is None:
            told.append(f"{session_id}: not live")
            continue
        log = live.handle.log_path.read_text(errors="replace")[-2000:]
        told.append(f"{session_id}: started by {getattr(live.handle, 'started_by', None)}; log:\n{log}")
    return "\n".join(told)


def test_forked_sessions_are_apart_and_each_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session_target = target(tmp_path)
    monkeypatch.setenv("SERVER_SECRET", "never-in-a-worker")

    async def body(sessions: SessionManager, backend: ProcessBackend) -> list[dict[str, Any]]:
        replies = [await call(sessions, session_target, session_id) for session_id in ("a", "b")]
        assert [started_by(sessions, session_target, s) for s in ("a", "b")] == ["fork", "fork"], start_story(
            sessions, session_target, ("a", "b")
        )
        assert "session forked by its version's fork server" in log_of(sessions, session_target, "a")
        assert len(backend.fork_servers()) == 1
        return replies

    a, b = scenario(body)
    assert a["pid"] != b["pid"] and (a["pgid"], b["pgid"]) == (a["pid"], b["pid"])
    assert (a["session"], b["session"]) == ("a", "b")
    assert a["home"] != b["home"] and a["home"].endswith("/home")
    assert a["secret"] is None and b["secret"] is None  # the server's environment stays the server's
    # Each child reseeds: siblings forked from one parent would otherwise draw the same numbers.
    assert a["random"] != b["random"]


def test_sessions_with_their_own_span_credentials_share_their_versions_fork_server(tmp_path: Path) -> None:
    # Each worker gets a span credential of its own (telemetry/worker_environment.py): keyed by it,
    # every session would start a fork server of its own and wait for the agent's whole import.
    session_target = target(tmp_path)

    def span_credential(_: SessionTarget, worker_id: str) -> dict[str, str]:
        return {"OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{worker_id}"}

    async def body(sessions: SessionManager, backend: ProcessBackend) -> tuple[list[dict[str, Any]], int]:
        replies = [await call(sessions, session_target, session_id) for session_id in ("a", "b", "c")]
        assert [started_by(sessions, session_target, s) for s in ("a", "b", "c")] == ["fork"] * 3
        return replies, len(backend.fork_servers())

    replies, fork_servers = scenario(body, worker_environment=span_credential)
    assert fork_servers == 1
    credentials = [reply["span_credential"] for reply in replies]
    assert len(set(credentials)) == 3  # each session still has its own
    assert all(credential.startswith("authorization=Bearer%20w") for credential in credentials)


def test_a_spare_is_forked_ahead_and_the_next_session_becomes_it(tmp_path: Path) -> None:
    session_target = target(tmp_path)

    async def body(sessions: SessionManager, backend: ProcessBackend) -> dict[str, Any]:
        first = await call(sessions, session_target, "a")
        await until(lambda: len(backend.spares()) == 1)  # forked once "a" serves
        (spare,) = backend.spares()
        assert spare != first["pid"] and _running(spare)
        second = await call(sessions, session_target, "b")
        live = sessions.get(session_target.runtime_id, "b")
        assert live is not None and isinstance(live.handle, ProcessWorker)
        assert live.handle.process.pid == spare == second["pid"]  # the spare became "b"'s worker
        await until(lambda: len(backend.spares()) == 1 and backend.spares() != [spare])  # and another came
        return second

    second = scenario(body)
    assert second["session"] == "b" and second["home"].endswith("/home")  # the session's, not the spare's
    assert "/fork-" not in second["home"]


def test_a_versions_spare_goes_with_its_last_session(tmp_path: Path) -> None:
    session_target = target(tmp_path)

    async def body(sessions: SessionManager, backend: ProcessBackend) -> tuple[int, list[int], list[int]]:
        await call(sessions, session_target, "a")
        await until(lambda: len(backend.spares()) == 1)
        (spare,) = backend.spares()
        await sessions.stop(session_target.runtime_id, "a")
        await until(lambda: backend.fork_servers() == [] and not _running(spare))
        return spare, backend.spares(), sorted(path.name for path in sessions.config.work_root.iterdir())

    _, spares, left = scenario(body)
    assert spares == [] and left == []


def test_a_fork_server_lingers_after_its_last_session_and_the_next_session_takes_its_spare(
    tmp_path: Path,
) -> None:
    session_target = target(tmp_path)

    async def body(sessions: SessionManager, backend: ProcessBackend) -> None:
        await call(sessions, session_target, "a")
        (fork_server,) = backend.fork_servers()
        await until(lambda: len(backend.spares()) == 1)
        (spare,) = backend.spares()
        await sessions.stop(session_target.runtime_id, "a")
        await call(sessions, session_target, "b")  # the version has no session now, but its spare
        live = sessions.get(session_target.runtime_id, "b")
        assert live is not None and live.handle.process.pid == spare
        assert backend.fork_servers() == [fork_server]
        await sessions.stop(session_target.runtime_id, "b")
        await until(lambda: backend.fork_servers() == [] and backend.spares() == [])  # after the linger
        assert not _running(spare)

    scenario(body, fork_linger=2.0)


def test_a_forked_session_inherits_no_file_of_the_fork_server_or_of_another_session(tmp_path: Path) -> None:
    session_target = target(tmp_path)

    async def body(
        sessions: SessionManager, backend: ProcessBackend
    ) -> tuple[dict[str, Any], set[str], list[str]]:
        first = await call(sessions, session_target, "a")
        await call(sessions, session_target, "b")
        servers = backend.fork_servers()
        if len(servers) != 1:
            raise AssertionError(
                f"fork servers running: {servers}\n{start_story(sessions, session_target, ('a', 'b'))}"
            )
        (fork_server,) = servers
        held = set()
        for name in os.listdir(f"/proc/{fork_server}/fd"):
            link = os.readlink(f"/proc/{fork_server}/fd/{name}")
            if link.startswith("socket:"):
                held.add(link)
        others = [str(sessions.get(session_target.runtime_id, "b").handle.log_path)]  # type: ignore[union-attr]
        return first, held, others

    first, fork_server_sockets, other_logs = scenario(body)
    links = set(first["fds"].values())
    assert fork_server_sockets and not links & fork_server_sockets  # not its control channel
    assert not links & set(other_logs)
    assert first["fds"]["0"] == "/dev/null" and first["fds"]["1"] == first["fds"]["2"]
    assert first["fds"]["1"].endswith("/worker.log") and "/home" not in first["fds"]["1"]


@pytest.mark.parametrize(
    ("import_time", "reason"),
    [
        ("import threading, time\nthreading.Thread(target=time.sleep, args=(600,), daemon=True).start()",
         "its import started 1 thread(s)"),
        ("kept = open(__file__)", "its import left 1 file(s) open"),
    ],
)  # fmt: skip
def test_an_agent_that_cannot_be_forked_starts_fresh_and_its_log_says_why(
    tmp_path: Path, import_time: str, reason: str
) -> None:
    session_target = target(tmp_path, import_time)

    async def body(sessions: SessionManager, backend: ProcessBackend) -> tuple[list[str], str, list[int]]:
        for session_id in ("a", "b"):
            await call(sessions, session_target, session_id)
        kinds = [started_by(sessions, session_target, s) for s in ("a", "b")]
        return kinds, log_of(sessions, session_target, "b"), backend.fork_servers()

    kinds, log, fork_servers = scenario(body)
    assert kinds == ["fresh", "fresh"] and fork_servers == []
    assert f"session started as a fresh process: its version cannot be forked: {reason}" in log


def test_an_agent_that_fails_to_import_is_a_start_failure_saying_why(tmp_path: Path) -> None:
    from open_agentcore.backends import WorkerStartFailed

    session_target = target(tmp_path, "raise RuntimeError('no model configured')")

    async def body(sessions: SessionManager, backend: ProcessBackend) -> str:
        with pytest.raises(WorkerStartFailed) as failed:
            await call(sessions, session_target, "a")
        return str(failed.value)

    assert "no model configured" in scenario(body)


def test_a_crashed_fork_server_takes_no_session_with_it_and_is_started_again(tmp_path: Path) -> None:
    session_target = target(tmp_path)

    async def body(sessions: SessionManager, backend: ProcessBackend) -> tuple[int, int, int, int, str]:
        before = await call(sessions, session_target, "a")
        (crashed,) = backend.fork_servers()
        os.kill(crashed, signal.SIGKILL)
        await until(lambda: backend.fork_servers() == [])
        still = await call(sessions, session_target, "a")  # the same worker answers
        await call(sessions, session_target, "b")
        (again,) = backend.fork_servers()
        return before["pid"], still["pid"], crashed, again, started_by(sessions, session_target, "b")

    before, still, crashed, again, how = scenario(body)
    assert before == still and crashed != again and how == "fork"


def test_a_crashed_sandboxed_fork_server_ends_its_versions_sessions_and_is_started_again() -> None:
    """Sandboxed, a session's pid namespace nests in its fork server's: a fork server's crash ends
    them (each with a reason), and the next session gets a new fork server."""
    root = readable_root()
    session_target = target(root)

    async def body(sessions: SessionManager, backend: ProcessBackend) -> tuple[int, int, str]:
        await call(sessions, session_target, "a")
        live = sessions.get(session_target.runtime_id, "a")
        assert live is not None and isinstance(live.handle, ProcessWorker)
        (crashed,) = backend.fork_servers()
        os.kill(crashed, signal.SIGKILL)
        await until(lambda: backend.fork_servers() == [] and not live.handle.alive())
        await call(sessions, session_target, "b")
        (again,) = backend.fork_servers()
        return crashed, again, started_by(sessions, session_target, "b")

    try:
        crashed, again, how = scenario(body, sandbox="bwrap")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert crashed != again and how == "fork"


def test_a_versions_last_worker_stops_its_fork_server_and_versions_have_their_own(tmp_path: Path) -> None:
    first, second = target(tmp_path), target(tmp_path, runtime_id="other-Ab12Cd34Ef")

    async def body(sessions: SessionManager, backend: ProcessBackend) -> tuple[int, int, list[str]]:
        await call(sessions, first, "a")
        await call(sessions, second, "a")
        both = len(backend.fork_servers())
        await sessions.stop_runtime(first.runtime_id)
        await until(lambda: len(backend.fork_servers()) == 1)
        await sessions.stop(second.runtime_id, "a")
        await until(lambda: backend.fork_servers() == [])
        left = sorted(path.name for path in sessions.config.work_root.iterdir())
        return both, len(backend.fork_servers()), left

    assert scenario(body) == (2, 0, [])  # nor is the fork servers' own dir left behind


def test_a_stopped_forked_session_is_gone_with_everything_it_started(tmp_path: Path) -> None:
    session_target = target(tmp_path, "import subprocess")

    async def body(sessions: SessionManager, backend: ProcessBackend) -> int:
        reply = await call(sessions, session_target, "a")
        await sessions.stop(session_target.runtime_id, "a")
        return int(reply["pid"])

    pid = scenario(body)
    assert not Path(f"/proc/{pid}").exists()


def test_a_forked_session_and_its_fork_server_are_under_limits_before_the_agent_runs(tmp_path: Path) -> None:
    session_target = target(tmp_path)
    limits = SessionLimits(memory_bytes=3 * 1024**3, cpus=1.0, pids=256)

    async def body(
        sessions: SessionManager, backend: ProcessBackend
    ) -> tuple[str, list[str], list[str], str]:
        reply = await call(sessions, session_target, "a")
        live = sessions.get(session_target.runtime_id, "a")
        assert live is not None
        (fork_server,) = backend.fork_servers()
        pids = [reply["pid"], fork_server]
        cgroups = [Path(f"/proc/{pid}/cgroup").read_text() for pid in pids]
        rlimits = [Path(f"/proc/{pid}/limits").read_text() for pid in pids]
        mode = str(backend.protections()["limits"]["mode"])  # type: ignore[index]
        return mode, cgroups, rlimits, live.handle.worker_id

    mode, cgroups, rlimits, worker_id = scenario(body, limits=limits)
    if mode == str(LimitMode.RLIMIT):
        assert all(f"Max address space         {3 * 1024**3}" in text for text in rlimits)
    else:
        session, fork_server = cgroups
        assert worker_id in session and worker_id not in fork_server and "/fork-" in fork_server


def test_forked_sessions_end_with_the_server_but_not_with_their_fork_server(tmp_path: Path) -> None:
    session_target = target(tmp_path)
    program = textwrap.dedent(f"""
        import asyncio, sys
        from pathlib import Path
        from open_agentcore.backends import ProcessBackend
        from open_agentcore.sessions import SessionConfig, SessionManager, SessionTarget

        async def main():
            backend = ProcessBackend("none", session_start="fork")
            sessions = SessionManager(backend, SessionConfig(work_root=Path(sys.argv[1]), warm_pool=0))
            target = SessionTarget("probe-Ab12Cd34Ef", "arn", 1, Path(sys.executable),
                                   Path({str(session_target.code_dir)!r}), "agent.py", {{}})
            live = await sessions.acquire(target, "a")
            print(live.handle.pid, flush=True)
            await asyncio.sleep(3600)

        asyncio.run(main())
    """)
    work_root = Path(tempfile.mkdtemp(prefix="oacf-", dir="/tmp"))
    server = subprocess.Popen(
        [sys.executable, "-c", program, str(work_root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        forked = int(server.stdout.readline())
        assert Path(f"/proc/{forked}").exists()
        server.kill()  # no chance to stop anything: only the lifeline's end tells the session
        server.wait()
        wait_until(lambda: not _running(forked), timeout=30)
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(work_root, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def readable_root() -> Path:
    """A dir for code that sandboxed workers, running as a uid of nobody's, can read (pytest's
    tmp_path is root's alone)."""
    root = Path(tempfile.mkdtemp(prefix="oacf-code-", dir="/tmp"))
    root.chmod(0o755)
    return root


def test_with_bwrap_sessions_are_forked_into_a_sandbox_each_under_its_limits() -> None:
    if (why := probe_bwrap()) is not None:
        pytest.fail(f"bubblewrap must work on the test machine: {why}")
    root = readable_root()
    session_target = target(root)
    limits = SessionLimits(memory_bytes=3 * 1024**3, cpus=1.0, pids=256)

    async def body(
        sessions: SessionManager, backend: ProcessBackend
    ) -> tuple[list[dict[str, Any]], list[str]]:
        replies = [await call(sessions, session_target, session_id) for session_id in ("a", "b")]
        assert [started_by(sessions, session_target, s) for s in ("a", "b")] == ["fork", "fork"]
        assert backend.session_start_mode() == "fork" and len(backend.fork_servers()) == 1
        cgroups = []
        for session_id in ("a", "b"):
            live = sessions.get(session_target.runtime_id, session_id)
            assert live is not None and isinstance(live.handle, ProcessWorker)
            assert live.handle.agent_pid is not None
            cgroups.append(Path(f"/proc/{live.handle.agent_pid}/cgroup").read_text())
            assert live.handle.worker_id in cgroups[-1]
            # Its pid 1 is the tiny reaper now (the pages it wrote as a copy of the fork server went
            # back), under the same filter, and not dumpable: the agent may not open its memory.
            init = live.handle.process.pid
            command = Path(f"/proc/{init}/cmdline")
            await until(lambda at=command: at.read_bytes().split(b"\0")[0] == b"agentcore-reaper")
            lines = Path(f"/proc/{init}/status").read_text().splitlines()
            status = dict(line.split(":\t", 1) for line in lines)
            assert (status["Seccomp"].strip(), status["NoNewPrivs"].strip()) == ("2", "1")
            assert Path(f"/proc/{init}/status").stat().st_uid == 0  # not dumpable: /proc says root owns it
        return replies, cgroups

    try:
        (a, b), (cgroup_a, cgroup_b) = scenario(body, sandbox="bwrap", limits=limits)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    # Each is pid 2 (its reaper is 1) of its own pid namespace, with its own home and environment.
    assert a["pid"] == b["pid"] == 2
    assert a["home"] == b["home"] == "/home/agent"
    assert (a["session"], b["session"]) == ("a", "b") and a["random"] != b["random"]
    assert cgroup_a != cgroup_b


def test_with_bwrap_but_no_cgroups_sessions_start_fresh_and_their_log_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A host without cgroups cannot be made here: the server is shown an empty cgroup tree instead.
    empty = Path(tempfile.mkdtemp(prefix="oacf-nocg-"))
    monkeypatch.setattr(process, "detect_limits", lambda limits: detect_limits(limits, cgroup_root=empty))
    root = readable_root()
    session_target = target(root)

    async def body(sessions: SessionManager, backend: ProcessBackend) -> tuple[str, str, str]:
        await call(sessions, session_target, "a")
        return (
            started_by(sessions, session_target, "a"),
            log_of(sessions, session_target, "a"),
            backend.session_start_mode(),
        )

    try:
        how, log, mode = scenario(body, sandbox="bwrap", limits=SessionLimits())
    finally:
        shutil.rmtree(root, ignore_errors=True)
        empty.rmdir()
    assert how == "fresh" and mode.startswith(
        "fresh (sandboxed forked sessions share their version's host uid"
    )
    assert "session started as a fresh process: sandboxed forked sessions share" in log
