"""Why a request's SigV4 signature was refused: one type per failure, each with its AWS wire error.

Messages are safe to send to the client and to log: they never contain a secret, a signature,
or a token, only what the client itself sent in the clear (dates, service and region names).
"""

from __future__ import annotations

from typing import ClassVar


class SignatureError(Exception):
    """A request whose signature cannot be accepted.

    `wire_name` is the AWS error code for `x-amzn-ErrorType` and `status` the HTTP status; the
    server maps every subclass to the wire through these two attributes alone.
    """

    wire_name: ClassVar[str] = "InvalidSignatureException"
    status: ClassVar[int] = 403

    @property
    def code(self) -> str:
        """The same as `wire_name`; kept for callers written against the first version."""
        return self.wire_name


class MissingAuthentication(SignatureError):
    """Neither an `Authorization` header nor a presigned query: the request is anonymous."""

    wire_name = "MissingAuthenticationTokenException"
    status = 403


class IncompleteSignature(SignatureError):
    """The signature is malformed or unusable before any key is consulted (a client bug).

    Covers a malformed `Authorization` header or credential scope, a missing or invalid
    `X-Amz-Date`, another algorithm, another service, and presigned-URL parameters outside
    this service's rules (an `X-Amz-Expires` over the limit is malformed, not a permission
    decision, as S3's 400 `AuthorizationQueryParametersError` treats it).
    """

    wire_name = "IncompleteSignatureException"
    status = 400


class UnrecognizedClient(SignatureError):
    """The access key id is not one the server knows."""

    wire_name = "UnrecognizedClientException"
    status = 403


class WrongRegion(SignatureError):
    """The credential scope names another region than the server's: the signature was made for
    another endpoint, and is refused before any key is consulted."""

    wire_name = "InvalidSignatureException"
    status = 403


class SignatureMismatch(SignatureError):
    """The signature (or the declared body hash) does not match the request as received."""

    wire_name = "InvalidSignatureException"
    status = 403


class RequestExpired(SignatureError):
    """The signing time is too far from the server's clock, or a presigned URL has expired."""

    wire_name = "InvalidSignatureException"
    status = 403


__all__ = [
    "IncompleteSignature",
    "MissingAuthentication",
    "RequestExpired",
    "SignatureError",
    "SignatureMismatch",
    "UnrecognizedClient",
    "WrongRegion",
]
