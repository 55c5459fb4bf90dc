"""The database tables, as SQLAlchemy 2 typed ORM models, and how each row becomes a record.

The models always describe the newest schema (see `engine.MIGRATIONS`). Rows never leave the
store: `record()` copies them into the frozen dataclasses of `records.py`.
"""

from __future__ import annotations

import copy
import datetime
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .records import (
    AccessKeyRecord,
    EndpointRecord,
    EndpointStatus,
    ResourcePolicyRecord,
    RuntimeRecord,
    RuntimeStatus,
    SessionRecord,
    SessionState,
    VersionRecord,
)


class UTCDateTime(TypeDecorator[datetime.datetime]):
    """A timestamp stored in UTC and always read back zone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the store only takes zone-aware datetimes")
        return value.astimezone(datetime.timezone.utc)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime.datetime | None:
        if value is None:
            return None
        moment: datetime.datetime = value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=datetime.timezone.utc)
        return moment.astimezone(datetime.timezone.utc)


def _status(enum_type: type[enum.Enum]) -> Enum:
    # A plain string column: adding a status later needs no migration.
    return Enum(enum_type, native_enum=False, create_constraint=False, length=32)


_JSON = JSON(none_as_null=True)


class Base(DeclarativeBase):
    """The declarative base of every store table."""

    type_annotation_map = {datetime.datetime: UTCDateTime, str: String()}


class SchemaMigration(Base):
    """One row per migration applied to this database; the highest is its schema version."""

    __tablename__ = "schema_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    applied_at: Mapped[datetime.datetime]


class Setting(Base):
    """Values the store keeps for itself, such as the key that signs pagination tokens."""

    __tablename__ = "store_settings"
    name: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[str]


class Runtime(Base):
    """An agent runtime; its configuration lives in its versions."""

    __tablename__ = "runtimes"
    id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    arn: Mapped[str]
    status: Mapped[RuntimeStatus] = mapped_column(_status(RuntimeStatus))
    latest_version: Mapped[int]
    failure_reason: Mapped[str | None]
    description: Mapped[str]
    created_at: Mapped[datetime.datetime]
    updated_at: Mapped[datetime.datetime]

    def record(self, version: RuntimeVersion) -> RuntimeRecord:
        """This row as a frozen record (its JSON copied)."""
        return RuntimeRecord(
            id=self.id,
            name=self.name,
            arn=self.arn,
            status=self.status,
            latest_version=self.latest_version,
            failure_reason=self.failure_reason,
            description=self.description,
            created_at=self.created_at,
            updated_at=self.updated_at,
            version=version.record(),
        )


class RuntimeVersion(Base):
    """A version: `config` is written once at insert and never updated; the build fields change."""

    __tablename__ = "runtime_versions"
    runtime_id: Mapped[str] = mapped_column(ForeignKey("runtimes.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    config: Mapped[dict[str, Any]] = mapped_column(_JSON)
    status: Mapped[RuntimeStatus] = mapped_column(_status(RuntimeStatus))
    failure_reason: Mapped[str | None]
    artifact_key: Mapped[str | None]
    environment_hash: Mapped[str | None]
    created_at: Mapped[datetime.datetime]
    updated_at: Mapped[datetime.datetime]

    def record(self) -> VersionRecord:
        """This row as a frozen record (its JSON copied)."""
        return VersionRecord(
            runtime_id=self.runtime_id,
            version=self.version,
            config=copy.deepcopy(self.config),
            status=self.status,
            failure_reason=self.failure_reason,
            artifact_key=self.artifact_key,
            environment_hash=self.environment_hash,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


class Endpoint(Base):
    """A named endpoint of a runtime, pointing at one of its versions."""

    __tablename__ = "endpoints"
    runtime_id: Mapped[str] = mapped_column(ForeignKey("runtimes.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(primary_key=True)
    arn: Mapped[str]
    target_version: Mapped[int]
    live_version: Mapped[int | None]
    status: Mapped[EndpointStatus] = mapped_column(_status(EndpointStatus))
    description: Mapped[str]
    created_at: Mapped[datetime.datetime]
    updated_at: Mapped[datetime.datetime]

    def record(self) -> EndpointRecord:
        """This row as a frozen record (its JSON copied)."""
        return EndpointRecord(
            runtime_id=self.runtime_id,
            name=self.name,
            arn=self.arn,
            target_version=self.target_version,
            live_version=self.live_version,
            status=self.status,
            description=self.description,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


class RuntimeSession(Base):
    """A runtime session and the worker holding it, so any server replica can route to it."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_state", "state"),)
    runtime_id: Mapped[str] = mapped_column(ForeignKey("runtimes.id", ondelete="CASCADE"), primary_key=True)
    session_id: Mapped[str] = mapped_column(primary_key=True)
    endpoint: Mapped[str | None]
    version: Mapped[int | None]
    state: Mapped[SessionState] = mapped_column(_status(SessionState))
    backend: Mapped[str]
    worker: Mapped[dict[str, Any]] = mapped_column(_JSON)
    created_at: Mapped[datetime.datetime]
    last_activity_at: Mapped[datetime.datetime]
    ended_at: Mapped[datetime.datetime | None]
    end_reason: Mapped[str | None]
    owner: Mapped[str | None]

    def record(self) -> SessionRecord:
        """This row as a frozen record (its JSON copied)."""
        return session_record(self)


def session_record(row: Any) -> SessionRecord:
    """A `runtime_sessions` row, ORM object or Core row alike, as a frozen record (its JSON copied)."""
    return SessionRecord(
        runtime_id=row.runtime_id,
        session_id=row.session_id,
        endpoint=row.endpoint,
        version=row.version,
        state=row.state,
        backend=row.backend,
        worker=copy.deepcopy(row.worker or {}),
        created_at=row.created_at,
        last_activity_at=row.last_activity_at,
        ended_at=row.ended_at,
        end_reason=row.end_reason,
        owner=row.owner,
    )


class AccessKey(Base):
    """An access key the server accepts SigV4 signatures from."""

    __tablename__ = "access_keys"
    access_key_id: Mapped[str] = mapped_column(primary_key=True)
    secret: Mapped[str]
    principal: Mapped[str]
    policy: Mapped[dict[str, Any] | None] = mapped_column(_JSON, nullable=True)
    created_at: Mapped[datetime.datetime]
    revoked_at: Mapped[datetime.datetime | None]

    def record(self) -> AccessKeyRecord:
        """This row as a frozen record (its JSON copied)."""
        return AccessKeyRecord(
            access_key_id=self.access_key_id,
            secret=self.secret,
            principal=self.principal,
            policy=copy.deepcopy(self.policy),
            created_at=self.created_at,
            revoked_at=self.revoked_at,
        )


class ResourcePolicy(Base):
    """The resource-based policy of a runtime (at most one)."""

    __tablename__ = "resource_policies"
    runtime_id: Mapped[str] = mapped_column(ForeignKey("runtimes.id", ondelete="CASCADE"), primary_key=True)
    policy: Mapped[dict[str, Any]] = mapped_column(_JSON)
    updated_at: Mapped[datetime.datetime]

    def record(self) -> ResourcePolicyRecord:
        """This row as a frozen record (its JSON copied)."""
        return ResourcePolicyRecord(self.runtime_id, copy.deepcopy(self.policy), self.updated_at)


class ResourceTag(Base):
    """One tag of a runtime; deleting the runtime deletes its tags."""

    __tablename__ = "resource_tags"
    runtime_id: Mapped[str] = mapped_column(ForeignKey("runtimes.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[str]


class ClientToken(Base):
    """Idempotency: the resource a (operation, clientToken) pair created, and a digest of the request."""

    __tablename__ = "client_tokens"
    operation: Mapped[str] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(primary_key=True)
    resource_id: Mapped[str]
    fingerprint: Mapped[str]
    created_at: Mapped[datetime.datetime]


class SpanRow(Base):
    """One span of a trace (the server's own or received over OTLP); see `store/traces.py`.

    `id` orders spans by arrival, which is how retention drops the oldest first. `runtime_id` and
    `session_id` are the server's stamps, not anything the span's sender claimed.
    """

    __tablename__ = "spans"
    __table_args__ = (
        Index("ix_spans_trace", "trace_id"),
        Index("ix_spans_runtime", "runtime_id", "trace_id"),
        Index("ix_spans_session", "session_id", "trace_id"),
        Index("ix_spans_received", "received_at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    trace_id: Mapped[str] = mapped_column(String(32))
    span_id: Mapped[str] = mapped_column(String(16))
    parent_span_id: Mapped[str] = mapped_column(String(16))
    name: Mapped[str]
    kind: Mapped[str] = mapped_column(String(16))
    service: Mapped[str]
    start_ns: Mapped[int] = mapped_column(BigInteger)
    end_ns: Mapped[int] = mapped_column(BigInteger)
    status_code: Mapped[str] = mapped_column(String(8))
    status_message: Mapped[str]
    attributes: Mapped[dict[str, Any]] = mapped_column(_JSON)
    events: Mapped[list[dict[str, Any]]] = mapped_column(_JSON)
    runtime_id: Mapped[str | None]
    session_id: Mapped[str | None]
    received_at: Mapped[float] = mapped_column(Float)


class Blob(Base):
    """A blob stored by its SHA-256 (an uploaded artifact); its bytes are the chunks of `upload_id`.

    A row here is written once, after all its chunks: its presence is what makes the blob visible.
    """

    __tablename__ = "blobs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    upload_id: Mapped[str] = mapped_column(String(32), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    chunks: Mapped[int]
    created_at: Mapped[datetime.datetime]
    # Moved by every runtime version created or updated to name it: unused blobs go after a while.
    last_used_at: Mapped[datetime.datetime]


class BlobChunk(Base):
    """One chunk of an upload's bytes, in order of `seq`; see `store/blobs.py`."""

    __tablename__ = "blob_chunks"
    __table_args__ = (Index("ix_blob_chunks_written", "written_at"),)
    upload_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    written_at: Mapped[datetime.datetime]


__all__ = [
    "AccessKey",
    "Base",
    "Blob",
    "BlobChunk",
    "ClientToken",
    "Endpoint",
    "ResourcePolicy",
    "Runtime",
    "RuntimeSession",
    "RuntimeVersion",
    "SchemaMigration",
    "Setting",
    "SpanRow",
    "UTCDateTime",
    "session_record",
]
