"""Trim Tornado's per-connection state once a WebSocket is open (memory per idle connection).

Tornado builds a WebSocket on top of an HTTP request and keeps much of the
request machinery alive for the whole connection: the request object and its
parsed headers, the ``HTTP1Connection`` and ``HTTP1ServerConnection`` (with
their finished futures, task and context), and three ``collections.deque``s in
the ``IOStream`` that are almost always empty but cost ~700 bytes each. With
thousands of idle subscribed connections these dominate the cost of a
connection (see ``docs/memory.md``).

Every function here touches Tornado internals; each one is pinned by a test
in ``tests/realtime/test_transport.py`` that fails when Tornado changes them.
"""

from __future__ import annotations

import sys
from typing import Any, Generic, TypeVar

import tornado.http1connection
import tornado.httputil
import tornado.iostream

T = TypeVar("T")

#: Shared, empty and never written: what a connection keeps instead of its headers.
NO_HEADERS = tornado.httputil.HTTPHeaders()
_NO_ARGUMENTS: dict[str, list[bytes]] = {}
_NO_FILES: dict[str, list[tornado.httputil.HTTPFile]] = {}


class SmallDeque(list[T], Generic[T]):
    """The part of ``collections.deque`` that ``IOStream`` uses, as a list: 72 bytes, not 700.

    An empty deque allocates a 64-slot block up front; an empty list allocates
    nothing. ``popleft`` is O(n), which is harmless here: the stream buffer
    merges small writes, and the write futures of one connection are bounded by
    its outgoing queue (``outgoingQueueSize``).
    """

    __slots__ = ()

    def popleft(self) -> T:
        return self.pop(0)


def slim_stream(stream: tornado.iostream.IOStream) -> None:
    """Swap the stream's empty write deques for ``SmallDeque``s (non-empty ones stay)."""
    write_buffer = stream._write_buffer
    if not write_buffer._buffers:
        write_buffer._buffers = SmallDeque()  # type: ignore[assignment]
    if not stream._write_futures:
        stream._write_futures = SmallDeque()  # type: ignore[assignment]


def slim_request(request: tornado.httputil.HTTPServerRequest) -> None:
    """Drop what an upgraded request no longer needs; keep what logs may still print.

    Headers, arguments and files become shared empty objects; the query string
    (which may carry a token) is dropped from ``uri``; strings every connection
    repeats (method, version, path, host) are interned so they are shared. The
    ``HTTP1ServerConnection`` is released (nothing reads it after the upgrade),
    and so are the detached ``HTTP1Connection``'s start line, headers, last
    write future and context.
    """
    # Tornado's suspended _execute() still references the original headers: empty them.
    request.headers.clear()
    request.headers = NO_HEADERS
    request.arguments = request.query_arguments = request.body_arguments = _NO_ARGUMENTS
    request.files = _NO_FILES
    request.method = _intern(request.method)
    request.version = sys.intern(request.version)
    request.path = request.uri = sys.intern(request.path)
    request.query = ""
    request.host = sys.intern(request.host)
    request.host_name = sys.intern(request.host_name)
    request.server_connection = None
    connection = request.connection
    if isinstance(connection, tornado.http1connection.HTTP1Connection):
        # Detached: the HTTP layer never reads these again.
        connection._request_headers = None
        connection._request_start_line = None
        connection._pending_write = None
        connection.context = None


def _intern(value: Any) -> Any:
    return sys.intern(value) if isinstance(value, str) else value
