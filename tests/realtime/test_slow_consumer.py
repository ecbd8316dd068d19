"""A client that stops reading is closed 4101 while 1,000 others keep receiving."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from pathlib import Path

import pytest

from fazt.realtime.connection import WebSocketConnection
from tests.realtime.wsclient import (
    masked_text_frame,
    parse_server_frames,
    raw_upgrade,
    realtime_kernel,
)

QUEUE = 16
SUBSCRIBERS = 1000
FEED = 30
FIREHOSE = 400
BIG = "x" * 32_000


def raw_request(sock: socket.socket, buffered: bytes, message: dict[str, object]) -> bytes:
    """Send one frame on a blocking raw socket and read until one reply; returns leftovers."""
    sock.sendall(masked_text_frame(json.dumps(message).encode()))
    data = buffered
    while True:
        frames, rest = parse_server_frames(data)
        if frames:
            return rest
        data += sock.recv(65536)


@pytest.mark.gen_test(timeout=60)
async def test_slow_consumer_is_closed_4101_and_others_unaffected(tmp_path: Path) -> None:
    config = {
        "outgoingQueueSize": QUEUE,
        "limits": {"maxConnectionsPerApp": 2000, "maxConnectionsTotal": 2000},
    }
    async with realtime_kernel(tmp_path, realtime=config) as rt:
        app = rt.app("chat")
        api = rt.plugin.api(app)
        readers = []
        for _ in range(SUBSCRIBERS // 100):
            batch = await asyncio.gather(*(rt.client("chat") for _ in range(100)))
            readers.extend(batch)
        await asyncio.gather(*(reader.subscribe("feed") for reader in readers))

        # The slow client: a raw socket with a tiny receive buffer that stops reading.
        loop = asyncio.get_running_loop()
        sock, rest = await loop.run_in_executor(
            None, raw_upgrade, rt.running.port, "/_app/chat/_ws", 4096
        )
        try:
            frames, rest = parse_server_frames(rest)
            while not frames:
                rest += await loop.run_in_executor(None, sock.recv, 65536)
                frames, rest = parse_server_frames(rest)
            client_id = json.loads(frames[0][1])["clientId"]
            for channel in ("feed", "firehose"):
                rest = await loop.run_in_executor(
                    None, raw_request, sock, rest, {"type": "subscribe", "channel": channel}
                )
            session = rt.plugin.hub.session(app.uuid, client_id)
            assert session is not None
            transport = session.transport
            assert isinstance(transport, WebSocketConnection)

            # Publish while the slow client reads nothing; the queue never passes its bound.
            max_queued = 0
            for i in range(FIREHOSE):
                await api.broadcast("firehose", {"i": i, "pad": BIG})
                if i < FEED:
                    await api.broadcast("feed", i)
                max_queued = max(max_queued, transport.queued)
                if i % 10 == 0:
                    await asyncio.sleep(0)  # let the others read meanwhile
            assert max_queued <= QUEUE
            assert transport.closing
            assert await api.count("firehose") <= 1

            # Everyone else got every feed message, in order.
            for reader in readers:
                got = await reader.recv_many(FEED, timeout=20)
                assert [message["data"] for message in got] == list(range(FEED))

            # The slow client, reading again, finds an in-order prefix and then close 4101.
            def drain() -> list[tuple[int, bytes]]:
                data, frames = rest, []
                while True:
                    parsed, data = parse_server_frames(data)
                    frames.extend(parsed)
                    if any(opcode == 0x8 for opcode, _ in parsed):
                        return frames
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        return frames
                    data += chunk

            received = await loop.run_in_executor(None, drain)
        finally:
            sock.close()
        close = [payload for opcode, payload in received if opcode == 0x8]
        assert close and struct.unpack(">H", close[0][:2])[0] == 4101
        hose = [json.loads(p)["data"]["i"] for op, p in received if op == 1 and b"pad" in p]
        assert hose == list(range(len(hose))) and len(hose) < FIREHOSE
