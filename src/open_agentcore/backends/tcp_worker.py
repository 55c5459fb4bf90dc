"""Workers that serve on TCP behind a per-worker secret: the process backend's sandboxed worker,
reachable from another machine (the Ray backend starts them on its nodes).

The listening socket is bound here, before the worker starts, and handed to it, as the process
backend hands over its unix socket; the secret goes through a pipe whose writer is closed at once,
so it never appears in the worker's command line or environment (both readable on the host). The
worker checks it on every request (`worker_main.SecretGate`).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import ssl
from pathlib import Path

import httpx

from . import work_dir
from .base import WorkerAddress, WorkerSpec, WorkerStartFailed
from .process import LAUNCHER, ProcessBackend, ProcessWorker, _last_line, _tail
from .sandbox import Launch

SECRET_HEADER = "x-agentcore-worker-secret"  # noqa: S105 - a header name, not a secret
_NO_TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # plain HTTP: skip loading the CA bundle per client


class TcpProcessBackend(ProcessBackend):
    """The process backend, but each worker listens on an ephemeral TCP port of `host`.

    Use `start_tcp`, which also returns the worker's address and secret. Same sandbox, limits and
    stop as the process backend; construct it off the event loop (it probes the sandbox).
    """

    name = "process-tcp"

    def __init__(self, host: str, sandbox: str = "auto", **options: object) -> None:
        super().__init__(sandbox, **options)  # type: ignore[arg-type]
        self.host = host
        self._addresses: dict[str, WorkerAddress] = {}

    async def start_tcp(self, spec: WorkerSpec) -> tuple[ProcessWorker, WorkerAddress]:
        """Start the worker; returns once it answered an authenticated `/ping` (`WorkerStartFailed`
        otherwise), with where it listens."""
        if self.sandbox_mode() == "gvisor":
            raise WorkerStartFailed(spec.worker_id, "TCP workers do not run under gVisor here")
        try:
            worker = await self.start(spec)
            return worker, self._addresses[spec.worker_id]
        finally:
            self._addresses.pop(spec.worker_id, None)

    def _prepare(self, spec: WorkerSpec, socket_path: Path, host_uid: int | None) -> tuple[Launch, int]:
        view = self._view(spec) if self._sandbox is not None else None
        work_dir.prepare(spec.work_dir, host_uid)
        listener = socket.create_server((self.host, 0), backlog=128)
        # Connections inherit it: uvicorn takes an inherited fd for a unix socket and so never sets
        # it, and Nagle's algorithm would hold each answer's body behind its head for a delayed ACK.
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        port = int(listener.getsockname()[1])
        listening = listener.detach()
        secret = secrets.token_urlsafe(32)
        reader, writer = os.pipe()
        try:
            os.write(writer, secret.encode())
        finally:
            os.close(writer)
        self._addresses[spec.worker_id] = WorkerAddress(self.host, port, secret)
        command = [
            str(spec.python), str(LAUNCHER), "--code-dir", str(spec.code_dir),
            "--entrypoint", spec.entrypoint, "--socket-fd", str(listening), "--secret-fd", str(reader),
            "--worker-id", spec.worker_id,
        ]  # fmt: skip
        try:
            if self._sandbox is not None and view is not None:
                launch = self._sandbox.launch(view, command, host_uid)
                launch.fds = (listening, reader, *launch.fds)
            else:
                launch = Launch(command, (listening, reader))
        except BaseException:
            os.close(listening)
            os.close(reader)
            raise
        try:
            log = work_dir.open_log(spec.work_dir / "worker.log")
        except BaseException:
            launch.close()
            raise
        return launch, log

    async def _wait_ready(self, worker: ProcessWorker, timeout: float, made_socket: Path) -> None:
        address = self._addresses[worker.worker_id]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        url = f"http://{address.host}:{address.port}"
        headers = {SECRET_HEADER: address.secret}
        async with httpx.AsyncClient(
            base_url=url, headers=headers, verify=_NO_TLS, trust_env=False
        ) as client:
            while True:
                if worker.process.returncode is not None:
                    raise WorkerStartFailed(
                        worker.worker_id,
                        f"the agent exited with code {worker.process.returncode} before it was ready: "
                        + _last_line(worker.log_path),
                        _tail(worker.log_path),
                    )
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise WorkerStartFailed(
                        worker.worker_id,
                        f"the agent did not answer /ping within {timeout:g}s",
                        _tail(worker.log_path),
                    )
                # The socket listens from the start: a ping waits in its backlog until the agent serves,
                # so a short timeout per try lets an early exit be noticed.
                try:
                    reply = await client.get("/ping", timeout=min(remaining, 0.5))
                    if reply.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.01)


__all__ = ["SECRET_HEADER", "TcpProcessBackend"]
