"""uvicorn's settings for a runtime server: TLS, the bounded HTTP protocol, and redacted logs.

uvicorn 0.55 passes no `ssl_handshake_timeout` to the event loop, so a TLS client that never
finishes its handshake is dropped by the loop's default of 60 s (asyncio and uvloop alike), before
the protocol's header timeout and connection cap apply to it.
"""

from __future__ import annotations

import copy
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import LOGGING_CONFIG

from .config import LOG_LEVELS, ServerConfig
from .protocol import ConnectionLimits, http_protocol
from .websocket_protocol import RuntimeWebSocketProtocol


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging setup plus our own loggers at `level`, every handler redacting secrets."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": "open_agentcore.server.redaction.SecretRedaction"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    config["formatters"]["ours"] = {
        "()": "uvicorn.logging.DefaultFormatter",
        "fmt": "%(levelprefix)s %(name)s: %(message)s",
    }
    config["handlers"]["ours"] = {**config["handlers"]["default"], "formatter": "ours"}
    config["loggers"]["open_agentcore"] = {"handlers": ["ours"], "level": level.upper(), "propagate": False}
    return config


def uvicorn_config(app: ASGIApp, config: ServerConfig, **options: Any) -> uvicorn.Config:
    """How uvicorn serves `app` for `config`; `options` add to or override uvicorn's settings.

    TLS files should have passed `tls.check_tls_files` already: uvicorn fails on them with a
    traceback, and would prompt on the terminal for an encrypted key.
    """
    settings: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "http": http_protocol(
            ConnectionLimits(
                header_timeout=config.header_timeout,
                body_timeout=config.body_timeout,
                max_connections=config.max_connections,
            )
        ),
        "ws": RuntimeWebSocketProtocol,
        "h11_max_incomplete_event_size": config.max_header_bytes,
        "log_level": config.log_level,
        "log_config": log_config(config.log_level),
        # uvicorn builds each access line's arguments before the logger drops them: with access
        # lines off (above `info`) the logger is not called at all.
        "access_log": LOG_LEVELS.index(config.log_level) <= LOG_LEVELS.index("info"),
        # Two header lines fewer to validate per answer; the server's make is nobody's business.
        "server_header": False,
    }
    if config.tls_cert is not None:
        settings["ssl_certfile"] = str(config.tls_cert)
        settings["ssl_keyfile"] = str(config.tls_key) if config.tls_key else None
    settings.update(options)
    return uvicorn.Config(app, **settings)


__all__ = ["LOG_LEVELS", "log_config", "uvicorn_config"]
