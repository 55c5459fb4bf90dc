"""Secrets never reach the server's log: signatures, session tokens and bearer tokens are redacted.

uvicorn logs the path and query of every request it answers (a presigned WebSocket URL carries its
signature there) and, at debug level, the websockets library logs each handshake header
(`Authorization` with a SigV4 signature or a bearer token). The filter goes on the log handlers,
so it sees every record they write, whichever logger it came from.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
# A signature or token in a query string or an Authorization value: keep the name, drop the value.
# "Bearer" is matched as written, so prose about "bearer tokens" stays readable.
_IN_TEXT = re.compile(r"((?i:(?:X-Amz-)?Signature=|X-Amz-Security-Token=)|\bBearer\s+)[^\s&\"',;]+")
# A header line logged as `< name: value` (websockets) or `name: value`: the whole value goes.
_HEADER = re.compile(r"(?im)^([<>]?\s*(?:authorization|x-amz-security-token|cookie|set-cookie):\s*).+$")


def redact(text: str) -> str:
    """`text` without the secrets a request can carry."""
    return _HEADER.sub(lambda m: m.group(1) + REDACTED, _IN_TEXT.sub(lambda m: m.group(1) + REDACTED, text))


class SecretRedaction(logging.Filter):
    """Rewrites a record that would show a secret; records without one pass untouched.

    Arguments are redacted one by one where that suffices, keeping their shape (uvicorn's access
    formatter unpacks them); a secret only the whole message shows collapses it to plain text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # A malformed call: logging reports it with the raw message and arguments, redacted here.
            record.msg, record.args = (
                redact(str(record.msg)),
                tuple(redact(str(arg)) for arg in record.args or ()),
            )
            return True
        if redact(message) == message:
            return True
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if redact(message := record.getMessage()) != message:
            record.msg, record.args = redact(message), ()
        # uvicorn's coloured formatter would format this copy with the original arguments.
        record.__dict__.pop("color_message", None)
        return True


__all__ = ["REDACTED", "SecretRedaction", "redact"]
