"""`agentcore invoke --ws`: a conversation over the agent's WebSocket.

The payload is the first message; then each line of standard input is one more (when input is piped,
or with `--interactive`, which shows a prompt and waits for the agent's answer before the next).
It ends when the agent closes, after `--messages N` messages from the agent, or at the end of
input once the agent has sent back as many messages as it was sent, whichever comes first.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

from .errors import CliError
from .payloads import PayloadError, encode_payload

if TYPE_CHECKING:
    from websockets.sync.client import ClientConnection

    from .invoke import Target

PROMPT = "> "


def talk(
    target: Target, payload: bytes | None, headers: dict[str, str], token: str | None,
    args: argparse.Namespace,
) -> int:  # fmt: skip
    """Hold the conversation `args` asks for; 0 when it ends as asked, a `CliError` otherwise."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException
    from websockets.sync.client import connect

    from .invoke import SESSION_HEADER

    session_id = headers.get(SESSION_HEADER, "")
    url, headers, secure = _connection(target, headers, token)
    interactive = args.interactive or (payload is None and sys.stdin.isatty())
    source = sys.stdin if interactive or not sys.stdin.isatty() else None
    try:
        with connect(
            url, additional_headers=headers, open_timeout=60, max_size=None, ssl=secure
        ) as websocket:
            conversation = Conversation(websocket, args, interactive)
            with contextlib.suppress(ConnectionClosed):  # the end of the conversation, either side
                conversation.run(payload, source)
            if conversation.error is not None:
                raise conversation.error
            conversation.finish(session_id)
            closed = websocket.close_code
            if closed not in (None, 1000, 1001) and not conversation.we_closed:
                reason = websocket.close_reason or "no reason given"
                raise CliError(f"the agent closed the WebSocket with code {closed}: {reason}")
            return 0
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


class Conversation:
    """Messages out (the payload, then input lines, sent by a reader thread) and messages in."""

    def __init__(self, websocket: ClientConnection, args: argparse.Namespace, interactive: bool) -> None:
        self.websocket = websocket
        self.raw: bool = args.raw
        self.output: str = args.output
        self.limit: int | None = args.messages
        self.timeout: float | None = args.timeout
        self.interactive = interactive
        self.received: list[Any] = []  # kept for --output json
        self.count = 0  # messages received
        self.sent = 0
        self.error: CliError | None = None
        self.we_closed = False
        self._state = threading.Condition()
        self._input_done = False

    def run(self, payload: bytes | None, source: TextIO | None) -> None:
        """Send the payload, start reading `source`, print what arrives until the end condition."""
        if payload is not None:
            self._send(payload.decode())
        if source is None:
            self._end_of_input()
        else:
            threading.Thread(target=self._feed, args=(source,), daemon=True).start()
        deadline = time.monotonic() + self.timeout if self.timeout else None
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                message = self.websocket.recv(timeout=remaining)
            except TimeoutError:
                print(f"(no more messages within --timeout {self.timeout:g}s; closing)", file=sys.stderr)
                self._close()
                return
            self._show(message)
            with self._state:
                self.count += 1
                self._state.notify_all()
                done = self._input_done and self._answered()
            if self.limit is not None and self.count >= self.limit:
                self._close()
                return
            if done and not self.we_closed:
                # Then drain: what the agent sent before it saw our close is still printed.
                self._close()

    def finish(self, session_id: str) -> None:
        if self.output == "json":
            print(json.dumps({"sessionId": session_id, "messages": self.received}), flush=True)

    def _feed(self, source: TextIO) -> None:
        """The reader thread: one message per line of `source`, until it ends or the socket closes."""
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                if self.interactive:
                    print(PROMPT, end="", file=sys.stderr, flush=True)
                line = source.readline()
                if not line:
                    break
                text = line.removesuffix("\n")
                try:
                    body = encode_payload(text, self.raw)
                except PayloadError as error:
                    if self.interactive:
                        print(f"agentcore: {error}", file=sys.stderr, flush=True)
                        continue
                    self.error = error
                    self._close()
                    return
                self._send(body.decode())
                if self.interactive:
                    self._wait_for_answer()
        except ConnectionClosed:
            return
        if self.interactive:
            print(file=sys.stderr, flush=True)
        self._end_of_input()

    def _send(self, text: str) -> None:
        with self._state:
            self.sent += 1
        self.websocket.send(text)

    def _answered(self) -> bool:
        """Every message sent has had one back (with --messages N: N have come back)."""
        return self.count >= self.sent if self.limit is None else self.count >= self.limit

    def _end_of_input(self) -> None:
        with self._state:
            self._input_done = True
            done = self._answered()
        if done:
            self._close()

    def _wait_for_answer(self) -> None:
        from websockets.protocol import State

        with self._state:
            while self.count < self.sent and self.websocket.state is State.OPEN:
                self._state.wait(0.5)  # rechecks the state: the agent may close instead of answering

    def _close(self) -> None:
        self.we_closed = True
        self.websocket.close()

    def _show(self, message: str | bytes) -> None:
        if self.output == "json":
            self.received.append(_parse(message) if isinstance(message, str) else message.hex())
        elif self.output == "raw" and isinstance(message, bytes):
            sys.stdout.buffer.write(message)
            sys.stdout.buffer.flush()
        else:
            print(message.hex() if isinstance(message, bytes) else message, flush=True)


def _connection(
    target: Target, headers: dict[str, str], token: str | None
) -> tuple[str, dict[str, str], Any]:
    """The ws:// URL, the headers (signed for the runtime server) and the TLS context."""
    from open_agentcore.auth import sign_headers

    from .remote import RuntimeServer, runtime_path, tls_verification

    headers = {name: value for name, value in headers.items() if name.lower() != "content-type"}
    if target.local_url is not None:
        return "ws" + target.local_url.removeprefix("http") + "/ws", headers, None
    server = RuntimeServer.connect()
    http_url = server.url + runtime_path(target.runtime_arn or "") + "/ws"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    else:
        signed = sign_headers("GET", http_url, server.credential, server.region, b"", headers)
        headers = {name: value for name, value in signed.items() if name != "host"}
    url = "ws" + http_url.removeprefix("http")
    secure = tls_verification(http_url) if http_url.startswith("https://") else None
    return url, headers, secure


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _message(body: str) -> str:
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        return body.strip()[:300]
    return str(parsed.get("message", body)) if isinstance(parsed, dict) else body.strip()[:300]


__all__ = ["Conversation", "talk"]
