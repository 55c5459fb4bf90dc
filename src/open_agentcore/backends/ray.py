"""The Ray backend: each session's worker runs on a Ray node that Ray's scheduler picks.

A session is one Ray actor (`ray_node.SessionActor`) asking for the session's CPUs and memory, so
Ray packs sessions onto nodes by their limits and refuses what fits nowhere. The actor starts the
same sandboxed worker as the process backend on its node, serving on a TCP port behind a secret
of its own; the server talks to it directly (`WorkerAddress`). The code goes to a node that lacks it
as the arguments of calls to the actor, by content hash, and is cached there with its environment.

Ray is imported only when this backend is built: the server and the CLI start without it. Ray as
started or joined here stays on this machine's loopback when the address is a loopback one (or
`local`): usage statistics off, no dashboard, and Ray told not to swap 127.0.0.1 for the host's
other interface, which it does by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .base import (
    BackendUnavailable,
    NoRoomForSession,
    SessionLimits,
    WorkerAddress,
    WorkerHandle,
    WorkerSpec,
    WorkerStartFailed,
)
from .limits import format_size
from .ray_cluster import RayConfig, connect, list_nodes
from .ray_head import HeadStatus, HeadUnreachable, HeadWatch, head_address
from .ray_node import EnvironmentBuilding, NodeSettings, SessionActor, Started, StartRequest, pack_code

logger = logging.getLogger("open_agentcore.backends.ray")

_T = TypeVar("_T")

NODE_DIED = "the Ray node running this session died"
_STOP_SLACK = 10.0  # past the stop's grace, how long the actor gets to answer before it is killed
_SANDBOXES = ("auto", "bwrap", "none")
_HEAD_TIMEOUT = 5.0  # how long the head gets to answer a question (the nodes, a named actor)
# How long the head gets to register a new actor, or to end one: both wait on the head in Ray.
_HEAD_CHANGE_TIMEOUT = 30.0
# Threads for Ray's calls that wait on the head (`RayBackend._ask`). Their own: a call given up on
# keeps its thread until Ray's own deadline (a minute), and must not take the default executor's,
# which the store's reads and the sessions' work use.
_HEAD_CALL_THREADS = 8
_UNAVAILABLE_LIMIT = 120.0  # an actor Ray can neither reach nor declare dead, given up after this
# A worker on the head's node can end a moment before the head stops answering (a machine going down
# takes its processes in some order): before an abnormal end is put down to anything else, the head
# is asked again after this long (the head watch's own probe interval).
_HEAD_SECOND_LOOK = 0.5
_WARM_START_DEFER = 0.1  # seconds a warm-pool worker's start waits: see `RayBackend.start`
# The code goes to a node in parts this small: Ray carries an argument under its inline limit
# (`max_direct_call_object_size`, 100 KiB by default) inside the call's own message, so the server
# never owns an object in Ray's object store (see `RayBackend._send_code`).
_CODE_PART = 64 * 1024
_PARTS_IN_FLIGHT = 16


@dataclass
class RayWorker:
    """A session's worker on a Ray node: its actor, where it listens, and how it ended."""

    worker_id: str
    actor: Any = field(repr=False)
    node_id: str
    address: WorkerAddress
    pid: int  # on its node
    log_path: Path  # on the server: the worker's log is brought back here when it stops
    sandboxed: bool
    warm: bool
    started_at: float = field(default_factory=time.monotonic)
    lost_reason: str | None = None
    actor_name: str = ""
    replica: str = ""  # the server replica that started it
    connection: int = 0  # which of the backend's connections to Ray its actor handle belongs to
    stopping: bool = False  # the server is stopping it: its end is no sign of anything
    # Its end was put down to the head's loss: nothing more is asked of Ray about it (a call to a
    # head that is gone waits for Ray's reconnection deadline, which ends the whole process).
    lost_with_head: bool = False
    _exit: asyncio.Task[tuple[int, str]] | None = field(default=None, repr=False)

    @property
    def socket_path(self) -> Path:
        """None of its own: it listens on `address` (kept for the WorkerHandle protocol)."""
        return self.log_path.with_name("worker.sock")

    def alive(self) -> bool:
        return self._exit is not None and not self._exit.done()

    async def wait_exit(self) -> int:
        assert self._exit is not None
        code, _ = await asyncio.shield(self._exit)
        return code

    def shared(self) -> dict[str, object]:
        """What another server replica needs to reach this worker and its actor (a credential:
        the secret is in it; it goes to the store only, never to a log)."""
        return {
            "actor": self.actor_name,
            "host": self.address.host,
            "port": self.address.port,
            "secret": self.address.secret,
            "node": self.node_id,
            "pid": self.pid,
            "replica": self.replica,
        }


class RayBackend:
    """Runs each worker on a node of a Ray cluster (see the module docstring).

    Construct it off the event loop: it connects to (or starts) Ray. `BackendUnavailable` when
    Ray is not installed, the cluster cannot be reached, or the sandbox asked for cannot be had.
    """

    name = "ray"
    network: str

    def __init__(
        self, config: RayConfig, *, sandbox: str = "auto", network: str = "default",
        uid_base: int = 2_000_000_000, limits: SessionLimits | None = None,
        environments: Callable[[Path], EnvironmentBuilding], hidden_paths: tuple[Path, ...] = (),
    ) -> None:  # fmt: skip
        if sandbox not in _SANDBOXES:
            raise BackendUnavailable(
                f"--backend ray runs workers with --sandbox {', '.join(_SANDBOXES)}, not {sandbox!r}"
            )
        self.config = config
        self.network = network
        self._sandbox = sandbox
        self.sandboxed = sandbox != "none"
        self._limits = limits or SessionLimits()
        self._settings = NodeSettings(
            sandbox, network, uid_base, limits, config.node_root, environments, hidden_paths
        )
        self._ray, self._joined = connect(config)
        # Which connection to Ray this is: it changes when the head is lost and joined again, and
        # handles of an earlier one are never used (Ray no longer knows them).
        self._connection = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._head_lost = asyncio.Event()
        self._lost_reason = ""
        self._late_kills: set[asyncio.Future[None]] = set()
        self._head_calls = ThreadPoolExecutor(_HEAD_CALL_THREADS, thread_name_prefix="ray-head-call")
        if network != "none":
            logger.warning(
                "--backend ray with the host's network: an agent can connect to the Ray ports of its "
                "node; --session-network none keeps agents off them (see docs/scale-out.md)"
            )
        self._actor_class = self._ray.remote(SessionActor)
        self._code: dict[Path, tuple[str, bytes]] = {}  # each code dir's archive, packed once
        self._head = self._watch_head()

    def sandbox_mode(self) -> str:
        return f"{self._sandbox} (on each Ray node)"

    def cluster_status(self) -> HeadStatus:
        """Whether the head answers (always reachable when it is not watched: Ray Client)."""
        if self._head is None:
            return HeadStatus(self.config.address, True, 0.0)
        return self._head.status

    def _watch_head(self) -> HeadWatch | None:
        """Watch the head's address, when Ray says what it is (not through Ray Client)."""
        if self.config.address.startswith("ray://"):
            return None
        address = head_address(self._ray)
        if address is None:
            logger.warning("Ray does not say where its head is: losing it will not be noticed in time")
            return None
        watch = HeadWatch(address, self._let_go, self._rejoin)
        watch.start()
        return watch

    def _let_go(self, reason: str) -> None:
        """The head is gone (in the watch's thread): every worker is lost with it, and Ray's client
        is shut down before Ray ends this process or a new head's answer aborts it."""
        self._lost_reason = self._head_loss(reason)
        loop, lost = self._loop, self._head_lost
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: the server is stopping
                loop.call_soon_threadsafe(lost.set)
        began = time.monotonic()
        self._ray.shutdown()
        logger.info("Let go of the lost Ray cluster in %.1f s", time.monotonic() - began)

    def _head_loss(self, reason: str) -> str:
        """Why a session ended with its head, naming the head's address."""
        address = self._head.address if self._head is not None else self.config.address
        return f"the Ray head at {address} was lost ({reason}); the session's worker is lost with it"

    def _rejoin(self) -> None:
        """Join the head at the same address again (in the watch's thread)."""
        self._ray, _ = connect(self.config)
        self._actor_class = self._ray.remote(SessionActor)
        self._head_lost = asyncio.Event()
        self._connection += 1

    def _check_head(self) -> None:
        """Refuse at once while the head is lost; note the loop the workers' watchers run on."""
        self._loop = asyncio.get_running_loop()
        if self._head is not None:
            self._head.check()

    def protections(self) -> dict[str, object]:
        """What confines a worker, as far as the server can tell without asking every node."""
        limits = self._limits
        return {
            "sandbox": self.sandbox_mode(),
            "placement": f"one Ray actor per session reserving CPU {limits.cpus:g} and memory "
            f"{format_size(limits.memory_bytes)}",
            "transport": "TCP on the node's address; each worker refuses requests without its own secret",
            "cluster": self.config.address,
        }

    async def start(self, spec: WorkerSpec) -> RayWorker:
        """Place the session on a node and start its worker there; returns once it answers `/ping`.

        `NoRoomForSession` when no node could ever hold the session's limits, or none had room
        within the placement timeout; `WorkerStartFailed` when the worker itself did not start.
        """
        self._check_head()
        if spec.pooled:
            # A warm-pool worker, for a session yet to come: starting one takes a Ray worker
            # process's start-up of CPU, from the same cores as the first call of the session
            # whose arrival asked for it. Let that call go first.
            await asyncio.sleep(_WARM_START_DEFER)
        await self._head_answers()
        await self._check_fits()
        code_hash, archive = await self._code_of(spec.code_dir)
        limits = self._limits
        # Detached and named: the session outlives this replica (`kill -9` included), and any
        # replica finds its actor by name to reach or stop it.
        name = self.actor_name(spec.worker_id)
        actor_class = self._actor_class.options(
            num_cpus=limits.cpus, memory=limits.memory_bytes, max_restarts=0, max_task_retries=0,
            name=name, lifetime="detached",
        )  # fmt: skip
        actor = await self._ask(
            functools.partial(actor_class.remote, self._settings), _HEAD_CHANGE_TIMEOUT, late=self._kill_late
        )
        try:
            started = await self._start_on_node(actor, spec, code_hash, archive)
        except BaseException:
            await asyncio.shield(self._kill(actor))  # shielded: a second cancellation leaves it to finish
            raise
        spec.work_dir.mkdir(parents=True, exist_ok=True)
        log_path = spec.work_dir / "worker.log"
        log_path.touch()
        worker = RayWorker(
            spec.worker_id, actor, started.node_id, started.address, started.pid, log_path,
            started.sandboxed, started.warm, actor_name=name, replica=self.config.replica,
            connection=self._connection,
        )  # fmt: skip
        worker._exit = asyncio.get_running_loop().create_task(self._watch(worker))
        return worker

    async def _head_answers(self) -> None:
        """Refuse at once when nothing answers at the head's address, though the watch has not
        noticed yet: Ray's own calls to a head that is gone wait out its reconnection deadline, and
        then end this whole process (a new session's node listing did, in a test)."""
        head = self._head
        if head is not None and not await self._head_reachable():
            raise HeadUnreachable(
                f"the Ray head at {head.address} cannot be reached (it stopped answering); "
                "no session can be started until it is back"
            )

    async def _head_reachable(self) -> bool:
        """Whether the head is reachable now: the watch has not lost it, and something answers at
        its address (the watch looks every half second; a call can come in between)."""
        head = self._head
        return head is None or (head.status.reachable and await asyncio.to_thread(head.answers))

    async def _ask(
        self,
        question: Callable[[], _T],
        within: float = _HEAD_TIMEOUT,
        late: Callable[[_T], None] | None = None,
    ) -> _T:
        """The answer to a call of Ray's that waits on the head (a named actor, the actors' names,
        a new named actor: Ray registers it first), made in a thread. Ray waits up to a minute for
        a head that is gone, so the answer is given up as soon as the head is lost, or when it has
        not come `within` seconds: `HeadUnreachable` either way. The thread is left to Ray's own
        deadline; an answer that comes after it was given up goes to `late`."""
        loop = self._loop = asyncio.get_running_loop()  # the head's loss is told to this loop
        asking = loop.run_in_executor(self._head_calls, question)
        try:
            answer: _T = await self._unless_head_lost(asyncio.shield(asking), within)
            return answer
        except BaseException as error:
            asking.add_done_callback(functools.partial(_given_up, late=late))
            if isinstance(error, asyncio.TimeoutError):
                raise HeadUnreachable(
                    f"the Ray cluster's head ({self.config.address}) did not answer within {within:g}s; "
                    "no session can be started or reached until it answers"
                ) from None
            raise

    def actor_name(self, worker_id: str) -> str:
        """The name of the actor of a worker this replica starts."""
        return f"{self.config.replica}.{worker_id}"

    @property
    def private_cluster(self) -> bool:
        """Whether the cluster is this server's own (`local`): it, and every session, stops with it."""
        return self.config.address == "local"

    async def adopt(self, worker_id: str, shared: Mapping[str, object], work_dir: Path) -> RayWorker | None:
        """A handle on a worker another replica started, from what it recorded (`RayWorker.shared`);
        None when its actor is gone (stopped, died with its node, or lost with the head);
        `HeadUnreachable` when the head is lost while Ray is asked, or does not answer."""
        name, host, port, secret = (shared.get(k) for k in ("actor", "host", "port", "secret"))
        if not (isinstance(name, str) and isinstance(host, str) and isinstance(port, int)):
            return None
        if not isinstance(secret, str):
            return None
        if not await self._head_reachable():
            return None  # lost with the head: Ray no longer reaches any actor of the cluster
        try:
            actor = await self._ask(functools.partial(self._ray.get_actor, name, self.config.namespace))
        except ValueError:
            return None  # Ray names no such live actor
        log_path = work_dir / "worker.log"
        await asyncio.to_thread(_touch, log_path)
        node, replica, pid = shared.get("node"), shared.get("replica"), shared.get("pid")
        worker = RayWorker(
            worker_id, actor, str(node or ""), WorkerAddress(host, port, secret),
            pid if isinstance(pid, int) else -1, log_path, bool(shared.get("sandboxed", True)), True,
            actor_name=name, replica=str(replica or ""), connection=self._connection,
        )  # fmt: skip
        worker._exit = asyncio.get_running_loop().create_task(self._watch(worker))
        return worker

    async def stop_leftovers(self, keep: Collection[str]) -> int:
        """Kill this replica's actors (by their name's prefix) whose worker is not in `keep`: warm
        workers and half-started sessions left by an earlier run of this replica. Returns how many."""
        prefix = f"{self.config.replica}."
        names = await self._ask(self._ray.util.list_named_actors)
        killed = 0
        for name in names:
            if isinstance(name, str) and name.startswith(prefix) and name[len(prefix) :] not in keep:
                with contextlib.suppress(ValueError):
                    await self._kill(
                        await self._ask(functools.partial(self._ray.get_actor, name, self.config.namespace))
                    )
                    killed += 1
        return killed

    async def _start_on_node(self, actor: Any, spec: WorkerSpec, code_hash: str, archive: bytes) -> Started:
        exceptions = self._ray.exceptions
        try:
            await self._unless_head_lost(actor.node.remote(), self.config.placement_timeout)
        except asyncio.TimeoutError:
            self._check_head()
            raise NoRoomForSession(
                f"no Ray node had room for a session (CPU {self._limits.cpus:g}, memory "
                f"{format_size(self._limits.memory_bytes)}) within {self.config.placement_timeout:g}s; "
                "stop some sessions, add nodes, or lower --session-cpus/--session-memory"
            ) from None
        except exceptions.RayActorError as error:
            raise WorkerStartFailed(
                spec.worker_id, f"its Ray actor died before it started: {error}"
            ) from None
        except Exception as error:  # Ray raises a bare Exception when it cannot even send the call
            self._check_head()
            raise WorkerStartFailed(spec.worker_id, f"Ray could not start its actor: {error}") from None
        request = StartRequest(
            spec.worker_id, code_hash, spec.entrypoint, dict(spec.environment), spec.start_timeout
        )
        deadline = time.monotonic() + spec.start_timeout + _STOP_SLACK
        try:
            if await self._unless_head_lost(actor.lacks_code.remote(code_hash), spec.start_timeout):
                await self._send_code(actor, code_hash, archive, deadline)
            started: Started = await self._unless_head_lost(
                actor.start.remote(request), deadline - time.monotonic()
            )
        except asyncio.TimeoutError:
            raise WorkerStartFailed(
                spec.worker_id, f"its node did not start it within {spec.start_timeout:g}s"
            ) from None
        except exceptions.RayTaskError as error:
            cause = error.cause
            if isinstance(cause, WorkerStartFailed):
                raise WorkerStartFailed(spec.worker_id, cause.reason, cause.log_tail) from None
            raise WorkerStartFailed(spec.worker_id, f"its node failed to start it: {cause}") from None
        except exceptions.RayActorError:
            raise WorkerStartFailed(spec.worker_id, f"{NODE_DIED} while the worker was starting") from None
        return started

    async def _check_fits(self) -> None:
        """Refuse at once a session no node can ever hold (Ray would keep it pending forever)."""
        try:
            nodes = await asyncio.to_thread(list_nodes, self._ray, _HEAD_TIMEOUT)
        except TimeoutError:
            raise HeadUnreachable(
                f"the Ray cluster's head ({self.config.address}) did not answer within {_HEAD_TIMEOUT:g}s; "
                "no session can be placed until it is back"
            ) from None
        except Exception as error:  # whatever Ray raises when its head is gone
            raise HeadUnreachable(
                f"the Ray cluster's head ({self.config.address}) cannot be reached ({error}); no session "
                "can be placed until it is back"
            ) from None
        limits = self._limits
        for node in nodes:
            resources = node.get("Resources", {})
            fits = (
                resources.get("CPU", 0) >= limits.cpus and resources.get("memory", 0) >= limits.memory_bytes
            )
            if node.get("Alive") and fits:
                return
        raise NoRoomForSession(
            f"no node of the Ray cluster can hold a session of CPU {limits.cpus:g} and memory "
            f"{format_size(limits.memory_bytes)} (--session-cpus, --session-memory), even when idle"
        )

    async def _code_of(self, code_dir: Path) -> tuple[str, bytes]:
        """The code's archive and its hash, packed once per code dir (a version's code never
        changes once deployed)."""
        if code_dir not in self._code:
            archive = await asyncio.to_thread(pack_code, code_dir)
            self._code[code_dir] = (hashlib.sha256(archive).hexdigest(), archive)
        return self._code[code_dir]

    async def _send_code(self, actor: Any, code_hash: str, archive: bytes, deadline: float) -> None:
        """Hand the archive to an actor whose node lacks it, as arguments of calls, in parts each
        small enough to travel inside its call's message. Not `ray.put`: an object put there is
        this process's to recover when the node holding it dies, and Ray, finding the store of a
        dead head's node gone, ends the whole process (it did, in a test, whenever the head's node
        was declared dead before the head watch let go of Ray)."""
        parts = range(0, max(len(archive), 1), _CODE_PART)
        for first in range(0, len(parts), _PARTS_IN_FLIGHT):
            calls = [
                actor.take_code.remote(code_hash, offset, archive[offset : offset + _CODE_PART], len(archive))
                for offset in parts[first : first + _PARTS_IN_FLIGHT]
            ]
            await self._unless_head_lost(asyncio.gather(*calls), deadline - time.monotonic())

    async def _watch(self, worker: RayWorker) -> tuple[int, str]:
        """Wait for the worker's end, or for the head's loss, which takes every worker with it."""
        ended = asyncio.ensure_future(self._watch_actor(worker))
        lost = asyncio.ensure_future(self._head_lost.wait())
        try:
            await asyncio.wait({ended, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not ended.done():
                ended.cancel()
        if ended.done() and not ended.cancelled():
            return ended.result()
        worker.lost_reason = self._lost_reason
        return -1, worker.lost_reason

    async def _watch_actor(self, worker: RayWorker) -> tuple[int, str]:
        """Wait for the actor's end. An actor that cannot be reached is asked again until Ray
        either reaches it or declares it dead; dead with its node, the session says so."""
        exceptions = self._ray.exceptions
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            try:
                code, reason = await worker.actor.wait.remote()
            except exceptions.ActorUnavailableError as error:
                # Its node stopped answering; Ray declares the actor dead once it gives the node up.
                deadline = deadline or loop.time() + _UNAVAILABLE_LIMIT
                if loop.time() < deadline:
                    await asyncio.sleep(0.5)
                    continue
                worker.lost_reason = f"its Ray node stopped answering for {_UNAVAILABLE_LIMIT:g}s: {error}"
            except exceptions.RayActorError as error:
                worker.lost_reason = await self._loss(worker, error)
            except Exception as error:  # Ray raises a bare Exception when it cannot even send the call
                logger.warning("Lost the actor of worker %s", worker.worker_id, exc_info=True)
                worker.lost_reason = await self._loss(worker, error)
            else:
                if int(code) != 0 and not worker.stopping and await self._head_gone():
                    worker.lost_with_head = True
                    worker.lost_reason = self._head_loss("it stopped answering")
                    return -1, worker.lost_reason
                worker.lost_reason = str(reason)
                return int(code), str(reason)
            return -1, worker.lost_reason

    async def _loss(self, worker: RayWorker, error: Exception) -> str:
        """Why an actor Ray declared dead is gone: its node died, the head is out of reach, or
        something else ended it (Ray's first line says what). The head is asked first: an actor
        dies with the head's node before the head watch notices, and the session must say so."""
        if await self._head_gone():
            worker.lost_with_head = True
            return self._head_loss("it stopped answering")
        try:
            nodes = await asyncio.to_thread(list_nodes, self._ray, _HEAD_TIMEOUT)
        except Exception as unreachable:  # whatever Ray raises when its head does not answer
            worker.lost_with_head = True
            return self._head_loss(f"it stopped answering: {unreachable}")
        if not any(node.get("NodeID") == worker.node_id and node.get("Alive") for node in nodes):
            return NODE_DIED
        return f"its Ray actor died: {str(error).splitlines()[0]}"

    async def _head_gone(self) -> bool:
        """Whether the head is lost, asked twice `_HEAD_SECOND_LOOK` apart when it answers at first:
        called when a worker ended abnormally, which may be the first sign of its head going."""
        head = self._head
        if head is None:
            return False
        for look in range(2):
            if self._head_lost.is_set() or not await asyncio.to_thread(head.answers):
                return True
            if look == 0:
                await asyncio.sleep(_HEAD_SECOND_LOOK)
        return False

    async def stop(self, handle: WorkerHandle, grace: float = 10.0) -> None:
        """Stop the worker on its node, bring its log back, then end its actor; idempotent."""
        if not isinstance(handle, RayWorker):
            raise TypeError(f"the Ray backend did not start {handle!r}")
        handle.stopping = True
        if handle.lost_with_head or not self._reaches(handle):
            # Lost with the head: Ray cannot reach its actor. It ends with its node (a node cut off
            # from its head stops within a minute), and its worker with it.
            if handle._exit is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(handle._exit), _STOP_SLACK)
            return
        if handle.alive():
            exceptions = self._ray.exceptions
            try:
                stopping = handle.actor.stop.remote(grace)
                log: bytes = await self._unless_head_lost(stopping, grace + _STOP_SLACK)
                await asyncio.to_thread(_append, handle.log_path, log)
            except (asyncio.TimeoutError, HeadUnreachable, exceptions.RayError) as error:
                logger.warning("Worker %s did not stop cleanly on its node: %s", handle.worker_id, error)
            except Exception:  # Ray raises a bare Exception when it cannot even send the call
                logger.warning("Worker %s could not be reached to stop", handle.worker_id, exc_info=True)
        await self._kill(handle.actor)
        if handle._exit is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(handle._exit), _STOP_SLACK)

    async def _unless_head_lost(self, call: Any, timeout: float) -> Any:
        """The Ray call's result, within `timeout`; `HeadUnreachable` as soon as the head is lost
        (Ray, shut down then, never answers a call made before)."""
        answer = asyncio.ensure_future(call)
        lost = asyncio.ensure_future(self._head_lost.wait())
        try:
            await asyncio.wait({answer, lost}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not answer.done():
                answer.cancel()
        if answer.done() and not answer.cancelled():
            return answer.result()
        if lost.done() and not lost.cancelled():
            self._check_head()
        raise asyncio.TimeoutError

    def _reaches(self, handle: RayWorker) -> bool:
        """Whether the handle's actor is of this connection to Ray, and the head answers."""
        return handle.connection == self._connection and self.cluster_status().reachable

    async def _kill(self, actor: Any) -> None:
        """End the actor. Ray asks the head to, and waits up to a minute for one that is gone: the
        kill is asked in a thread (`_ask`), and not at all once the head is lost (the actor ends
        with its node then)."""
        if self.cluster_status().reachable:
            with contextlib.suppress(Exception):  # HeadUnreachable, or whatever Ray raises
                await self._ask(
                    functools.partial(self._ray.kill, actor, no_restart=True), _HEAD_CHANGE_TIMEOUT
                )

    def _kill_late(self, actor: Any) -> None:
        """Kill an actor whose creation was given up on (`_ask`) but happened after all."""
        killing = asyncio.ensure_future(self._kill(actor))
        self._late_kills.add(killing)  # held until done: the loop keeps only a weak reference
        killing.add_done_callback(self._late_kills.discard)

    async def unreachable_reason(self, handle: WorkerHandle) -> str | None:
        """The head's loss, when a worker stops answering because its head no longer does (before
        the head watch, or the worker's own watcher, has noticed)."""
        if self._head is None or await asyncio.to_thread(self._head.answers):
            return None
        return self._head_loss("it stopped answering")

    def exit_reason(self, handle: WorkerHandle, code: int) -> str:
        """Why the worker ended: its node's words, or that the node died."""
        if isinstance(handle, RayWorker) and handle.lost_reason:
            return handle.lost_reason
        return f"worker exited with code {code}"

    def close(self) -> None:
        """Leave the cluster if this backend joined it (a `local` Ray is then stopped): actors
        left, if any, end with it. A process already connected to Ray stays connected."""
        if self._head is not None:
            self._head.close()
        # A call still waiting ends with Ray's own deadline; this does not wait for it.
        self._head_calls.shutdown(wait=False, cancel_futures=True)
        if self._joined:
            with contextlib.suppress(Exception):
                self._ray.shutdown()


def _given_up(done: asyncio.Future[_T], late: Callable[[_T], None] | None) -> None:
    """The end of a question given up on: its answer, if one came, goes to `late`; its error is
    taken here (else the future, collected, logs it as never retrieved)."""
    if not done.cancelled() and done.exception() is None and late is not None:
        late(done.result())


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as log:
        log.write(data)


__all__ = ["NODE_DIED", "HeadUnreachable", "RayBackend", "RayConfig", "RayWorker", "connect"]
