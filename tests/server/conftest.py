"""A real runtime server on a free port, with boto3 clients pointed at it."""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import httpx
import pytest

from open_agentcore.server import ServerConfig
from open_agentcore.server.app import build_app
from open_agentcore.server.serving import uvicorn_config
from tests.conftest import free_port, serve_config_in_thread, wait_until

# AWS itself cannot exist here: these static credentials are the server's admin key.
KEY_ID, SECRET = "AKIATESTADMIN0000001", "test-secret-for-the-local-server-only-00"


@dataclass
class Server:
    url: str
    data_dir: Path
    control: Any
    data: Any

    def upload(self, files: dict[str, str]) -> str:
        """Zip `files` and upload them; returns the artifact key (the same files, the same key:
        the zip's entries carry a fixed date)."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, text in files.items():
                archive.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), text)
        reply = self.signed("PUT", "/_agentcore/artifacts", buffer.getvalue())
        assert reply.status_code == 200, reply.text
        return str(reply.json()["key"])

    def signed(self, method: str, path: str, body: bytes = b"", secret: str = SECRET) -> httpx.Response:
        request = botocore.awsrequest.AWSRequest(method=method, url=self.url + path, data=body)
        credentials = botocore.credentials.Credentials(KEY_ID, secret)
        botocore.auth.SigV4Auth(credentials, "bedrock-agentcore", "us-east-1").add_auth(request)
        return httpx.request(method, self.url + path, content=body, headers=dict(request.headers), timeout=60)

    def deploy(self, files: dict[str, str], name: str, **extra: Any) -> dict[str, Any]:
        key = self.upload(files)
        created: dict[str, Any] = self.control.create_agent_runtime(
            agentRuntimeName=name,
            roleArn="arn:aws:iam::000000000000:role/agent",
            agentRuntimeArtifact=artifact(key),
            **extra,
        )
        self.wait_ready(created["agentRuntimeId"])
        return created

    def wait_ready(self, runtime_id: str, version: str | None = None) -> dict[str, Any]:
        def settled() -> dict[str, Any] | None:
            params = {"agentRuntimeId": runtime_id, **({"agentRuntimeVersion": version} if version else {})}
            described: dict[str, Any] = self.control.get_agent_runtime(**params)
            return described if described["status"] not in ("CREATING", "UPDATING") else None

        described: dict[str, Any] = wait_until(settled, timeout=120, interval=0.1)
        return described


def artifact(key: str, entry: str = "agent.py") -> dict[str, Any]:
    return {
        "codeConfiguration": {
            "code": {"s3": {"bucket": "agentcore-artifacts", "prefix": key}},
            "runtime": "PYTHON_3_11",
            "entryPoint": [entry],
        }
    }


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("AGENTCORE_ADMIN_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AGENTCORE_ADMIN_SECRET_ACCESS_KEY", SECRET)
    # Short: worker sockets live under the data dir, and unix socket paths max out at 107 bytes.
    data_dir = Path(tempfile.mkdtemp(prefix="oacs-", dir="/tmp"))
    # The port is chosen first so the server knows it: workers get it as their OTLP endpoint.
    port = free_port()
    config = ServerConfig(
        data_dir=data_dir, min_lifecycle_seconds=1, warm_pool=0, reap_interval=0.2, port=port
    )
    try:
        with serve_as_configured(build_app(config), config) as url:
            settings = {
                "region_name": "us-east-1",
                "endpoint_url": url,
                "aws_access_key_id": KEY_ID,
                "aws_secret_access_key": SECRET,
                "config": botocore.config.Config(retries={"max_attempts": 1}, read_timeout=60),
            }
            yield Server(
                url, data_dir, boto3.client("bedrock-agentcore-control", **settings),
                boto3.client("bedrock-agentcore", **settings),
            )  # fmt: skip
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def serve_as_configured(app: Any, config: ServerConfig) -> contextlib.AbstractContextManager[str]:
    """`app` served as `agentcore server run` serves it (`serving.uvicorn_config`: the bounded HTTP
    protocol, the WebSocket protocol, no server header) on 127.0.0.1:`config.port`, in a thread;
    the test process's logging is left as it is."""
    settings = uvicorn_config(
        app, config, host="127.0.0.1", log_level="warning", log_config=None, access_log=False
    )
    return serve_config_in_thread(settings)


def clients(url: str) -> tuple[Any, Any]:
    """boto3's control-plane and data-plane clients for the server at `url`, with the admin key."""
    settings = {
        "region_name": "us-east-1",
        "endpoint_url": url,
        "aws_access_key_id": KEY_ID,
        "aws_secret_access_key": SECRET,
        "config": botocore.config.Config(retries={"max_attempts": 1}, read_timeout=60),
    }
    return boto3.client("bedrock-agentcore-control", **settings), boto3.client(
        "bedrock-agentcore", **settings
    )


def sign(
    method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None, secret: str = SECRET
) -> dict[str, str]:
    """The headers of a request signed with the admin key (SigV4 as boto3 signs), `headers` included."""
    request = botocore.awsrequest.AWSRequest(method=method, url=url, data=body, headers=headers or {})
    credentials = botocore.credentials.Credentials(KEY_ID, secret)
    botocore.auth.SigV4Auth(credentials, "bedrock-agentcore", "us-east-1").add_auth(request)
    return dict(request.headers)


@contextlib.contextmanager
def running_server(data_dir: Path, **overrides: Any) -> Iterator[Server]:
    """A runtime server on `data_dir` (kept afterwards) with `ServerConfig` overrides, stopped on exit.

    The admin key is in the environment only while the app is built, so module-scoped servers
    work too. Starting another one on the same data dir and store is a server restart.
    """
    options: dict[str, Any] = {"min_lifecycle_seconds": 1, "warm_pool": 0, "reap_interval": 0.2}
    options.update(overrides)
    options.setdefault("port", free_port())  # known to the server: its workers' OTLP endpoint
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("AGENTCORE_ADMIN_ACCESS_KEY_ID", KEY_ID)
        environment.setenv("AGENTCORE_ADMIN_SECRET_ACCESS_KEY", SECRET)
        config = ServerConfig(data_dir=data_dir, **options)
        app = build_app(config)
    with serve_as_configured(app, config) as url:
        yield Server(url, data_dir, *clients(url))


@pytest.fixture
def short_data_dir() -> Iterator[Path]:
    """An empty data dir with a short path (worker sockets live under it), removed afterwards."""
    data_dir = Path(tempfile.mkdtemp(prefix="oacs-", dir="/tmp"))
    try:
        yield data_dir
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
