"""The fast write path against real sockets, and a pin on the Tornado internals it uses.

If a Tornado upgrade renames ``WebSocketProtocol.stream``, ``IOStream.socket``,
``IOStream._write_buffer`` or ``server_terminated``, these tests fail first.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import socket
from pathlib import Path
from typing import Any

import pytest
import tornado.http1connection
import tornado.httpclient
import tornado.httputil
import tornado.iostream
import tornado.web
import tornado.websocket

from fazt.realtime import handler as handler_module
from fazt.realtime.protocol import text_frame
from fazt.realtime.slim import SmallDeque, slim_stream
from fazt.realtime.transport import TornadoTransport, WriteCoalescer
from tests.realtime.wsclient import realtime_kernel


class _FakeWs:
    """Just what TornadoTransport reads from a WebSocketProtocol13."""

    def __init__(self, stream: tornado.iostream.IOStream) -> None:
        self.stream = stream
        self.server_terminated = False


class _FakeHandler:
    def __init__(self, stream: tornado.iostream.IOStream) -> None:
        self.ws_connection = _FakeWs(stream)
        self.closed_with: tuple[int, str] | None = None

    def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


def _pair(sndbuf: int = 4096) -> tuple[tornado.iostream.IOStream, socket.socket]:
    server, client = socket.socketpair()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
    server.setblocking(False)
    return tornado.iostream.IOStream(server), client


def _transport(stream: tornado.iostream.IOStream, queue: int) -> tuple[TornadoTransport, Any]:
    handler = _FakeHandler(stream)
    return TornadoTransport(handler, queue, WriteCoalescer()), handler  # type: ignore[arg-type]


@pytest.mark.gen_test
async def test_short_writes_queue_exactly_the_tail_and_keep_order() -> None:
    stream, peer = _pair()
    transport, handler = _transport(stream, queue=10_000)
    frames = [text_frame(b'{"n":%d,"pad":"%s"}' % (i, b"y" * 3000)) for i in range(200)]
    for index, frame in enumerate(frames):
        transport.send_frame(frame)
        if index % 7 == 0:
            await asyncio.sleep(0)  # end of a loop turn: the coalesced writes go out
    await asyncio.sleep(0)
    assert transport.queued > 0  # the socket buffer filled up: later frames were queued
    assert handler.closed_with is None
    expected = b"".join(frames)
    peer.setblocking(False)
    received = b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while len(received) < len(expected) and loop.time() < deadline:
        try:
            received += peer.recv(1 << 16)
        except BlockingIOError:
            await asyncio.sleep(0.001)
    assert received == expected  # byte-exact: no frame lost, duplicated or reordered
    assert transport.queued == 0
    stream.close()
    peer.close()


@pytest.mark.gen_test
async def test_full_queue_closes_4101_and_stays_bounded() -> None:
    stream, peer = _pair()
    transport, handler = _transport(stream, queue=5)
    frame = text_frame(b"z" * 8000)
    for _ in range(100):
        transport.send_frame(frame)
        await asyncio.sleep(0)
    assert handler.closed_with == (4101, "slow consumer")
    assert transport.closing and transport.queued <= 5
    assert len(stream._write_buffer) <= 5 * len(frame)
    stream.close()
    peer.close()


@pytest.mark.gen_test
async def test_broken_pipe_closes_quietly() -> None:
    stream, peer = _pair()
    transport, _ = _transport(stream, queue=5)
    peer.close()
    for _ in range(3):
        transport.send_frame(text_frame(b"{}"))  # EPIPE/ECONNRESET: no exception, no SIGPIPE
        await asyncio.sleep(0)
    assert transport.closing
    await asyncio.sleep(0)
    assert stream.closed()
    transport.send_frame(text_frame(b"{}"))  # after close: a no-op
    transport.abort()


@pytest.mark.gen_test
async def test_a_turn_never_holds_more_than_a_queue_of_frames() -> None:
    stream, peer = _pair(sndbuf=1 << 20)
    transport, handler = _transport(stream, queue=4)
    frames = [text_frame(b'{"n":%d}' % i) for i in range(6)]
    for frame in frames:
        transport.send_frame(frame)
    peer.setblocking(False)
    # The fourth frame filled a queue's worth: those four left without waiting for
    # the end of the turn; the last two wait for it, in order.
    assert peer.recv(1000) == b"".join(frames[:4])
    await asyncio.sleep(0)
    assert peer.recv(1000) == b"".join(frames[4:])
    assert handler.closed_with is None
    transport.abort()
    peer.close()


@pytest.mark.gen_test
async def test_one_turn_is_one_write_and_close_flushes_first() -> None:
    stream, peer = _pair(sndbuf=1 << 20)
    transport, handler = _transport(stream, queue=10)
    frames = [text_frame(b'{"n":%d}' % i) for i in range(5)]
    for frame in frames:
        transport.send_frame(frame)
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(100)  # nothing written yet: the turn is not over
    await asyncio.sleep(0)
    assert peer.recv(1000) == b"".join(frames)  # one coalesced write, in order
    transport.send_frame(frames[0])
    transport.close(4003, "kicked")  # the pending frame goes out before the close
    assert peer.recv(1000) == frames[0]
    assert handler.closed_with == (4003, "kicked")
    transport.send_frame(frames[1])
    await asyncio.sleep(0)
    with pytest.raises(BlockingIOError):
        peer.recv(100)  # nothing after the close
    stream.close()
    peer.close()


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


@pytest.mark.gen_test
async def test_tls_streams_never_use_the_raw_socket() -> None:
    import ssl

    server, client = socket.socketpair()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    stream = tornado.iostream.SSLIOStream(server, ssl_options=context)
    transport, _ = _transport(stream, queue=10)
    assert transport._direct is False  # bytes must go through the SSL object
    plain, peer = _pair()
    assert _transport(plain, queue=10)[0]._direct is True
    for item in (stream, plain):
        item.close()
    client.close()
    peer.close()


# -- Tornado state trimmed after the upgrade (fazt/realtime/slim.py, docs/memory.md) -----


def test_tornado_iostream_still_has_the_deques_slim_stream_replaces() -> None:
    stream, peer = _pair()
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
    stream, peer = _pair()
    stream._write_futures.append((1, asyncio.Future()))  # type: ignore[arg-type]
    slim_stream(stream)
    assert type(stream._write_futures) is collections.deque
    stream._write_futures.clear()
    stream.close()
    peer.close()


@pytest.mark.gen_test
async def test_slimmed_stream_queues_in_order_and_drains() -> None:
    """The queued path (short writes, write futures, buffer advance) on SmallDeques."""
    stream, peer = _pair()
    slim_stream(stream)
    transport, handler = _transport(stream, queue=10_000)
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


def test_tornado_http1connection_still_has_the_attributes_slim_request_drops() -> None:
    stream, peer = _pair()
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


@pytest.mark.gen_test
async def test_upgrade_refusals_match_tornado(tmp_path: Path) -> None:
    """RealtimeHandler.get replaces Tornado's; the refusals must stay the same."""
    assert hasattr(tornado.web.RequestHandler, "_check_cross_origin")
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


def test_tornado_still_guards_the_methods_the_open_handler_class_guards() -> None:
    source = inspect.getsource(tornado.websocket.WebSocketHandler._detach_stream)
    for name in handler_module._DROPPED_AFTER_UPGRADE[:7]:
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
        # Tornado's flags after the upgrade have the values the class provides.
        for name, value in handler_module._OPEN_DEFAULTS.items():
            assert getattr(handler, name) == value, name
        assert set(vars(handler)) <= {
            "_reason",
            "app",
            "application",
            "plugin",
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
        assert len(handler_module.NO_HEADERS) == 0
        # The close path (Tornado's on_connection_close, _break_cycles) still works.
        await client.close()
        for _ in range(200):
            if rt.plugin.hub.session(rt.app("chat").uuid, client.client_id) is None:
                break
            await asyncio.sleep(0.01)
        assert rt.plugin.hub.session(rt.app("chat").uuid, client.client_id) is None
        assert handler.ws_connection is None and handler.ui is None


@pytest.mark.gen_test
async def test_subscribers_share_one_channel_name_string(tmp_path: Path) -> None:
    async with realtime_kernel(tmp_path) as rt:
        first, second = await rt.client("chat"), await rt.client("chat")
        for client in (first, second):
            await client.subscribe("room")
        uuid = rt.app("chat").uuid
        names = []
        for client in (first, second):
            session = rt.plugin.hub.session(uuid, client.client_id)
            assert session is not None
            names.extend(session.subscriptions)
        assert names == ["room", "room"] and names[0] is names[1]
