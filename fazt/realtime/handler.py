"""The ``/_ws`` Tornado handler: the upgrade, then the hand-off to fazt's own connection.

Most upgrades never reach it: a plain one that arrived whole with its
connection is answered from the socket by ``direct_upgrade`` with the same
decisions. This handler answers the rest (escaped queries, refused tokens,
unknown apps, invalid upgrades, an upgrade on a keep-alive connection, ...).

It decides only what must be decided at the HTTP upgrade (401 for a bad
``?token=``, 503 over capacity or before the plugin started, accept-then-4001
for an unknown app). Tornado runs its own upgrade checks (400, 403, 426);
``get_websocket_protocol`` then returns fazt's ``upgrade.RealtimeProtocol``,
which takes the socket and calls ``connection_open`` here: the connection is
registered with the hub through the ``Endpoint``, and from then on frames go
from the connection's reader to the endpoint without this handler, which is
released with its request.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

import tornado.websocket

from fazt.kernel.app import App
from fazt.kernel.tokens import TokenError
from fazt.realtime import protocol
from fazt.realtime.connection import WebSocketConnection
from fazt.realtime.direct_upgrade import LIMIT_REACHED, OVER_CAPACITY
from fazt.realtime.endpoint import Endpoint
from fazt.realtime.transport import WriteCoalescer
from fazt.realtime.upgrade import RealtimeProtocol

if TYPE_CHECKING:
    from fazt.kernel.kernel import Kernel

log = logging.getLogger("fazt.realtime")

#: ``max_message_size`` before the app is known (unknown app: closed at once anyway).
_UNKNOWN_APP_MAX_BYTES: Final = 1024
#: Outgoing queue of a connection that is closed at once (unknown app, no endpoint).
_UNKNOWN_APP_QUEUE: Final = 4


class RealtimeHandler(tornado.websocket.WebSocketHandler):
    """The upgrade of one WebSocket connection of one app."""

    def initialize(self, kernel: Kernel, app: App | None, endpoint: Endpoint | None) -> None:
        self.kernel = kernel
        self.app = app
        self.endpoint = endpoint
        self.claims: dict[str, Any] | None = None

    # -- the upgrade ---------------------------------------------------------------
    async def prepare(self) -> None:
        if self.app is None:
            return  # accepted, then closed 4001 in connection_open()
        endpoint = self.endpoint
        if endpoint is None:
            self._refuse(503, OVER_CAPACITY, "realtime is not started")
            return
        token = self.get_query_argument("token", None)
        if token is not None:
            try:
                self.claims = endpoint.verify_token(token, self.app)
            except TokenError as error:
                self._refuse(401, "unauthorized", str(error))
                return
        if not await endpoint.admit(self.app):
            self._refuse(503, OVER_CAPACITY, LIMIT_REACHED)

    def _refuse(self, status: int, code: str, text: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish({"error": text, "code": code})

    def check_origin(self, origin: str) -> bool:
        # Auth is by explicit token, never by cookie: any origin may connect.
        return True

    @property
    def max_message_size(self) -> int:
        if self.app is None or self.endpoint is None:
            return _UNKNOWN_APP_MAX_BYTES
        return self.endpoint.max_message_bytes(self.app)

    def get_compression_options(self) -> dict[str, Any] | None:
        return None  # compression off: frames are built once and shared

    def get_websocket_protocol(self) -> RealtimeProtocol | None:
        if self.request.headers.get("Sec-WebSocket-Version") != "13":
            return None  # Tornado answers 426
        endpoint = self.endpoint
        if endpoint is None:
            queue_size, coalescer = _UNKNOWN_APP_QUEUE, WriteCoalescer()
        else:
            queue_size, coalescer = endpoint.queue_size, endpoint.coalescer
        return RealtimeProtocol(
            self,
            max_message_bytes=self.max_message_size,
            queue_size=queue_size,
            coalescer=coalescer,
        )

    # -- the connection ------------------------------------------------------------
    async def connection_open(self, connection: WebSocketConnection) -> None:
        """Register the open connection with the hub (``upgrade.RealtimeProtocol``)."""
        endpoint = self.endpoint
        if self.app is None or endpoint is None:
            connection.close(
                protocol.CLOSE_UNKNOWN_APP, protocol.close_reason(protocol.CLOSE_UNKNOWN_APP)
            )
            return
        session = await endpoint.connect(self.app, connection, self.claims)
        connection.attach(session, endpoint.receive, endpoint.disconnected, endpoint.inline)
