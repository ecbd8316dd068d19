"""The fast Tornado write path: the ``Transport`` (see ``session.py``) of a real connection.

The hub only ever calls ``send_frame(frame)`` with complete WebSocket frame
bytes (built once per broadcast by ``protocol.text_frame``), ``close`` and
``abort``. None of them blocks or raises: a transport that cannot deliver
closes itself and the handler later reports the disconnect to the hub.
"""

from __future__ import annotations

import socket
from typing import Final

import tornado.iostream
import tornado.websocket

from fazt.realtime.protocol import CLOSE_SLOW_CONSUMER

# Linux: a write to a reset peer returns EPIPE instead of raising SIGPIPE.
_MSG_NOSIGNAL: Final = getattr(socket, "MSG_NOSIGNAL", 0)


class TornadoTransport:
    """The fast write path over a Tornado WebSocket connection.

    When nothing is queued on the stream, a frame is written with one
    non-blocking ``socket.send(frame, MSG_NOSIGNAL)``: no Future, no callback,
    no Task. Whatever the kernel does not take (a short write, or
    ``EAGAIN``) is queued through ``IOStream.write`` and every later frame
    queues behind it until the stream's buffer drains, which keeps frames in
    order. TLS streams always use ``IOStream.write`` (the bytes must go through
    the SSL object).

    The queue is bounded: at most ``queue_size`` frames may wait in the stream
    buffer; the next one closes the connection with 4101 (slow consumer). So
    a connection's buffered bytes never exceed ``queue_size`` times the largest
    frame. A broken pipe or reset closes the stream; the handler then reports
    the disconnect to the hub from the IOLoop, never from inside this call, so
    the hub's subscriber sets never change during a fan-out loop.

    Relies on Tornado internals (``WebSocketProtocol.stream``,
    ``IOStream.socket`` and ``IOStream._write_buffer``), pinned by
    ``tests/realtime/test_transport.py``.
    """

    __slots__ = (
        "_buffer",
        "_closing",
        "_direct",
        "_handler",
        "_queue_size",
        "_queued",
        "_socket",
        "_stream",
        "_ws",
    )

    def __init__(self, handler: tornado.websocket.WebSocketHandler, queue_size: int) -> None:
        ws = handler.ws_connection
        if ws is None:
            raise RuntimeError("TornadoTransport needs an open WebSocket connection")
        stream = ws.stream
        if stream is None:
            raise RuntimeError("TornadoTransport needs an open WebSocket stream")
        self._handler = handler
        self._ws = ws
        self._stream = stream
        self._socket: socket.socket = stream.socket
        self._buffer = stream._write_buffer
        self._direct = not isinstance(stream, tornado.iostream.SSLIOStream)
        self._queue_size = queue_size
        self._queued = 0
        self._closing = False

    @property
    def queued(self) -> int:
        """Frames waiting in the stream buffer (0 while the direct path is in use)."""
        return self._queued

    @property
    def closing(self) -> bool:
        return self._closing

    def send_frame(self, frame: bytes) -> None:
        if self._closing or self._ws.server_terminated:
            return
        if self._direct and not len(self._buffer):
            try:
                sent = self._socket.send(frame, _MSG_NOSIGNAL)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._broken()
                return
            if sent == len(frame):
                return
            frame = frame[sent:]  # exactly the unsent tail, so order holds
        self._enqueue(frame)

    def _enqueue(self, frame: bytes) -> None:
        if self._queued >= self._queue_size:
            self.close(CLOSE_SLOW_CONSUMER, "slow consumer")
            return
        try:
            future = self._stream.write(frame)
        except tornado.iostream.StreamClosedError:
            self._closing = True
            return
        self._queued += 1
        future.add_done_callback(self._written)

    def _written(self, _future: object) -> None:
        # Write futures resolve in order, once their bytes reached the kernel.
        self._queued -= 1

    def _broken(self) -> None:
        """EPIPE/ECONNRESET: drop the stream; the handler's on_close follows later."""
        self._closing = True
        self._stream.close()

    def close(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        self._handler.close(code, reason)

    def abort(self) -> None:
        self._closing = True
        if not self._stream.closed():
            self._stream.close()

    def mark_closed(self) -> None:
        """The handler saw the connection close: stop writing."""
        self._closing = True
