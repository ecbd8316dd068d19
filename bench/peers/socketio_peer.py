"""Peer: python-socketio on aiohttp, one room per channel, ``emit(room=..., skip_sid=...)``.

Socket.IO has its own framing, so the load client speaks its dialect:
``subscribe`` and ``publish`` are events (``publish`` carries
``{"channel": C, "data": D}``); broadcasts are ``message`` events carrying the
same ``{"type":"message",...}`` object as the other peers, to every member of
the room but the sender (``skip_sid``, as fazt does not echo a client's publish).
Usage: socketio_peer.py PORT
"""

from __future__ import annotations

import sys
import time
from typing import Any

import socketio
from aiohttp import web

sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")


@sio.event
async def subscribe(sid: str, channel: str) -> None:
    await sio.enter_room(sid, channel)
    await sio.emit("subscribed", {"channel": channel}, to=sid)


@sio.event
async def publish(sid: str, body: dict[str, Any]) -> None:
    channel = body["channel"]
    message = {
        "type": "message",
        "channel": channel,
        "data": body["data"],
        "timestamp": int(time.time() * 1000),
    }
    await sio.emit("message", message, room=channel, skip_sid=sid)


def main(port: int) -> None:
    app = web.Application()
    sio.attach(app)
    web.run_app(app, host="127.0.0.1", port=port, print=None, backlog=1024)


if __name__ == "__main__":
    main(int(sys.argv[1]))
