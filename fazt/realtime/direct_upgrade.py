"""The ``/_ws`` upgrade answered by fazt itself, without Tornado's HTTP request path.

A reconnect storm is thousands of upgrades a second, and most of an upgrade's
server CPU used to be Tornado's generic request path: an ``IOStream``, an
``HTTP1Connection`` coroutine, header objects, the router's delegates, a
``RequestHandler`` with its default headers and a ``Date``, the 101 written
through the stream, then the socket taken back from it (``upgrade.py``).
``DirectUpgrade`` is the ``/_ws`` route's ``PluginRoute.upgrade``: the kernel
offers it a new connection whose first request is a plain upgrade head
(``fazt.edge.request_head``) for a known app, and it answers the upgrade
from the socket: the same checks, the same refusals, the same connection.

It takes the connection only when the upgrade is valid as Tornado checks it
(``Upgrade: websocket``, ``Connection`` naming ``upgrade``, version 13, a key
and a host; fazt accepts any origin) and its ``?token=``, when there is one,
verifies. Anything else is left to the route's Tornado handler, unread, and
answered as before (400, 401, 426, 4001 for an unknown app, ...). A taken
connection then goes as through the handler: admission (over capacity: HTTP
503 with the handler's JSON body, then the connection is closed), the 101,
the access log line, ``connect`` (which sends ``connected``), the reader. With
the in-memory backplane all of it runs in the accept callback, and the 101 and
``connected`` leave in one ``send`` at the end of the loop turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from typing import Any, Final

import tornado.websocket

from fazt.edge.access_log import log_answer
from fazt.edge.request_head import RequestHead, consume_head
from fazt.kernel.app import App
from fazt.kernel.tokens import TokenError
from fazt.realtime.connection import WebSocketConnection
from fazt.realtime.endpoint import Endpoint
from fazt.realtime.stepping import run_inline

log = logging.getLogger("fazt.realtime")

#: Linux: a write to a reset peer returns EPIPE instead of raising SIGPIPE.
_MSG_NOSIGNAL: Final = getattr(socket, "MSG_NOSIGNAL", 0)

#: What an upgrade refused for capacity is told (the handler answers the same).
OVER_CAPACITY: Final = "over_capacity"
LIMIT_REACHED: Final = "realtime connection limit reached"


class DirectUpgrade:
    """``PluginRoute.upgrade`` of ``/_ws`` (see the module doc)."""

    __slots__ = ("_endpoint", "_max_waiting", "_opening")

    def __init__(self, endpoint: Endpoint, max_waiting: int) -> None:
        self._endpoint = endpoint
        #: Openings waiting on I/O (a Redis backplane), held until they finish.
        self._opening: set[asyncio.Task[None]] = set()
        #: At most this many may wait; more are left to the handler, where the
        #: edge's pending cap (``http.maxPendingConnections``) bounds them.
        self._max_waiting = max_waiting

    def __call__(self, sock: socket.socket, head: RequestHead, app: App) -> bool:
        if len(self._opening) >= self._max_waiting:
            return False
        if not is_valid_upgrade(head):
            return False  # the handler answers 400 or 426
        try:
            token = head.query_argument("token")
        except ValueError:
            return False  # a query only Tornado reads
        claims: dict[str, Any] | None = None
        if token is not None:
            try:
                claims = self._endpoint.verify_token(token, app)
            except TokenError:
                return False  # the handler answers 401 with the reason
        started = time.monotonic()
        if not consume_head(sock, head):
            sock.close()  # it broke between the peek and the read
            return True
        opening = self._open(sock, head, app, claims, started)
        loop = self._endpoint.coalescer.loop
        # Inline only when no backplane call waits on I/O: a Redis client needs a Task
        # (its timeouts do) from the first step on.
        task = run_inline(opening, loop) if self._endpoint.inline else loop.create_task(opening)
        if task is not None:
            self._opening.add(task)
            task.add_done_callback(self._opening.discard)
        return True

    async def _open(
        self,
        sock: socket.socket,
        head: RequestHead,
        app: App,
        claims: dict[str, Any] | None,
        started: float,
    ) -> None:
        endpoint = self._endpoint
        try:
            admitted = await endpoint.admit(app)
        except Exception:
            log.exception("realtime: admitting a connection failed; closing it")
            sock.close()
            return
        if not admitted:
            _answer_and_close(sock, 503, "Service Unavailable", OVER_CAPACITY, LIMIT_REACHED)
            _logged(app, head, 503, started)
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = WebSocketConnection(
            sock, endpoint.queue_size, endpoint.coalescer, endpoint.max_message_bytes(app)
        )
        # The 101 goes first in the connection's write order, before ``connected``.
        connection.send_frame(switching_protocols(head.headers["sec-websocket-key"]))
        _logged(app, head, 101, started)
        try:
            session = await endpoint.connect(app, connection, claims)
        except Exception:
            log.exception("realtime: opening a connection failed; dropping it")
            connection.abort()
            return
        connection.attach(session, endpoint.receive, endpoint.disconnected, endpoint.inline)
        connection.start()


def is_valid_upgrade(head: RequestHead) -> bool:
    """Would Tornado's ``WebSocketHandler`` accept this upgrade (fazt's handler: any
    origin, no subprotocol, version 13 only)?"""
    headers = head.headers
    if headers.get("upgrade", "").lower() != "websocket":
        return False
    if "upgrade" not in (part.strip().lower() for part in headers.get("connection", "").split(",")):
        return False
    if headers.get("sec-websocket-version") != "13":
        return False
    return bool(headers.get("host") and headers.get("sec-websocket-key"))


def switching_protocols(key: str) -> bytes:
    """The 101 answer to an upgrade with ``Sec-WebSocket-Key: key``."""
    accept = tornado.websocket.WebSocketProtocol13.compute_accept_value(key)
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
    ).encode("ascii")


def refusal_body(code: str, text: str) -> bytes:
    """The JSON body of a refused upgrade, as the handler's ``finish(dict)`` writes it."""
    return json.dumps({"error": text, "code": code}).replace("</", "<\\/").encode()


def _answer_and_close(sock: socket.socket, status: int, reason: str, code: str, text: str) -> None:
    body = refusal_body(code, text)
    response = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("ascii") + body
    with contextlib.suppress(OSError):
        sock.send(response, _MSG_NOSIGNAL)  # a fresh socket's buffer takes it whole
    sock.close()


def _logged(app: App, head: RequestHead, status: int, started: float) -> None:
    log_answer(
        app.slug, status, "GET", head.path, head.query, head.remote_ip, time.monotonic() - started
    )
