"""Authentication and authorisation: SigV4 verification and the server's access keys."""

from .credentials import CredentialsError, load_admin_credential
from .sigv4 import (
    Credential,
    IncompleteSignature,
    KeyLookup,
    MissingAuthentication,
    RequestExpired,
    SignatureError,
    SignatureMismatch,
    UnrecognizedClient,
    authorization_scheme,
    verify_headers,
    verify_presigned,
)

__all__ = [
    "Credential",
    "CredentialsError",
    "IncompleteSignature",
    "KeyLookup",
    "MissingAuthentication",
    "RequestExpired",
    "SignatureError",
    "SignatureMismatch",
    "UnrecognizedClient",
    "authorization_scheme",
    "load_admin_credential",
    "verify_headers",
    "verify_presigned",
]
