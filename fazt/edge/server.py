"""The kernel's HTTP server: timeouts and a cap on connections still in their handshake.

``EdgeHTTPServer`` is Tornado's ``HTTPServer`` with three changes, each made
through Tornado's public extension points (``handle_stream``,
``start_request``, ``on_close``, ``add_sockets``, ``stop``, and the public
``HTTP1Connection.params``), never through a private name:

- **Header timeout.** The first request of a connection must have sent all its
  headers ``header_timeout_seconds`` after the connection was accepted, however
  slowly its bytes trickle in. Tornado reads a request's headers under one
  deadline (``HTTP1ConnectionParameters.header_timeout``, set from the request
  connection's ``params`` when it starts reading), which ``HTTPServer`` sets to
  its idle timeout for every request. Here the first request of each connection
  gets its own parameters with the header timeout; later requests on a
  keep-alive connection keep the idle timeout, which covers both the wait for
  the next request and the reading of its headers (Tornado reads them as one
  step).
- **Body timeout**: Tornado's ``body_timeout``, per request.
- **Pending cap.** A connection is *pending* from its accept until its first
  request's headers have arrived, or, when that request asks to upgrade (an
  ``Upgrade`` header, as ``/_ws`` does), until the upgrade is answered. At most
  ``max_pending_connections`` are pending; a connection accepted while the cap
  is full is closed at once, before any byte is read, unless the whole head of
  its first request has already arrived (``request_head_arrived`` peeks at the
  socket): such a connection has finished its headers, so it is served. The
  choice: connections already pending are never pushed out by newer ones, so a
  client that connected first keeps its chance until its own header timeout; a
  flood of slow connections costs one accept and one close each; and clients
  that send their request at once, as browsers and HTTP libraries do, are
  still served while the cap is full. Refusals are logged at most once per
  ``LOG_INTERVAL_SECONDS``.
- **Deferred accept.** Listening sockets get ``TCP_DEFER_ACCEPT`` (Linux), so
  a connection reaches fazt once its first bytes have arrived: silent
  connections wait in the kernel, and the peek above sees the request.
- **Direct upgrades.** With ``take_upgrade`` set, a new connection whose first
  request is a plain WebSocket upgrade that has arrived whole
  (``request_head.parse_upgrade_head``, on the peeked bytes) is offered to
  ``take_upgrade(connection, head)`` before Tornado sees it. When it answers
  True the connection is its own (it consumes the head and answers it);
  otherwise nothing was read and the connection is served as any other. A
  taken connection is never pending: its head has arrived.

Connections are accepted by ``fazt.edge.accept.AcceptLoop``, which pauses
instead of spinning when descriptors run out. The server does not terminate
TLS (fazt has no TLS settings; put a TLS proxy in front).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import tornado.httpserver
import tornado.httputil
import tornado.netutil
from tornado.http1connection import HTTP1Connection, HTTP1ServerConnection
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream

from fazt.config import KernelConfig
from fazt.edge.accept import LOG_INTERVAL_SECONDS, AcceptLoop
from fazt.edge.log_throttle import LogThrottle
from fazt.edge.request_head import RequestHead, parse_upgrade_head, peek_request

log = logging.getLogger("fazt.edge")

#: How much of a new connection's data the pending cap looks at, at most.
#: The listen backlog: connections the kernel queues before fazt accepts them.
#: Tornado's default of 128 overflows when thousands of clients reconnect at once
#: (after a restart), and each overflowed SYN costs the client a retransmit second;
#: Linux caps it at ``net.core.somaxconn``.
LISTEN_BACKLOG = 4096


def bind_listeners(port: int, address: str | None) -> list[socket.socket]:
    """The listening sockets for ``address:port``, with fazt's backlog."""
    return tornado.netutil.bind_sockets(port, address, backlog=LISTEN_BACKLOG)


PEEK_BYTES = 16 * 1024
#: The end of a request head, as Tornado finds it.
HEAD_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    """The ``http.*`` kernel config keys (defaults as in ``KernelConfig``)."""

    header_timeout_seconds: float = 10.0
    idle_connection_timeout_seconds: float = 60.0
    body_timeout_seconds: float = 30.0
    max_pending_connections: int = 1000

    @classmethod
    def from_config(cls, config: KernelConfig) -> EdgeSettings:
        return cls(
            header_timeout_seconds=config.http_header_timeout_seconds,
            idle_connection_timeout_seconds=config.http_idle_connection_timeout_seconds,
            body_timeout_seconds=config.http_body_timeout_seconds,
            max_pending_connections=config.http_max_pending_connections,
        )


#: Offered a new connection's upgrade head: True when it took the connection over.
TakeUpgrade = Callable[[socket.socket, RequestHead], bool]


class EdgeHTTPServer(tornado.httpserver.HTTPServer):
    """``HTTPServer(application, edge=EdgeSettings(...), take_upgrade=..., **tornado_kwargs)``;
    see the module doc.

    ``pending_connections`` is the number of pending connections now;
    ``refused_connections`` counts those closed because the cap was full.
    """

    def initialize(  # type: ignore[override]
        self,
        request_callback: tornado.httputil.HTTPServerConnectionDelegate
        | Callable[[tornado.httputil.HTTPServerRequest], None],
        *,
        edge: EdgeSettings | None = None,
        take_upgrade: TakeUpgrade | None = None,
        **kwargs: Any,
    ) -> None:
        settings = edge or EdgeSettings()
        if kwargs.get("ssl_options") is not None:
            raise ValueError("EdgeHTTPServer does not terminate TLS; put a TLS proxy in front")
        super().initialize(
            request_callback,
            idle_connection_timeout=settings.idle_connection_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            **kwargs,
        )
        self.edge = settings
        self._take_upgrade = take_upgrade
        # HTTPServer made conn_params with header_timeout = the idle timeout.
        self._first_request_params = copy.copy(self.conn_params)
        self._first_request_params.header_timeout = settings.header_timeout_seconds
        # Pending streams, in accept order -> whether their first request has started.
        self._pending: dict[IOStream, bool] = {}
        self._accept_loops: list[AcceptLoop] = []
        self._listening: list[socket.socket] = []
        self._refusal_log = LogThrottle(LOG_INTERVAL_SECONDS)
        self._edge_stopped = False
        self.refused_connections = 0

    @property
    def pending_connections(self) -> int:
        return len(self._pending)

    # -- listening -------------------------------------------------------------------
    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        for sock in sockets:
            defer_accept(sock, self.edge.header_timeout_seconds)
            loop = AcceptLoop(sock, self._accepted)
            loop.start()
            self._accept_loops.append(loop)
            self._listening.append(sock)

    def stop(self) -> None:
        """Stop accepting and close the listening sockets (open connections stay)."""
        if self._edge_stopped:
            return
        self._edge_stopped = True
        for loop in self._accept_loops:
            loop.stop()
        for sock in self._listening:
            sock.close()

    def _accepted(self, connection: socket.socket, address: Any) -> None:
        arrived: bytes | None = None
        if self._take_upgrade is not None:
            arrived = peek_request(connection, PEEK_BYTES)
            head = parse_upgrade_head(arrived, address)
            if head is not None and self._take_upgrade(connection, head):
                return
        if len(self._pending) >= self.edge.max_pending_connections:
            if arrived is None:
                arrived = peek_request(connection, PEEK_BYTES)
            if HEAD_END.search(arrived) is None:
                self._refuse(connection)
                return
        stream = IOStream(
            connection, max_buffer_size=self.max_buffer_size, read_chunk_size=self.read_chunk_size
        )
        self.handle_stream(stream, address)

    def _refuse(self, connection: socket.socket) -> None:
        """Close a new connection the pending cap has no room for (logged, throttled)."""
        connection.close()
        self.refused_connections += 1
        held_back = self._refusal_log.event(now=IOLoop.current().time())
        if held_back is not None:
            log.warning(
                "http: %d connections have not finished their headers or upgrade "
                "(http.maxPendingConnections); closing new connections at once "
                "(%d more closed since the last line like this)",
                len(self._pending),
                held_back,
            )

    # -- the connection's first request --------------------------------------------------
    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        self._pending[stream] = False
        super().handle_stream(stream, address)

    def start_request(
        self, server_conn: object, request_conn: tornado.httputil.HTTPConnection
    ) -> tornado.httputil.HTTPMessageDelegate:
        delegate = super().start_request(server_conn, request_conn)
        stream = server_conn.stream if isinstance(server_conn, HTTP1ServerConnection) else None
        started = self._pending.get(stream) if stream is not None else None
        if started is None:
            return delegate
        assert stream is not None
        if started:
            # An upgrade request was answered without taking the connection over
            # (refused, e.g. 401): this is its next request, so it is no longer pending.
            del self._pending[stream]
            return delegate
        self._pending[stream] = True
        if isinstance(request_conn, HTTP1Connection):
            request_conn.params = self._first_request_params
        return _FirstRequestWatch(delegate, lambda upgrade: self._headers_done(stream, upgrade))

    def _headers_done(self, stream: IOStream, upgrade: bool) -> None:
        if not upgrade:
            self._pending.pop(stream, None)

    def on_close(self, server_conn: object) -> None:
        if isinstance(server_conn, HTTP1ServerConnection):
            self._pending.pop(server_conn.stream, None)
        super().on_close(server_conn)


def defer_accept(sock: socket.socket, seconds: float) -> None:
    """Ask the OS to hand over a connection only once it has data (Linux TCP_DEFER_ACCEPT).

    A client that connects and sends nothing then waits in the kernel, holding
    no descriptor of ours, for about ``seconds``; HTTP clients always speak
    first, so nothing else changes. Where the option does not exist, nothing
    is done.
    """
    option = getattr(socket, "TCP_DEFER_ACCEPT", None)
    if option is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, option, max(1, math.ceil(seconds)))


def request_head_arrived(connection: socket.socket) -> bool:
    """Has the whole head of the first request already arrived? (Peeks; reads nothing.)"""
    return HEAD_END.search(peek_request(connection, PEEK_BYTES)) is not None


class _FirstRequestWatch(tornado.httputil.HTTPMessageDelegate):
    """Passes everything to ``delegate``; tells ``on_headers(upgrade)`` when headers arrive."""

    __slots__ = ("_delegate", "_on_headers")

    def __init__(
        self,
        delegate: tornado.httputil.HTTPMessageDelegate,
        on_headers: Callable[[bool], None],
    ) -> None:
        self._delegate = delegate
        self._on_headers = on_headers

    def headers_received(
        self,
        start_line: tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine,
        headers: tornado.httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        self._on_headers("Upgrade" in headers)
        return self._delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self._delegate.data_received(chunk)

    def finish(self) -> None:
        self._delegate.finish()

    def on_connection_close(self) -> None:
        self._delegate.on_connection_close()
