"""The WebSocket upgrade of ``/_ws`` through Tornado, and the hand-off to fazt's connection.

(The upgrades Tornado's handler gets: see ``handler.py``; plain ones are answered
without Tornado by ``direct_upgrade``.)

``RealtimeHandler.get_websocket_protocol()`` (Tornado's documented seam)
returns a ``RealtimeProtocol``. Tornado has then answered the HTTP request,
run ``prepare`` (fazt's 401 and 503 refusals) and its own upgrade checks (400,
403, 426). ``accept_connection`` writes the 101 response, takes the socket
from Tornado (``tornado_internals.take_socket``), builds the connection's
``WebSocketConnection``, lets the handler register it with the hub, and starts
its reader. Then it returns: Tornado's request Task ends, and with it every
coroutine of the upgrade. The connection lives on without a handler, a
request, an ``IOStream`` or a suspended coroutine: the event loop's read
callback and the hub's session hold it.
"""

from __future__ import annotations

import socket
import sys
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import tornado.websocket

from fazt.realtime.connection import WebSocketConnection
from fazt.realtime.tornado_internals import ServerProtocolBase, take_socket
from fazt.realtime.transport import WriteCoalescer

if TYPE_CHECKING:
    from asyncio import Future

#: The headers a version-13 upgrade must carry (as Tornado checks them).
_REQUIRED_HEADERS = ("Host", "Sec-Websocket-Key", "Sec-Websocket-Version")


class UpgradeHandler(Protocol):
    """What ``RealtimeProtocol`` needs of its handler beyond ``WebSocketHandler``."""

    async def connection_open(self, connection: WebSocketConnection) -> None:
        """The WebSocket is open: register ``connection`` (and ``attach`` it) or close it."""


class RealtimeProtocol(ServerProtocolBase):
    """The protocol object of one ``/_ws`` upgrade; see the module doc."""

    def __init__(
        self,
        handler: tornado.websocket.WebSocketHandler,
        *,
        max_message_bytes: int,
        queue_size: int,
        coalescer: WriteCoalescer,
    ) -> None:
        super().__init__(handler)
        self._max_message_bytes = max_message_bytes
        self._queue_size = queue_size
        self._coalescer = coalescer
        self.connection: WebSocketConnection | None = None

    async def accept_connection(self, handler: tornado.websocket.WebSocketHandler) -> None:
        headers = handler.request.headers
        if not all(headers.get(name) for name in _REQUIRED_HEADERS):
            handler.set_status(400)
            handler.finish("Missing/Invalid WebSocket headers")
            return
        key = headers["Sec-Websocket-Key"]
        handler.clear_header("Content-Type")
        handler.set_status(101)
        handler.set_header("Upgrade", "websocket")
        handler.set_header("Connection", "Upgrade")
        handler.set_header(
            "Sec-WebSocket-Accept", tornado.websocket.WebSocketProtocol13.compute_accept_value(key)
        )
        handler.finish()
        taken = take_socket(handler)
        taken.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = self.connection = WebSocketConnection(
            taken.socket,
            self._queue_size,
            self._coalescer,
            self._max_message_bytes,
            taken.unsent,
        )
        opened: UpgradeHandler = handler  # type: ignore[assignment]
        try:
            await opened.connection_open(connection)
        except Exception:
            handler.log_exception(*sys.exc_info())
            connection.abort()
            return
        finally:
            # The handler's work is done: nothing of it stays with the connection.
            handler.ws_connection = None
            self.connection = None
        connection.start(taken.unread)

    # -- the rest of Tornado's WebSocketProtocol ---------------------------------------------
    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if self.connection is not None:
            self.connection.close(code or 1000, reason or "")

    def is_closing(self) -> bool:
        return self.connection is None or self.connection.closing

    def write_message(
        self, message: str | bytes | dict[str, Any], binary: bool = False
    ) -> Future[None]:
        raise NotImplementedError("fazt writes through the session's Transport")

    def write_ping(self, data: bytes) -> NoReturn:
        raise NotImplementedError("the realtime heartbeat is the JSON ping/pong")

    @property
    def selected_subprotocol(self) -> str | None:
        return None  # fazt offers no subprotocol

    def set_nodelay(self, x: bool) -> None:
        """TCP_NODELAY is always on for these connections."""
