"""fazt's write path: the ``Transport`` (see ``session.py``) of a real connection.

The hub only ever calls ``send_frame(frame)`` with complete WebSocket frame
bytes (built once per broadcast by ``protocol.text_frame``), ``close`` and
``abort``. None of them blocks or raises: a transport that cannot deliver
closes itself and the connection later reports the disconnect to the hub.

Writes are coalesced per event-loop turn: ``send_frame`` only appends to the
connection's pending frames, and one ``WriteCoalescer`` callback at the end of
the turn writes each touched connection's frames with a single ``send``. When
several broadcasts land in one turn (bursts), a subscriber costs one system
call for all of them instead of one per message; a lone message costs one
deferred call. Every frame to a connection goes through the same pending list,
so the order of frames on a connection is exactly the order of ``send_frame``
calls (control frames too: a pong or a close frame never overtakes data).

The socket is fazt's own (taken from Tornado after the upgrade, see
``tornado_internals.take_socket``): no ``IOStream``, no Future, no callback per
write. When the kernel does not take everything, the unsent tail waits in the
connection's *backlog* and a write callback is registered on the event loop
until the backlog drains: one selector change per backpressure episode, never
one per frame.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections import deque
from typing import Final

from fazt.realtime.frames import close_frame
from fazt.realtime.protocol import ABNORMAL_CLOSURE, CLOSE_SLOW_CONSUMER, NO_STATUS, close_reason
from fazt.realtime.session import Transport

# Linux: a write to a reset peer returns EPIPE instead of raising SIGPIPE.
_MSG_NOSIGNAL: Final = getattr(socket, "MSG_NOSIGNAL", 0)

#: How much of the backlog one write call offers the kernel.
_WRITE_CHUNK: Final = 1 << 18


class WriteCoalescer:
    """Flushes, once per event-loop turn, every transport written to during the turn.

    One per event loop (the plugin owns it). ``add`` is called by a transport on
    its first frame of a turn; the flush is scheduled with ``call_soon``, so it
    runs right after the callbacks already queued (no timer, no added wait).
    """

    __slots__ = ("_dirty", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._dirty: list[SocketTransport] = []

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def add(self, transport: SocketTransport) -> None:
        if not self._dirty:
            self._loop.call_soon(self.flush)
        self._dirty.append(transport)

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for transport in dirty:
            transport.flush()


class SocketTransport:
    """The write side of one WebSocket connection over a non-blocking socket.

    At the end of each loop turn the pending frames are joined (one shared
    frame needs no copy) and, when nothing is waiting in the backlog, written
    with one non-blocking ``socket.send(data, MSG_NOSIGNAL)``. Whatever the
    kernel does not take (a short write, or ``EAGAIN``) goes to the backlog,
    and every later write queues behind it until it drains, which keeps frames
    in order.

    The backlog is bounded: at most ``queue_size`` frames may wait in it; a
    write that would exceed it closes the connection with 4101 (slow
    consumer). So a connection's buffered bytes never exceed ``queue_size``
    times the largest frame (plus the close frame). A broken pipe or reset
    drops the connection; the disconnect reaches the hub from the event loop,
    never from inside this call, so the hub's subscriber sets never change
    during a fan-out loop.

    The read side (``connection.WebSocketConnection``) extends this class; it
    decides when the socket is released (``_release``).
    """

    __slots__ = (
        "_backlog",
        "_close_code",
        "_close_timer",
        "_closing",
        "_coalescer",
        "_fd",
        "_loop",
        "_pending",
        "_queue_size",
        "_queued",
        "_released",
        "_sent_close",
        "_socket",
        "_writing",
    )

    #: Seconds the closing handshake may take before the socket is dropped.
    close_timeout: float = 5.0

    def __init__(
        self, sock: socket.socket, queue_size: int, coalescer: WriteCoalescer, unsent: bytes = b""
    ) -> None:
        sock.setblocking(False)
        self._socket = sock
        self._fd = sock.fileno()
        self._loop = coalescer.loop
        self._coalescer = coalescer
        self._queue_size = queue_size
        #: Frames sent this turn: None, one frame, or a list of frames.
        self._pending: bytes | list[bytes] | None = None
        #: Unsent bytes, oldest first, each with the number of frames it holds.
        self._backlog: deque[tuple[bytes, int]] | None = None
        self._queued = 0
        self._writing = False
        #: No more data frames: a close frame was queued, or the socket is gone.
        self._closing = False
        self._sent_close = False
        #: The code of the close frame sent (ours, or the echo of the client's).
        self._close_code: int | None = None
        self._released = False
        self._close_timer: asyncio.TimerHandle | None = None
        if unsent:
            self._enqueue(unsent, 0)

    @property
    def queued(self) -> int:
        """Frames waiting in the backlog (0 while every write went straight out)."""
        return self._queued

    @property
    def closing(self) -> bool:
        return self._closing

    # -- the Transport interface -------------------------------------------------------------
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
                # writes now: the turn's buffer is bounded like the backlog.
                self.flush()

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake: the frames sent so far, then the close frame.

        The socket is released when the client answers with its own close
        frame, or after ``close_timeout`` seconds.
        """
        if self._closing:
            return
        self.flush()  # frames sent before the close (e.g. "kicked") go first
        if self._closing:
            return  # the flush found a slow consumer and closed with 4101
        self._send_close(code, reason)

    def abort(self) -> None:
        """Drop the connection now, without a handshake."""
        self._release()

    @property
    def close_code(self) -> int:
        """The code the connection ended with: of the close frame it sent (its own, or
        the echo of the client's; 1005 for an empty one), else 1006 (none was sent)."""
        return self._close_code if self._close_code is not None else ABNORMAL_CLOSURE

    # -- writing -----------------------------------------------------------------------------
    def flush(self) -> None:
        """Write this turn's frames now (the coalescer calls it; so does ``close``)."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        if self._sent_close or self._released:
            return  # never write after a close frame
        if isinstance(pending, bytes):
            self._write(pending, 1)
        else:
            self._write(b"".join(pending), len(pending))

    def _write(self, data: bytes, count: int) -> None:
        """Send ``data`` (``count`` frames) now, or queue it behind the backlog."""
        if self._backlog:
            self._enqueue(data, count)
            return
        try:
            sent = self._socket.send(data, _MSG_NOSIGNAL)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._lost()
            return
        if sent < len(data):
            self._enqueue(data[sent:], count)  # exactly the unsent tail, so order holds

    def _enqueue(self, data: bytes, count: int) -> None:
        if count and self._queued + count > self._queue_size:
            self._send_close(CLOSE_SLOW_CONSUMER, close_reason(CLOSE_SLOW_CONSUMER))
            return
        backlog = self._backlog
        if backlog is None:
            backlog = self._backlog = deque()
        backlog.append((data, count))
        self._queued += count
        if not self._writing:
            self._writing = True
            self._loop.add_writer(self._fd, self._on_writable)

    def _on_writable(self) -> None:
        backlog = self._backlog
        if not backlog:
            self._stop_writing()
            return
        if len(backlog) == 1:
            data = backlog[0][0]
        else:
            count = _chunks_within(backlog, _WRITE_CHUNK)
            data = b"".join(chunk for chunk, _ in itertools.islice(backlog, count))
        try:
            sent = self._socket.send(data, _MSG_NOSIGNAL)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._lost()
            return
        while sent and backlog:
            chunk, count = backlog[0]
            if sent >= len(chunk):
                backlog.popleft()
                sent -= len(chunk)
                self._queued -= count
            else:
                backlog[0] = (chunk[sent:], count)
                sent = 0
        if not backlog:
            self._stop_writing()
            self._drained()

    def _stop_writing(self) -> None:
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)

    def _drained(self) -> None:
        """The backlog just emptied (the read side may finish a close here)."""

    def _write_control(self, frame: bytes) -> None:
        """A pong: in order behind the data already sent, counted in the bound like
        a data frame (a client that pings and never reads is a slow consumer)."""
        if self._released or self._sent_close:
            return
        self.flush()
        if self._released or self._sent_close:
            return
        self._write(frame, 1)

    def _send_close(self, code: int | None, reason: str, *, answering: bool = False) -> None:
        """Queue the close frame (once) and start the handshake's clock.

        ``answering``: the frame answers the client's own close, so the handshake
        is complete once it is written; the clock then only bounds a backlog that
        must drain first (with none, the caller releases at once: a timer armed
        and cancelled per client close is a measurable share of a mass reconnect).
        """
        if self._sent_close or self._released:
            return
        self._closing = True
        self._pending = None
        self._sent_close = True
        self._close_code = code if code is not None else NO_STATUS
        self._write(close_frame(code, reason), 0)  # behind the backlog, never refused
        if answering and not self._backlog:
            return
        if self._close_timer is None and not self._released:
            self._close_timer = self._loop.call_later(self.close_timeout, self._release)

    # -- the end --------------------------------------------------------------------------------
    def _lost(self) -> None:
        """EPIPE/ECONNRESET: stop writing now; the release (and the hub's disconnect)
        follows from the event loop."""
        self._closing = True
        self._pending = None
        self._loop.call_soon(self._release)

    def _release(self) -> None:
        """Close the socket and forget the event loop's callbacks; idempotent."""
        if self._released:
            return
        self._released = True
        self._closing = True
        self._pending = None
        self._backlog = None
        self._queued = 0
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._stop_writing()
        self._forget_socket()
        self._socket.close()

    def _forget_socket(self) -> None:
        """Unregister whatever else watches the socket (the read side does)."""


def _chunks_within(backlog: deque[tuple[bytes, int]], budget: int) -> int:
    """How many backlog chunks, from the oldest, to offer in one write (at least one)."""
    total = 0
    for index, (chunk, _) in enumerate(backlog):
        total += len(chunk)
        if total >= budget:
            return index + 1
    return len(backlog)


def ended_with(transport: Transport) -> int:
    """The close code a connection ended with (``SocketTransport.close_code``), 1006
    for a transport that does not know it."""
    return transport.close_code if isinstance(transport, SocketTransport) else ABNORMAL_CLOSURE
