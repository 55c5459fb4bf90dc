"""The runtime lifecycle: versions created and updated from requests, built in the background,
and resolved to a ready worker target for each invocation."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from open_agentcore.artifacts import (
    ArtifactError,
    ArtifactStore,
    BuildFailed,
    EnvironmentBuilder,
    InterpreterUnavailable,
    unpack,
)
from open_agentcore.artifacts.interpreters import server_version
from open_agentcore.auth import IssuerUnreachable, JwtAuthorizer
from open_agentcore.sessions import SessionManager, SessionTarget
from open_agentcore.store import DEFAULT_ENDPOINT, ReadCache, RuntimeRecord, Store, VersionRecord

from .validation import InvalidRequest, check_configuration, check_name, check_tags, jwt_authorizer_of

logger = logging.getLogger("open_agentcore.runtimes")


class RuntimeNotReady(Exception):
    """The runtime (or the endpoint asked for) has no version that finished building."""


@dataclass(frozen=True)
class RuntimePaths:
    """Where the service keeps unpacked code and build logs."""

    code_root: Path
    build_logs: Path
    sdk_python: Path


@dataclass(frozen=True)
class Route:
    """Where an invocation goes: its runtime, the worker target of the endpoint's live version,
    and that version's configuration snapshot."""

    runtime: RuntimeRecord
    target: SessionTarget
    config: dict[str, Any]


@dataclass(frozen=True)
class Prepared:
    """A version made runnable on this server: its target, what its status reason should say
    while it serves, and the work this server did for it (fetch, unpack, build), in order."""

    target: SessionTarget
    note: str | None
    work: tuple[str, ...]


# Invocations resolve runtime → endpoint → version from memory for this long. This server's own
# writes drop the cached routes at once; the bound is for other replicas sharing the store.
ROUTE_TTL = 1.0


def runtime_id_from(reference: str) -> str:
    """The runtime id from an ARN (`...:runtime/<id>`) or an id given as is."""
    return reference.rsplit(":runtime/", 1)[1].split("/", 1)[0] if ":runtime/" in reference else reference


class RuntimeService:
    """Creates, updates and deletes runtimes; builds their versions; routes invocations to them."""

    def __init__(
        self,
        store: Store,
        artifacts: ArtifactStore,
        builder: EnvironmentBuilder,
        sessions: SessionManager,
        paths: RuntimePaths,
        region: str,
        account_id: str,
        min_lifecycle_seconds: int = 60,
        authorizer: JwtAuthorizer | None = None,
        allow_host_python: bool = False,
        on_build: Callable[[str, bool, float], None] | None = None,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.builder = builder
        self.sessions = sessions
        self.paths = paths
        self.region = region
        self.account_id = account_id
        self.min_lifecycle_seconds = min_lifecycle_seconds
        self.authorizer = authorizer or JwtAuthorizer()
        # A version asking for a Python this host lacks runs on the server's own instead of failing.
        self.allow_host_python = allow_host_python
        self._targets: dict[tuple[str, int], SessionTarget] = {}
        self._preparing: dict[tuple[str, int], threading.Lock] = {}
        self._preparing_lock = threading.Lock()
        self._routes: ReadCache[tuple[str, str], Route] = ReadCache(ROUTE_TTL)
        self._builds: set[asyncio.Task[None]] = set()
        # Told (runtime id, succeeded, seconds) when a build ends: the server's metrics.
        self._on_build = on_build

    # Control plane ---------------------------------------------------------------------------

    async def create(self, request: dict[str, Any]) -> tuple[RuntimeRecord, VersionRecord]:
        name = check_name(request.get("agentRuntimeName"))
        config = check_configuration(request, self.min_lifecycle_seconds)
        tags = check_tags(request.get("tags") or {})
        await self._check_issuer(config)
        await self._claim_artifact(config)
        runtime, version = await asyncio.to_thread(
            self.store.create_runtime,
            name,
            self.region,
            self.account_id,
            config,
            request.get("description", ""),
            tags=tags,
        )
        self._start_build(runtime, version)
        return runtime, version

    async def update(self, runtime_id: str, request: dict[str, Any]) -> tuple[RuntimeRecord, VersionRecord]:
        config = check_configuration(request, self.min_lifecycle_seconds)
        await self._check_issuer(config)
        await self._claim_artifact(config)
        if "description" not in config:
            # An update that says nothing of the description keeps the one the runtime had.
            latest = await asyncio.to_thread(self.store.get_version, runtime_id)
            if "description" in latest.config:
                config["description"] = latest.config["description"]
        version = await asyncio.to_thread(
            self.store.add_version, runtime_id, config, config.get("description")
        )
        self.forget_routes(runtime_id)
        runtime = await asyncio.to_thread(self.store.get_runtime, runtime_id)
        self._start_build(runtime, version)
        return runtime, version

    async def delete(self, runtime_id: str) -> RuntimeRecord:
        record = await asyncio.to_thread(self.store.delete_runtime, runtime_id)
        self.forget_routes(runtime_id)
        await self.sessions.stop_runtime(runtime_id)
        for key in [k for k in self._targets if k[0] == runtime_id]:
            del self._targets[key]
        with self._preparing_lock:
            for key in [k for k in self._preparing if k[0] == runtime_id]:
                del self._preparing[key]
        return record

    async def _check_issuer(self, config: dict[str, Any]) -> None:
        """A JWT authorizer's issuer must answer now, or no token could ever be checked."""
        jwt = jwt_authorizer_of(config)
        if jwt is None:
            return
        field = "authorizerConfiguration.customJWTAuthorizer.discoveryUrl"
        try:
            await self.authorizer.check_issuer(jwt["discoveryUrl"])
        except IssuerUnreachable as error:
            raise InvalidRequest(field, f"the discovery URL cannot be used: {error}") from None

    async def _claim_artifact(self, config: dict[str, Any]) -> None:
        """Keep the artifact a new version names from being swept from the shared store."""
        code = config["agentRuntimeArtifact"].get("codeConfiguration")
        if code is not None:
            await asyncio.to_thread(self.artifacts.claim, code["code"]["s3"]["prefix"])

    def build_log(self, runtime_id: str, version: int) -> Path:
        return self.paths.build_logs / runtime_id / f"{version}.log"

    # Builds ----------------------------------------------------------------------------------

    async def resume_builds(self) -> int:
        """Build again every version a previous server left CREATING or UPDATING (it stopped
        mid-build); returns how many. A resumed build that fails says the restart came first."""
        unfinished = await asyncio.to_thread(self.store.unfinished_builds)
        for runtime, version in unfinished:
            logger.warning(
                "Version %s of %s was being built when the server stopped: building it again",
                version.version, runtime.id,
            )  # fmt: skip
            self._start_build(runtime, version, resumed=True)
        return len(unfinished)

    def _start_build(self, runtime: RuntimeRecord, version: VersionRecord, resumed: bool = False) -> None:
        task = asyncio.get_running_loop().create_task(self._build(runtime, version, resumed))
        self._builds.add(task)
        task.add_done_callback(self._builds.discard)

    async def _build(self, runtime: RuntimeRecord, version: VersionRecord, resumed: bool = False) -> None:
        failure: str | None = None
        note: str | None = None
        began = time.monotonic()
        try:
            prepared = await asyncio.to_thread(self._prepare_noting, runtime, version)
            note = prepared.note
            self._targets[(runtime.id, version.version)] = prepared.target
        except BuildFailed as error:
            failure = f"the environment build failed: {error.reason}"
        except ArtifactError as error:
            failure = str(error)
        except Exception as error:  # a build is a boundary: record the failure, keep the server up
            logger.exception("Build of %s version %s failed", runtime.id, version.version)
            failure = f"internal error while building: {type(error).__name__}: {error}"
        if self._on_build is not None:
            self._on_build(runtime.id, failure is None, time.monotonic() - began)
        if failure is not None and resumed:
            failure = (
                f"the server restarted in the middle of this build, and building again failed: {failure}"
            )
        try:
            await asyncio.to_thread(self.store.finish_version, runtime.id, version.version, failure, note)
            self.forget_routes(runtime.id)
        except Exception:
            logger.warning("Runtime %s disappeared while building", runtime.id, exc_info=True)
            return
        if failure is None:
            await self.sessions.prepare(self._targets[(runtime.id, version.version)])

    def _prepare_on_first_use(self, runtime: RuntimeRecord, version: VersionRecord) -> SessionTarget:
        """Make a READY version this server has no target for runnable here (blocking; runs in a
        thread): after a restart everything is cached, but on a replica that never built it this
        fetches the artifact from the shared store, unpacks it and builds its environment. The next
        session of the version to start says so in its log."""
        key = (runtime.id, version.version)
        with self._preparing_lock:
            lock = self._preparing.setdefault(key, threading.Lock())
        with lock:  # one preparation per version; concurrent first calls wait for it and share it
            if (target := self._targets.get(key)) is not None:
                return target
            began = time.monotonic()
            prepared = self._prepare_noting(runtime, version)
            self._targets[key] = prepared.target
        if prepared.work:
            line = (
                f"version {version.version} of {runtime.id} was new to this server: it "
                f"{', '.join(prepared.work)} on first use, in {time.monotonic() - began:.1f} s"
            )
            logger.info("%s", line)
            self.sessions.note_next_start(key, line)
        return prepared.target

    def _interpreter(self, runtime_name: str) -> tuple[Path | None, str | None]:
        """The Python to build on (None: the server's own), and a note when it is not the one asked for."""
        try:
            interpreter = self.builder.interpreter(runtime_name)
        except InterpreterUnavailable as error:
            if not self.allow_host_python or error.version is None:
                raise
            note = (
                f"runs on the server's Python {server_version()}: {runtime_name} asks for Python "
                f"{error.version}, which this server cannot find (it allows that: --allow-host-python)"
            )
            logger.warning("%s", note)
            return None, note
        return (None if interpreter.is_server else interpreter.path), None

    def _prepare_noting(self, runtime: RuntimeRecord, version: VersionRecord) -> Prepared:
        """Unpack and build one version (blocking; runs in a thread), fetching its artifact from the
        shared store when this server lacks it."""
        artifact = version.config["agentRuntimeArtifact"]
        log_path = self.build_log(runtime.id, version.version)

        if "containerConfiguration" in artifact:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.write_text("container images need a container backend, and none is configured\n")
            raise ArtifactError(
                "containerConfiguration needs a container backend (Docker/Podman), which this server "
                "does not have; deploy code instead (agentcore deploy)"
            )
        code = artifact["codeConfiguration"]
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            python, note = self._interpreter(str(code.get("runtime") or f"PYTHON_3_{sys.version_info.minor}"))
        except InterpreterUnavailable as error:
            log_path.write_text(f"{error}\n")
            raise
        key = code["code"]["s3"]["prefix"]
        work: list[str] = []
        if not self.artifacts.has_local(key):
            work.append("fetched its artifact from the shared store")
        code_root = self.paths.code_root / key.removesuffix(".zip")
        if not code_root.exists():
            work.append("unpacked its code")
        code_dir = unpack(self.artifacts.path(key), code_root)
        entrypoint = code["entryPoint"][0]
        resolved = (code_dir / entrypoint).resolve()
        if not resolved.is_relative_to(code_dir.resolve()) or not resolved.is_file():
            raise ArtifactError(f"entryPoint {entrypoint!r} is not a file in the uploaded code")
        built = self.builder.build(code_dir, log_path, python)
        if built.fresh:
            work.append("built its environment")
        if note is not None:
            with log_path.open("a") as log:
                log.write(note + "\n")
        lifecycle = version.config["lifecycleConfiguration"]
        target = SessionTarget(
            runtime_id=runtime.id,
            runtime_arn=runtime.arn,
            version=version.version,
            python=built.python,
            code_dir=code_dir,
            entrypoint=entrypoint,
            environment=dict(version.config.get("environmentVariables", {})),
            read_only_paths=tuple(p for p in (built.root,) if p is not None),
            idle_timeout=float(lifecycle["idleRuntimeSessionTimeout"]),
            max_lifetime=float(lifecycle["maxLifetime"]),
        )
        return Prepared(target, note, tuple(work))

    async def wait_for_builds(self) -> None:
        """Wait until every build started so far has finished (tests, shutdown)."""
        while self._builds:
            await asyncio.gather(*self._builds, return_exceptions=True)

    # Data plane ------------------------------------------------------------------------------

    async def route(self, reference: str, qualifier: str | None) -> Route:
        """Where an invocation of `qualifier` (an endpoint, default DEFAULT) goes."""
        runtime_id = runtime_id_from(reference)
        endpoint_name = qualifier or DEFAULT_ENDPOINT
        return await self._routes.get(
            (runtime_id, endpoint_name), lambda: self._resolve(runtime_id, endpoint_name)
        )

    def _resolve(self, runtime_id: str, endpoint_name: str) -> Route:
        """Look the route up in the store (blocking; runs in a thread)."""
        # One transaction: a new session arriving after ROUTE_TTL waits for this read.
        runtime, endpoint, version = self.store.get_route(runtime_id, endpoint_name)
        if version is None:
            raise RuntimeNotReady(
                f"agent runtime {runtime_id} has no ready version on endpoint {endpoint.name} yet "
                f"(runtime status {runtime.status.value}"
                + (f": {runtime.failure_reason}" if runtime.failure_reason else "")
                + ")"
            )
        target = self._targets.get((runtime_id, version.version))
        if target is None:
            # Built before this server started, or by another replica sharing the store.
            try:
                target = self._prepare_on_first_use(runtime, version)
            except ArtifactError as error:
                # The caller's request is fine; the agent cannot start here (RuntimeClientError).
                reason = error.reason if isinstance(error, BuildFailed) else str(error)
                raise RuntimeNotReady(
                    f"version {version.version} of agent runtime {runtime_id} is ready, but this server "
                    f"could not prepare it: {reason}"
                ) from None
        return Route(runtime, target, version.config)

    def forget_routes(self, runtime_id: str) -> None:
        """Drop cached routes of a runtime whose endpoints, versions or status just changed."""
        self._routes.forget(lambda key: key[0] == runtime_id)

    async def target(self, reference: str, qualifier: str | None) -> tuple[RuntimeRecord, SessionTarget]:
        """The runtime and the ready version an invocation of `qualifier` (an endpoint) goes to."""
        route = await self.route(reference, qualifier)
        return route.runtime, route.target


__all__ = ["ROUTE_TTL", "Route", "RuntimeNotReady", "RuntimePaths", "RuntimeService", "runtime_id_from"]
