"""What `invoke` sends: a PAYLOAD argument (or a line typed over `--ws`) turned into a message body.

JSON is sent as written; plain text becomes `{"prompt": text}`; with `raw` the text goes as it is.
Text that looks like JSON but does not parse is refused with the place it breaks, rather than
being wrapped as a prompt the user never meant to send.
"""

from __future__ import annotations

import json
import re

from .errors import CliError

# A number-like token ("12", "-3.5e2", "1.2.3"): meant as JSON, so it must parse as JSON.
_NUMBER_LIKE = re.compile(r"-?[0-9][0-9.eE+-]*")
_LITERALS = ("true", "false", "null")


class PayloadError(CliError):
    """Text that looks like JSON does not parse; the message names the line and column."""


def looks_like_json(text: str) -> bool:
    """True for text meant as JSON: an object, array or string, a number, or a JSON literal."""
    stripped = text.strip()
    if not stripped:
        return False
    return stripped[0] in '{["' or stripped in _LITERALS or bool(_NUMBER_LIKE.fullmatch(stripped))


def encode_payload(text: str, raw: bool = False) -> bytes:
    """The body for `text`: as it is with `raw`, JSON unchanged, plain text as `{"prompt": text}`."""
    if raw:
        return text.encode()
    if not looks_like_json(text):
        return json.dumps({"prompt": text}).encode()
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        raise PayloadError(_describe(text, error)) from None
    return text.encode()


def content_type(body: bytes) -> str:
    """`application/json` for a body that parses as JSON, else plain text (a `--raw` payload)."""
    try:
        json.loads(body)
    except ValueError:
        return "text/plain; charset=utf-8"
    return "application/json"


def _describe(text: str, error: json.JSONDecodeError) -> str:
    line = text.splitlines()[error.lineno - 1] if text.splitlines() else ""
    start = max(0, error.colno - 16)
    near = line[start : error.colno + 15]
    return (
        f"the payload looks like JSON but is not: {error.msg} at line {error.lineno}, "
        f"column {error.colno} (near {near!r}); "
        "fix it, or pass --raw to send the text as it is"
    )


__all__ = ["PayloadError", "content_type", "encode_payload", "looks_like_json"]
