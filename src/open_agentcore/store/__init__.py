"""Persistent state of the runtime server on SQLAlchemy 2: SQLite by default, PostgreSQL by URL.

Runtimes, their immutable versions and tags, endpoints, sessions, access keys, resource policies and
client-token idempotency, behind one thread-safe `Store` that hands out frozen records; uploaded
artifacts as content-addressed blobs beside it (`BlobStore`, on the same database).
"""

from .blobs import BlobCorrupt, BlobNotFound, BlobStore, BlobUpload
from .engine import MIGRATIONS
from .errors import (
    AccessKeyConflict,
    AccessKeyNotFound,
    ClientTokenConflict,
    ConflictError,
    DatabaseUnavailable,
    DefaultEndpointProtected,
    EndpointNameConflict,
    EndpointNotFound,
    InvalidPaginationToken,
    NotFoundError,
    ResourcePolicyNotFound,
    RuntimeNameConflict,
    RuntimeNotFound,
    SchemaTooNew,
    SessionNotFound,
    StoreError,
    TooManyTags,
    UnsupportedDatabaseURL,
    VersionNotFound,
)
from .read_cache import ReadCache
from .records import (
    DEFAULT_ENDPOINT,
    AccessKeyRecord,
    EndpointRecord,
    EndpointStatus,
    Page,
    ResourcePolicyRecord,
    RuntimeRecord,
    RuntimeStatus,
    SessionRecord,
    SessionState,
    VersionRecord,
)
from .repository import Store, open_store
from .session_claims import Activity, StartClaim
from .traces import SpanRecord, TraceSummary
from .transactions import MAX_PAGE_SIZE

__all__ = [
    "DEFAULT_ENDPOINT",
    "MAX_PAGE_SIZE",
    "MIGRATIONS",
    "AccessKeyConflict",
    "AccessKeyNotFound",
    "AccessKeyRecord",
    "Activity",
    "BlobCorrupt",
    "BlobNotFound",
    "BlobStore",
    "BlobUpload",
    "ClientTokenConflict",
    "ConflictError",
    "DatabaseUnavailable",
    "DefaultEndpointProtected",
    "EndpointNameConflict",
    "EndpointNotFound",
    "EndpointRecord",
    "EndpointStatus",
    "InvalidPaginationToken",
    "NotFoundError",
    "Page",
    "ReadCache",
    "ResourcePolicyNotFound",
    "ResourcePolicyRecord",
    "RuntimeNameConflict",
    "RuntimeNotFound",
    "RuntimeRecord",
    "RuntimeStatus",
    "SchemaTooNew",
    "SessionNotFound",
    "SessionRecord",
    "SessionState",
    "SpanRecord",
    "StartClaim",
    "Store",
    "StoreError",
    "TooManyTags",
    "TraceSummary",
    "UnsupportedDatabaseURL",
    "VersionNotFound",
    "VersionRecord",
    "open_store",
]
