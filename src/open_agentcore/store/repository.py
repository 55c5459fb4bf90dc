"""The `Store`: every read and write of runtimes, versions and endpoints, one transaction each."""

from __future__ import annotations

import base64
import binascii
import datetime
import secrets
import string
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .engine import make_engine
from .errors import (
    EndpointNameConflict,
    EndpointNotFound,
    InvalidPaginationToken,
    RuntimeNameConflict,
    RuntimeNotFound,
    VersionNotFound,
)
from .records import (
    DEFAULT_ENDPOINT,
    EndpointRecord,
    EndpointStatus,
    Page,
    RuntimeRecord,
    RuntimeStatus,
    VersionRecord,
)
from .tables import ClientToken, Endpoint, Runtime, RuntimeVersion

_ID_ALPHABET = string.ascii_letters + string.digits


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _aware(moment: datetime.datetime) -> datetime.datetime:
    # SQLite hands datetimes back without their zone; they were written in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def _runtime(row: Runtime) -> RuntimeRecord:
    return RuntimeRecord(
        row.id, row.name, row.arn, RuntimeStatus(row.status), row.latest_version, row.failure_reason,
        row.description, _aware(row.created_at), _aware(row.updated_at),
    )  # fmt: skip


def _version(row: RuntimeVersion) -> VersionRecord:
    return VersionRecord(
        row.runtime_id, row.version, dict(row.config), RuntimeStatus(row.status), row.failure_reason,
        _aware(row.created_at),
    )  # fmt: skip


def _endpoint(row: Endpoint) -> EndpointRecord:
    return EndpointRecord(
        row.runtime_id, row.name, row.arn, row.target_version, row.live_version, EndpointStatus(row.status),
        row.description, _aware(row.created_at), _aware(row.updated_at),
    )  # fmt: skip


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if not text.startswith("o:") or not text[2:].isdigit():
            raise ValueError(text)
        return int(text[2:])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidPaginationToken("nextToken is not one this server issued") from None


class Store:
    """The runtime server's persistent state (SQLite by default, PostgreSQL by URL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> Store:
        return cls(make_engine(url))

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    # Runtimes ------------------------------------------------------------------------------

    def create_runtime(
        self, name: str, region: str, account: str, config: dict[str, Any], description: str = ""
    ) -> tuple[RuntimeRecord, VersionRecord]:
        """A new runtime with version 1 (CREATING) and its DEFAULT endpoint, in one transaction."""
        runtime_id = f"{name}-{''.join(secrets.choice(_ID_ALPHABET) for _ in range(10))}"
        arn = f"arn:aws:bedrock-agentcore:{region}:{account}:runtime/{runtime_id}"
        now = _now()
        try:
            with self._session() as session:
                runtime = Runtime(
                    id=runtime_id, name=name, arn=arn, status=RuntimeStatus.CREATING.value, latest_version=1,
                    failure_reason=None, description=description, created_at=now, updated_at=now,
                )  # fmt: skip
                version = RuntimeVersion(
                    runtime_id=runtime_id, version=1, config=config, status=RuntimeStatus.CREATING.value,
                    failure_reason=None, created_at=now,
                )  # fmt: skip
                session.add(runtime)
                session.flush()
                session.add(version)
                session.add(self._new_endpoint(runtime, DEFAULT_ENDPOINT, 1, "", now))
        except IntegrityError:
            raise RuntimeNameConflict(f"an agent runtime named {name!r} already exists") from None
        return _runtime(runtime), _version(version)

    @staticmethod
    def _new_endpoint(
        runtime: Runtime, name: str, version: int, description: str, now: datetime.datetime
    ) -> Endpoint:
        return Endpoint(
            runtime_id=runtime.id, name=name, arn=f"{runtime.arn}/runtime-endpoint/{name}",
            target_version=version, live_version=None, status=EndpointStatus.CREATING.value,
            description=description, created_at=now, updated_at=now,
        )  # fmt: skip

    def get_runtime(self, runtime_id: str) -> RuntimeRecord:
        with self._session() as session:
            return _runtime(self._runtime_row(session, runtime_id))

    @staticmethod
    def _runtime_row(session: Session, runtime_id: str) -> Runtime:
        row = session.get(Runtime, runtime_id)
        if row is None or row.status == RuntimeStatus.DELETING.value:
            raise RuntimeNotFound(f"no agent runtime with id {runtime_id!r}")
        return row

    def list_runtimes(self, max_results: int = 100, next_token: str | None = None) -> Page:
        offset = _decode_token(next_token)
        with self._session() as session:
            query = select(Runtime).where(Runtime.status != RuntimeStatus.DELETING.value)
            rows = session.scalars(
                query.order_by(Runtime.created_at, Runtime.id).offset(offset).limit(max_results + 1)
            )
            records = [_runtime(row) for row in rows]
        more = len(records) > max_results
        return Page(records[:max_results], _encode_token(offset + max_results) if more else None)

    def delete_runtime(self, runtime_id: str) -> RuntimeRecord:
        """Remove a runtime with its versions and endpoints; returns it as it was."""
        with self._session() as session:
            row = self._runtime_row(session, runtime_id)
            record = _runtime(row)
            session.delete(row)
        return record

    # Versions ------------------------------------------------------------------------------

    def add_version(self, runtime_id: str, config: dict[str, Any]) -> VersionRecord:
        """A new immutable version (UPDATING); the runtime points at it as its latest."""
        now = _now()
        with self._session() as session:
            runtime = self._runtime_row(session, runtime_id)
            number = (session.scalar(select(func.max(RuntimeVersion.version)).where(
                RuntimeVersion.runtime_id == runtime_id)) or 0) + 1  # fmt: skip
            version = RuntimeVersion(
                runtime_id=runtime_id, version=number, config=config, status=RuntimeStatus.UPDATING.value,
                failure_reason=None, created_at=now,
            )  # fmt: skip
            session.add(version)
            runtime.latest_version = number
            runtime.status = RuntimeStatus.UPDATING.value
            runtime.updated_at = now
        return _version(version)

    def get_version(self, runtime_id: str, version: int | None = None) -> VersionRecord:
        with self._session() as session:
            runtime = self._runtime_row(session, runtime_id)
            row = session.get(RuntimeVersion, (runtime_id, version or runtime.latest_version))
            if row is None:
                raise VersionNotFound(f"agent runtime {runtime_id!r} has no version {version}")
            return _version(row)

    def list_versions(self, runtime_id: str, max_results: int = 100, next_token: str | None = None) -> Page:
        offset = _decode_token(next_token)
        with self._session() as session:
            self._runtime_row(session, runtime_id)
            query = select(RuntimeVersion).where(RuntimeVersion.runtime_id == runtime_id)
            rows = session.scalars(
                query.order_by(RuntimeVersion.version.desc()).offset(offset).limit(max_results + 1)
            )
            records = [_version(row) for row in rows]
        more = len(records) > max_results
        return Page(records[:max_results], _encode_token(offset + max_results) if more else None)

    def finish_version(self, runtime_id: str, version: int, failure: str | None = None) -> None:
        """Record a build's outcome: READY (DEFAULT moves to it) or CREATE_/UPDATE_FAILED."""
        now = _now()
        with self._session() as session:
            runtime = self._runtime_row(session, runtime_id)
            row = session.get(RuntimeVersion, (runtime_id, version))
            if row is None:
                raise VersionNotFound(f"agent runtime {runtime_id!r} has no version {version}")
            first = version == 1
            if failure is None:
                row.status = RuntimeStatus.READY.value
            else:
                row.status = (RuntimeStatus.CREATE_FAILED if first else RuntimeStatus.UPDATE_FAILED).value
            row.failure_reason = failure
            if runtime.latest_version == version:
                runtime.status, runtime.failure_reason, runtime.updated_at = row.status, failure, now
            for endpoint in session.scalars(select(Endpoint).where(Endpoint.runtime_id == runtime_id)):
                if endpoint.target_version == version or (
                    endpoint.name == DEFAULT_ENDPOINT and failure is None
                ):
                    if failure is None:
                        endpoint.target_version = version
                        endpoint.live_version = version
                        endpoint.status = EndpointStatus.READY.value
                    elif endpoint.live_version is None:
                        endpoint.status = EndpointStatus.CREATE_FAILED.value
                    endpoint.updated_at = now

    # Endpoints -----------------------------------------------------------------------------

    def create_endpoint(
        self, runtime_id: str, name: str, version: int | None, description: str = ""
    ) -> EndpointRecord:
        now = _now()
        try:
            with self._session() as session:
                runtime = self._runtime_row(session, runtime_id)
                target = version or runtime.latest_version
                pinned = session.get(RuntimeVersion, (runtime_id, target))
                if pinned is None:
                    raise VersionNotFound(f"agent runtime {runtime_id!r} has no version {target}")
                endpoint = self._new_endpoint(runtime, name, target, description, now)
                if pinned.status == RuntimeStatus.READY.value:
                    endpoint.live_version, endpoint.status = target, EndpointStatus.READY.value
                session.add(endpoint)
        except IntegrityError:
            raise EndpointNameConflict(
                f"agent runtime {runtime_id!r} already has an endpoint {name!r}"
            ) from None
        return _endpoint(endpoint)

    def get_endpoint(self, runtime_id: str, name: str) -> EndpointRecord:
        with self._session() as session:
            return _endpoint(self._endpoint_row(session, runtime_id, name))

    def _endpoint_row(self, session: Session, runtime_id: str, name: str) -> Endpoint:
        self._runtime_row(session, runtime_id)
        row = session.scalar(select(Endpoint).where(Endpoint.runtime_id == runtime_id, Endpoint.name == name))
        if row is None:
            raise EndpointNotFound(f"agent runtime {runtime_id!r} has no endpoint {name!r}")
        return row

    def list_endpoints(self, runtime_id: str, max_results: int = 100, next_token: str | None = None) -> Page:
        offset = _decode_token(next_token)
        with self._session() as session:
            self._runtime_row(session, runtime_id)
            query = select(Endpoint).where(Endpoint.runtime_id == runtime_id).order_by(Endpoint.id)
            records = [_endpoint(row) for row in session.scalars(query.offset(offset).limit(max_results + 1))]
        more = len(records) > max_results
        return Page(records[:max_results], _encode_token(offset + max_results) if more else None)

    def update_endpoint(
        self, runtime_id: str, name: str, version: int | None, description: str | None = None
    ) -> EndpointRecord:
        with self._session() as session:
            row = self._endpoint_row(session, runtime_id, name)
            if version is not None:
                pinned = session.get(RuntimeVersion, (runtime_id, version))
                if pinned is None:
                    raise VersionNotFound(f"agent runtime {runtime_id!r} has no version {version}")
                row.target_version = version
                if pinned.status == RuntimeStatus.READY.value:
                    row.live_version, row.status = version, EndpointStatus.READY.value
            if description is not None:
                row.description = description
            row.updated_at = _now()
            return _endpoint(row)

    def delete_endpoint(self, runtime_id: str, name: str) -> EndpointRecord:
        with self._session() as session:
            row = self._endpoint_row(session, runtime_id, name)
            record = _endpoint(row)
            session.delete(row)
        return record

    # Idempotency ---------------------------------------------------------------------------

    def remember_token(self, operation: str, token: str, resource_id: str) -> None:
        with self._session() as session:
            session.merge(ClientToken(operation=operation, token=token, resource_id=resource_id))

    def recall_token(self, operation: str, token: str) -> str | None:
        with self._session() as session:
            row = session.get(ClientToken, (operation, token))
            return row.resource_id if row is not None else None


__all__ = ["Store"]
