"""The accept loop: take new connections off a listening socket without ever spinning.

Tornado's ``netutil.add_accept_handler`` lets an ``accept()`` error escape to
the event loop, which logs a traceback and, since the socket stays readable,
calls it again at once: with no descriptors left (EMFILE/ENFILE) that is a busy
loop writing one traceback per try. ``AcceptLoop`` instead:

- accepts up to ``BATCH`` connections per readiness event (Tornado's own
  bound), so one busy listener cannot starve the loop's other work;
- skips the per-connection errors that Linux reports from ``accept()`` for a
  connection that already failed (``accept(2)``: retry, like EAGAIN);
- on any other error (above all EMFILE, ENFILE, ENOBUFS, ENOMEM) takes the
  socket out of the IOLoop for ``pause_seconds`` and tries again after that;
  connections wait meanwhile in the kernel's listen backlog;
- writes at most one log line per ``log_interval_seconds`` about it, saying
  how many pauses it did not report.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable
from typing import Any

from tornado.ioloop import IOLoop

from fazt.edge.log_throttle import LogThrottle

log = logging.getLogger("fazt.edge")

#: Connections accepted per readiness event at most (Tornado's ``_DEFAULT_BACKLOG``).
BATCH = 128
#: How long accepting stops after a failure such as EMFILE.
ACCEPT_PAUSE_SECONDS = 0.25
#: At most one line about failing accepts per this many seconds.
LOG_INTERVAL_SECONDS = 10.0

#: Errors of the connection being accepted, not of the listener (``accept(2)``,
#: Linux: "treat them like EAGAIN by retrying"); EPERM is a firewall refusal.
RETRY_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNABORTED",
        "EPROTO",
        "ENETDOWN",
        "ENOPROTOOPT",
        "EHOSTDOWN",
        "ENONET",
        "EHOSTUNREACH",
        "EOPNOTSUPP",
        "ENETUNREACH",
        "EPERM",
    )
    if hasattr(errno, name)
)

OnConnection = Callable[[socket.socket, Any], None]


class AcceptLoop:
    """Accepts connections on ``sock`` and hands each to ``on_connection(sock, address)``.

    ``start()`` registers the listening socket with the current IOLoop;
    ``stop()`` unregisters it (and cancels a pending resume) but does not close
    it. ``pauses`` counts the times accepting was paused after an error.
    """

    def __init__(
        self,
        sock: socket.socket,
        on_connection: OnConnection,
        *,
        pause_seconds: float = ACCEPT_PAUSE_SECONDS,
        log_interval_seconds: float = LOG_INTERVAL_SECONDS,
    ) -> None:
        self._sock = sock
        self._on_connection = on_connection
        self.pause_seconds = pause_seconds
        self._throttle = LogThrottle(log_interval_seconds)
        self._io_loop: IOLoop | None = None
        self._registered = False
        self._resume_handle: object | None = None
        self._stopped = False
        self.pauses = 0

    @property
    def paused(self) -> bool:
        return self._resume_handle is not None

    def start(self) -> None:
        self._io_loop = IOLoop.current()
        self._register()

    def stop(self) -> None:
        self._stopped = True
        if self._io_loop is None:
            return
        if self._resume_handle is not None:
            self._io_loop.remove_timeout(self._resume_handle)
            self._resume_handle = None
        if self._registered:
            self._io_loop.remove_handler(self._sock)
            self._registered = False

    def _register(self) -> None:
        assert self._io_loop is not None
        self._io_loop.add_handler(self._sock, self._on_readable, IOLoop.READ)
        self._registered = True

    def _on_readable(self, _fd: Any, _events: int) -> None:
        for _ in range(BATCH):
            if self._stopped or not self._registered:
                return
            try:
                connection, address = self._sock.accept()
            except BlockingIOError:
                return  # the backlog is empty
            except OSError as error:
                if error.errno in RETRY_ERRNOS:
                    continue
                self._pause(error)
                return
            try:
                self._on_connection(connection, address)
            except Exception:
                log.exception("http: the new connection from %s could not be set up", address)
                connection.close()

    def _pause(self, error: OSError) -> None:
        assert self._io_loop is not None
        self._io_loop.remove_handler(self._sock)
        self._registered = False
        self._resume_handle = self._io_loop.call_later(self.pause_seconds, self._resume)
        self.pauses += 1
        held_back = self._throttle.event(now=self._io_loop.time())
        if held_back is None:
            return
        name = errno.errorcode.get(error.errno or 0, "error")
        log.warning(
            "http: cannot accept connections on %s: %s (%s); not accepting for %.2f s, "
            "then trying again (%d more such pauses since the last line like this)",
            _listening_address(self._sock),
            error.strerror or error,
            name,
            self.pause_seconds,
            held_back,
        )

    def _resume(self) -> None:
        self._resume_handle = None
        if not self._stopped:
            self._register()


def _listening_address(sock: socket.socket) -> str:
    try:
        host, port = sock.getsockname()[:2]
    except OSError:
        return "a closed socket"
    return f"{host}:{port}"
