"""Reading wire requests: JSON bodies and query parameters, with errors that name the field."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from .errors import ValidationError


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object (an empty body is an empty object)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ValidationError("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ValidationError("the request body must be a JSON object")
    return body


def max_results(request: Request, default: int = 100) -> int:
    raw = request.query_params.get("maxResults")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise ValidationError("maxResults must be between 1 and 100", field="maxResults")
    return int(raw)


def version_param(raw: Any, field: str = "agentRuntimeVersion") -> int | None:
    if raw is None or raw == "":
        return None
    text = str(raw)
    if not text.isdigit() or not 1 <= int(text) <= 99999:
        raise ValidationError(f"{field} must be a version number like '1'", field=field)
    return int(text)


__all__ = ["json_body", "max_results", "version_param"]
