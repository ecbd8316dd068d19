"""Every Tornado internal fazt touches, in one place: the seam between fazt and Tornado.

fazt's ``/_ws`` handler is a ``tornado.websocket.WebSocketHandler`` for the
upgrade only. Tornado answers the HTTP request, runs ``prepare`` (401 and 503
refusals) and its own upgrade checks (400, 403, 426); then
``get_websocket_protocol()`` hands the connection to fazt's protocol object
(``upgrade.RealtimeProtocol``), which writes the 101 response, takes the socket
from Tornado and runs the connection itself (``connection.py``): its own
reader, its own writer, no ``IOStream``, no coroutine per connection.

What that needs beyond Tornado's public API, all of it here:

* ``ServerProtocolBase``: a ``WebSocketProtocol`` for the server side only. The
  base class declares abstract methods that only Tornado's client uses, two of
  them private (``_process_server_headers``, ``_receive_frame_loop``); they are
  implemented here, refusing to run;
* ``take_socket``: after ``RequestHandler.detach()``, the socket leaves the
  ``IOStream`` without being closed. The stream's registration on the IOLoop
  is removed (``IOStream._state``), whatever it had already read past the HTTP
  request (``_read_buffer``, ``_read_buffer_size``) and not yet written (the
  end of the 101 response, ``_write_buffer``) is taken along, and the stream is
  marked closed (``_closed``) so that nothing in Tornado touches the socket
  again;
* ``websocket_mask``: Tornado's C unmasking (``tornado.util._websocket_mask``,
  which is ``tornado.speedups.websocket_mask`` when the extension is built).

Supported: Tornado 6.4, 6.5 and 6.6. Every name used here is pinned by
``tests/realtime/test_tornado_internals.py``, which fails first when a Tornado
release changes one of them.
"""

from __future__ import annotations

import socket
from typing import Any, Final, NamedTuple, NoReturn

import tornado.httputil
import tornado.iostream
import tornado.util
import tornado.websocket

#: ``websocket_mask(mask, data)``: ``data`` XOR the 4-byte ``mask``, in C when built.
websocket_mask: Final = tornado.util._websocket_mask


class ServerProtocolBase(tornado.websocket.WebSocketProtocol):
    """A ``WebSocketProtocol`` that only ever runs on the server side.

    Implements the abstract methods Tornado's base class declares for its
    WebSocket *client* (``WebSocketClientConnection``), which a server
    connection never calls.
    """

    def _process_server_headers(
        self, key: str | bytes, headers: tornado.httputil.HTTPHeaders
    ) -> NoReturn:
        raise NotImplementedError("a server connection does not read server headers")

    async def _receive_frame_loop(self) -> NoReturn:
        raise NotImplementedError("fazt reads frames with its own reader, not a loop")

    def start_pinging(self) -> None:
        """No protocol-level pings: the realtime heartbeat is the JSON ``ping``/``pong``."""


class TakenSocket(NamedTuple):
    """A socket taken from Tornado after the upgrade, with the bytes in flight."""

    socket: socket.socket
    #: What the stream had read past the HTTP request (the client's first frames).
    unread: bytes
    #: What the stream had not yet written (the end of the 101 response).
    unsent: bytes


def take_socket(handler: tornado.websocket.WebSocketHandler) -> TakenSocket:
    """Detach the handler's stream and take its socket, open, off Tornado's hands.

    Call it once the 101 response is finished. The ``IOStream`` is left marked
    closed and unregistered; its socket stays open and non-blocking, owned by
    the caller, who must close it.
    """
    stream = handler.detach()
    if not isinstance(stream, tornado.iostream.IOStream) or isinstance(
        stream, tornado.iostream.SSLIOStream
    ):
        raise TypeError("fazt's WebSocket connections need a plain TCP IOStream (no TLS)")
    if stream._state is not None:
        stream.io_loop.remove_handler(stream.socket)
        stream._state = None
    unread = bytes(stream._read_buffer[: stream._read_buffer_size])
    unsent = _drain(stream._write_buffer)
    sock = stream.socket
    # Closed, as far as Tornado knows: close() and every read or write is a no-op
    # or a StreamClosedError from now on, and the socket is never closed by it.
    stream._closed = True
    stream._read_buffer_size = 0
    return TakenSocket(sock, unread, unsent)


def _drain(write_buffer: Any) -> bytes:
    """Everything a Tornado ``_StreamBuffer`` still holds, removed from it."""
    parts = []
    while size := len(write_buffer):
        chunk = bytes(write_buffer.peek(size))
        parts.append(chunk)
        write_buffer.advance(len(chunk))
    return b"".join(parts)
