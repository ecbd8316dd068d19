"""A raw WebSocket client over asyncio streams: it can send any frame, malformed or not.

Used by the reader's real-socket tests and the Autobahn-style cases. Frames are
built by ``client_frame`` (masked by default, any opcode, flags, length) and
the server's frames are read back unparsed by anything of the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from typing import NamedTuple

TIMEOUT = 5.0

UPGRADE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n"
)


def client_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    mask: bytes | None = None,
) -> bytes:
    """One client frame; ``rsv`` is the three reserved bits (0-7)."""
    first = (0x80 if fin else 0) | (rsv & 7) << 4 | opcode
    length = len(payload)
    mask_bit = 0x80 if masked else 0
    if length < 126:
        header = bytes((first, mask_bit | length))
    elif length < 65536:
        header = bytes((first, mask_bit | 126)) + struct.pack(">H", length)
    else:
        header = bytes((first, mask_bit | 127)) + struct.pack(">Q", length)
    if not masked:
        return header + payload
    key = mask if mask is not None else os.urandom(4)
    body = bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))
    return header + key + body


def text(payload: str | bytes, **options: object) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return client_frame(0x1, data, **options)  # type: ignore[arg-type]


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack(">H", code) + reason


class ServerFrame(NamedTuple):
    fin: bool
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        return struct.unpack(">H", self.payload[:2])[0] if len(self.payload) >= 2 else None


class Ending(NamedTuple):
    """How a connection ended, seen from the client."""

    frames: list[ServerFrame]  # every frame before the close frame
    close: ServerFrame | None  # the server's close frame (None: none came)
    eof: bool  # the server closed the TCP connection


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, *frames: bytes, split: int | None = None) -> None:
        """Write ``frames``; with ``split``, in pieces of that many bytes, one per drain."""
        data = b"".join(frames)
        if split is None:
            self.writer.write(data)
            await self.writer.drain()
            return
        for start in range(0, len(data), split):
            self.writer.write(data[start : start + split])
            await self.writer.drain()
            await asyncio.sleep(0.001)

    async def frame(self, timeout: float = TIMEOUT) -> ServerFrame:
        head = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        length = head[1] & 0x7F
        assert not head[1] & 0x80, "server frames are never masked"
        if length == 126:
            length = struct.unpack(">H", await self.reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", await self.reader.readexactly(8))[0]
        payload = await asyncio.wait_for(self.reader.readexactly(length), timeout)
        return ServerFrame(bool(head[0] & 0x80), head[0] & 0x0F, payload)

    async def json_frame(self) -> bytes:
        frame = await self.frame()
        assert frame.opcode == 0x1, frame
        return frame.payload

    async def ending(self, timeout: float = TIMEOUT, answer: bool = True) -> Ending:
        """Read until the server's close frame (answered with the same code when
        ``answer``), then until EOF; frames in between are collected."""
        frames: list[ServerFrame] = []
        close = None
        try:
            while close is None:
                frame = await self.frame(timeout)
                if frame.opcode == 0x8:
                    close = frame
                else:
                    frames.append(frame)
        except (asyncio.IncompleteReadError, ConnectionError):
            return Ending(frames, None, True)
        if answer:
            with contextlib.suppress(ConnectionError):
                await self.send(client_frame(0x8, close.payload[:2]))
        try:
            rest = await asyncio.wait_for(self.reader.read(), timeout)
        except (TimeoutError, asyncio.TimeoutError):
            return Ending(frames, close, False)
        except ConnectionError:
            return Ending(frames, close, True)
        assert rest == b"", rest
        return Ending(frames, close, True)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def open_raw(port: int, path: str, first: bytes = b"") -> tuple[RawClient, bytes]:
    """Upgrade a raw connection (``first`` is sent along with the request); returns the
    client and the ``connected`` message's payload."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(UPGRADE.format(path=path, port=port).encode() + first)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101"), head
    client = RawClient(reader, writer)
    hello = await client.json_frame()
    return client, hello
