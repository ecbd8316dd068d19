"""Real socket pairs, and fazt's write path on one end without a server."""

from __future__ import annotations

import asyncio
import socket

from fazt.realtime.transport import SocketTransport, WriteCoalescer


def socket_pair(sndbuf: int = 4096) -> tuple[socket.socket, socket.socket]:
    """A connected pair with small buffers: (the server's end, the peer's end)."""
    server, client = socket.socketpair()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
    server.setblocking(False)
    return server, client


def transport_on(sock: socket.socket, queue: int) -> SocketTransport:
    """A ``SocketTransport`` writing to ``sock``."""
    return SocketTransport(sock, queue, WriteCoalescer())


async def read_until(peer: socket.socket, size: int, seconds: float = 5.0) -> bytes:
    """Read from ``peer`` (non-blocking) until ``size`` bytes, EOF or ``seconds``."""
    peer.setblocking(False)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    received = b""
    while len(received) < size and loop.time() < deadline:
        try:
            chunk = peer.recv(1 << 16)
        except BlockingIOError:
            await asyncio.sleep(0.001)
            continue
        if not chunk:
            break
        received += chunk
    return received
