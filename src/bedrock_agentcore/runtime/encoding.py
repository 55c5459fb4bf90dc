"""Turning handler results into JSON text, value by value, and into Server-Sent Events frames.

Whatever a handler returns becomes valid JSON: values the `json` module cannot encode are converted
one at a time (a single odd value never turns its whole container into a string).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import json
import math
import pathlib
import uuid
from collections.abc import Mapping
from typing import Any


def to_jsonable(value: Any) -> Any:
    """Convert one value the `json` module cannot encode into one it can.

    Conversions: dataclasses and pydantic models → dicts of their fields; sets → lists; datetimes,
    dates and times → ISO 8601; `Decimal` → int when integral, else float; `UUID`, paths → str;
    enums → their value; bytes → UTF-8 text, or base64 when not valid UTF-8; NaN and ±infinity →
    null; other objects → their public attributes, or `str(obj)` when they have none.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump) and not isinstance(value, type):
        return model_dump(mode="json")
    legacy_dict = getattr(value, "dict", None)
    if callable(legacy_dict) and hasattr(value, "__fields__") and not isinstance(value, type):
        return legacy_dict()
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (uuid.UUID, pathlib.PurePath)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (list, tuple)):
        return list(value)
    if hasattr(value, "__iter__") and not isinstance(value, (str, type)):
        try:
            return list(value)
        except TypeError:
            pass
    attributes = getattr(value, "__dict__", None)
    if attributes:
        return {k: v for k, v in attributes.items() if not k.startswith("_")}
    return str(value)


def _deep_jsonable(value: Any) -> Any:
    """Full recursive conversion, used when a container itself trips the encoder (odd keys, NaN)."""
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {_json_key(k): _deep_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_deep_jsonable(v) for v in value]
    converted = to_jsonable(value)
    if converted is value or isinstance(converted, str):
        return converted
    return _deep_jsonable(converted)


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    converted = _deep_jsonable(key)
    return converted if isinstance(converted, str) else json.dumps(converted, ensure_ascii=False)


# One encoder for every value: `json.dumps` with options builds a new encoder per call, which is a
# sixth of a small stream frame's cost.
_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, default=to_jsonable)


def dumps(value: Any) -> str:
    """Encode any value as JSON text (UTF-8 friendly, never NaN, never a whole-object `repr`)."""
    try:
        return _encoder.encode(value)
    except (TypeError, ValueError, RecursionError):
        return json.dumps(_deep_jsonable(value), ensure_ascii=False, allow_nan=False, default=str)


def sse_frame(value: Any) -> bytes:
    """One Server-Sent Events frame, `data: <json>\\n\\n`; JSON text never contains a raw newline."""
    return b"data: " + dumps(value).encode("utf-8") + b"\n\n"


__all__ = ["dumps", "sse_frame", "to_jsonable"]
