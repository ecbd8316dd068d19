"""The ``/_ws`` Tornado handler: a thin adapter between a socket and the hub.

It decides only what must be decided at the HTTP upgrade (401 for a bad
``?token=``, 503 over capacity, accept-then-4001 for an unknown app), builds
the connection's fast transport, and forwards frames and the close to the hub.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

import tornado.web
import tornado.websocket

from fazt.kernel.app import App
from fazt.kernel.tokens import TokenError
from fazt.realtime import protocol
from fazt.realtime.session import Session
from fazt.realtime.slim import NO_HEADERS, slim_request, slim_stream
from fazt.realtime.transport import TornadoTransport

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from fazt.kernel.kernel import Kernel
    from fazt.realtime.plugin import RealtimePlugin

log = logging.getLogger("fazt.realtime")
gen_log = logging.getLogger("tornado.general")

#: ``max_message_size`` before the app is known (unknown app: closed at once anyway).
_UNKNOWN_APP_MAX_BYTES = 1024


class RealtimeHandler(tornado.websocket.WebSocketHandler):
    """One WebSocket connection of one app."""

    def initialize(self, kernel: Kernel, app: App | None, plugin: RealtimePlugin) -> None:
        self.kernel = kernel
        self.app = app
        self.plugin = plugin
        self.claims: dict[str, Any] | None = None
        self.session: Session | None = None
        self.transport: TornadoTransport | None = None

    # -- the upgrade ---------------------------------------------------------------
    async def prepare(self) -> None:
        if self.app is None:
            return  # accepted, then closed 4001 in open()
        hub = self.plugin.hub
        token = self.get_query_argument("token", None)
        if token is not None:
            try:
                self.claims = self.kernel.tokens.verify(token, self.app)
            except TokenError as error:
                self._refuse(401, "unauthorized", str(error))
                return
        if not await hub.admit(self.app):
            self._refuse(503, "over_capacity", "realtime connection limit reached")

    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Tornado's ``WebSocketHandler.get``, minus the locals it keeps alive.

        The suspended ``get`` frame lives as long as the connection; Tornado's
        version holds its ``Connection``-header list and iterator for that whole
        time. Here every check runs in ``_upgrade_refusal`` (its locals die on
        return), so the frame keeps nothing but ``self``. Same checks, same
        answers (400, 403, 426).
        """
        self.open_args = args
        self.open_kwargs = kwargs
        refusal = self._upgrade_refusal()
        if refusal is not None:
            status, text = refusal
            self.set_status(status)
            self.finish(text)
            gen_log.debug(text)
            return
        self.ws_connection = self.get_websocket_protocol()
        if self.ws_connection:
            await self.ws_connection.accept_connection(self)
        else:
            self.set_status(426, "Upgrade Required")
            self.set_header("Sec-WebSocket-Version", "13")

    def _upgrade_refusal(self) -> tuple[int, str] | None:
        """Why the upgrade request is refused, as Tornado words it, or None."""
        headers = self.request.headers
        if headers.get("Upgrade", "").lower() != "websocket":
            return 400, 'Can "Upgrade" only to "WebSocket".'
        tokens = [part.strip().lower() for part in headers.get("Connection", "").split(",")]
        if "upgrade" not in tokens:
            return 400, '"Connection" must be "Upgrade".'
        error = self._check_cross_origin(self.check_origin)
        if error is not None:
            return 403, "Cross origin websockets not allowed"
        return None

    def _refuse(self, status: int, code: str, text: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish({"error": text, "code": code})

    def check_origin(self, origin: str) -> bool:
        # Auth is by explicit token, never by cookie: any origin may connect.
        return True

    @property
    def ping_interval(self) -> float | None:
        return None  # the JSON ping/pong of the shared heartbeat replaces it

    @property
    def max_message_size(self) -> int:
        if self.app is None:
            return _UNKNOWN_APP_MAX_BYTES
        return self.plugin.hub.limits_for(self.app).max_message_bytes

    def get_compression_options(self) -> dict[str, Any] | None:
        return None  # compression off: frames are built once and shared

    # -- the connection ------------------------------------------------------------
    async def open(self, *args: str, **kwargs: str) -> None:
        if self.app is None:
            self.close(protocol.CLOSE_UNKNOWN_APP, protocol.CLOSE_REASONS[4001])
            return
        self.set_nodelay(True)
        self.transport = TornadoTransport(
            self, self.plugin.outgoing_queue_size, self.plugin.coalescer
        )
        self.session = await self.plugin.hub.connect(self.app, self.transport, self.claims)
        self._shed_request_state()

    def _shed_request_state(self) -> None:
        """Drop per-request state Tornado keeps for the whole life of a WebSocket.

        After the upgrade nothing reads the request or response headers, query
        arguments or UI modules again; with thousands of idle connections they
        are most of what a connection costs (``fazt/realtime/slim.py``,
        ``docs/memory.md``). The handler then becomes an ``OpenRealtimeHandler``,
        whose class holds Tornado's post-upgrade method guards and constant
        flags, and its instance dict is rebuilt with only what differs per
        connection.
        """
        slim_request(self.request)
        ws = self.ws_connection
        if ws is not None and ws.stream is not None:
            slim_stream(ws.stream)
        state = self.__dict__
        for name in _DROPPED_AFTER_UPGRADE:
            state.pop(name, None)
        for name, value in _OPEN_DEFAULTS.items():
            # Only a value equal to the class default goes: if Tornado changes
            # what it leaves behind, the instance simply keeps its own.
            if name in state and state[name] is value:
                del state[name]
        self.__class__ = OpenRealtimeHandler
        self.__dict__ = dict(state)

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        session = self.session
        if session is None:
            return None
        return self.plugin.hub.handle(session, message)

    def on_close(self) -> None:
        if self.transport is not None:
            self.transport.mark_closed()
        session = self.session
        if session is not None:
            self.session = None
            self.plugin.hub.spawn(self.plugin.hub.disconnect(session))


def _not_after_upgrade(*args: Any, **kwargs: Any) -> None:
    # The same guard Tornado's _detach_stream installs per instance.
    raise RuntimeError("Method not supported for Web Sockets")


#: Read by nothing after the upgrade (or only behind the guards below): dropped
#: from the instance, the class attributes of OpenRealtimeHandler stand in.
_DROPPED_AFTER_UPGRADE: Final = (
    # Tornado's _detach_stream guards, moved to the class.
    "write",
    "redirect",
    "set_header",
    "set_cookie",
    "set_status",
    "flush",
    "finish",
    # Response and routing state used only by the guarded methods or before open().
    "_headers",
    "_write_buffer",
    "_transforms",
    "path_args",
    "path_kwargs",
    "open_args",
    "open_kwargs",
    "ui",
    # Ours, used only during the upgrade.
    "kernel",
    "claims",
)

#: Flags whose value after the upgrade is the same on every connection.
_OPEN_DEFAULTS: Final[dict[str, object]] = {
    "_auto_finish": True,
    "_finished": True,
    "_headers_written": True,
    "_prepared_future": None,
    "_status_code": 101,
    "_on_close_called": False,
    "close_code": None,
    "close_reason": None,
}


class OpenRealtimeHandler(RealtimeHandler):
    """A ``RealtimeHandler`` whose WebSocket is open (set by ``_shed_request_state``).

    Holds as class attributes what every open connection shares, so each
    instance dict keeps only its own references (request, connection, session,
    transport). Never routed to directly.
    """

    _headers = NO_HEADERS
    _write_buffer: list[bytes] = []  # never appended to: write() is guarded
    _transforms: list[tornado.web.OutputTransform] = []  # read only by the guarded flush()
    path_args: list[str] = []
    path_kwargs: dict[str, str] = {}
    open_args: tuple[str, ...] = ()
    open_kwargs: dict[str, str] = {}
    ui = None  # type: ignore[assignment]  # as Tornado's own _break_cycles leaves it
    kernel = None  # type: ignore[assignment]
    claims = None


for _name, _value in _OPEN_DEFAULTS.items():
    setattr(OpenRealtimeHandler, _name, _value)
for _name in _DROPPED_AFTER_UPGRADE[:7]:
    setattr(OpenRealtimeHandler, _name, _not_after_upgrade)
