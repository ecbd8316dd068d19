"""Peer: a bare Tornado server, ``write_message`` once per subscriber.

The bench protocol: ``{"type":"subscribe","channel":C}`` is answered with
``{"type":"subscribed","channel":C}``; ``{"type":"message","channel":C,"data":D}``
broadcasts ``{"type":"message","channel":C,"data":D,"timestamp":MS}`` to C's
other subscribers (the JSON is encoded once, then written per subscriber; the
sender is skipped, as fazt does not echo a client's publish).
``POST /publish`` with ``{"channel":C,"data":D}`` does the same broadcast from a
plain HTTP handler: the baseline for fazt's JS handler path.
Usage: tornado_peer.py PORT
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import tornado.web
import tornado.websocket

CHANNELS: dict[str, set[Subscriber]] = {}


def broadcast(channel: str, data: Any, sender: Subscriber | None = None) -> None:
    text = json.dumps(
        {"type": "message", "channel": channel, "data": data, "timestamp": int(time.time() * 1000)},
        separators=(",", ":"),
    )
    for sub in list(CHANNELS.get(channel, ())):
        if sub is not sender:
            sub.write_message(text)


class Subscriber(tornado.websocket.WebSocketHandler):
    def open(self, *args: str, **kwargs: str) -> None:
        self.channels: set[str] = set()

    def on_message(self, message: str | bytes) -> None:
        msg = json.loads(message)
        kind, channel = msg.get("type"), msg.get("channel")
        if kind == "subscribe":
            CHANNELS.setdefault(channel, set()).add(self)
            self.channels.add(channel)
            self.write_message(json.dumps({"type": "subscribed", "channel": channel}))
        elif kind == "message":
            broadcast(channel, msg.get("data"), self)
        elif kind == "ping":
            self.write_message('{"type":"pong"}')

    def on_close(self) -> None:
        for channel in self.channels:
            CHANNELS.get(channel, set()).discard(self)


class Publish(tornado.web.RequestHandler):
    def post(self) -> None:
        body = json.loads(self.request.body)
        broadcast(body["channel"], body["data"])
        self.write({"sent": True})


async def main(port: int) -> None:
    app = tornado.web.Application([(r"/ws", Subscriber), (r"/publish", Publish)])
    app.listen(port, address="127.0.0.1", backlog=1024)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
