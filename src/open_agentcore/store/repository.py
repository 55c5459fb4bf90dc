"""The `Store`: runtimes and their immutable versions, one transaction per call.

Endpoints, sessions, access keys and resource policies are in their own modules; `Store` gathers
them into one object the server holds for its whole life and calls from any thread.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .access import AccessRepository
from .endpoints import EndpointRepository, follow_build, new_endpoint, retarget_default
from .engine import open_engine
from .errors import RuntimeNameConflict
from .records import DEFAULT_ENDPOINT, Page, RuntimeRecord, RuntimeStatus, VersionRecord
from .session_claims import SessionClaimRepository
from .tables import Runtime, RuntimeVersion
from .tags import TagRepository, put_tags
from .traces import TraceRepository
from .transactions import fingerprint, utcnow

CREATE_RUNTIME = "CreateAgentRuntime"
UPDATE_RUNTIME = "UpdateAgentRuntime"

_ID_ALPHABET = string.ascii_letters + string.digits
_FAILED = (RuntimeStatus.CREATE_FAILED, RuntimeStatus.UPDATE_FAILED)
_BUILD_ENDED = (RuntimeStatus.READY, *_FAILED)


class Store(EndpointRepository, SessionClaimRepository, AccessRepository, TagRepository, TraceRepository):
    """The runtime server's persistent state: SQLite by default, PostgreSQL shared by replicas.

    Thread-safe; every method is one transaction and returns frozen records, never live rows.
    Failures are the `StoreError` subclasses of `store.errors`. Deleting a runtime removes it at
    once with its versions, endpoints, sessions and resource policy (no soft delete): the name is
    free again immediately, and the record returned says DELETING, as the API reports it.
    `engine` is exposed for diagnostics and tests; callers need nothing from it.
    """

    @classmethod
    def open(cls, url: str) -> Store:
        """Open (creating or migrating) the database at `url`; see `open_store`."""
        return cls(open_engine(url))

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    # Runtimes ----------------------------------------------------------------------------------

    def create_runtime(
        self,
        name: str,
        region: str,
        account: str,
        config: dict[str, Any],
        description: str = "",
        client_token: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> tuple[RuntimeRecord, VersionRecord]:
        """A new runtime `<name>-<10 alphanumerics>` with version 1 (CREATING) and its DEFAULT endpoint.

        Raises `RuntimeNameConflict`, `ClientTokenConflict`, `TooManyTags`. A retry with the same
        `client_token` and parameters returns what the first request created.
        """
        # Tags join the digest only when given, so tokens stored before tags were kept still replay.
        digest = fingerprint(name, region, account, config, description, *((dict(tags),) if tags else ()))
        try:
            with self._write() as session:
                if client_token and (replay := self._created_by(session, client_token, digest)):
                    return replay
                if session.scalar(select(Runtime.id).where(Runtime.name == name)) is not None:
                    raise RuntimeNameConflict(f"an agent runtime named {name!r} already exists")
                runtime_id = f"{name}-{''.join(secrets.choice(_ID_ALPHABET) for _ in range(10))}"
                now = utcnow()
                runtime = Runtime(
                    id=runtime_id,
                    name=name,
                    arn=f"arn:aws:bedrock-agentcore:{region}:{account}:runtime/{runtime_id}",
                    status=RuntimeStatus.CREATING,
                    latest_version=1,
                    description=description,
                    created_at=now,
                    updated_at=now,
                )
                version = RuntimeVersion(
                    runtime_id=runtime_id,
                    version=1,
                    config=config,
                    status=RuntimeStatus.CREATING,
                    created_at=now,
                    updated_at=now,
                )
                session.add(runtime)
                session.flush()
                session.add_all([version, new_endpoint(runtime, DEFAULT_ENDPOINT, version, "", now)])
                put_tags(session, runtime_id, tags or {})
                if client_token:
                    self._claim(session, CREATE_RUNTIME, client_token, digest, runtime_id)
                session.flush()
                return runtime.record(version), version.record()
        except IntegrityError:
            # Lost a race with a concurrent create: of the same request (a replay), or of the name.
            if client_token:
                with self._read() as session:
                    if replay := self._created_by(session, client_token, digest):
                        return replay
            raise RuntimeNameConflict(f"an agent runtime named {name!r} already exists") from None

    def _created_by(
        self, session: Session, token: str, digest: str
    ) -> tuple[RuntimeRecord, VersionRecord] | None:
        runtime_id = self._claimed(session, CREATE_RUNTIME, token, digest)
        runtime = session.get(Runtime, runtime_id) if runtime_id else None
        if runtime is None:
            return None
        first = self._version_row(session, runtime.id, 1)
        return runtime.record(self._version_row(session, runtime.id, runtime.latest_version)), first.record()

    def get_runtime(self, runtime_id: str, version: int | None = None) -> RuntimeRecord:
        """A runtime described at `version` (the latest when None).

        Raises `RuntimeNotFound`, `VersionNotFound`.
        """
        with self._read() as session:
            runtime = self._runtime_row(session, runtime_id)
            return runtime.record(self._version_row(session, runtime_id, version or runtime.latest_version))

    def list_runtimes(self, max_results: int = 100, next_token: str | None = None) -> Page[RuntimeRecord]:
        """Runtimes ordered by id, each at its latest version. Raises `InvalidPaginationToken`."""
        after = self._tokens.resume("runtimes", next_token)
        with self._read() as session:
            query = select(Runtime, RuntimeVersion).join(
                RuntimeVersion,
                (RuntimeVersion.runtime_id == Runtime.id)
                & (RuntimeVersion.version == Runtime.latest_version),
            )
            if after is not None:
                query = query.where(Runtime.id > str(after))
            rows = session.execute(query.order_by(Runtime.id).limit(self._limit(max_results) + 1)).all()
            return self._page(
                "runtimes", rows, max_results, lambda row: row[0].id, lambda row: row[0].record(row[1])
            )

    def set_runtime_status(
        self, runtime_id: str, status: RuntimeStatus, failure_reason: str | None = None
    ) -> RuntimeRecord:
        """Set a runtime's own status (its versions' statuses are `set_version_status`'s business)."""
        with self._write() as session:
            runtime = self._runtime_row(session, runtime_id, lock=True)
            runtime.status, runtime.failure_reason, runtime.updated_at = status, failure_reason, utcnow()
            return runtime.record(self._version_row(session, runtime_id, runtime.latest_version))

    def delete_runtime(self, runtime_id: str) -> RuntimeRecord:
        """Remove a runtime with its versions, endpoints, sessions and policy; returns it, status DELETING.

        Stopping the runtime's workers is the caller's job. Raises `RuntimeNotFound`.
        """
        with self._write() as session:
            runtime = self._runtime_row(session, runtime_id, lock=True)
            runtime.status = RuntimeStatus.DELETING
            record = runtime.record(self._version_row(session, runtime_id, runtime.latest_version))
            session.expunge(runtime)
            session.execute(delete(Runtime).where(Runtime.id == runtime_id))  # the rest goes by cascade
            return record

    # Versions ----------------------------------------------------------------------------------

    def add_version(
        self,
        runtime_id: str,
        config: dict[str, Any],
        description: str | None = None,
        client_token: str | None = None,
    ) -> VersionRecord:
        """A new immutable version (UPDATING); the runtime and its DEFAULT endpoint now target it.

        `description`, when given, becomes the runtime's. Raises `RuntimeNotFound`, `ClientTokenConflict`.
        """
        digest = fingerprint(runtime_id, config, description)
        now = utcnow()
        with self._write() as session:
            runtime = self._runtime_row(session, runtime_id, lock=True)
            if client_token and (made := self._claimed(session, UPDATE_RUNTIME, client_token, digest)):
                owner, _, number_text = made.rpartition("/")
                if owner == runtime_id and number_text.isdigit():
                    previous = session.get(RuntimeVersion, (runtime_id, int(number_text)))
                    if previous is not None:
                        return previous.record()
            number = runtime.latest_version + 1
            version = RuntimeVersion(
                runtime_id=runtime_id,
                version=number,
                config=config,
                status=RuntimeStatus.UPDATING,
                created_at=now,
                updated_at=now,
            )
            session.add(version)
            runtime.latest_version, runtime.status, runtime.updated_at = number, RuntimeStatus.UPDATING, now
            runtime.failure_reason = None
            if description is not None:
                runtime.description = description
            retarget_default(session, runtime_id, number, now)
            if client_token:
                self._claim(session, UPDATE_RUNTIME, client_token, digest, f"{runtime_id}/{number}")
            session.flush()
            return version.record()

    def get_version(self, runtime_id: str, version: int | None = None) -> VersionRecord:
        """One version (the latest when None). Raises `RuntimeNotFound`, `VersionNotFound`."""
        with self._read() as session:
            runtime = self._runtime_row(session, runtime_id)
            return self._version_row(session, runtime_id, version or runtime.latest_version).record()

    def list_versions(
        self, runtime_id: str, max_results: int = 100, next_token: str | None = None
    ) -> Page[VersionRecord]:
        """A runtime's versions, newest first. Raises `RuntimeNotFound`, `InvalidPaginationToken`."""
        listing = f"versions/{runtime_id}"
        after = self._tokens.resume(listing, next_token)
        with self._read() as session:
            self._runtime_row(session, runtime_id)
            query = select(RuntimeVersion).where(RuntimeVersion.runtime_id == runtime_id)
            if after is not None:
                query = query.where(RuntimeVersion.version < int(after))
            query = query.order_by(RuntimeVersion.version.desc()).limit(self._limit(max_results) + 1)
            rows = session.scalars(query).all()
            return self._page(listing, rows, max_results, lambda row: row.version, RuntimeVersion.record)

    def unfinished_builds(self) -> list[tuple[RuntimeRecord, VersionRecord]]:
        """Versions still CREATING or UPDATING (with their runtimes, described at that version):
        at start-up, the builds a previous server did not finish."""
        with self._read() as session:
            query = (
                select(Runtime, RuntimeVersion)
                .join(RuntimeVersion, RuntimeVersion.runtime_id == Runtime.id)
                .where(RuntimeVersion.status.in_((RuntimeStatus.CREATING, RuntimeStatus.UPDATING)))
                .where(Runtime.status != RuntimeStatus.DELETING)
                .order_by(Runtime.id, RuntimeVersion.version)
            )
            return [
                (runtime.record(version), version.record()) for runtime, version in session.execute(query)
            ]

    def set_version_status(
        self,
        runtime_id: str,
        version: int,
        status: RuntimeStatus,
        failure_reason: str | None = None,
        *,
        artifact_key: str | None = None,
        environment_hash: str | None = None,
    ) -> VersionRecord:
        """Record a version's build progress; its configuration never changes.

        The runtime's status follows its latest version's. When a build ends (READY or *_FAILED) the
        endpoints follow (see `endpoints.follow_build`). `artifact_key` and `environment_hash` are set
        when given. Raises `RuntimeNotFound`, `VersionNotFound`, and `ValueError` for DELETING.
        """
        with self._write() as session:
            return self._set_version_status(
                session, runtime_id, version, lambda _: status, failure_reason, artifact_key, environment_hash
            )

    def finish_version(
        self, runtime_id: str, version: int, failure: str | None = None, note: str | None = None
    ) -> VersionRecord:
        """Record a build's outcome: READY, or CREATE_FAILED (a version that was CREATING) / UPDATE_FAILED.

        `note` is kept as the reason of a READY version (the wire's `failureReason`, its only
        status reason): something the caller should know although the version serves.
        """

        def outcome(current: RuntimeStatus) -> RuntimeStatus:
            if failure is None:
                return RuntimeStatus.READY
            return (
                RuntimeStatus.CREATE_FAILED
                if current is RuntimeStatus.CREATING
                else RuntimeStatus.UPDATE_FAILED
            )

        with self._write() as session:
            return self._set_version_status(session, runtime_id, version, outcome, failure, None, None, note)

    def _set_version_status(
        self,
        session: Session,
        runtime_id: str,
        version: int,
        status_from: Callable[[RuntimeStatus], RuntimeStatus],
        failure_reason: str | None,
        artifact_key: str | None,
        environment_hash: str | None,
        note: str | None = None,
    ) -> VersionRecord:
        runtime = self._runtime_row(session, runtime_id, lock=True)
        row = self._version_row(session, runtime_id, version)
        status: RuntimeStatus = status_from(row.status)
        if status is RuntimeStatus.DELETING:
            raise ValueError("a version is never DELETING; delete the runtime")
        now = utcnow()
        row.status, row.updated_at = status, now
        row.failure_reason = failure_reason if status in _FAILED else note
        if artifact_key is not None:
            row.artifact_key = artifact_key
        if environment_hash is not None:
            row.environment_hash = environment_hash
        if version == runtime.latest_version and runtime.status is not RuntimeStatus.DELETING:
            runtime.status, runtime.failure_reason, runtime.updated_at = status, row.failure_reason, now
        if status in _BUILD_ENDED:
            session.flush()
            follow_build(session, row, now)
        return row.record()

    # Idempotency -------------------------------------------------------------------------------

    def remember_token(self, operation: str, token: str, resource_id: str, request_digest: str = "") -> None:
        """Note that (operation, client token) made `resource_id`, for operations without built-in support.

        `create_runtime`, `add_version` and `create_endpoint` take `client_token` themselves, atomically.
        """
        with self._write() as session:
            self._claim(session, operation, token, request_digest, resource_id)

    def recall_token(self, operation: str, token: str, request_digest: str = "") -> str | None:
        """The resource an earlier (operation, client token) made, if any.

        Raises `ClientTokenConflict` when both requests carried a digest and they differ.
        """
        with self._read() as session:
            return self._claimed(session, operation, token, request_digest)


def open_store(url: str) -> Store:
    """Open the store at `sqlite:///<path>` or `postgresql://user:password@host:port/database`.

    Creates the schema in a new database and applies pending migrations to an old one. Raises
    `UnsupportedDatabaseURL`, `DatabaseUnavailable`, `SchemaTooNew`.
    """
    return Store.open(url)


__all__ = ["Store", "open_store"]
