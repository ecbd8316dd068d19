"""Peer: the ``websockets`` library (asyncio API) with ``broadcast()``.

Same bench protocol as ``tornado_peer.py``; compression off (the client does
not offer it either), default keepalive pings.
Usage: websockets_peer.py PORT
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

CHANNELS: dict[str, set[ServerConnection]] = {}


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
                broadcast(CHANNELS.get(channel, ()), text)
            elif kind == "ping":
                await ws.send('{"type":"pong"}')
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
