"""What the attack suites share: a server with two runtimes and keys scoped to one, and raw requests.

Attacks need requests exactly as written (double encodings, dot segments, odd methods), so they go
out through `http.client`, which sends a path byte for byte; they are signed with botocore, as
boto3 would sign them.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import botocore.auth
import botocore.awsrequest
import botocore.credentials

from tests.server.conftest import KEY_ID, SECRET, Server, running_server

ACCOUNT = "000000000000"
REGION = "us-east-1"

# Answers every protocol's worker path with the runtime it runs in, so a test sees who answered.
WHOAMI_AGENT = """
import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

RUNTIME = os.environ["AGENTCORE_RUNTIME_ARN"]


async def whoami(request):
    return JSONResponse({"runtime": RUNTIME, "session": os.environ.get("AGENTCORE_SESSION_ID")})


async def card(request):
    return JSONResponse({"name": "whoami", "runtime": RUNTIME})


async def ping(request):
    return JSONResponse({"status": "Healthy", "time_of_last_update": 0})


async def talk(websocket):
    await websocket.accept()
    await websocket.send_json({"runtime": RUNTIME})
    await websocket.close()


app = Starlette(
    routes=[
        Route("/", whoami, methods=["POST"]),
        Route("/invocations", whoami, methods=["POST"]),
        Route("/.well-known/agent-card.json", card),
        Route("/ping", ping),
        WebSocketRoute("/ws", talk),
    ]
)
"""


@dataclass(frozen=True)
class Key:
    access_key_id: str
    secret: str


ADMIN = Key(KEY_ID, SECRET)


@dataclass
class Target:
    """A running server with runtimes `a` and `b`, and access keys by name."""

    server: Server
    runtimes: dict[str, dict[str, Any]]
    keys: dict[str, Key] = field(default_factory=dict)

    def id(self, name: str) -> str:
        return str(self.runtimes[name]["agentRuntimeId"])

    def arn(self, name: str) -> str:
        return str(self.runtimes[name]["agentRuntimeArn"])

    def add_key(self, name: str, *statements: dict[str, Any]) -> Key:
        """A new key for principal `name`, made as an operator makes one: through the admin API."""
        policy = {"Version": "2012-10-17", "Statement": list(statements)} if statements else None
        body = json.dumps({"principal": name, **({"policy": policy} if policy else {})}).encode()
        reply = raw_request(self.server.url, "POST", "/_agentcore/access-keys", body, key=ADMIN)
        assert reply.status == 200, reply.body
        key = Key(reply.json()["accessKeyId"], reply.json()["secretAccessKey"])
        self.keys[name] = key
        return key


@contextlib.contextmanager
def short_data_dir() -> Iterator[Path]:
    """An empty data dir with a short path (worker sockets live under it), removed afterwards."""
    data_dir = Path(tempfile.mkdtemp(prefix="oacs-", dir="/tmp"))
    try:
        yield data_dir
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def allow(actions: list[str], *runtime_ids: str) -> dict[str, Any]:
    resources = [f"arn:aws:bedrock-agentcore:{REGION}:{ACCOUNT}:runtime/{rid}" for rid in runtime_ids]
    return {"Effect": "Allow", "Action": actions, "Resource": resources}


@contextlib.contextmanager
def two_runtimes(data_dir: Path, protocol: str = "A2A", **server: Any) -> Iterator[Target]:
    """A server with two deployed whoami runtimes, `a` and `b`."""
    with running_server(data_dir, **server) as running:
        runtimes = {
            name: running.deploy(
                {"agent.py": WHOAMI_AGENT}, f"whoami_{name}",
                protocolConfiguration={"serverProtocol": protocol},
            )
            for name in ("a", "b")
        }  # fmt: skip
        yield Target(running, runtimes)


def signed_headers(
    key: Key, method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None,
    region: str = REGION,
) -> dict[str, str]:  # fmt: skip
    """Headers of a request signed with `key` for `url` (its path exactly as it will be sent)."""
    request = botocore.awsrequest.AWSRequest(method=method, url=url, data=body, headers=headers or {})
    credentials = botocore.credentials.Credentials(key.access_key_id, key.secret)
    botocore.auth.SigV4Auth(credentials, "bedrock-agentcore", region).add_auth(request)
    return dict(request.headers)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def error_type(self) -> str | None:
        return self.headers.get("x-amzn-errortype")

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(
    base_url: str, method: str, raw_path: str, body: bytes = b"", key: Key | None = None,
    headers: dict[str, str] | None = None, timeout: float = 60,
) -> Reply:  # fmt: skip
    """Send `raw_path` byte for byte, signed with `key` when given."""
    all_headers = dict(headers or {})
    if key is not None:
        all_headers = signed_headers(key, method, base_url + raw_path, body, all_headers)
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        connection.request(method, raw_path, body=body, headers=all_headers)
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def encoded(arn: str) -> str:
    """An ARN as botocore puts it in a path: one segment, `:` and `/` percent-encoded."""
    return quote(arn, safe="")
