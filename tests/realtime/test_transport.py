"""The fast write path against real sockets, and a pin on the Tornado internals it uses.

If a Tornado upgrade renames ``WebSocketProtocol.stream``, ``IOStream.socket``,
``IOStream._write_buffer`` or ``server_terminated``, these tests fail first.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
import tornado.iostream
import tornado.websocket

from fazt.realtime.protocol import text_frame
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
