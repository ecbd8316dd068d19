"""Peer: the ``websockets`` library (asyncio API) with ``broadcast()``.

Same bench protocol as ``tornado_peer.py``; compression off (the client does
not offer it either), default keepalive pings. ``auth`` checks an HS256 JWT
with pyjwt, as fazt's token service does.
Usage: websockets_peer.py PORT [JWT_SECRET]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import jwt
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

CHANNELS: dict[str, set[ServerConnection]] = {}
SECRET = sys.argv[2] if len(sys.argv) > 2 else ""


def authenticate(token: object) -> str:
    """The answer to ``{"type":"auth","token":T}``."""
    try:
        claims = jwt.decode(
            token, SECRET, algorithms=["HS256"], options={"require": ["exp", "sub"]}
        )
    except (jwt.InvalidTokenError, TypeError):
        return '{"type":"error","code":"unauthorized","error":"invalid token"}'
    return json.dumps({"type": "authenticated", "user": {"id": claims["sub"]}})


async def handler(ws: ServerConnection) -> None:
    mine: set[str] = set()
    try:
        async for message in ws:
            msg = json.loads(message)
            kind, channel = msg.get("type"), msg.get("channel")
            if kind == "subscribe":
                CHANNELS.setdefault(channel, set()).add(ws)
                mine.add(channel)
                await ws.send(json.dumps({"type": "subscribed", "channel": channel}))
            elif kind == "message":
                text = json.dumps(
                    {
                        "type": "message",
                        "channel": channel,
                        "data": msg.get("data"),
                        "timestamp": int(time.time() * 1000),
                    },
                    separators=(",", ":"),
                )
                broadcast((c for c in CHANNELS.get(channel, ()) if c is not ws), text)
            elif kind == "ping":
                await ws.send('{"type":"pong"}')
            elif kind == "auth":
                await ws.send(authenticate(msg.get("token")))
    except ConnectionClosed:
        pass  # the load client drops its connections without a closing handshake
    finally:
        for channel in mine:
            CHANNELS.get(channel, set()).discard(ws)


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, compression=None, backlog=1024, max_queue=None):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
