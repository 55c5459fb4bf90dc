"""uvicorn's WebSocket protocol as the runtime server serves it: a forgiving handshake, 1001 on shutdown.

AgentCore's own documentation passes the headers of `generate_ws_connection()` whole to the
`websockets` client, and Amazon's SDK returns Host, Upgrade, Connection and Sec-WebSocket-Key /
-Version among them: the library sends its own as well, so each arrives twice. The managed service
accepts that; websockets' handshake check answers 426 ("invalid Upgrade header: websocket,
websocket"). Here the first of each repeated handshake header wins: it is the client library's own,
and the key its Sec-WebSocket-Accept check expects. uvicorn closes open WebSockets with 1012
(service restart) when it stops; the managed service says 1001 (going away).
"""

from __future__ import annotations

from uvicorn._types import WebSocketDisconnectEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.datastructures import Headers
from websockets.http11 import Request

GOING_AWAY = 1001
SHUTDOWN_REASON = "the runtime server is shutting down"

# A client library writes these itself; a second copy comes from headers passed in whole.
_HANDSHAKE_HEADERS = ("Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version")


def keep_first_handshake_headers(headers: Headers) -> None:
    """Drop every repeat of a handshake header, keeping the first value sent."""
    for name in _HANDSHAKE_HEADERS:
        values = headers.get_all(name)
        if len(values) > 1:
            del headers[name]
            headers[name] = values[0]


class RuntimeWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol with the two differences above."""

    def handle_connect(self, event: Request) -> None:
        keep_first_handshake_headers(event.headers)
        super().handle_connect(event)

    def shutdown(self) -> None:
        if self.handshake_complete and self.initial_response is None and not self.close_sent:
            self.stop_keepalive()
            gone: WebSocketDisconnectEvent = {
                "type": "websocket.disconnect",
                "code": GOING_AWAY,
                "reason": SHUTDOWN_REASON,
            }
            self.queue.put_nowait(gone)
            self.conn.send_close(GOING_AWAY, SHUTDOWN_REASON)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()
            return
        super().shutdown()


__all__ = ["GOING_AWAY", "RuntimeWebSocketProtocol", "keep_first_handshake_headers"]
