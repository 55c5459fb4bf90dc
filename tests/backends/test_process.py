"""The process backend with real worker processes: `backends/process.py`, `backends/worker_main.py`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from open_agentcore.backends import ProcessBackend, ProcessWorker, WorkerSpec, WorkerStartFailed, kill_orphan
from open_agentcore.backends.process import LAUNCHER
from tests.conftest import wait_until

_T = TypeVar("_T")

PROBE_AGENT = """
import os
from pathlib import Path
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    if "read" in payload:
        try:
            return {"read": Path(payload["read"]).read_text()}
        except OSError as error:
            return {"error": type(error).__name__}
    if "write" in payload:
        try:
            Path(payload["write"]).write_text("x")
            return {"wrote": True}
        except OSError as error:
            return {"error": type(error).__name__}
    pids = [name for name in os.listdir("/proc") if name.isdigit()]
    return {
        "env": {k: os.environ.get(k) for k in ("HOME", "TMPDIR", "AGENTCORE_SESSION_ID", "SERVER_SECRET")},
        "pids": len(pids),
        "cwd": os.getcwd(),
    }


if __name__ == "__main__":
    raise SystemExit("the launcher must not run the agent as __main__")
"""


def run(coro: Awaitable[_T]) -> _T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def write_agent(root: Path, source: str, name: str = "agent.py") -> Path:
    code = root / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / name).write_text(textwrap.dedent(source))
    return code


def spec(root: Path, code: Path, worker_id: str = "w1", **extra: Any) -> WorkerSpec:
    return WorkerSpec(
        worker_id=worker_id,
        python=Path(sys.executable),
        code_dir=code,
        entrypoint="agent.py",
        work_dir=root / "work" / worker_id,
        environment={"AGENTCORE_SESSION_ID": f"session-of-{worker_id}"},
        start_timeout=extra.pop("start_timeout", 30),
        **extra,
    )


async def invoke(worker: ProcessWorker, payload: dict[str, Any]) -> Any:
    transport = httpx.AsyncHTTPTransport(uds=str(worker.socket_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
        return (await client.post("/invocations", json=payload)).json()


async def with_worker(
    backend: ProcessBackend, worker_spec: WorkerSpec, body: Callable[[ProcessWorker], Awaitable[_T]]
) -> _T:
    worker = await backend.start(worker_spec)
    try:
        return await body(worker)
    finally:
        await backend.stop(worker, grace=5)


def test_start_invoke_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVER_SECRET", "must-not-leak")
    code = write_agent(tmp_path, PROBE_AGENT)
    backend = ProcessBackend(sandbox="none")
    worker_spec = spec(tmp_path, code)

    async def scenario() -> tuple[Any, ProcessWorker]:
        worker = await backend.start(worker_spec)
        reply = await invoke(worker, {})
        await backend.stop(worker, grace=5)
        return reply, worker

    reply, worker = run(scenario())
    assert reply["env"] == {
        "HOME": str(worker_spec.work_dir / "home"),
        "TMPDIR": str(worker_spec.work_dir / "tmp"),
        "AGENTCORE_SESSION_ID": "session-of-w1",
        "SERVER_SECRET": None,
    }
    assert reply["cwd"] == str(code)
    assert not worker.alive() and worker.process.returncode is not None
    assert not worker.socket_path.exists()


def test_an_import_error_fails_the_start_quoting_it(tmp_path: Path) -> None:
    code = write_agent(tmp_path, "import package_that_does_not_exist_xyz\n")
    with pytest.raises(WorkerStartFailed) as failed:
        run(ProcessBackend(sandbox="none").start(spec(tmp_path, code)))
    assert "package_that_does_not_exist_xyz" in failed.value.reason
    assert "ModuleNotFoundError" in failed.value.log_tail


def test_a_module_without_an_app_is_a_clear_error(tmp_path: Path) -> None:
    code = write_agent(tmp_path, "VALUE = 1\n")
    with pytest.raises(WorkerStartFailed, match="defines no ASGI app"):
        run(ProcessBackend(sandbox="none").start(spec(tmp_path, code)))


def test_a_worker_that_never_gets_ready_is_killed(tmp_path: Path) -> None:
    code = write_agent(tmp_path, "import time\ntime.sleep(30)\n")
    started: list[Any] = []
    backend = ProcessBackend(sandbox="none")
    original = asyncio.create_subprocess_exec

    async def spy(*args: Any, **kwargs: Any) -> Any:
        process = await original(*args, **kwargs)
        started.append(process)
        return process

    async def scenario() -> None:
        asyncio.create_subprocess_exec = spy  # type: ignore[assignment]
        try:
            await backend.start(spec(tmp_path, code, start_timeout=1))
        finally:
            asyncio.create_subprocess_exec = original  # type: ignore[assignment]

    with pytest.raises(WorkerStartFailed, match="did not answer /ping within 1s"):
        run(scenario())
    assert started and started[0].returncode is not None


def test_a_worker_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    code = write_agent(tmp_path, PROBE_AGENT)
    socket_path = tmp_path / "w.sock"
    pid_file = tmp_path / "worker.pid"
    intermediate = textwrap.dedent(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, {str(LAUNCHER)!r}, "--code-dir", {str(code)!r},
                                  "--entrypoint", "agent.py", "--socket", {str(socket_path)!r}])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", intermediate])
    try:
        wait_until(lambda: socket_path.exists() and pid_file.exists(), timeout=20)
        worker_pid = int(pid_file.read_text())
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)

        def gone() -> bool:
            try:
                return Path(f"/proc/{worker_pid}/status").read_text().split("State:")[1].split()[0] == "Z"
            except OSError:
                return True

        wait_until(gone, timeout=15)
    finally:
        if parent.poll() is None:
            parent.kill()


def test_kill_orphan_refuses_a_process_that_is_not_that_worker() -> None:
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert kill_orphan(unrelated.pid, "w1") is False
        assert unrelated.poll() is None
    finally:
        unrelated.kill()
        unrelated.wait()


# Sandboxed with bubblewrap (installed by scripts/install-test-deps.sh) -----------------------


@pytest.fixture
def sandboxed() -> ProcessBackend:
    return ProcessBackend(sandbox="bwrap")


def test_a_sandboxed_worker_sees_only_its_own_files_and_processes(
    tmp_path: Path, sandboxed: ProcessBackend
) -> None:
    assert sandboxed.sandbox_mode() == "bwrap"
    secret_dir = tmp_path / "server-data"
    secret_dir.mkdir()
    (secret_dir / "admin-credentials.json").write_text("top secret")
    code = write_agent(tmp_path, PROBE_AGENT)
    first = spec(tmp_path, code, "w1", hidden_paths=[secret_dir, tmp_path / "work"])
    second = spec(tmp_path, code, "w2", hidden_paths=[secret_dir, tmp_path / "work"])

    async def scenario() -> dict[str, Any]:
        one = await sandboxed.start(first)
        two = await sandboxed.start(second)
        try:
            (second.work_dir / "home" / "note.txt").write_text("w2's note")
            return {
                "secret": await invoke(one, {"read": str(secret_dir / "admin-credentials.json")}),
                "neighbour": await invoke(one, {"read": str(second.work_dir / "home" / "note.txt")}),
                "own_home": await invoke(two, {"read": str(second.work_dir / "home" / "note.txt")}),
                "write_code": await invoke(one, {"write": str(code / "agent.py")}),
                "write_home": await invoke(one, {"write": str(first.work_dir / "home" / "x")}),
                "probe": await invoke(one, {}),
            }
        finally:
            await sandboxed.stop(one, grace=5)
            await sandboxed.stop(two, grace=5)

    seen = run(scenario())
    assert seen["secret"] == {"error": "FileNotFoundError"}
    assert seen["neighbour"] == {"error": "FileNotFoundError"}
    assert seen["own_home"] == {"read": "w2's note"}
    assert seen["write_code"]["error"] in ("OSError", "PermissionError")
    assert seen["write_home"] == {"wrote": True}
    assert seen["probe"]["pids"] <= 3, json.dumps(seen["probe"])


def test_asking_for_bwrap_without_it_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from open_agentcore.backends import BackendUnavailable

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BackendUnavailable, match="bubblewrap not found"):
        ProcessBackend(sandbox="bwrap")
    assert ProcessBackend(sandbox="auto").sandbox_mode() == "none (bubblewrap not found)"
    assert os.environ["PATH"] == "/nonexistent"


def test_a_socket_path_too_long_for_unix_sockets_is_a_clear_error(tmp_path: Path) -> None:
    code = write_agent(tmp_path, PROBE_AGENT)
    deep = WorkerSpec("w1", Path(sys.executable), code, "agent.py", tmp_path / ("d" * 120))
    with pytest.raises(WorkerStartFailed, match="longer than 107 bytes"):
        run(ProcessBackend(sandbox="none").start(deep))


# Entry points, work dirs and stopping ------------------------------------------------------


@pytest.mark.parametrize("where", ["absolute", "dot-dot", "symlink"])
def test_an_entrypoint_that_leads_outside_the_code_dir_is_refused(tmp_path: Path, where: str) -> None:
    code = write_agent(tmp_path, PROBE_AGENT)
    outside = tmp_path / "outside.py"
    outside.write_text(textwrap.dedent(PROBE_AGENT))
    (code / "link.py").symlink_to(outside)
    entrypoint = {"absolute": str(outside), "dot-dot": "../outside.py", "symlink": "link.py"}[where]
    escaping = WorkerSpec(
        "w1", Path(sys.executable), code, entrypoint, tmp_path / "work" / "w1", start_timeout=30
    )
    with pytest.raises(WorkerStartFailed, match="code dir"):
        run(ProcessBackend(sandbox="none").start(escaping))


def processes_running_as(uid: int) -> list[str]:
    """Every live process whose real, effective, saved or filesystem uid is `uid`, read from /proc."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{name}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if str(uid) in fields["Uid"].split() and not fields["State"].startswith("Z"):
            found.append(f"{name} {fields['Name']}")
    return found


DAEMON_AGENT = """
import subprocess
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    # Double fork into a new session: the daemon outlives the shell and leaves the agent's group.
    daemon = "setsid /bin/sh -c 'exec sleep 300' </dev/null >/dev/null 2>&1 &"
    subprocess.run(["/bin/sh", "-c", daemon], check=True)
    return {"started": True}
"""


def test_stop_leaves_no_process_of_the_workers_host_uid(tmp_path: Path, sandboxed: ProcessBackend) -> None:
    code = write_agent(tmp_path, DAEMON_AGENT)

    async def scenario() -> tuple[int, list[str]]:
        worker = await sandboxed.start(spec(tmp_path, code))
        assert worker.host_uid is not None
        await invoke(worker, {})

        def daemon_running() -> bool:
            return any(process.endswith(" sleep") for process in processes_running_as(worker.host_uid or 0))

        await asyncio.to_thread(wait_until, daemon_running)  # the daemon runs as the worker's uid
        await sandboxed.stop(worker, grace=5)
        return worker.host_uid, processes_running_as(worker.host_uid)

    uid, left = run(scenario())
    assert left == []
    assert uid >= 2_000_000_000


def test_kill_orphan_takes_down_a_sandboxed_worker_and_all_it_started(
    tmp_path: Path, sandboxed: ProcessBackend
) -> None:
    code = write_agent(tmp_path, DAEMON_AGENT)

    async def scenario() -> None:
        worker = await sandboxed.start(spec(tmp_path, code))
        try:
            await invoke(worker, {})
            uid = worker.host_uid or 0
            await asyncio.to_thread(
                wait_until, lambda: any(p.endswith(" sleep") for p in processes_running_as(uid))
            )
            # As after a server crash: only the recorded pid and worker id are known.
            assert kill_orphan(worker.pid, worker.worker_id) is True
            await asyncio.to_thread(wait_until, lambda: not processes_running_as(uid))
            assert await asyncio.wait_for(worker.wait_exit(), 10) != 0
        finally:
            await sandboxed.stop(worker, grace=0)

    run(scenario())


GRACEFUL_AGENT = """
import contextlib, os
from pathlib import Path
from bedrock_agentcore import BedrockAgentCoreApp


@contextlib.asynccontextmanager
async def lifespan(app):
    yield
    Path(os.environ["HOME"], "stopped-gracefully").write_text("yes")


app = BedrockAgentCoreApp(lifespan=lifespan)


@app.entrypoint
def invoke(payload):
    return {}
"""


def test_a_stop_lets_the_sandboxed_agent_shut_down_gracefully(
    tmp_path: Path, sandboxed: ProcessBackend
) -> None:
    code = write_agent(tmp_path, GRACEFUL_AGENT)
    worker_spec = spec(tmp_path, code)

    async def scenario() -> int:
        worker = await sandboxed.start(worker_spec)
        await sandboxed.stop(worker, grace=10)
        return worker.process.returncode or 0

    assert run(scenario()) == 0
    assert (worker_spec.work_dir / "home" / "stopped-gracefully").read_text() == "yes"


def test_the_work_dir_stays_the_servers_and_only_home_and_tmp_are_the_workers(
    tmp_path: Path, sandboxed: ProcessBackend
) -> None:
    code = write_agent(tmp_path, PROBE_AGENT)
    worker_spec = spec(tmp_path, code)

    async def scenario() -> dict[str, tuple[int, int]]:
        worker = await sandboxed.start(worker_spec)
        try:
            paths = {
                "work": worker_spec.work_dir,
                "home": worker_spec.work_dir / "home",
                "tmp": worker_spec.work_dir / "tmp",
                "socket": worker.socket_path,
                "log": worker.log_path,
            }
            owners = {name: (path.stat().st_uid, path.stat().st_mode & 0o777) for name, path in paths.items()}
            owners["uid"] = (worker.host_uid or 0, 0)
            return owners
        finally:
            await sandboxed.stop(worker, grace=5)

    owners = run(scenario())
    uid = owners.pop("uid")[0]
    assert owners["work"] == (0, 0o700)
    assert owners["home"] == owners["tmp"] == (uid, 0o700)
    assert owners["socket"] == (0, 0o600)
    assert owners["log"][0] == 0


def test_what_a_sandboxed_worker_must_read_is_checked_readable_by_its_uid(
    tmp_path: Path, sandboxed: ProcessBackend
) -> None:
    code = write_agent(tmp_path, PROBE_AGENT)
    environment = tmp_path / "env"
    environment.mkdir(mode=0o700)
    with pytest.raises(WorkerStartFailed, match=r"env .*is not readable by the worker's uid"):
        run(sandboxed.start(spec(tmp_path, code, read_only_paths=[environment])))


def test_a_view_that_would_show_the_servers_data_dir_is_refused(
    tmp_path: Path, sandboxed: ProcessBackend
) -> None:
    code = write_agent(tmp_path, PROBE_AGENT)
    with pytest.raises(WorkerStartFailed, match="cannot be shown to workers"):
        run(
            sandboxed.start(
                spec(tmp_path, code, read_only_paths=[tmp_path], hidden_paths=[tmp_path / "data"])
            )
        )
