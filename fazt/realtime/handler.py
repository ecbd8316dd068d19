"""The ``/_ws`` Tornado handler: a thin adapter between a socket and the realtime core.

It decides only what must be decided at the HTTP upgrade (401 for a bad
``?token=``, 503 over capacity or before the plugin started, accept-then-4001
for an unknown app), builds the connection's fast transport, and forwards
frames and the close through its ``Endpoint``. Whatever it needs from Tornado
beyond the public API comes from ``tornado_internals``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

import tornado.websocket

from fazt.kernel.app import App
from fazt.kernel.tokens import TokenError
from fazt.realtime import protocol
from fazt.realtime.endpoint import Endpoint
from fazt.realtime.session import Session
from fazt.realtime.tornado_internals import (
    open_handler_class,
    shed_request_state,
    upgrade_refusal,
    websocket_protocol,
)
from fazt.realtime.transport import TornadoTransport

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from fazt.kernel.kernel import Kernel

log = logging.getLogger("fazt.realtime")
gen_log = logging.getLogger("tornado.general")

#: ``max_message_size`` before the app is known (unknown app: closed at once anyway).
_UNKNOWN_APP_MAX_BYTES: Final = 1024

#: Our own attributes used only during the upgrade: dropped once the WebSocket is open.
_UPGRADE_ONLY: Final = ("kernel", "claims")


class RealtimeHandler(tornado.websocket.WebSocketHandler):
    """One WebSocket connection of one app."""

    def initialize(self, kernel: Kernel, app: App | None, endpoint: Endpoint | None) -> None:
        self.kernel = kernel
        self.app = app
        self.endpoint = endpoint
        self.claims: dict[str, Any] | None = None
        self.session: Session | None = None
        self.transport: TornadoTransport | None = None

    # -- the upgrade ---------------------------------------------------------------
    async def prepare(self) -> None:
        if self.app is None:
            return  # accepted, then closed 4001 in open()
        endpoint = self.endpoint
        if endpoint is None:
            self._refuse(503, "over_capacity", "realtime is not started")
            return
        token = self.get_query_argument("token", None)
        if token is not None:
            try:
                self.claims = endpoint.verify_token(token, self.app)
            except TokenError as error:
                self._refuse(401, "unauthorized", str(error))
                return
        if not await endpoint.admit(self.app):
            self._refuse(503, "over_capacity", "realtime connection limit reached")

    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Tornado's ``WebSocketHandler.get``, minus the locals it keeps alive.

        The suspended ``get`` frame lives as long as the connection; Tornado's
        version holds its ``Connection``-header list and iterator for that whole
        time. Here every check runs in ``upgrade_refusal`` (its locals die on
        return), so the frame keeps nothing but ``self``. Same checks, same
        answers (400, 403, 426).
        """
        self.open_args = args
        self.open_kwargs = kwargs
        refusal = upgrade_refusal(self)
        if refusal is not None:
            status, text = refusal
            self.set_status(status)
            self.finish(text)
            gen_log.debug(text)
            return
        self.ws_connection = websocket_protocol(self)
        if self.ws_connection:
            await self.ws_connection.accept_connection(self)
        else:
            self.set_status(426, "Upgrade Required")
            self.set_header("Sec-WebSocket-Version", "13")

    def _refuse(self, status: int, code: str, text: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish({"error": text, "code": code})

    def check_origin(self, origin: str) -> bool:
        # Auth is by explicit token, never by cookie: any origin may connect.
        return True

    @property
    def ping_interval(self) -> float | None:
        return None  # the JSON ping/pong of the realtime heartbeat replaces it

    @property
    def max_message_size(self) -> int:
        if self.app is None or self.endpoint is None:
            return _UNKNOWN_APP_MAX_BYTES
        return self.endpoint.max_message_bytes(self.app)

    def get_compression_options(self) -> dict[str, Any] | None:
        return None  # compression off: frames are built once and shared

    # -- the connection ------------------------------------------------------------
    async def open(self, *args: str, **kwargs: str) -> None:
        endpoint = self.endpoint
        if self.app is None or endpoint is None:
            self.close(
                protocol.CLOSE_UNKNOWN_APP, protocol.close_reason(protocol.CLOSE_UNKNOWN_APP)
            )
            return
        self.set_nodelay(True)
        self.transport = TornadoTransport(self, endpoint.queue_size, endpoint.coalescer)
        self.session = await endpoint.connect(self.app, self.transport, self.claims)
        # After the upgrade nothing reads the request or response headers, query
        # arguments or UI modules again; with thousands of idle connections they
        # are most of what a connection costs (docs/memory.md).
        shed_request_state(self, OpenRealtimeHandler, _UPGRADE_ONLY)

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        session = self.session
        if session is None or self.endpoint is None:
            return None
        return self.endpoint.receive(session, message)

    def on_close(self) -> None:
        transport = self.transport
        if transport is not None:
            transport.mark_closed()
        session = self.session
        if session is not None and self.endpoint is not None:
            self.session = None
            self.endpoint.closed(session, self._ended_with(transport))
            self.endpoint.disconnected(session)

    def _ended_with(self, transport: TornadoTransport | None) -> int:
        """The close code of the connection: the one the server sent first, else the
        client's, else 1006 (no close frame either way)."""
        sent = transport.sent_close_code if transport is not None else None
        if sent is not None:
            return sent
        return self.close_code if self.close_code is not None else protocol.ABNORMAL_CLOSURE


#: A ``RealtimeHandler`` whose WebSocket is open: the class every connection
#: becomes after the upgrade (``tornado_internals.shed_request_state``).
OpenRealtimeHandler = open_handler_class(RealtimeHandler, {name: None for name in _UPGRADE_ONLY})
