"""The runtime lifecycle service: validation, versions, background builds, invocation targets."""

from .service import Route, RuntimeNotReady, RuntimePaths, RuntimeService, runtime_id_from
from .validation import InvalidRequest, jwt_authorizer_of

__all__ = [
    "InvalidRequest",
    "Route",
    "RuntimeNotReady",
    "RuntimePaths",
    "RuntimeService",
    "jwt_authorizer_of",
    "runtime_id_from",
]
