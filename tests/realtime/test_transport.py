"""The fast write path against real sockets: coalescing, order, bounds, broken peers.

The Tornado internals it relies on are pinned in ``test_tornado_internals.py``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fazt.realtime.protocol import text_frame
from tests.realtime.streams import socket_stream, transport_on
from tests.realtime.wsclient import realtime_kernel


@pytest.mark.gen_test
async def test_short_writes_queue_exactly_the_tail_and_keep_order() -> None:
    stream, peer = socket_stream()
    transport, handler = transport_on(stream, queue=10_000)
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
    stream, peer = socket_stream()
    transport, handler = transport_on(stream, queue=5)
    frame = text_frame(b"z" * 8000)
    for _ in range(100):
        transport.send_frame(frame)
        await asyncio.sleep(0)
    assert handler.closed_with == (4101, "slow consumer")
    assert transport.closing and transport.queued <= 5
    assert len(transport._buffer) <= 5 * len(frame)
    stream.close()
    peer.close()


@pytest.mark.gen_test
async def test_broken_pipe_closes_quietly() -> None:
    stream, peer = socket_stream()
    transport, _ = transport_on(stream, queue=5)
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
    stream, peer = socket_stream(sndbuf=1 << 20)
    transport, handler = transport_on(stream, queue=4)
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
    stream, peer = socket_stream(sndbuf=1 << 20)
    transport, handler = transport_on(stream, queue=10)
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
