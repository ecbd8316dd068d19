"""Real HTTP and WebSocket clients for the example apps, as a page would use them.

Python cannot resolve ``chat.localhost``, so clients reach an app at
``http://127.0.0.1:PORT/_app/<slug>/`` (the kernel's path route); the WebSocket
client sends no Origin header, like any non-browser client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import tornado.httpclient
from websockets.asyncio.client import ClientConnection, connect

# Every wait for a frame is bounded; a missing frame fails the test quickly.
RECV_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class AppClient:
    """One example app on a running kernel."""

    port: int
    slug: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/_app/{self.slug}"

    async def call(
        self, name: str, body: Any = None, token: str | None = None, method: str | None = None
    ) -> tuple[int, Any]:
        """``/api/<name>``: POST ``body`` as JSON (GET when None); (status, JSON reply)."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = tornado.httpclient.HTTPRequest(
            f"{self.base}/api/{name}",
            method=method or ("GET" if body is None else "POST"),
            headers=headers,
            body=None if body is None else json.dumps(body),
            request_timeout=RECV_TIMEOUT_SECONDS,
        )
        response = await tornado.httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        return response.code, json.loads(response.body) if response.body else None

    async def login(self, name: str, **extra: Any) -> str:
        status, reply = await self.call("login", {"name": name, **extra})
        assert status == 200, reply
        token = reply["token"]
        assert isinstance(token, str)
        return token

    @asynccontextmanager
    async def socket(self, token: str | None = None) -> AsyncIterator[RealtimeClient]:
        url = f"ws://127.0.0.1:{self.port}/_app/{self.slug}/_ws"
        if token:
            url += f"?token={quote(token)}"
        # No Origin header: a non-browser client, as Tornado's check_origin allows.
        async with connect(url, open_timeout=RECV_TIMEOUT_SECONDS) as ws:
            client = RealtimeClient(ws)
            hello = await client.recv()
            assert hello["type"] == "connected", hello
            client.hello = hello
            yield client


class RealtimeClient:
    """A thin protocol client: JSON frames in and out, every wait bounded."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.hello: dict[str, Any] = {}

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def recv(self) -> dict[str, Any]:
        """The next frame that is not a server ping (pings are answered)."""
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), RECV_TIMEOUT_SECONDS)
            frame: dict[str, Any] = json.loads(raw)
            if frame.get("type") == "ping":
                await self.send({"type": "pong"})
                continue
            return frame

    async def subscribe(self, channel: str) -> dict[str, Any]:
        """Subscribe; returns the ``subscribed`` or ``error`` reply for ``channel``."""
        await self.send({"type": "subscribe", "channel": channel})
        while True:
            frame = await self.recv()
            if frame.get("channel") == channel and frame.get("type") in ("subscribed", "error"):
                return frame

    async def next_message(self) -> dict[str, Any]:
        """The next ``message`` frame (broadcasts), skipping presence events."""
        while True:
            frame = await self.recv()
            if frame.get("type") == "message":
                return frame
