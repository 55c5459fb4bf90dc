"""Authentication: SigV4 verification (headers and presigned URLs) and the server's admin key.

The JWT authorizer's names load on first use: they pull in PyJWT, cryptography and httpx, which
a client that only signs requests (the CLI) never needs.
"""

from typing import TYPE_CHECKING, Any

from .caller import ANONYMOUS, Caller, Scheme
from .claims import PresignedClaim, SignatureClaim, parse_authorization, parse_presigned_query
from .credentials import AdminCredentials, CredentialsError, load_admin_credential
from .errors import (
    IncompleteSignature,
    MissingAuthentication,
    RequestExpired,
    SignatureError,
    SignatureMismatch,
    UnrecognizedClient,
    WrongRegion,
)
from .signing import sign_headers
from .sigv4 import (
    MAX_PRESIGNED_EXPIRY,
    MAX_SKEW,
    SERVICE,
    AuthScheme,
    Credential,
    KeyLookup,
    PendingSignature,
    authorization_scheme,
    begin_headers,
    begin_presigned,
    verify_headers,
    verify_presigned,
)

if TYPE_CHECKING:
    from .jwt_authorizer import (
        AuthorizerError,
        ClaimMatchOperator,
        ClaimRule,
        Claims,
        ClaimValueType,
        InvalidAuthorizerConfig,
        IssuerMetadata,
        IssuerUnreachable,
        JwtAuthorizer,
        JwtAuthorizerConfig,
        MissingBearerToken,
        TokenCheck,
        TokenRejected,
        bearer_token,
        check_issuer,
        validate_authorizer_config,
    )

_JWT_NAMES = frozenset(
    {
        "AuthorizerError",
        "ClaimMatchOperator",
        "ClaimRule",
        "Claims",
        "ClaimValueType",
        "InvalidAuthorizerConfig",
        "IssuerMetadata",
        "IssuerUnreachable",
        "JwtAuthorizer",
        "JwtAuthorizerConfig",
        "MissingBearerToken",
        "TokenCheck",
        "TokenRejected",
        "bearer_token",
        "check_issuer",
        "validate_authorizer_config",
    }
)


def __getattr__(name: str) -> Any:
    if name in _JWT_NAMES:
        from . import jwt_authorizer

        return getattr(jwt_authorizer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ANONYMOUS",
    "MAX_PRESIGNED_EXPIRY",
    "MAX_SKEW",
    "SERVICE",
    "AdminCredentials",
    "AuthScheme",
    "AuthorizerError",
    "Caller",
    "ClaimMatchOperator",
    "ClaimRule",
    "ClaimValueType",
    "Claims",
    "Credential",
    "CredentialsError",
    "IncompleteSignature",
    "InvalidAuthorizerConfig",
    "IssuerMetadata",
    "IssuerUnreachable",
    "JwtAuthorizer",
    "JwtAuthorizerConfig",
    "KeyLookup",
    "MissingAuthentication",
    "MissingBearerToken",
    "PendingSignature",
    "PresignedClaim",
    "RequestExpired",
    "Scheme",
    "SignatureClaim",
    "SignatureError",
    "SignatureMismatch",
    "TokenCheck",
    "TokenRejected",
    "UnrecognizedClient",
    "WrongRegion",
    "authorization_scheme",
    "bearer_token",
    "begin_headers",
    "begin_presigned",
    "check_issuer",
    "load_admin_credential",
    "parse_authorization",
    "parse_presigned_query",
    "sign_headers",
    "validate_authorizer_config",
    "verify_headers",
    "verify_presigned",
]
