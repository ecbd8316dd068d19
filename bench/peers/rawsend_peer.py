"""Calibration: a bare non-blocking ``socket.send()`` of one prebuilt frame per subscriber.

This is the floor for a Python server that must make one system call per
delivery: a ``selectors`` loop, the opening handshake and client frames handled
by ``websockets``' sans-I/O ``ServerProtocol``, and on each publish the
broadcast JSON and its WebSocket header are built once, then ``sock.send`` is
called once per subscriber. A short write queues exactly the unsent tail
(and later frames go behind it), so ordering holds. A server can get *below*
this figure when its readers are busy: the reader's CPU then takes on part of
the loopback TCP work.
Usage: rawsend_peer.py PORT
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import time

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

SEL = selectors.DefaultSelector()
FLAGS = socket.MSG_NOSIGNAL
CHANNELS: dict[str, list[Client]] = {}


def ws_frame(payload: bytes) -> bytes:
    """An unmasked, final text frame."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


class Client:
    __slots__ = ("pending", "proto", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.proto = ServerProtocol(max_size=None)
        self.pending = b""

    def write(self, data: bytes) -> None:
        if self.pending:
            self.pending += data
            return
        try:
            sent = self.sock.send(data, FLAGS)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.close()
            return
        if sent < len(data):
            self.pending = data[sent:]
            SEL.modify(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self)

    def on_writable(self) -> None:
        try:
            sent = self.sock.send(self.pending, FLAGS)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        self.pending = self.pending[sent:]
        if not self.pending:
            SEL.modify(self.sock, selectors.EVENT_READ, self)

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        self.proto.receive_data(data)
        for event in self.proto.events_received():
            if isinstance(event, Request):
                self.proto.send_response(self.proto.accept(event))
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self.on_text(bytes(event.data))
        for chunk in self.proto.data_to_send():
            if chunk:
                self.write(chunk)
        if self.proto.state is State.CLOSED:
            self.close()

    def on_text(self, text: bytes) -> None:
        msg = json.loads(text)
        kind, channel = msg.get("type"), msg.get("channel")
        if kind == "subscribe":
            CHANNELS.setdefault(channel, []).append(self)
            self.proto.send_text(json.dumps({"type": "subscribed", "channel": channel}).encode())
        elif kind == "message":
            payload = json.dumps(
                {
                    "type": "message",
                    "channel": channel,
                    "data": msg.get("data"),
                    "timestamp": int(time.time() * 1000),
                },
                separators=(",", ":"),
            ).encode()
            frame = ws_frame(payload)
            # A copy: a failed send closes that client, which leaves the list.
            for client in tuple(CHANNELS.get(channel, ())):
                if client is not self:  # no echo to the sender, as fazt
                    client.write(frame)

    def close(self) -> None:
        if self.sock.fileno() < 0:
            return
        SEL.unregister(self.sock)
        self.sock.close()
        for subs in CHANNELS.values():
            if self in subs:
                subs.remove(self)


def main(port: int) -> None:
    listener = socket.create_server(("127.0.0.1", port), backlog=1024)
    listener.setblocking(False)
    SEL.register(listener, selectors.EVENT_READ, None)
    while True:
        for key, mask in SEL.select():
            if key.data is None:
                try:
                    sock, _ = listener.accept()
                except BlockingIOError:
                    continue
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                SEL.register(sock, selectors.EVENT_READ, Client(sock))
                continue
            client = key.data
            if mask & selectors.EVENT_WRITE and client.pending:
                client.on_writable()
            if mask & selectors.EVENT_READ and client.sock.fileno() >= 0:
                client.on_readable()


if __name__ == "__main__":
    main(int(sys.argv[1]))
