"""The write path against real sockets: coalescing, order, bounds, broken peers, the close.

The Tornado internals the upgrade relies on are pinned in ``test_tornado_internals.py``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fazt.realtime.frames import close_frame, pong_frame
from fazt.realtime.protocol import text_frame
from fazt.realtime.transport import SocketTransport, WriteCoalescer
from tests.realtime.streams import read_until, socket_pair, transport_on
from tests.realtime.wsclient import parse_server_frames, realtime_kernel


@pytest.mark.gen_test
async def test_short_writes_queue_exactly_the_tail_and_keep_order() -> None:
    sock, peer = socket_pair()
    transport = transport_on(sock, queue=10_000)
    frames = [text_frame(b'{"n":%d,"pad":"%s"}' % (i, b"y" * 3000)) for i in range(200)]
    for index, frame in enumerate(frames):
        transport.send_frame(frame)
        if index % 7 == 0:
            await asyncio.sleep(0)  # end of a loop turn: the coalesced writes go out
    await asyncio.sleep(0)
    assert transport.queued > 0  # the socket buffer filled up: later frames were queued
    expected = b"".join(frames)
    received = await read_until(peer, len(expected))
    assert received == expected  # byte-exact: no frame lost, duplicated or reordered
    for _ in range(100):
        if not transport.queued:
            break
        await asyncio.sleep(0.001)
    assert transport.queued == 0 and not transport.closing
    transport.abort()
    peer.close()


@pytest.mark.gen_test
async def test_full_queue_closes_4101_and_stays_bounded() -> None:
    sock, peer = socket_pair()
    transport = transport_on(sock, queue=5)
    frame = text_frame(b"z" * 8000)
    most_queued = 0
    for _ in range(100):
        transport.send_frame(frame)
        await asyncio.sleep(0)
        most_queued = max(most_queued, transport.queued)
        assert sum(len(chunk) for chunk, _ in transport._backlog or ()) <= 5 * len(frame) + 200
    assert transport.closing and most_queued <= 5
    # The reader finds whole frames in order, then the close frame with 4101.
    frames, rest = parse_server_frames(await read_until(peer, 1 << 20, seconds=1.0))
    assert frames[-1] == (0x8, close_frame(4101, "slow consumer")[2:])
    assert all(item == (0x1, frame[4:]) for item in frames[:-1]) and not rest
    transport.abort()
    peer.close()


@pytest.mark.gen_test
async def test_broken_pipe_closes_quietly() -> None:
    sock, peer = socket_pair()
    transport = transport_on(sock, queue=5)
    peer.close()
    for _ in range(3):
        transport.send_frame(text_frame(b"{}"))  # EPIPE/ECONNRESET: no exception, no SIGPIPE
        await asyncio.sleep(0)
    assert transport.closing
    await asyncio.sleep(0)
    assert sock.fileno() == -1  # released: the socket is closed
    transport.send_frame(text_frame(b"{}"))  # after close: a no-op
    transport.abort()


@pytest.mark.gen_test
async def test_a_turn_never_holds_more_than_a_queue_of_frames() -> None:
    sock, peer = socket_pair(sndbuf=1 << 20)
    transport = transport_on(sock, queue=4)
    frames = [text_frame(b'{"n":%d}' % i) for i in range(6)]
    for frame in frames:
        transport.send_frame(frame)
    peer.setblocking(False)
    # The fourth frame filled a queue's worth: those four left without waiting for
    # the end of the turn; the last two wait for it, in order.
    assert peer.recv(1000) == b"".join(frames[:4])
    await asyncio.sleep(0)
    assert peer.recv(1000) == b"".join(frames[4:])
    assert not transport.closing
    transport.abort()
    peer.close()


@pytest.mark.gen_test
async def test_one_turn_is_one_write_and_close_flushes_first() -> None:
    sock, peer = socket_pair(sndbuf=1 << 20)
    transport = transport_on(sock, queue=10)
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
    assert peer.recv(1000) == frames[0] + close_frame(4003, "kicked")
    transport.send_frame(frames[1])
    transport.close(4101, "again")  # one close frame only
    await asyncio.sleep(0)
    with pytest.raises(BlockingIOError):
        peer.recv(100)  # nothing after the close
    transport.abort()
    peer.close()


class _QuickToGiveUp(SocketTransport):
    close_timeout = 0.05


@pytest.mark.gen_test
async def test_the_closing_handshake_times_out_into_a_release() -> None:
    sock, peer = socket_pair()
    transport = _QuickToGiveUp(sock, 10, WriteCoalescer())
    transport.close(1000, "")
    assert peer.recv(100) == close_frame(1000, "")
    await asyncio.sleep(0.1)
    assert sock.fileno() == -1 and peer.recv(100) == b""  # the peer never answered: dropped
    peer.close()


@pytest.mark.gen_test
async def test_unsent_upgrade_bytes_go_first_and_control_frames_keep_their_place() -> None:
    sock, peer = socket_pair(sndbuf=1 << 20)
    transport = SocketTransport(sock, 10, WriteCoalescer(), unsent=b"HTTP/1.1 101 ...\r\n\r\n")
    transport.send_frame(text_frame(b"{}"))
    transport._write_control(pong_frame(b"p"))
    peer.setblocking(False)
    await asyncio.sleep(0.01)
    assert peer.recv(1000) == b"HTTP/1.1 101 ...\r\n\r\n" + text_frame(b"{}") + pong_frame(b"p")
    transport.abort()
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
