"""Authentication: SigV4 verification (headers and presigned URLs) and the server's admin key."""

from .claims import PresignedClaim, SignatureClaim, parse_authorization, parse_presigned_query
from .credentials import AdminCredentials, CredentialsError, load_admin_credential
from .errors import (
    IncompleteSignature,
    MissingAuthentication,
    RequestExpired,
    SignatureError,
    SignatureMismatch,
    UnrecognizedClient,
)
from .signing import sign_headers
from .sigv4 import (
    MAX_PRESIGNED_EXPIRY,
    MAX_SKEW,
    SERVICE,
    AuthScheme,
    Credential,
    KeyLookup,
    authorization_scheme,
    verify_headers,
    verify_presigned,
)

__all__ = [
    "MAX_PRESIGNED_EXPIRY",
    "MAX_SKEW",
    "SERVICE",
    "AdminCredentials",
    "AuthScheme",
    "Credential",
    "CredentialsError",
    "IncompleteSignature",
    "KeyLookup",
    "MissingAuthentication",
    "PresignedClaim",
    "RequestExpired",
    "SignatureClaim",
    "SignatureError",
    "SignatureMismatch",
    "UnrecognizedClient",
    "authorization_scheme",
    "load_admin_credential",
    "parse_authorization",
    "parse_presigned_query",
    "sign_headers",
    "verify_headers",
    "verify_presigned",
]
