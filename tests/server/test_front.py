"""The gateway is the server's outermost layer for HTTP (`server/front.py`): a failure nobody
mapped still reaches the client as an AWS error shape, and the server goes on serving."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import botocore.exceptions
import httpx
import pytest

from open_agentcore.server.app import build_app
from open_agentcore.server.config import ServerConfig
from open_agentcore.server.front import RuntimeApp
from open_agentcore.server.websocket_protocol import RuntimeWebSocketProtocol
from tests.conftest import free_port, serve_in_thread
from tests.server.conftest import KEY_ID, SECRET, clients


class _Broken:
    """Stands in for the runtime service: every use fails with an error no layer maps."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(f"a failure nobody mapped ({name}); secret-looking text: {SECRET}")


@pytest.fixture
def broken(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, RuntimeApp]]:
    monkeypatch.setenv("AGENTCORE_ADMIN_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AGENTCORE_ADMIN_SECRET_ACCESS_KEY", SECRET)
    data_dir = Path(tempfile.mkdtemp(prefix="oacf-", dir="/tmp"))
    port = free_port()
    app = build_app(ServerConfig(data_dir=data_dir, warm_pool=0, port=port))
    assert isinstance(app, RuntimeApp) and app.front is not None
    try:
        with serve_in_thread(app, ws=RuntimeWebSocketProtocol, port=port) as url:
            yield url, app
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_a_failure_nobody_mapped_is_an_internal_server_exception_in_aws_shape(
    broken: tuple[str, RuntimeApp],
) -> None:
    url, app = broken
    control, _ = clients(url)
    app.state.runtimes = _Broken()
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        control.list_agent_runtimes()
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert error["Error"]["Code"] == "InternalServerException"
    # What failed stays in the server's log, not in the answer.
    assert "nobody mapped" not in error["Error"]["Message"] and SECRET not in str(error)


def test_the_server_serves_on_after_a_failure_nobody_mapped(broken: tuple[str, RuntimeApp]) -> None:
    url, app = broken
    control, _ = clients(url)
    service = app.state.runtimes
    app.state.runtimes = _Broken()
    with pytest.raises(botocore.exceptions.ClientError):
        control.list_agent_runtimes()
    app.state.runtimes = service
    assert control.list_agent_runtimes()["agentRuntimes"] == []
    assert httpx.get(url + "/_agentcore/health", timeout=10).status_code == 200


def test_an_unsigned_request_is_refused_by_the_outermost_layer_in_aws_shape(
    broken: tuple[str, RuntimeApp],
) -> None:
    url, app = broken
    app.state.runtimes = _Broken()  # never reached: authentication comes first
    reply = httpx.get(url + "/runtimes/", timeout=10)
    assert reply.status_code == 403
    assert reply.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
