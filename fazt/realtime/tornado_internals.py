"""Every Tornado internal fazt touches, in one place: the seam between fazt and Tornado.

fazt's ``/_ws`` handler is a ``tornado.websocket.WebSocketHandler``, and two of
its jobs need more than Tornado's public API:

* **the fast write path** (``transport.py``) writes shared frame bytes straight
  to the connection's socket and, when the kernel does not take them all,
  queues the rest through the ``IOStream``. It needs the stream under the
  WebSocket (``WebSocketProtocol.stream``), its ``socket`` and its private
  ``_write_buffer`` (to know whether bytes are still queued);
* **memory per idle connection** (``docs/memory.md``): Tornado keeps the whole
  HTTP request machinery alive for the life of a WebSocket. After the upgrade,
  ``shed_request_state`` drops what nothing reads again: the request's headers
  and arguments, the detached ``HTTP1Connection``'s state, the empty
  ``collections.deque``s of the ``IOStream`` (``_write_buffer._buffers``,
  ``_write_futures``), and most of the handler's instance dict. The handler's
  class is swapped for a subclass (``open_handler_class``) whose class
  attributes hold Tornado's post-upgrade method guards (as ``_detach_stream``
  installs them) and the flags every open connection shares.

The upgrade itself goes through here too: ``upgrade_refusal`` runs Tornado's
checks (400, 403, 426) without keeping their locals alive, with the
cross-origin check of the running Tornado version (``_check_cross_origin``
from 6.6; the ``Origin`` header and ``check_origin`` on 6.4 and 6.5), and
``websocket_protocol`` is where fazt will later put its own WebSocket reader
(``WebSocketHandler.get_websocket_protocol()``).

Supported: Tornado 6.4, 6.5 and 6.6. Every name used here is pinned by
``tests/realtime/test_tornado_internals.py``, which fails first when a Tornado
release changes one of them.
"""

from __future__ import annotations

import sys
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Generic, NamedTuple, NoReturn, TypeVar

import tornado.http1connection
import tornado.httputil
import tornado.iostream
import tornado.web
import tornado.websocket

if TYPE_CHECKING:
    import socket

T = TypeVar("T")
H = TypeVar("H", bound=tornado.websocket.WebSocketHandler)


# -- shared, immutable stand-ins for per-request state ----------------------------------
class ReadOnlyHeaders(tornado.httputil.HTTPHeaders):
    """Empty ``HTTPHeaders`` that refuse every change: one object shared by every
    upgraded request, so a write through one request can never reach the others."""

    def _refuse(self, *_args: Any, **_kwargs: Any) -> NoReturn:
        raise TypeError("the headers of an upgraded WebSocket request are read-only")

    __setitem__ = __delitem__ = add = parse_line = _refuse


#: What an upgraded request keeps instead of its headers.
NO_HEADERS: Final = ReadOnlyHeaders()
_NO_ARGUMENTS: Final[dict[str, list[bytes]]] = MappingProxyType({})  # type: ignore[assignment]
_NO_FILES: Final[dict[str, list[tornado.httputil.HTTPFile]]] = MappingProxyType({})  # type: ignore[assignment]


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


# -- the upgrade ---------------------------------------------------------------------------
def upgrade_refusal(handler: tornado.websocket.WebSocketHandler) -> tuple[int, str] | None:
    """Why Tornado would refuse this upgrade request, as Tornado words it, or None.

    The same checks as ``WebSocketHandler.get``, run in a function whose locals
    die on return (Tornado's ``get`` keeps them for the life of the connection).
    """
    headers = handler.request.headers
    if headers.get("Upgrade", "").lower() != "websocket":
        return 400, 'Can "Upgrade" only to "WebSocket".'
    tokens = [part.strip().lower() for part in headers.get("Connection", "").split(",")]
    if "upgrade" not in tokens:
        return 400, '"Connection" must be "Upgrade".'
    if cross_origin_error(handler) is not None:
        return 403, "Cross origin websockets not allowed"
    return None


def cross_origin_error(handler: tornado.websocket.WebSocketHandler) -> str | None:
    """Tornado's cross-origin decision for a WebSocket upgrade (None: allowed)."""
    check = getattr(handler, "_check_cross_origin", None)
    if check is not None:
        # Tornado 6.6+: Sec-Fetch-Site aware, check_origin for cross-origin requests.
        error: str | None = check(handler.check_origin)
        return error
    # Tornado 6.4 and 6.5: an Origin header (Sec-Websocket-Origin from old
    # clients), when present, must pass check_origin; none means not a browser.
    headers = handler.request.headers
    origin = headers.get("Origin") if "Origin" in headers else headers.get("Sec-Websocket-Origin")
    if origin is not None and not handler.check_origin(origin):
        return f"Origin {origin!r} not allowed"
    return None


class CloseCodeProtocol13(tornado.websocket.WebSocketProtocol13):
    """Tornado's ``WebSocketProtocol13``, remembering the first close code it sent.

    Every server-side close goes through ``close(code, reason)``: fazt's own
    (kick, slow consumer, timeouts), Tornado's 1009 for a message over
    ``max_message_size``, and the echo of a client's close frame. The code is
    kept only once a close happens (a class default otherwise), so an open
    connection pays nothing for it.
    """

    sent_close_code: int | None = None

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if code is not None and self.sent_close_code is None and not self.server_terminated:
            self.sent_close_code = code
        super().close(code, reason)


def websocket_protocol(
    handler: tornado.websocket.WebSocketHandler,
) -> tornado.websocket.WebSocketProtocol | None:
    """The protocol object that will run this connection (None: version not supported).

    Tornado's own ``WebSocketProtocol13``, as a ``CloseCodeProtocol13`` (the class
    is swapped, nothing else changes); the seam for fazt's own reader.
    """
    protocol = handler.get_websocket_protocol()
    if type(protocol) is tornado.websocket.WebSocketProtocol13:
        protocol.__class__ = CloseCodeProtocol13
    return protocol


def sent_close_code(protocol: tornado.websocket.WebSocketProtocol) -> int | None:
    """The close code this side sent on ``protocol`` first, or None."""
    code = getattr(protocol, "sent_close_code", None)
    return code if isinstance(code, int) else None


# -- the fast write path ---------------------------------------------------------------------
class StreamParts(NamedTuple):
    """What the fast write path holds for one open WebSocket."""

    ws: tornado.websocket.WebSocketProtocol
    stream: tornado.iostream.IOStream
    socket: socket.socket
    #: The stream's pending-bytes buffer: ``len()`` is what is still queued.
    write_buffer: Any
    #: False for TLS streams, whose bytes must go through the SSL object.
    direct: bool


def stream_parts(handler: tornado.websocket.WebSocketHandler) -> StreamParts:
    """The stream under an open WebSocket; ``RuntimeError`` when it is not open."""
    ws = handler.ws_connection
    if ws is None:
        raise RuntimeError("the fast write path needs an open WebSocket connection")
    stream = ws.stream
    if stream is None:
        raise RuntimeError("the fast write path needs an open WebSocket stream")
    return StreamParts(
        ws=ws,
        stream=stream,
        socket=stream.socket,
        write_buffer=stream._write_buffer,
        direct=not isinstance(stream, tornado.iostream.SSLIOStream),
    )


# -- shedding per-request state after the upgrade ----------------------------------------------
def slim_stream(stream: tornado.iostream.IOStream) -> None:
    """Swap the stream's empty write deques for ``SmallDeque``s (non-empty ones stay)."""
    write_buffer = stream._write_buffer
    if not write_buffer._buffers:
        write_buffer._buffers = SmallDeque()  # type: ignore[assignment]
    if not stream._write_futures:
        stream._write_futures = SmallDeque()  # type: ignore[assignment]


def slim_request(request: tornado.httputil.HTTPServerRequest) -> None:
    """Drop what an upgraded request no longer needs; keep what logs may still print.

    Headers, arguments and files become shared, read-only empty objects; the
    query string (which may carry a token) is dropped from ``uri``; strings
    every connection repeats (method, version, path, host) are interned so they
    are shared. The ``HTTP1ServerConnection`` is released (nothing reads it
    after the upgrade), and so are the detached ``HTTP1Connection``'s start
    line, headers, last write future and context.
    """
    if request.headers is not NO_HEADERS:
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


def _not_after_upgrade(*args: Any, **kwargs: Any) -> None:
    # The same guard Tornado's _detach_stream installs per instance.
    raise RuntimeError("Method not supported for Web Sockets")


#: The methods Tornado's ``_detach_stream`` disables on an upgraded handler.
GUARDED_METHODS: Final = (
    "write",
    "redirect",
    "set_header",
    "set_cookie",
    "set_status",
    "flush",
    "finish",
)

#: Read by nothing after the upgrade (or only behind the guards): dropped from the
#: instance; the class attributes of the open handler class stand in.
DROPPED_AFTER_UPGRADE: Final = (
    *GUARDED_METHODS,
    # Response and routing state used only by the guarded methods or before open().
    "_headers",
    "_write_buffer",
    "_transforms",
    "path_args",
    "path_kwargs",
    "open_args",
    "open_kwargs",
    "ui",
)

#: Flags whose value after the upgrade is the same on every connection.
OPEN_DEFAULTS: Final[dict[str, object]] = {
    "_auto_finish": True,
    "_finished": True,
    "_headers_written": True,
    "_prepared_future": None,
    "_status_code": 101,
    "_on_close_called": False,
    "close_code": None,
    "close_reason": None,
}


def open_handler_class(handler_class: type[H], extra: dict[str, object]) -> type[H]:
    """A subclass of ``handler_class`` for handlers whose WebSocket is open.

    Its class attributes hold what every open connection shares: Tornado's
    method guards, the constant flags of ``OPEN_DEFAULTS``, empty read-only
    routing and response state, and ``extra`` (the subclass's own upgrade-time
    attributes, dropped from each instance). Never routed to directly.
    """
    namespace: dict[str, object] = {
        "__doc__": f"A ``{handler_class.__name__}`` whose WebSocket is open "
        "(set by ``shed_request_state``).",
        "__module__": handler_class.__module__,
        "_headers": NO_HEADERS,
        "_write_buffer": (),  # never appended to: write() is guarded
        "_transforms": (),  # read only by the guarded flush()
        "path_args": (),
        "path_kwargs": MappingProxyType({}),
        "open_args": (),
        "open_kwargs": MappingProxyType({}),
        "ui": None,  # as Tornado's own _break_cycles leaves it
        **OPEN_DEFAULTS,
        **{name: _not_after_upgrade for name in GUARDED_METHODS},
        **extra,
    }
    return type(f"Open{handler_class.__name__}", (handler_class,), namespace)


def shed_request_state(
    handler: tornado.websocket.WebSocketHandler,
    open_class: type[tornado.websocket.WebSocketHandler],
    dropped: tuple[str, ...] = (),
) -> None:
    """Drop per-request state Tornado keeps for the whole life of a WebSocket.

    The handler becomes an ``open_class`` instance (from ``open_handler_class``)
    and its instance dict is rebuilt with only what differs per connection;
    ``dropped`` names the subclass's own attributes that go too.
    """
    slim_request(handler.request)
    ws = handler.ws_connection
    if ws is not None and ws.stream is not None:
        slim_stream(ws.stream)
    state = handler.__dict__
    for name in (*DROPPED_AFTER_UPGRADE, *dropped):
        state.pop(name, None)
    for name, value in OPEN_DEFAULTS.items():
        # Only a value equal to the class default goes: if Tornado changes
        # what it leaves behind, the instance simply keeps its own.
        if name in state and state[name] is value:
            del state[name]
    handler.__class__ = open_class
    handler.__dict__ = dict(state)
