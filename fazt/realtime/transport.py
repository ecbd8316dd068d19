"""The fast Tornado write path: the ``Transport`` (see ``session.py``) of a real connection.

The hub only ever calls ``send_frame(frame)`` with complete WebSocket frame
bytes (built once per broadcast by ``protocol.text_frame``), ``close`` and
``abort``. None of them blocks or raises: a transport that cannot deliver
closes itself and the handler later reports the disconnect to the hub.

Writes are coalesced per event-loop turn: ``send_frame`` only appends to the
connection's pending frames, and one ``WriteCoalescer`` callback at the end of
the turn writes each touched connection's frames with a single ``send``. When
several broadcasts land in one turn (bursts), a subscriber costs one system
call for all of them instead of one per message; a lone message costs one
deferred call. Every frame to a connection goes through the same pending list,
so the order of frames on a connection is exactly the order of ``send_frame``
calls.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Final

import tornado.iostream
import tornado.websocket

from fazt.realtime.protocol import CLOSE_SLOW_CONSUMER, close_reason
from fazt.realtime.tornado_internals import sent_close_code, stream_parts

# Linux: a write to a reset peer returns EPIPE instead of raising SIGPIPE.
_MSG_NOSIGNAL: Final = getattr(socket, "MSG_NOSIGNAL", 0)


class WriteCoalescer:
    """Flushes, once per event-loop turn, every transport written to during the turn.

    One per IOLoop (the plugin owns it). ``add`` is called by a transport on its
    first frame of a turn; the flush is scheduled with ``call_soon``, so it runs
    right after the callbacks already queued (no timer, no added wait).
    """

    __slots__ = ("_dirty", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._dirty: list[TornadoTransport] = []

    def add(self, transport: TornadoTransport) -> None:
        if not self._dirty:
            self._loop.call_soon(self.flush)
        self._dirty.append(transport)

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for transport in dirty:
            transport.flush()


class TornadoTransport:
    """The fast write path over a Tornado WebSocket connection.

    At the end of each loop turn the pending frames are joined (one shared
    frame needs no copy) and, when nothing is queued on the stream, written
    with one non-blocking ``socket.send(data, MSG_NOSIGNAL)``: no Future, no
    callback, no Task. Whatever the kernel does not take (a short write, or
    ``EAGAIN``) is queued through ``IOStream.write`` and every later write
    queues behind it until the stream's buffer drains, which keeps frames in
    order. TLS streams always use ``IOStream.write`` (the bytes must go through
    the SSL object).

    The queue is bounded: at most ``queue_size`` frames may wait in the stream
    buffer; a write that would exceed it closes the connection with 4101 (slow
    consumer). So a connection's buffered bytes never exceed ``queue_size``
    times the largest frame. A broken pipe or reset closes the stream; the
    handler then reports the disconnect to the hub from the IOLoop, never from
    inside this call, so the hub's subscriber sets never change during a
    fan-out loop.

    The Tornado internals it needs (the stream under the WebSocket, its socket
    and its write buffer) come from ``tornado_internals.stream_parts``.
    """

    __slots__ = (
        "_buffer",
        "_closing",
        "_coalescer",
        "_direct",
        "_handler",
        "_pending",
        "_queue_size",
        "_queued",
        "_socket",
        "_stream",
        "_ws",
    )

    def __init__(
        self,
        handler: tornado.websocket.WebSocketHandler,
        queue_size: int,
        coalescer: WriteCoalescer,
    ) -> None:
        parts = stream_parts(handler)
        self._handler = handler
        self._ws = parts.ws
        self._stream = parts.stream
        self._socket: socket.socket = parts.socket
        self._buffer = parts.write_buffer
        self._direct = parts.direct
        self._queue_size = queue_size
        self._queued = 0
        self._closing = False
        self._coalescer = coalescer
        #: Frames sent this turn: None, one frame, or a list of frames.
        self._pending: bytes | list[bytes] | None = None

    @property
    def queued(self) -> int:
        """Frames waiting in the stream buffer (0 while the direct path is in use)."""
        return self._queued

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def sent_close_code(self) -> int | None:
        """The close code the server sent first (fazt's own, or Tornado's 1009), or None."""
        return sent_close_code(self._ws)

    def send_frame(self, frame: bytes) -> None:
        if self._closing:
            return
        pending = self._pending
        if pending is None:
            self._pending = frame
            self._coalescer.add(self)
        elif isinstance(pending, bytes):
            self._pending = [pending, frame]
        else:
            pending.append(frame)
            if len(pending) >= self._queue_size:
                # A turn that sends a whole queue's worth (a tight broadcast loop)
                # writes now: the turn's buffer is bounded like the stream's.
                self.flush()

    def flush(self) -> None:
        """Write this turn's frames now (the coalescer calls it; so does ``close``)."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        if self._closing or self._ws.server_terminated:
            return  # never write after a close frame
        if isinstance(pending, bytes):
            data, count = pending, 1
        else:
            data, count = b"".join(pending), len(pending)
        if self._direct and not len(self._buffer):
            try:
                sent = self._socket.send(data, _MSG_NOSIGNAL)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._broken()
                return
            if sent == len(data):
                return
            data = data[sent:]  # exactly the unsent tail, so order holds
        self._enqueue(data, count)

    def _enqueue(self, data: bytes, count: int) -> None:
        if self._queued + count > self._queue_size:
            self.close(CLOSE_SLOW_CONSUMER, close_reason(CLOSE_SLOW_CONSUMER))
            return
        try:
            future = self._stream.write(data)
        except tornado.iostream.StreamClosedError:
            self._closing = True
            return
        self._queued += count
        if count == 1:
            future.add_done_callback(self._written_one)
        else:
            future.add_done_callback(lambda _future: self._written(count))

    def _written_one(self, _future: object) -> None:
        # Write futures resolve in order, once their bytes reached the kernel.
        self._queued -= 1

    def _written(self, count: int) -> None:
        self._queued -= count

    def _broken(self) -> None:
        """EPIPE/ECONNRESET: drop the stream; the handler's on_close follows later."""
        self._closing = True
        self._stream.close()

    def close(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self.flush()  # frames sent before the close (e.g. "kicked") go first
        if self._closing:
            return  # the flush found a slow consumer and closed with 4101
        self._closing = True
        self._handler.close(code, reason)

    def abort(self) -> None:
        self._closing = True
        self._pending = None
        if not self._stream.closed():
            self._stream.close()

    def mark_closed(self) -> None:
        """The handler saw the connection close: stop writing."""
        self._closing = True
        self._pending = None
