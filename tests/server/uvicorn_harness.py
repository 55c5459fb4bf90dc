"""A runtime server served exactly as `agentcore server run` serves it (`serving.uvicorn_config`:
TLS, the bounded HTTP protocol), in a thread of the test process."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest
import uvicorn

from open_agentcore.server import ServerConfig
from open_agentcore.server.app import build_app
from open_agentcore.server.serving import uvicorn_config
from tests.conftest import wait_until
from tests.server.conftest import KEY_ID, SECRET


@contextlib.contextmanager
def serving(config: ServerConfig) -> Iterator[str]:
    """Serve a runtime server for `config` (its host and port) until the block ends; yields its URL.

    The admin key is in the environment only while the app is built. uvicorn is told not to set
    up logging: that is the server process's business, and this one is pytest's.
    """
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("AGENTCORE_ADMIN_ACCESS_KEY_ID", KEY_ID)
        environment.setenv("AGENTCORE_ADMIN_SECRET_ACCESS_KEY", SECRET)
        app = build_app(config)
    server = uvicorn.Server(uvicorn_config(app, config, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), timeout=30)
        assert server.started, "the runtime server did not start"
        yield config.url
    finally:
        server.should_exit = True
        # Well inside asyncio's 30 s TLS shutdown wait: idle connections must not hold the server up.
        thread.join(20)
    assert not thread.is_alive(), "the runtime server did not stop within 20 s"
