"""Raw HTTP/1.1 clients for edge tests (half-sent heads, trickles, keep-alive) on asyncio."""

from __future__ import annotations

import asyncio
import contextlib

#: A request head cut before its end: the server waits for the rest.
HALF_HEAD = b"GET /_app/chat/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
FULL_HEAD = b"GET /_app/chat/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class RawConnection:
    """One TCP connection to the server, driven by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, first_bytes: bytes = b"") -> RawConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        connection = cls(reader, writer)
        if first_bytes:
            await connection.send(first_bytes)
        return connection

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """Read one response with a Content-Length body: (status, body)."""

        async def read() -> tuple[int, bytes]:
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            length = 0
            for line in header_lines:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = await self.reader.readexactly(length)
            return int(status_line.split()[1]), body

        return await asyncio.wait_for(read(), timeout)

    async def closed_by_server(self, timeout: float) -> bool:
        """True if the server closes (EOF or reset) within ``timeout`` without sending bytes."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), timeout)
        except asyncio.TimeoutError:
            return False
        except ConnectionError:
            return True
        assert data == b"", f"the server answered instead of closing: {data!r}"
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
