"""`agentcore invoke --ws`: send the payload over the agent's WebSocket, print each message back."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException
from websockets.sync.client import connect

from open_agentcore.auth import sign_headers

from .errors import CliError
from .project import AgentState
from .remote import RuntimeServer, runtime_path, tls_verification


def talk(
    state: AgentState, local: bool, payload: bytes, headers: dict[str, str], token: str | None,
    args: argparse.Namespace,
) -> int:  # fmt: skip
    """Connect, send `payload` as one text message, print messages until the agent closes."""
    headers = {name: value for name, value in headers.items() if name.lower() != "content-type"}
    if local:
        url = f"ws://127.0.0.1:{state.local_port}/ws"
    else:
        server = RuntimeServer.connect()
        http_url = server.url + runtime_path(state.runtime_arn or "") + "/ws"
        url = "ws" + http_url.removeprefix("http")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        else:
            signed = sign_headers("GET", http_url, server.credential, server.region, b"", headers)
            headers = {name: value for name, value in signed.items() if name != "host"}
    deadline = time.monotonic() + args.timeout if args.timeout else None
    secure = tls_verification("https" + url[3:]) if url.startswith("wss://") else None
    try:
        with connect(
            url, additional_headers=headers, open_timeout=60, max_size=None, ssl=secure
        ) as websocket:
            websocket.send(payload.decode())
            while True:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    message = websocket.recv(timeout=remaining)
                except TimeoutError:
                    print(f"(no more messages within --timeout {args.timeout:g}s; closing)")
                    return 0
                _print(message, args)
    except ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd else 1006
        if code in (1000, 1001):
            return 0
        reason = closed.rcvd.reason if closed.rcvd else "the connection dropped"
        raise CliError(
            f"the agent closed the WebSocket with code {code}: {reason or 'no reason given'}"
        ) from None
    except InvalidStatus as refused:
        body = refused.response.body.decode(errors="replace") if refused.response.body else ""
        kind = refused.response.headers.get("x-amzn-errortype", "")
        detail = _message(body)
        raise CliError(
            f"the WebSocket was refused with HTTP {refused.response.status_code}"
            + (f": {kind}: {detail}" if kind else (f": {detail}" if detail else ""))
        ) from None
    except (InvalidURI, WebSocketException, OSError) as error:
        raise CliError(f"could not open the WebSocket at {url}: {error}") from None


def _print(message: str | bytes, args: argparse.Namespace) -> None:
    if isinstance(message, bytes):
        print(message.hex() if not args.raw else message, flush=True)
        return
    print(message, flush=True)


def _message(body: str) -> str:
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        return body.strip()[:300]
    return str(parsed.get("message", body)) if isinstance(parsed, dict) else body.strip()[:300]


__all__ = ["talk"]
