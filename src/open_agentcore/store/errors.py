"""What the store can refuse: one type per failure a caller can act on, all under `StoreError`.

Nothing above the store ever sees a SQLAlchemy or driver exception for these cases.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every store failure."""


class NotFoundError(StoreError):
    """Base of the "no such thing" failures (the wire's ResourceNotFoundException)."""


class ConflictError(StoreError):
    """Base of the "that clashes with what exists" failures (the wire's ConflictException)."""


class TooManyTags(StoreError):
    """The tags asked for would leave a resource with more than it may have."""


class RuntimeNotFound(NotFoundError):
    """No runtime with that id."""


class VersionNotFound(NotFoundError):
    """The runtime has no such version."""


class EndpointNotFound(NotFoundError):
    """The runtime has no endpoint of that name."""


class SessionNotFound(NotFoundError):
    """The runtime has no session with that id."""


class AccessKeyNotFound(NotFoundError):
    """No access key with that id (or it was revoked and revoked keys were not asked for)."""


class ResourcePolicyNotFound(NotFoundError):
    """The runtime has no resource policy."""


class RuntimeNameConflict(ConflictError):
    """Another runtime already has that name."""


class EndpointNameConflict(ConflictError):
    """The runtime already has an endpoint of that name."""


class AccessKeyConflict(ConflictError):
    """An access key with that id already exists."""


class ClientTokenConflict(ConflictError):
    """The client token was already used for a request with different parameters."""


class DefaultEndpointProtected(StoreError):
    """The `DEFAULT` endpoint is managed by the store: it cannot be created, retargeted or deleted."""


class InvalidPaginationToken(StoreError):
    """A `nextToken` this store did not issue for this listing (or one that was altered)."""


class SchemaTooNew(StoreError):
    """The database was written by a newer open-agentcore than this one."""


class DatabaseUnavailable(StoreError):
    """The database could not be opened or reached (the message carries the driver's reason)."""


class UnsupportedDatabaseURL(StoreError):
    """The store URL names a database other than `sqlite:///...` or `postgresql://...`."""


__all__ = [
    "AccessKeyConflict",
    "AccessKeyNotFound",
    "ClientTokenConflict",
    "ConflictError",
    "DatabaseUnavailable",
    "DefaultEndpointProtected",
    "EndpointNameConflict",
    "EndpointNotFound",
    "InvalidPaginationToken",
    "NotFoundError",
    "ResourcePolicyNotFound",
    "RuntimeNameConflict",
    "RuntimeNotFound",
    "SchemaTooNew",
    "SessionNotFound",
    "StoreError",
    "TooManyTags",
    "UnsupportedDatabaseURL",
    "VersionNotFound",
]
