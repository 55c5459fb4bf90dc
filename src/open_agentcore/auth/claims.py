"""Parsing what a request says about its own SigV4 signature: the `Authorization` header or the
presigned-URL query parameters. Syntax only; nothing here consults a key or a clock.

Whatever the input, the parsers return a claim or raise `IncompleteSignature`, nothing else.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .errors import IncompleteSignature

ALGORITHM = "AWS4-HMAC-SHA256"

_SCOPE_PART = re.compile(r"[A-Za-z0-9._-]{1,128}")
_SCOPE_DATE = re.compile(r"[0-9]{8}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_HEADER_NAME = re.compile(r"[0-9a-z!#$%&'*+.^_`|~-]+")
_AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_EXPIRES = re.compile(r"[0-9]{1,10}")
_AUTHORIZATION_FIELDS = ("Credential", "SignedHeaders", "Signature")
_PRESIGNED_PARAMETERS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)


@dataclass(frozen=True)
class SignatureClaim:
    """The key, credential scope, signed header names and signature a request presents."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str = field(repr=False)

    @property
    def scope(self) -> str:
        """The credential scope as it appears in the string to sign."""
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


@dataclass(frozen=True)
class PresignedClaim:
    """A presigned URL's claim, with its signing time (`X-Amz-Date`) and lifetime in seconds."""

    claim: SignatureClaim
    amz_date: str
    signed_at: datetime.datetime
    expires: int


def parse_authorization(value: str) -> SignatureClaim:
    """The claim in an `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        if algorithm.lower() == "bearer":
            raise IncompleteSignature(
                f"This request carries a Bearer token; it must be signed with {ALGORITHM}."
            )
        raise IncompleteSignature(f"Authorization header must use the {ALGORITHM} algorithm.")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, equals, text = part.strip().partition("=")
        if not equals or name not in _AUTHORIZATION_FIELDS or name in fields:
            raise IncompleteSignature(
                "Authorization header must be "
                f"'{ALGORITHM} Credential=..., SignedHeaders=..., Signature=...' with each part once."
            )
        fields[name] = text
    for name in _AUTHORIZATION_FIELDS:
        if name not in fields:
            raise IncompleteSignature(f"Authorization header requires '{name}' parameter.")
    return _claim(fields["Credential"], fields["SignedHeaders"], fields["Signature"])


def parse_presigned_query(pairs: Sequence[tuple[bytes, bytes]]) -> PresignedClaim:
    """The claim in a presigned URL's decoded query pairs (`X-Amz-Algorithm`, `X-Amz-Credential`, ...).

    Other parameters, `X-Amz-Security-Token` among them, are left to the canonical query.
    """
    params: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        if not raw_name.startswith(b"X-Amz-"):
            continue
        name, value = _ascii(raw_name), _ascii(raw_value)
        if name in params:
            raise IncompleteSignature(f"The presigned URL has {name} more than once.")
        params[name] = value
    for name in _PRESIGNED_PARAMETERS:
        if name not in params:
            raise IncompleteSignature(f"The presigned URL lacks the {name} parameter.")
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise IncompleteSignature(f"X-Amz-Algorithm must be {ALGORITHM}.")
    if not _EXPIRES.fullmatch(params["X-Amz-Expires"]):
        raise IncompleteSignature("X-Amz-Expires must be a whole number of seconds.")
    claim = _claim(params["X-Amz-Credential"], params["X-Amz-SignedHeaders"], params["X-Amz-Signature"])
    amz_date = params["X-Amz-Date"]
    return PresignedClaim(claim, amz_date, parse_amz_date(amz_date), int(params["X-Amz-Expires"]))


def parse_amz_date(value: str) -> datetime.datetime:
    """An `X-Amz-Date` (`YYYYMMDDTHHMMSSZ`) as an aware UTC datetime."""
    if not _AMZ_DATE.fullmatch(value):
        raise IncompleteSignature("X-Amz-Date must be a date in the form YYYYMMDDTHHMMSSZ.")
    try:
        # The pattern above fixed every digit's place: slicing is exact, and strptime is slow.
        return datetime.datetime(
            int(value[0:4]), int(value[4:6]), int(value[6:8]),
            int(value[9:11]), int(value[11:13]), int(value[13:15]), tzinfo=datetime.timezone.utc,
        )  # fmt: skip
    except ValueError:
        raise IncompleteSignature("X-Amz-Date is not a valid date.") from None


def _claim(credential: str, signed_headers: str, signature: str) -> SignatureClaim:
    access_key_id, date, region, service = _scope(credential)
    names = _signed_names(signed_headers)
    if not _SIGNATURE.fullmatch(signature):
        raise IncompleteSignature("Signature must be 64 lower-case hexadecimal digits.")
    return SignatureClaim(access_key_id, date, region, service, names, signature)


# A client sends the same credential scope and header list with every request of a day: each is
# checked once. Only valid ones are kept (errors are not cached); the caches are small LRUs, so
# whatever a caller sends costs at most an eviction.
@functools.lru_cache(maxsize=256)
def _scope(credential: str) -> tuple[str, str, str, str]:
    parts = credential.split("/")
    if (
        len(parts) != 5
        or not all(_SCOPE_PART.fullmatch(part) for part in parts)
        or not _SCOPE_DATE.fullmatch(parts[1])
        or parts[4] != "aws4_request"
    ):
        raise IncompleteSignature(
            "Credential must be <access key id>/<YYYYMMDD>/<region>/<service>/aws4_request."
        )
    return parts[0], parts[1], parts[2], parts[3]


@functools.lru_cache(maxsize=256)
def _signed_names(signed_headers: str) -> tuple[str, ...]:
    names = signed_headers.split(";")
    if not all(_HEADER_NAME.fullmatch(name) for name in names) or names != sorted(set(names)):
        raise IncompleteSignature("SignedHeaders must be lower-case header names, sorted, each once.")
    return tuple(names)


def _ascii(raw: bytes) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise IncompleteSignature("Presigned URL parameters must be ASCII.") from None


__all__ = [
    "ALGORITHM",
    "PresignedClaim",
    "SignatureClaim",
    "parse_amz_date",
    "parse_authorization",
    "parse_presigned_query",
]
