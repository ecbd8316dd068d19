"""Pins on every Tornado internal fazt touches (``fazt/realtime/tornado_internals.py``).

When a Tornado release renames or changes one of them (the stream under a
WebSocket, ``IOStream._write_buffer`` and its deques, ``_write_futures``, the
detached ``HTTP1Connection``'s state, ``_detach_stream``'s guards, the flags
after an upgrade, ``_check_cross_origin``), a test here fails first. They run
on every supported Tornado: 6.4, 6.5 and 6.6.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import tornado.http1connection
import tornado.httpclient
import tornado.httpserver
import tornado.httputil
import tornado.iostream
import tornado.netutil
import tornado.web
import tornado.websocket

from fazt.realtime import handler as handler_module
from fazt.realtime import tornado_internals as internals
from fazt.realtime.handler import RealtimeHandler
from fazt.realtime.protocol import text_frame
from fazt.realtime.tornado_internals import NO_HEADERS, SmallDeque, slim_stream
from fazt.realtime.transport import TornadoTransport
from tests.realtime.streams import socket_stream, transport_on
from tests.realtime.wsclient import open_client, realtime_kernel

TORNADO = tuple(int(part) for part in tornado.version.split(".")[:2])


# -- the fast write path -------------------------------------------------------------------
@pytest.mark.gen_test
async def test_tornado_internals_used_by_the_fast_path(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path) as rt:
        client = await rt.client("chat")
        session = rt.plugin.hub.session(rt.app("chat").uuid, client.client_id)
        assert session is not None
        transport = session.transport
        assert isinstance(transport, TornadoTransport)
        handler = transport._handler
        assert isinstance(handler, tornado.websocket.WebSocketHandler)
        ws = handler.ws_connection
        assert isinstance(ws, tornado.websocket.WebSocketProtocol13)
        assert transport._stream is ws.stream
        assert isinstance(ws.stream, tornado.iostream.IOStream)
        assert transport._socket is ws.stream.socket
        assert transport._buffer is ws.stream._write_buffer
        assert len(ws.stream._write_buffer) == 0
        assert ws.server_terminated is False
        assert handler.ping_interval is None
        # Per-request state was shed after the upgrade (memory per idle connection).
        assert len(handler.request.headers) == 0 and handler.ui is None
        assert handler.get_compression_options() is None
        # The direct path is really used: the frame reached the client without a queue.
        await rt.plugin.api(rt.app("chat")).broadcast_all("hello")
        assert (await client.recv())["data"] == "hello"
        assert transport.queued == 0


def test_stream_parts_refuse_a_handler_without_an_open_websocket() -> None:
    for handler in (
        SimpleNamespace(ws_connection=None),
        SimpleNamespace(ws_connection=SimpleNamespace(stream=None)),
    ):
        with pytest.raises(RuntimeError, match="open WebSocket"):
            internals.stream_parts(handler)  # type: ignore[arg-type]


@pytest.mark.gen_test
async def test_tls_streams_never_use_the_raw_socket() -> None:
    import ssl

    server, client = socket.socketpair()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    stream = tornado.iostream.SSLIOStream(server, ssl_options=context)
    transport, _ = transport_on(stream, queue=10)
    assert transport._direct is False  # bytes must go through the SSL object
    plain, peer = socket_stream()
    assert transport_on(plain, queue=10)[0]._direct is True
    for item in (stream, plain):
        item.close()
    client.close()
    peer.close()


# -- the stream's deques ---------------------------------------------------------------------
def test_tornado_iostream_still_has_the_deques_slim_stream_replaces() -> None:
    stream, peer = socket_stream()
    assert type(stream._write_buffer._buffers) is collections.deque
    assert type(stream._write_futures) is collections.deque
    slim_stream(stream)
    assert type(stream._write_buffer._buffers) is SmallDeque
    assert type(stream._write_futures) is SmallDeque
    # The deque methods IOStream uses, on the replacement.
    small: SmallDeque[int] = SmallDeque()
    small.append(1)
    small.append(2)
    assert small[0] == 1 and small[-1] == 2 and small.popleft() == 1 and list(small) == [2]
    small.clear()
    assert not small
    stream.close()
    peer.close()


def test_slim_stream_keeps_a_non_empty_queue() -> None:
    stream, peer = socket_stream()
    stream._write_futures.append((1, asyncio.Future()))  # type: ignore[arg-type]
    slim_stream(stream)
    assert type(stream._write_futures) is collections.deque
    stream._write_futures.clear()
    stream.close()
    peer.close()


@pytest.mark.gen_test
async def test_slimmed_stream_queues_in_order_and_drains() -> None:
    """The queued path (short writes, write futures, buffer advance) on SmallDeques."""
    stream, peer = socket_stream()
    slim_stream(stream)
    transport, handler = transport_on(stream, queue=10_000)
    frames = [text_frame(b'{"n":%d,"pad":"%s"}' % (i, b"z" * 3000)) for i in range(200)]
    for index, frame in enumerate(frames):
        transport.send_frame(frame)
        if index % 7 == 0:
            transport.flush()
    transport.flush()
    assert transport.queued > 0  # the socket buffer is tiny: most frames were queued
    expected = b"".join(frames)
    received = b""
    peer.setblocking(False)
    while len(received) < len(expected):
        try:
            received += peer.recv(65536)
        except BlockingIOError:
            await asyncio.sleep(0.001)
    assert received == expected
    while transport.queued:
        await asyncio.sleep(0.001)
    assert not stream._write_futures and len(stream._write_buffer) == 0
    assert handler.closed_with is None
    stream.close()
    peer.close()


# -- request state shed after the upgrade ------------------------------------------------------
def test_tornado_http1connection_still_has_the_attributes_slim_request_drops() -> None:
    stream, peer = socket_stream()
    connection = tornado.http1connection.HTTP1Connection(stream, False)
    for name in ("_request_headers", "_request_start_line", "_pending_write", "context"):
        assert name in vars(connection), name
    request = tornado.httputil.HTTPServerRequest(
        start_line=tornado.httputil.RequestStartLine("GET", "/x?token=t", "HTTP/1.1"),
        headers=tornado.httputil.HTTPHeaders({"Host": "127.0.0.1"}),
    )
    for name in ("server_connection", "query", "path", "uri", "host", "host_name", "version"):
        assert name in vars(request), name
    stream.close()
    peer.close()


def test_the_shared_empty_request_state_cannot_be_changed() -> None:
    """One object stands in for the headers (and arguments) of every upgraded request, so
    none may be written through: a write would reach every connection."""
    assert isinstance(NO_HEADERS, tornado.httputil.HTTPHeaders) and len(NO_HEADERS) == 0
    attempts: list[Any] = [
        lambda: NO_HEADERS.__setitem__("X", "y"),
        lambda: NO_HEADERS.add("X", "y"),
        lambda: NO_HEADERS.parse_line("X: y"),
        lambda: NO_HEADERS.update({"X": "y"}),
        lambda: NO_HEADERS.setdefault("X", "y"),
        lambda: NO_HEADERS.__delitem__("X"),
    ]
    for attempt in attempts:
        with pytest.raises((TypeError, KeyError)):
            attempt()
    assert len(NO_HEADERS) == 0 and NO_HEADERS.get("X") is None
    copy = NO_HEADERS.copy()  # a copy is an ordinary, writable HTTPHeaders
    copy["X"] = "y"
    assert copy["X"] == "y" and "X" not in NO_HEADERS
    request = tornado.httputil.HTTPServerRequest(
        start_line=tornado.httputil.RequestStartLine("GET", "/x?token=t", "HTTP/1.1"),
        headers=tornado.httputil.HTTPHeaders({"Host": "127.0.0.1"}),
    )
    internals.slim_request(request)
    internals.slim_request(request)  # twice is harmless
    assert request.headers is NO_HEADERS and request.uri == "/x" and request.query == ""
    with pytest.raises(TypeError):
        request.arguments["token"] = [b"t"]  # type: ignore[index]
    with pytest.raises(TypeError):
        request.files["f"] = []  # type: ignore[index]


@pytest.mark.gen_test
async def test_an_open_connection_keeps_no_request_state(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path) as rt:
        client = await rt.client("chat", token=rt.token("alice"))
        await client.subscribe("room")
        session = rt.plugin.hub.session(rt.app("chat").uuid, client.client_id)
        assert session is not None
        transport = session.transport
        assert isinstance(transport, TornadoTransport)
        handler = transport._handler
        request = handler.request
        assert request.query == "" and "token" not in request.uri
        assert request.headers is NO_HEADERS
        assert request.server_connection is None and handler.claims is None
        connection = request.connection
        assert isinstance(connection, tornado.http1connection.HTTP1Connection)
        assert connection.context is None and connection._request_start_line is None
        stream = transport._stream
        assert type(stream._write_futures) is SmallDeque
        assert type(stream._write_buffer._buffers) is SmallDeque
        # The session still knows its user; the connection still works both ways.
        assert session.claims is not None and session.claims["sub"] == "alice"
        await rt.plugin.api(rt.app("chat")).broadcast("room", "hi")
        assert (await client.recv())["data"] == "hi"
        assert (await client.request({"type": "ping"}))["type"] == "pong"


def test_tornado_still_guards_the_methods_the_open_handler_class_guards() -> None:
    source = inspect.getsource(tornado.websocket.WebSocketHandler._detach_stream)
    for name in internals.GUARDED_METHODS:
        assert f'"{name}"' in source, name
        with pytest.raises(RuntimeError, match="not supported for Web Sockets"):
            getattr(handler_module.OpenRealtimeHandler, name)(None)


@pytest.mark.gen_test
async def test_an_open_handler_keeps_only_its_own_references(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path) as rt:
        client = await rt.client("chat")
        session = rt.plugin.hub.session(rt.app("chat").uuid, client.client_id)
        assert session is not None and isinstance(session.transport, TornadoTransport)
        handler = session.transport._handler
        assert type(handler) is handler_module.OpenRealtimeHandler
        assert isinstance(handler, RealtimeHandler)
        # Tornado's flags after the upgrade have the values the class provides.
        for name, value in internals.OPEN_DEFAULTS.items():
            assert getattr(handler, name) == value, name
        assert set(vars(handler)) <= {
            "_reason",
            "app",
            "application",
            "endpoint",
            "request",
            "session",
            "transport",
            "ws_connection",
        }
        assert handler.get_status() == 101
        with pytest.raises(RuntimeError):
            handler.write(b"x")
        with pytest.raises(RuntimeError):
            handler.set_header("X", "y")
        assert len(NO_HEADERS) == 0
        # The close path (Tornado's on_connection_close, _break_cycles) still works.
        await client.close()
        for _ in range(200):
            if rt.plugin.hub.session(rt.app("chat").uuid, client.client_id) is None:
                break
            await asyncio.sleep(0.01)
        assert rt.plugin.hub.session(rt.app("chat").uuid, client.client_id) is None
        assert handler.ws_connection is None and handler.ui is None


# -- the upgrade --------------------------------------------------------------------------------
@pytest.mark.gen_test
async def test_upgrade_refusals_match_tornado(tmp_path: Path) -> None:
    """RealtimeHandler.get replaces Tornado's; the refusals must stay the same."""
    # Which cross-origin check runs: Tornado's own from 6.6, fazt's copy of the
    # 6.4/6.5 one before.
    assert hasattr(tornado.web.RequestHandler, "_check_cross_origin") == (TORNADO >= (6, 6))
    async with realtime_kernel(tmp_path) as rt:
        url = rt.url("chat").replace("ws://", "http://", 1)
        http = tornado.httpclient.AsyncHTTPClient()
        cases = [
            ({}, 400, b'Can "Upgrade" only to "WebSocket".'),
            ({"Upgrade": "websocket", "Connection": "keep-alive"}, 400, b'"Connection"'),
            (
                {"Upgrade": "websocket", "Connection": "keep-alive, Upgrade"},
                426,
                b"",
            ),
        ]
        for headers, status, body in cases:
            response = await http.fetch(url, headers=headers, raise_error=False)
            assert response.code == status, (headers, response.code)
            assert body in (response.body or b"")
        # fazt accepts every origin: auth is by token, never by cookie.
        client = await open_client(rt.url("chat"), origin="http://elsewhere.example")
        assert client.hello["type"] == "connected"
        await client.close()


class _OnlyTrusted(RealtimeHandler):
    """A handler that, unlike fazt's, refuses origins: the 403 path of the upgrade."""

    def check_origin(self, origin: str) -> bool:
        return origin == "http://trusted.example"


@pytest.mark.gen_test
async def test_a_refused_origin_gets_403_before_the_upgrade() -> None:
    sock = tornado.netutil.bind_sockets(0, "127.0.0.1")
    port = sock[0].getsockname()[1]
    application = tornado.web.Application(
        [("/_ws", _OnlyTrusted, {"kernel": None, "app": None, "endpoint": None})]
    )
    server = tornado.httpserver.HTTPServer(application)
    server.add_sockets(sock)
    try:
        http = tornado.httpclient.AsyncHTTPClient()
        upgrade = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13",
        }
        refused = await http.fetch(
            f"http://127.0.0.1:{port}/_ws",
            headers={**upgrade, "Origin": "http://evil.example"},
            raise_error=False,
        )
        assert refused.code == 403
        assert refused.body == b"Cross origin websockets not allowed"
        # The trusted origin passes the check and is upgraded (then closed: no app here).
        with pytest.raises(Exception) as closed:
            await open_client(f"ws://127.0.0.1:{port}/_ws", origin="http://trusted.example")
        assert getattr(getattr(closed.value, "rcvd", None), "code", None) == 4001
    finally:
        server.stop()
        await server.close_all_connections()


def _request_with(headers: dict[str, str]) -> Any:
    """Just what the pre-6.6 cross-origin check reads: the request headers."""
    return SimpleNamespace(request=SimpleNamespace(headers=tornado.httputil.HTTPHeaders(headers)))


def test_the_tornado_6_4_and_6_5_cross_origin_check() -> None:
    """The path taken where Tornado has no ``_check_cross_origin`` (6.4, 6.5)."""
    seen: list[str] = []

    def handler(headers: dict[str, str], allowed: bool) -> Any:
        fake = _request_with(headers)

        def check_origin(origin: str) -> bool:
            seen.append(origin)
            return allowed

        fake.check_origin = check_origin
        return fake

    assert internals.cross_origin_error(handler({}, allowed=False)) is None  # not a browser
    assert internals.cross_origin_error(handler({"Origin": "http://a"}, allowed=True)) is None
    refused = internals.cross_origin_error(handler({"Origin": "http://b"}, allowed=False))
    assert refused == "Origin 'http://b' not allowed"
    old_client = handler({"Sec-Websocket-Origin": "http://c"}, allowed=False)
    assert internals.cross_origin_error(old_client) is not None
    assert seen == ["http://a", "http://b", "http://c"]


def test_the_protocol_seam_gives_tornados_protocol_for_version_13_only() -> None:
    """``websocket_protocol`` is where fazt's own reader will plug in; today it is
    Tornado's ``WebSocketProtocol13`` for version 13, and None (426) otherwise."""
    application = tornado.web.Application()

    def handler_for(version: str) -> RealtimeHandler:
        request = tornado.httputil.HTTPServerRequest(
            start_line=tornado.httputil.RequestStartLine("GET", "/_ws", "HTTP/1.1"),
            headers=tornado.httputil.HTTPHeaders(
                {"Host": "127.0.0.1", "Sec-WebSocket-Version": version}
            ),
            connection=SimpleNamespace(set_close_callback=lambda _callback: None),
        )
        return RealtimeHandler(application, request, kernel=None, app=None, endpoint=None)

    protocol = internals.websocket_protocol(handler_for("13"))
    assert isinstance(protocol, tornado.websocket.WebSocketProtocol13)
    assert internals.websocket_protocol(handler_for("99")) is None
