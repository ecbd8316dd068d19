"""Real socket pairs under Tornado ``IOStream``s, and a transport on one without a server."""

from __future__ import annotations

import socket
from typing import Any

import tornado.iostream

from fazt.realtime.transport import TornadoTransport, WriteCoalescer


class FakeWebSocket:
    """Just what ``tornado_internals.stream_parts`` reads from a ``WebSocketProtocol13``."""

    def __init__(self, stream: tornado.iostream.IOStream) -> None:
        self.stream = stream
        self.server_terminated = False


class FakeHandler:
    """A handler holding a ``FakeWebSocket``; records the close the transport asks for."""

    def __init__(self, stream: tornado.iostream.IOStream) -> None:
        self.ws_connection = FakeWebSocket(stream)
        self.closed_with: tuple[int, str] | None = None

    def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


def socket_stream(sndbuf: int = 4096) -> tuple[tornado.iostream.IOStream, socket.socket]:
    """An ``IOStream`` on one end of a socket pair with small buffers, and the other end."""
    server, client = socket.socketpair()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
    server.setblocking(False)
    return tornado.iostream.IOStream(server), client


def transport_on(stream: tornado.iostream.IOStream, queue: int) -> tuple[TornadoTransport, Any]:
    """A ``TornadoTransport`` writing to ``stream``, and its ``FakeHandler``."""
    handler = FakeHandler(stream)
    return TornadoTransport(handler, queue, WriteCoalescer()), handler  # type: ignore[arg-type]
