"""fazt's read path: one open WebSocket connection, from its socket to the hub and back.

A ``WebSocketConnection`` is the connection's ``Transport`` (the write side,
``transport.SocketTransport``) plus its reader:

* **one persistent reader.** ``start`` registers one read callback for the
  socket on the event loop, kept for the connection's whole life (removed only
  while a backlog of slow commands waits, see below). Each readable event is
  one ``recv``; ``frames.FrameReader`` parses every complete frame it holds in
  one pass. No Future, no coroutine step and no selector change per frame;
* **commands in order.** Each message goes to the endpoint's ``receive`` (the
  hub's command handler), one at a time per connection, in arrival order. With
  a backplane whose calls never wait on I/O (``inline``, the in-memory one) the
  command runs right inside the read callback: its coroutine is stepped once
  and is normally finished by then. A command that does wait (every command on
  Redis, or an inline one that happens to suspend) finishes in a Task, and the
  messages that arrive meanwhile wait behind it; past ``MAX_WAITING`` of them
  the reader pauses until the Task is done, so a client cannot queue unbounded
  work;
* **control frames.** A ping is answered with a pong (in order behind the data
  already sent); a pong is ignored; the client's close is answered with a close
  frame echoing its code, and the socket is closed once that frame is out; a
  protocol failure (``frames.Failure``: 1002, 1007, 1009) sends a close frame
  with that code and waits for the client's close;
* **one release.** EOF (a peer that closed or half-closed its side), a reset, a
  write error, the end of the closing handshake, its timeout or ``abort`` all
  end in ``_release``, which closes the socket and reports the disconnect to
  the hub exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Final

from fazt.realtime.frames import Close, Failure, FrameReader, Ping, pong_frame
from fazt.realtime.session import Session
from fazt.realtime.stepping import resume
from fazt.realtime.transport import SocketTransport, WriteCoalescer

log = logging.getLogger("fazt.realtime")

#: Bytes asked of the kernel per readable event.
RECV_BYTES: Final = 1 << 16
#: Messages that may wait behind a running command before the reader pauses.
MAX_WAITING: Final = 64

Receive = Callable[[Session, str | bytes], Coroutine[Any, Any, None]]
Disconnected = Callable[[Session], None]


class WebSocketConnection(SocketTransport):
    """One open WebSocket connection: its reader, its writer, its end."""

    __slots__ = (
        "_busy",
        "_disconnected",
        "_inline",
        "_reader",
        "_reading",
        "_receive",
        "_session",
        "_waiting",
    )

    def __init__(
        self,
        sock: socket.socket,
        queue_size: int,
        coalescer: WriteCoalescer,
        max_message_bytes: int,
        unsent: bytes = b"",
    ) -> None:
        super().__init__(sock, queue_size, coalescer, unsent)
        self._reader = FrameReader(max_message_bytes)
        self._session: Session | None = None
        self._receive: Receive | None = None
        self._disconnected: Disconnected | None = None
        self._inline = False
        self._reading = False
        #: The Task finishing a command that waited (None: no command running).
        self._busy: asyncio.Task[None] | None = None
        #: Messages that arrived while ``_busy`` ran, oldest first.
        self._waiting: deque[str | bytes] | None = None

    @property
    def session(self) -> Session | None:
        return self._session

    @property
    def released(self) -> bool:
        """The socket is closed and the disconnect was reported."""
        return self._released

    def attach(
        self, session: Session, receive: Receive, disconnected: Disconnected, inline: bool
    ) -> None:
        """Route this connection's messages to ``receive`` for ``session``.

        ``disconnected(session)`` is called once, when the connection ends (at
        once if it already has). ``inline``: commands may run inside the read
        callback (see the module doc).
        """
        self._session = session
        self._receive = receive
        self._disconnected = disconnected
        self._inline = inline
        if self._released:
            self._report()

    def start(self, unread: bytes = b"") -> None:
        """Start reading: ``unread`` first (bytes that arrived with the upgrade), then
        the socket, through one read callback kept for the connection's life."""
        if self._released:
            return
        self._resume_reading()
        if unread:
            self._on_data(unread)

    # -- reading ----------------------------------------------------------------------------
    def _on_readable(self) -> None:
        try:
            data = self._socket.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._release()  # reset by the peer
            return
        if not data:
            self._release()  # the peer closed (or half-closed) its side
            return
        self._on_data(data)

    def _on_data(self, data: bytes) -> None:
        for event in self._reader.feed(data):
            kind = type(event)
            if kind is str or kind is bytes:
                if not self._closing:
                    self._dispatch(event)  # type: ignore[arg-type]
            elif kind is Ping:
                self._write_control(pong_frame(event.data))  # type: ignore[union-attr]
            elif kind is Close:
                self._client_closed(event)  # type: ignore[arg-type]
            elif kind is Failure:
                failure: Failure = event  # type: ignore[assignment]
                self.close(failure.code, failure.reason)
            if self._released:
                return

    def _client_closed(self, close: Close) -> None:
        """The client's close frame: answer it (unless ours went first), then end."""
        if not self._sent_close:
            self.flush()
            self._send_close(close.code, "", answering=True)
        if not self._backlog:
            self._release()
        # else: released once the backlog (with our close frame) drained, or on timeout

    def _drained(self) -> None:
        if self._reader.closed:
            self._release()

    def _pause_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def _resume_reading(self) -> None:
        if not self._reading and not self._released:
            self._reading = True
            self._loop.add_reader(self._fd, self._on_readable)

    # -- commands ---------------------------------------------------------------------------
    def _dispatch(self, message: str | bytes) -> None:
        session = self._session
        receive = self._receive
        if session is None or receive is None:
            return  # not attached (an unknown app, closing): nothing reads messages
        if self._busy is not None:
            waiting = self._waiting
            if waiting is None:
                waiting = self._waiting = deque()
            waiting.append(message)
            if len(waiting) >= MAX_WAITING:
                self._pause_reading()
            return
        command = receive(session, message)
        if self._inline:
            try:
                yielded = command.send(None)
            except StopIteration:
                return  # done: the usual case
            except Exception:
                log.exception("realtime: a command failed; dropping the connection")
                self.abort()
                return
            self._busy = self._loop.create_task(self._finish(command, yielded))
        else:
            self._busy = self._loop.create_task(self._run(command))
        self._busy.add_done_callback(self._command_done)

    async def _finish(self, command: Coroutine[Any, Any, None], yielded: Any) -> None:
        """Run the rest of a command that suspended inside the read callback."""
        await resume(command, yielded)
        await self._run_waiting()

    async def _run(self, command: Coroutine[Any, Any, None]) -> None:
        await command
        await self._run_waiting()

    async def _run_waiting(self) -> None:
        waiting = self._waiting
        while waiting:
            session = self._session
            if session is None or self._receive is None or self._closing:
                waiting.clear()
                break
            await self._receive(session, waiting.popleft())

    def _command_done(self, task: asyncio.Task[None]) -> None:
        self._busy = None
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "realtime: a command failed; dropping the connection", exc_info=task.exception()
            )
            self.abort()
            return
        if self._waiting and not self._released:
            # Messages that arrived after the Task's last look at the queue.
            self._busy = self._loop.create_task(self._run_waiting())
            self._busy.add_done_callback(self._command_done)
            return
        self._resume_reading()

    # -- the end ----------------------------------------------------------------------------
    def _forget_socket(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)
        self._waiting = None

    def _release(self) -> None:
        if self._released:
            return
        super()._release()
        self._report()

    def _report(self) -> None:
        """Tell the hub, once, that the connection is gone."""
        session, disconnected = self._session, self._disconnected
        self._disconnected = None
        self._receive = None
        if session is not None and disconnected is not None:
            disconnected(session)
