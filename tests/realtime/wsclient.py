"""Real-socket helpers for the realtime tests: a kernel with apps, JSON WebSocket clients."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import tornado.httpclient
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from fazt.kernel.app import App
from fazt.realtime.plugin import RealtimePlugin
from tests.harness import RunningKernel, make_app, running_kernel

TIMEOUT = 5.0


def hs256_token(secret: bytes, claims_text: str) -> str:
    """An HS256 JWT over exactly ``claims_text``, JSON written by hand: it may hold what
    the token service would never mint (a lone surrogate, ``1e400``, ``NaN``)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(b'{"alg":"HS256","typ":"JWT"}')
    body = b64(claims_text.encode())
    signature = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(signature)}"


def strict_loads(text: str | bytes) -> Any:
    """A server frame, which must be strict JSON: no NaN/Infinity, nothing unencodable
    (``ValueError`` otherwise; ``UnicodeEncodeError`` is one)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"the server sent {name}, which is not JSON")

    value = json.loads(text, parse_constant=refuse)
    json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    return value


class Client:
    """A JSON WebSocket client with bounded waits."""

    def __init__(self, ws: ClientConnection, hello: dict[str, Any]) -> None:
        self.ws = ws
        self.hello = hello
        self.client_id: str = hello.get("clientId", "")

    async def send(self, message: Any) -> None:
        await self.ws.send(message if isinstance(message, str | bytes) else json.dumps(message))

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        return value

    async def recv_many(self, count: int, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """The next ``count`` messages, all within ``timeout`` (one timer, not one per frame)."""

        async def read() -> list[dict[str, Any]]:
            return [json.loads(await self.ws.recv()) for _ in range(count)]

        return await asyncio.wait_for(read(), timeout)

    async def request(self, message: Any) -> dict[str, Any]:
        await self.send(message)
        return await self.recv()

    async def alive(self) -> bool:
        """Ping the server and wait for the pong, answering server pings meanwhile."""
        await self.send({"type": "ping"})
        while True:
            message = await self.recv()
            if message == {"type": "pong"}:
                return True
            assert message == {"type": "ping"}, message
            await self.send({"type": "pong"})

    async def subscribe(self, channel: str) -> dict[str, Any]:
        reply = await self.request({"type": "subscribe", "channel": channel})
        assert reply["type"] == "subscribed", reply
        return reply

    async def expect_close(
        self, timeout: float = TIMEOUT
    ) -> tuple[int | None, list[dict[str, Any]]]:
        """Read until the server closes; returns (close code, messages read meanwhile)."""
        seen: list[dict[str, Any]] = []
        try:
            while True:
                seen.append(await self.recv(timeout))
        except ConnectionClosed as closed:
            return (closed.rcvd.code if closed.rcvd else None), seen

    async def nothing_within(self, seconds: float = 0.1) -> bool:
        try:
            message = await asyncio.wait_for(self.ws.recv(), seconds)
        except asyncio.TimeoutError:
            return True
        raise AssertionError(f"unexpected message {message!r}")

    async def close(self) -> None:
        await self.ws.close()


async def open_client(url: str, token: str | None = None, **kwargs: Any) -> Client:
    if token is not None:
        url = f"{url}?token={token}"
    options: dict[str, Any] = {"max_queue": None, "close_timeout": 2, **kwargs}
    ws = await connect(url, ping_interval=None, compression=None, open_timeout=TIMEOUT, **options)
    hello = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    return Client(ws, hello)


async def post_json(url: str, body: Any) -> Any:
    """POST ``body`` as JSON to an app's handler; its decoded JSON answer."""
    response = await tornado.httpclient.AsyncHTTPClient().fetch(
        url, method="POST", body=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    return json.loads(response.body)


async def upgrade_status(url: str) -> int:
    """The HTTP status of a refused upgrade (101 when it was accepted)."""
    try:
        ws = await connect(url, ping_interval=None, open_timeout=TIMEOUT)
    except InvalidStatus as refused:
        return int(refused.response.status_code)
    await ws.close()
    return 101


class Realtime:
    """A running kernel plus handles on its realtime plugin."""

    def __init__(self, running: RunningKernel) -> None:
        self.running = running
        self.kernel = running.kernel
        plugin = running.kernel.plugin("realtime")
        assert isinstance(plugin, RealtimePlugin)
        self.plugin = plugin
        self.clients: list[Client] = []

    def app(self, slug: str) -> App:
        app = self.kernel.apps.by_slug(slug)
        assert app is not None, slug
        return app

    def url(self, slug: str) -> str:
        return self.running.ws_url(slug)

    async def client(self, slug: str, token: str | None = None) -> Client:
        client = await open_client(self.url(slug), token)
        self.clients.append(client)
        return client

    async def close_clients(self) -> None:
        await asyncio.gather(*(client.close() for client in self.clients))

    def token(self, sub: str, **claims: Any) -> str:
        return self.kernel.tokens.issue(sub, **claims)


@contextlib.asynccontextmanager
async def realtime_kernel(
    tmp_path: Path,
    apps: Mapping[str, Mapping[str, Any]] | None = None,
    realtime: Mapping[str, Any] | None = None,
    files: Mapping[str, Mapping[str, str]] | None = None,
    extra_config: Mapping[str, Any] | None = None,
) -> AsyncIterator[Realtime]:
    """A kernel with the realtime plugin, the given apps (slug -> app.json) and config."""
    apps_dir = tmp_path / "apps"
    for slug, manifest in (apps or {"chat": {}}).items():
        make_app(apps_dir, slug, manifest, (files or {}).get(slug))
    config = {
        "realtime": {"shutdownGraceSeconds": 0.2, **dict(realtime or {})},
        **dict(extra_config or {}),
    }
    async with running_kernel(apps_dir, data_dir=tmp_path / "data", config=config) as running:
        realtime = Realtime(running)
        try:
            yield realtime
        finally:
            await realtime.close_clients()


def raw_upgrade(port: int, path: str, rcvbuf: int = 4096) -> tuple[socket.socket, bytes]:
    """A blocking raw-socket WebSocket upgrade (for a client that then stops reading).

    Returns the socket and whatever bytes arrived after the HTTP response.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "connection closed during upgrade"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock, rest


def masked_text_frame(payload: bytes) -> bytes:
    """A client (masked) text frame, for raw-socket clients."""
    mask = b"\x01\x02\x03\x04"
    length = len(payload)
    if length < 126:
        header = bytes((0x81, 0x80 | length))
    elif length < 65536:
        header = bytes((0x81, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x81, 0x80 | 127)) + length.to_bytes(8, "big")
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + body


def parse_server_frames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Split unmasked server frames: ([(opcode, payload)], leftover bytes)."""
    frames: list[tuple[int, bytes]] = []
    while len(data) >= 2:
        opcode, length, offset = data[0] & 0x0F, data[1] & 0x7F, 2
        if length == 126:
            if len(data) < 4:
                break
            length, offset = int.from_bytes(data[2:4], "big"), 4
        elif length == 127:
            if len(data) < 10:
                break
            length, offset = int.from_bytes(data[2:10], "big"), 10
        if len(data) < offset + length:
            break
        frames.append((opcode, data[offset : offset + length]))
        data = data[offset + length :]
    return frames, data
