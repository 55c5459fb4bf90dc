"""AWS rest-json error shapes: every failure a client can see, as boto3 expects to parse it.

Services raise their own typed errors; the server maps them to one of these at the edge, in
`wire.py`, and nowhere else.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response


class ServiceError(Exception):
    """An error with an AWS error code, an HTTP status and a client-facing message."""

    code = "InternalServerException"
    status = 500

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def response(self, headers: dict[str, str] | None = None) -> Response:
        """The wire response: `x-amzn-ErrorType` header and a JSON body with `message`."""
        body = {"message": self.message, **self.fields}
        all_headers = {"x-amzn-ErrorType": self.code, **(headers or {})}
        return Response(
            json.dumps(body).encode(),
            status_code=self.status,
            headers=all_headers,
            media_type="application/json",
        )


class ValidationError(ServiceError):
    """400: a request field is missing or malformed; the message names the field."""

    code = "ValidationException"
    status = 400

    def __init__(self, message: str, field: str | None = None, reason: str = "FieldValidationFailed") -> None:
        fields: dict[str, Any] = {"reason": reason}
        if field is not None:
            fields["fieldList"] = [{"name": field, "message": message}]
        super().__init__(message, **fields)


class Unauthorized(ServiceError):
    code = "UnauthorizedException"
    status = 401


class QuotaExceeded(ServiceError):
    code = "ServiceQuotaExceededException"
    status = 402


class AccessDenied(ServiceError):
    code = "AccessDeniedException"
    status = 403


class NotFound(ServiceError):
    code = "ResourceNotFoundException"
    status = 404


class UnknownOperation(ServiceError):
    """404 (no such path) or 405 (not with this method): no operation is served there."""

    code = "UnknownOperationException"
    status = 404


class Conflict(ServiceError):
    code = "ConflictException"
    status = 409


class RuntimeClientError(ServiceError):
    """424: the agent answered non-2xx, crashed, or could not start."""

    code = "RuntimeClientError"
    status = 424


class Throttled(ServiceError):
    code = "ThrottlingException"
    status = 429


class InternalError(ServiceError):
    code = "InternalServerException"
    status = 500


__all__ = [
    "AccessDenied",
    "Conflict",
    "InternalError",
    "NotFound",
    "QuotaExceeded",
    "RuntimeClientError",
    "ServiceError",
    "Throttled",
    "Unauthorized",
    "UnknownOperation",
    "ValidationError",
]
