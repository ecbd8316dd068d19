"""Pins on every Tornado internal fazt touches (``fazt/realtime/tornado_internals.py``).

When a Tornado release renames or changes one of them (the abstract methods
of ``WebSocketProtocol``, the ``IOStream`` fields ``take_socket`` reads and
sets, ``_websocket_mask``), a test here fails first. They run on every
supported Tornado: 6.4, 6.5 and 6.6. The upgrade's answers (400, 403, 426)
and the release of Tornado's per-request objects after it are checked here
too, over real sockets.
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import ssl
import weakref
from pathlib import Path
from types import SimpleNamespace

import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.httputil
import tornado.iostream
import tornado.netutil
import tornado.util
import tornado.web
import tornado.websocket

from fazt.realtime import tornado_internals as internals
from fazt.realtime.connection import WebSocketConnection
from fazt.realtime.handler import RealtimeHandler
from fazt.realtime.upgrade import RealtimeProtocol
from tests.realtime.rawws import open_raw, text
from tests.realtime.wsclient import open_client, realtime_kernel


# -- the names ---------------------------------------------------------------------------
def test_websocket_mask_is_tornados_c_unmasking() -> None:
    speedups = pytest.importorskip("tornado.speedups")
    assert internals.websocket_mask is tornado.util._websocket_mask
    assert internals.websocket_mask is speedups.websocket_mask
    data = bytes(range(256)) * 3
    mask = b"\x01\x80\xfe\x7f"
    expected = bytes(byte ^ mask[index % 4] for index, byte in enumerate(data))
    assert internals.websocket_mask(mask, data) == expected
    assert internals.websocket_mask(mask, b"") == b""


def test_the_abstract_methods_of_websocket_protocol_are_all_implemented() -> None:
    """A Tornado release that adds an abstract method would make fazt's protocol
    uninstantiable: this names the set fazt implements."""
    assert tornado.websocket.WebSocketProtocol.__abstractmethods__ <= {
        "close",
        "is_closing",
        "accept_connection",
        "write_message",
        "selected_subprotocol",
        "write_ping",
        "_process_server_headers",
        "start_pinging",
        "_receive_frame_loop",
        "set_nodelay",
    }
    assert not RealtimeProtocol.__abstractmethods__
    protocol = RealtimeProtocol(
        SimpleNamespace(),
        max_message_bytes=10,
        queue_size=1,
        coalescer=None,  # type: ignore[arg-type]
    )
    assert protocol.selected_subprotocol is None and protocol.is_closing()
    protocol.start_pinging()
    protocol.set_nodelay(True)
    protocol.close()  # nothing to close yet: a no-op
    for call in (
        lambda: protocol.write_message("x"),
        lambda: protocol.write_ping(b""),
        lambda: protocol._process_server_headers("k", tornado.httputil.HTTPHeaders()),
    ):
        with pytest.raises(NotImplementedError):
            call()
    with pytest.raises(NotImplementedError):
        protocol._receive_frame_loop().send(None)


def _stream() -> tuple[tornado.iostream.IOStream, socket.socket]:
    server, client = socket.socketpair()
    server.setblocking(False)
    return tornado.iostream.IOStream(server), client


@pytest.mark.gen_test
async def test_the_iostream_fields_take_socket_uses() -> None:
    stream, peer = _stream()
    for name in ("_state", "_read_buffer", "_read_buffer_size", "_write_buffer", "_closed"):
        assert hasattr(stream, name), name
    # Bytes read past what was asked for sit at the start of _read_buffer.
    peer.sendall(b"GET-and-more")
    assert await stream.read_bytes(3) == b"GET"
    await asyncio.sleep(0.01)
    assert bytes(stream._read_buffer[: stream._read_buffer_size]) == b"-and-more"
    # The write buffer: len, peek, advance.
    stream._write_buffer.append(b"abc")
    stream._write_buffer.append(b"def")
    assert internals._drain(stream._write_buffer) == b"abcdef" and len(stream._write_buffer) == 0
    # A stream marked closed never touches its socket again.
    sock = stream.socket
    stream._closed = True
    stream.close()
    assert sock.fileno() != -1
    with pytest.raises(tornado.iostream.StreamClosedError):
        stream.write(b"x")
    sock.close()
    peer.close()


def test_take_socket_refuses_tls_streams() -> None:
    server, client = socket.socketpair()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    stream = tornado.iostream.SSLIOStream(server, ssl_options=context)
    handler = SimpleNamespace(detach=lambda: stream)
    with pytest.raises(TypeError, match="no TLS"):
        internals.take_socket(handler)  # type: ignore[arg-type]
    stream.close()
    client.close()


# -- the upgrade, over real sockets ----------------------------------------------------------
@pytest.mark.gen_test
async def test_frames_sent_with_the_upgrade_request_are_read(tmp_path: Path) -> None:
    """A client that does not wait for the 101: its first frame reached Tornado's
    read buffer with the request, and is taken along with the socket."""
    async with realtime_kernel(tmp_path) as rt:
        ping = text(json.dumps({"type": "ping"}))
        client, hello = await open_raw(rt.running.port, "/_app/chat/_ws", first=ping)
        assert json.loads(hello)["type"] == "connected"
        assert json.loads(await client.json_frame()) == {"type": "pong"}
        await client.close()


@pytest.mark.gen_test
async def test_after_the_upgrade_tornado_keeps_nothing_of_the_connection(tmp_path: Path) -> None:
    """No handler, request, IOStream or Task per open connection: the event loop's
    read callback and the hub's session hold a ``WebSocketConnection``, and that is all."""
    async with realtime_kernel(tmp_path) as rt:
        handlers: weakref.WeakSet[RealtimeHandler] = weakref.WeakSet()
        original = RealtimeHandler.initialize

        def track(self: RealtimeHandler, *args: object, **kwargs: object) -> None:
            handlers.add(self)
            original(self, *args, **kwargs)  # type: ignore[arg-type]

        RealtimeHandler.initialize = track  # type: ignore[method-assign]
        try:
            tasks_before = len(asyncio.all_tasks())
            clients = [await rt.client("chat") for _ in range(10)]
            for client in clients:
                await client.subscribe("room")
        finally:
            RealtimeHandler.initialize = original  # type: ignore[method-assign]
        await asyncio.sleep(0.05)
        gc.collect()
        assert len(handlers) == 0  # every handler (and its request, its IOStream) is gone
        assert len(asyncio.all_tasks()) <= tasks_before  # no Task per connection
        for client in clients:
            session = rt.plugin.hub.session(rt.app("chat").uuid, client.client_id)
            assert session is not None
            assert isinstance(session.transport, WebSocketConnection)
            assert session.transport.session is session
        # ... and the connections still work both ways.
        await rt.plugin.api(rt.app("chat")).broadcast("room", "hi")
        for client in clients:
            assert (await client.recv())["data"] == "hi"
            assert (await client.request({"type": "ping"}))["type"] == "pong"


@pytest.mark.gen_test
async def test_upgrade_refusals_are_tornados(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path) as rt:
        url = rt.url("chat").replace("ws://", "http://", 1)
        http = tornado.httpclient.AsyncHTTPClient()
        upgrade = {"Upgrade": "websocket", "Connection": "keep-alive, Upgrade"}
        cases = [
            ({}, 400, b'Can "Upgrade" only to "WebSocket".'),
            ({"Upgrade": "websocket", "Connection": "keep-alive"}, 400, b'"Connection"'),
            (upgrade, 426, b""),
            ({**upgrade, "Sec-WebSocket-Version": "8"}, 426, b""),
            ({**upgrade, "Sec-WebSocket-Version": "13"}, 400, b"Missing/Invalid WebSocket"),
        ]
        for headers, status, body in cases:
            response = await http.fetch(url, headers=headers, raise_error=False)
            assert response.code == status, (headers, response.code)
            assert body in (response.body or b"")
            if status == 426:
                assert response.headers["Sec-WebSocket-Version"] == "13"
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
