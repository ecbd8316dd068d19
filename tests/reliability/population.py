"""The seeded population that the reliability run sets on the server, one class per role.

Roles (each an asyncio task of the load generator, all driven by one
``random.Random(seed)``, so a failing run can be replayed):

* ``Subscriber``: well behaved. Subscribes before publishing starts, reads
  everything, answers pings, and records every publication it gets; at the end
  it must hold each publisher's sequence numbers exactly once, in order.
* ``ServerPublisher``: ``fazt.realtime.broadcast`` (or ``broadcastAll``) through
  an ``api/*.js`` handler, one request at a time, at a steady rate.
* ``ClientPublisher``: a client publishing on a ``publish: true`` channel.
* ``Churner``: connects (with a token or not), subscribes (public and presence
  channels), then drops the connection abruptly: RST, no close frame.
* ``NeverReader``: a raw socket with a tiny receive buffer on the busiest
  channel that never reads; it must be cut off with 4101.
* ``Vandal``: garbage frames, lone surrogates, ``1e400``, deep nesting,
  floods, oversized frames (close 1009, then it comes back).
* ``KickCycle``, ``Expirer``, ``Reauther``: kicks (``kicked`` then 4003),
  token expiries (``token_expired`` then a fresh ``auth``) and re-auths
  (a role dropped, another user).

Every frame any client receives must be strict JSON, and every ``error`` must
carry a documented code; the first broken expectation of each kind is kept
as a failure (with the role that saw it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import tornado.httpclient
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from fazt.kernel.tokens import TokenService
from fazt.realtime.protocol import ERROR_CODES
from tests.realtime.wsclient import (
    hs256_token,
    masked_text_frame,
    parse_server_frames,
    raw_upgrade,
    strict_loads,
)
from tests.reliability.server import SECRET, ServerUnderTest

SERVER_CHANNELS: Final = ("srv-0", "srv-1", "srv-2")
CLIENT_CHANNELS: Final = ("pub-0", "pub-1", "pub-2")
#: The busiest steady channel: 1 KB messages.
FIREHOSE: Final = "srv-fire"
LOBBY: Final = "presence-lobby"
ROOM: Final = "presence-room"
#: ``broadcastAll`` messages carry no channel; the ledger files them under this key.
APP_WIDE: Final = None


@dataclass(frozen=True)
class Shape:
    """How many of each role, and how fast the publishers go (messages/s each)."""

    subscribers: int
    churners: int
    never_readers: int
    vandals: int
    kick_cycles: int
    expirers: int
    reauthers: int
    publish_rate: float = 20.0
    firehose_rate: float = 40.0
    app_wide_rate: float = 2.0

    def scaled(self, factor: float) -> Shape:
        def n(value: int) -> int:
            return max(1, round(value * factor))

        return Shape(
            subscribers=n(self.subscribers),
            churners=n(self.churners),
            never_readers=n(self.never_readers),
            vandals=n(self.vandals),
            kick_cycles=n(self.kick_cycles),
            expirers=n(self.expirers),
            reauthers=n(self.reauthers),
            publish_rate=self.publish_rate,
            firehose_rate=self.firehose_rate,
            app_wide_rate=self.app_wide_rate,
        )


#: The population of a full run; short runs scale it down.
FULL: Final = Shape(
    subscribers=24,
    churners=8,
    never_readers=2,
    vandals=3,
    kick_cycles=2,
    expirers=2,
    reauthers=2,
)


@dataclass
class Context:
    """What every role shares: the server, the clock, the random source, the ledger."""

    server: ServerUnderTest
    rng: random.Random
    #: Loop time at which publishing and chaos stop.
    deadline: float = 0.0
    http: tornado.httpclient.AsyncHTTPClient = field(
        default_factory=lambda: tornado.httpclient.AsyncHTTPClient(
            force_instance=True, max_clients=64
        )
    )
    tokens: TokenService = field(default_factory=lambda: TokenService(SECRET.encode()))
    #: (channel or None, publisher) -> the last sequence number published.
    published: dict[tuple[str | None, str], int] = field(default_factory=dict)
    #: What was done, by kind: the figures of the run.
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    #: Failures past the first of each kind are counted here, not listed.
    repeated_failures: Counter[str] = field(default_factory=Counter)

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def running(self) -> bool:
        return self.now() < self.deadline

    def fail(self, kind: str, detail: str) -> None:
        if self.repeated_failures[kind] == 0:
            self.failures.append(f"{kind}: {detail}")
        self.repeated_failures[kind] += 1

    def token(self, sub: str, **claims: Any) -> str:
        return self.tokens.issue(sub, **claims)

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        response = await self.http.fetch(
            self.server.url(path),
            method="POST",
            body=json.dumps(body),
            headers={"Content-Type": "application/json"},
            request_timeout=30,
        )
        return json.loads(response.body)

    async def get(self, path: str) -> Any:
        response = await self.http.fetch(self.server.url(path), request_timeout=30)
        return json.loads(response.body)


# -- one WebSocket client ------------------------------------------------------------------
class Peer:
    """A client whose reader task answers pings, checks every frame, and queues replies.

    ``message`` and ``presence`` frames go to ``on_message``/``on_presence``;
    every other frame goes to ``inbox`` for ``expect``.
    """

    #: False for a role that never reads its replies (its inbox would only grow).
    keeps_replies = True

    def __init__(self, ctx: Context, role: str) -> None:
        self.ctx = ctx
        self.role = role
        self.ws: ClientConnection | None = None
        self.client_id = ""
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def open(self, token: str | None = None) -> None:
        self.ws = await connect(
            self.ctx.server.ws_url(token),
            ping_interval=None,
            compression=None,
            proxy=None,
            open_timeout=10,
            close_timeout=2,
            max_size=None,
            max_queue=None,
        )
        while True:
            hello = strict_loads(await asyncio.wait_for(self.ws.recv(), 10))
            if hello.get("type") == "connected":
                break
            self.ctx.fail("connected first", f"{self.role} got {hello!r} before connected")
        self.client_id = hello["clientId"]
        self.ctx.counts["connections"] += 1
        self._reader = asyncio.create_task(self._read(self.ws))

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for text in ws:
                try:
                    message = strict_loads(text)
                except ValueError as error:
                    self.ctx.fail("strict JSON", f"{self.role} got {text[:80]!r}: {error}")
                    continue
                kind = message.get("type")
                if kind == "ping":
                    await ws.send('{"type":"pong"}')
                elif kind == "message":
                    self.on_message(message)
                elif kind == "presence":
                    self.on_presence(message)
                else:
                    if kind == "error" and message.get("code") not in ERROR_CODES:
                        self.ctx.fail("error code", f"{self.role} got {message!r}")
                    if self.keeps_replies:
                        self.inbox.put_nowait(message)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = ws.close_code
            self.closed.set()

    def on_message(self, message: dict[str, Any]) -> None:
        self.ctx.counts["deliveries (other roles)"] += 1

    def on_presence(self, message: dict[str, Any]) -> None:
        self.ctx.counts["presence events"] += 1

    async def send(self, message: Any) -> None:
        assert self.ws is not None
        await self.ws.send(message if isinstance(message, str | bytes) else json.dumps(message))

    async def expect(
        self, wanted: Callable[[dict[str, Any]], bool], what: str, timeout: float = 10
    ) -> dict[str, Any] | None:
        """The next reply that ``wanted`` accepts, skipping others; None (and a failure)
        when none comes in time."""
        deadline = self.ctx.now() + timeout
        while True:
            left = deadline - self.ctx.now()
            try:
                message = await asyncio.wait_for(self.inbox.get(), max(left, 0.001))
            except asyncio.TimeoutError:
                self.ctx.fail(f"{self.role}: {what}", f"nothing within {timeout} s")
                return None
            if wanted(message):
                return message

    async def request(
        self, message: Any, wanted: Callable[[dict[str, Any]], bool], what: str
    ) -> bool:
        await self.send(message)
        return await self.expect(wanted, what) is not None

    async def subscribe(self, channel: str) -> bool:
        return await self.request(
            {"type": "subscribe", "channel": channel},
            lambda m: m.get("channel") == channel and m["type"] in ("subscribed", "error"),
            f"subscribed to {channel}",
        )

    def rst(self) -> None:
        """Drop the connection abruptly: SO_LINGER 0, then close (RST, no close frame)."""
        if self.ws is None:
            return
        transport = self.ws.transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        self.ctx.counts["RST disconnects"] += 1

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        await self.stop_reading()

    async def stop_reading(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reader), 5)
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


# -- well-behaved subscribers and the publishers -------------------------------------------
def publication(publisher: str, seq: int, pad: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = {"p": publisher, "s": seq}
    if pad:
        data["pad"] = "x" * pad
    return data


#: (channel, or None for ``broadcastAll``; publisher)
Key = tuple[str | None, str]


class Subscriber(Peer):
    """Well behaved: subscribed before publishing starts, to the end.

    It checks order as messages arrive, in constant memory (a soak can run for
    hours): per publisher the next sequence number it expects, and the first
    few surprises (a gap, a duplicate, a step back).
    """

    #: Surprises kept per publisher (their number is always kept).
    KEPT: Final = 5

    def __init__(self, ctx: Context, channels: list[str], token: str | None) -> None:
        super().__init__(ctx, "subscriber")
        self.channels = channels
        self.token = token
        self.next_seq: dict[Key, int] = {}
        self.surprises: dict[Key, list[str]] = {}
        self.surprise_count: Counter[Key] = Counter()

    async def start(self) -> None:
        await self.open(self.token)
        for channel in self.channels:
            await self.subscribe(channel)

    def on_message(self, message: dict[str, Any]) -> None:
        self.ctx.counts["deliveries checked"] += 1
        data = message.get("data")
        if not (isinstance(data, dict) and "p" in data and "s" in data):
            return
        key: Key = (message.get("channel"), data["p"])
        seq, expected = data["s"], self.next_seq.get(key, 1)
        if seq == expected:
            self.next_seq[key] = seq + 1
            return
        what = "a gap" if seq > expected else "a duplicate or a step back"
        self.surprise_count[key] += 1
        kept = self.surprises.setdefault(key, [])
        if len(kept) < self.KEPT:
            kept.append(f"{what}: {seq} when {expected} was next")
        self.next_seq[key] = max(expected, seq + 1)

    def expected(self) -> dict[Key, int]:
        """Each (channel, publisher) this subscriber must have heard, with its last seq."""
        return {
            key: last
            for key, last in self.ctx.published.items()
            if key[0] is APP_WIDE or key[0] in self.channels
        }

    def complete(self) -> bool:
        return all(self.next_seq.get(key, 1) > last for key, last in self.expected().items())

    def check(self) -> None:
        for key, last in self.expected().items():
            reached = self.next_seq.get(key, 1) - 1
            if reached != last or self.surprise_count[key]:
                self.ctx.fail(
                    "exactly once, in order",
                    f"{key}: up to {reached} of {last}, {self.surprise_count[key]} surprises "
                    f"{self.surprises.get(key, [])}",
                )
        if self.closed.is_set():
            self.ctx.fail("subscriber closed", f"close code {self.close_code}")


class ServerPublisher:
    """``fazt.realtime.broadcast`` (``broadcastAll`` for ``channel=None``) through
    ``api/pub.js``: one request at a time, each answered once sent."""

    def __init__(self, ctx: Context, name: str, channel: str | None, rate: float, pad: int) -> None:
        self.ctx, self.name, self.channel, self.rate, self.pad = ctx, name, channel, rate, pad

    async def run(self) -> None:
        ctx, seq, key = self.ctx, 0, (self.channel, self.name)
        next_at = ctx.now()
        while ctx.running():
            try:
                answer = await ctx.post(
                    "/api/pub",
                    {"channel": self.channel, "data": publication(self.name, seq + 1, self.pad)},
                )
            except Exception as error:
                # Sent or not is unknown now: stop here, so the ledger stays exact.
                ctx.fail("server publish", f"{self.name}: {error!r}")
                return
            if answer != {"sent": True}:
                ctx.fail("server publish", f"{self.name}: {answer!r}")
                return
            seq += 1
            ctx.published[key] = seq
            ctx.counts["publications"] += 1
            next_at = max(next_at + 1 / self.rate, ctx.now())
            await asyncio.sleep(next_at - ctx.now())


class ClientPublisher(Peer):
    """A client publishing on a ``publish: true`` channel it is subscribed to."""

    def __init__(self, ctx: Context, name: str, channel: str, rate: float) -> None:
        super().__init__(ctx, "client publisher")
        self.name, self.channel, self.rate = name, channel, rate

    async def start(self) -> None:
        await self.open()
        await self.subscribe(self.channel)

    async def run(self) -> None:
        ctx, seq = self.ctx, 0
        next_at = ctx.now()
        try:
            while ctx.running():
                seq += 1
                data = publication(self.name, seq)
                await self.send({"type": "message", "channel": self.channel, "data": data})
                ctx.counts["publications"] += 1
                next_at = max(next_at + 1 / self.rate, ctx.now())
                await asyncio.sleep(next_at - ctx.now())
            # Frames of one connection are handled in order: once the pong is back,
            # every publication before it has been fanned out.
            await self.request(
                {"type": "ping"}, lambda m: m["type"] == "pong", "pong after publishing"
            )
            ctx.published[(self.channel, self.name)] = seq
        finally:
            await self.close()


# -- chaos ---------------------------------------------------------------------------------
class Churner:
    """Connect, subscribe, then RST; again and again until the end. Now and then it
    tries a token whose name holds a lone surrogate, which must get HTTP 401."""

    def __init__(self, ctx: Context, number: int) -> None:
        self.ctx, self.number = ctx, number

    async def hostile_token(self) -> None:
        exp = int(time.time()) + 600
        claims = f'{{"sub":"churn{self.number}","exp":{exp},"name":"\\ud800"}}'
        token = hs256_token(SECRET.encode(), claims)
        try:
            ws = await connect(self.ctx.server.ws_url(token), proxy=None, open_timeout=10)
        except InvalidStatus as refused:
            if refused.response.status_code != 401:
                self.ctx.fail("hostile token", f"HTTP {refused.response.status_code}, not 401")
            self.ctx.counts["hostile tokens refused (401)"] += 1
            return
        await ws.close()
        self.ctx.fail("hostile token", "a name with a lone surrogate was accepted")

    async def run(self) -> None:
        ctx, rng = self.ctx, self.ctx.rng
        while ctx.running():
            if rng.random() < 0.1:
                await self.hostile_token()
                continue
            with_token = rng.random() < 0.6
            token = (
                ctx.token(f"churn{self.number}", name=f"Churner {self.number}")
                if with_token
                else None
            )
            peer = Peer(ctx, "churner")
            try:
                await peer.open(token)
                channels = rng.sample([*SERVER_CHANNELS, *CLIENT_CHANNELS], rng.randint(1, 3))
                if with_token:
                    channels.append(LOBBY)
                for channel in channels:
                    if rng.random() < 0.2:
                        # Drop it in the middle of a subscribe, without waiting.
                        await peer.send({"type": "subscribe", "channel": channel})
                        break
                    await peer.subscribe(channel)
                await asyncio.sleep(rng.uniform(0.05, 1.0))
            except (OSError, ConnectionClosed, asyncio.TimeoutError) as error:
                ctx.fail("churner", repr(error))
            finally:
                peer.rst()
                await peer.stop_reading()


class NeverReader:
    """A raw socket with a 4 KB receive buffer that never reads; it must be cut off with 4101.

    It has a channel of its own (``burst-N``, which some well-behaved subscribers
    also hold) and has the app broadcast 12 KB messages on it, 20 per request,
    until the server closes it (``/_inspect?client=``): the kernel's socket
    buffers take about 3 MB first. Then it drains its socket and reads the close
    code, well inside the 5 s the server waits for the closing handshake.
    """

    BURST: Final = 20
    PAD: Final = 12 * 1024
    #: A new never-reader every this many seconds (each one costs ~3.6 MB of burst).
    PERIOD: Final = 8.0

    def __init__(self, ctx: Context, number: int, stop_starting_at: float) -> None:
        self.ctx, self.stop_starting_at = ctx, stop_starting_at
        self.channel = self.name = burst_channel(number)
        self.seq = 0

    async def run(self) -> None:
        while True:
            next_at = self.ctx.now() + self.PERIOD
            await self.once()
            if next_at >= self.stop_starting_at:
                return
            await asyncio.sleep(next_at - self.ctx.now())

    async def once(self) -> None:
        ctx = self.ctx
        server = ctx.server
        sock, rest = await asyncio.to_thread(raw_upgrade, server.port, server.ws_path, 4096)
        try:
            client_id = await asyncio.to_thread(_read_client_id, sock, rest)
            subscribe = json.dumps({"type": "subscribe", "channel": self.channel})
            sock.sendall(masked_text_frame(subscribe.encode()))
            ctx.counts["never-readers"] += 1
            state = "open"
            give_up = ctx.now() + 30
            while state == "open" and ctx.now() < give_up:
                if not await self.burst():
                    return
                state = (await ctx.get(f"/_inspect?client={client_id}"))["state"]
            if state == "open":
                ctx.fail("never-reader", "not cut off within 30 s")
                return
            code = await asyncio.to_thread(_drain_close_code, sock)
            if code == 4101:
                ctx.counts["cut off with 4101"] += 1
            else:
                ctx.fail("never-reader", f"closed with {code}, not 4101")
        finally:
            sock.close()

    async def burst(self) -> bool:
        data = publication(self.name, self.seq + 1, self.PAD)
        body = {"channel": self.channel, "data": data, "repeat": self.BURST}
        try:
            answer = await self.ctx.post("/api/pub", body)
        except Exception as error:
            self.ctx.fail("server publish", f"{self.name}: {error!r}")
            return False
        if answer != {"sent": True}:
            self.ctx.fail("server publish", f"{self.name}: {answer!r}")
            return False
        self.seq += self.BURST
        self.ctx.published[(self.channel, self.name)] = self.seq
        self.ctx.counts["publications"] += self.BURST
        return True


def burst_channel(number: int) -> str:
    return f"burst-{number}"


def _read_client_id(sock: socket.socket, data: bytes) -> str:
    while True:
        frames, data = parse_server_frames(data)
        for _opcode, payload in frames:
            hello = strict_loads(payload)
            if hello.get("type") != "connected":
                raise AssertionError(f"a never-reader got {hello!r} before connected")
            return str(hello["clientId"])
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before connected")
        data += chunk


def _drain_close_code(sock: socket.socket) -> int | None:
    """Read until the close frame (its code) or the end of the stream (None)."""
    sock.settimeout(10)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            return None
        if not chunk:
            return None
        data += chunk
        frames, data = parse_server_frames(data)
        for opcode, payload in frames:
            if opcode == 0x8:
                return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None


#: Frames a vandal sends, by kind (each a str or bytes on the wire).
def _garbage(rng: random.Random) -> tuple[str, str | bytes]:
    kind = rng.choice(
        [
            "not json",
            "binary junk",
            "surrogate data",
            "surrogate bytes",
            "1e400",
            "deep nesting",
            "unknown type",
            "bad channel",
            "not subscribed",
            "flood",
            "oversized",
        ]
    )
    frames: dict[str, str | bytes] = {
        "not json": "{nope" + "x" * rng.randint(0, 50),
        "binary junk": bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))),
        "surrogate data": '{"type":"message","channel":"pub-0","data":"\\ud800"}',
        "surrogate bytes": b'{"type":"message","channel":"pub-0","data":"\xed\xa0\x80"}',
        "1e400": '{"type":"message","channel":"pub-0","data":{"n":1e400}}',
        "deep nesting": '{"type":"message","channel":"pub-0","data":' + "[" * 70 + "]" * 70 + "}",
        "unknown type": '{"type":"launch","channel":"pub-0"}',
        "bad channel": '{"type":"subscribe","channel":"no spaces allowed"}',
        "not subscribed": '{"type":"message","channel":"pub-1","data":"hi"}',
        "flood": '{"type":"ping"}',
        "oversized": '{"type":"message","channel":"pub-0","data":"' + "x" * 17_000 + '"}',
    }
    return kind, frames[kind]


class Vandal(Peer):
    """Sends garbage until the end; an oversized frame costs it the connection (1009)."""

    #: Its replies are checked by the reader (strict JSON, known codes), not kept.
    keeps_replies = False

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx, "vandal")

    async def start(self) -> None:
        """Connected and subscribed to ``pub-0``, where its bad publications aim."""
        await self.open()
        await self.send({"type": "subscribe", "channel": CLIENT_CHANNELS[0]})

    async def run(self) -> None:
        ctx, rng = self.ctx, self.ctx.rng
        await self.start()
        try:
            while ctx.running():
                kind, frame = _garbage(rng)
                if kind == "flood":
                    for _ in range(150):
                        await self.send(frame)
                    ctx.counts["garbage frames"] += 150
                else:
                    await self.send(frame)
                    ctx.counts["garbage frames"] += 1
                if kind == "oversized":
                    try:
                        await asyncio.wait_for(self.closed.wait(), 10)
                    except asyncio.TimeoutError:
                        ctx.fail("vandal", "an oversized frame did not close the connection")
                        return
                    if self.close_code != 1009:
                        ctx.fail("vandal", f"oversized frame closed with {self.close_code}")
                    ctx.counts["closed 1009 (oversized)"] += 1
                    await self.stop_reading()
                    self.closed.clear()
                    await self.start()
                await asyncio.sleep(rng.uniform(0.01, 0.1))
        finally:
            await self.close()


class KickCycle:
    """A client that the app kicks (``api/kick.js``): ``kicked``, then close 4003."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def run(self) -> None:
        ctx, rng = self.ctx, self.ctx.rng
        while ctx.running():
            victim = Peer(ctx, "kicked client")
            try:
                await victim.open(ctx.token("victim") if rng.random() < 0.5 else None)
                await victim.subscribe(rng.choice(SERVER_CHANNELS))
                await asyncio.sleep(rng.uniform(0.1, 0.6))
                body = {"clientId": victim.client_id, "reason": "rel"}
                answer = await ctx.post("/api/kick", body)
                if answer != {"kicked": True}:
                    ctx.fail("kick", f"api/kick answered {answer!r}")
                await victim.expect(lambda m: m == {"type": "kicked", "reason": "rel"}, "kicked")
                try:
                    await asyncio.wait_for(victim.closed.wait(), 10)
                except asyncio.TimeoutError:
                    ctx.fail("kick", "no close after kicked")
                if victim.close_code != 4003:
                    ctx.fail("kick", f"closed with {victim.close_code}, not 4003")
                ctx.counts["kicks"] += 1
            finally:
                await victim.close()


class Expirer(Peer):
    """Short tokens on private and presence channels: expiry, then a fresh ``auth``."""

    def __init__(self, ctx: Context, number: int) -> None:
        super().__init__(ctx, "token expiry")
        self.sub = f"exp{number}"

    def short_token(self) -> str:
        return self.ctx.token(self.sub, ttl_seconds=2)

    async def run(self) -> None:
        ctx = self.ctx
        await self.open(self.short_token())
        private = f"private-{self.sub}"
        try:
            while True:
                for channel in (private, ROOM, SERVER_CHANNELS[0]):
                    await self.subscribe(channel)
                for channel in (private, ROOM):
                    await self.expect(
                        lambda m, c=channel: (
                            m == {"type": "unsubscribed", "channel": c, "reason": "token_expired"}
                        ),
                        f"{channel} dropped at expiry",
                    )
                await self.expect(
                    lambda m: (
                        m == {"type": "error", "code": "unauthorized", "error": "token expired"}
                    ),
                    "token expired",
                )
                ctx.counts["token expiries"] += 1
                await self.send({"type": "unsubscribe", "channel": SERVER_CHANNELS[0]})
                if not ctx.running():
                    return
                await self.request(
                    {"type": "auth", "token": self.short_token()},
                    lambda m: m["type"] == "authenticated",
                    "authenticated again",
                )
        finally:
            await self.close()


class Reauther(Peer):
    """Re-authenticates: a role dropped, the role back, then another user."""

    def __init__(self, ctx: Context, number: int) -> None:
        super().__init__(ctx, "re-auth")
        self.number = number

    async def run(self) -> None:
        ctx = self.ctx
        sub, other = f"re{self.number}", f"re{self.number}b"
        channel = f"role-{self.number}"
        await self.open(ctx.token(sub, role="vip"))
        dropped = {"type": "unsubscribed", "channel": channel, "reason": "reauthenticated"}
        try:
            while ctx.running():
                await self.subscribe(channel)
                await self.send({"type": "auth", "token": ctx.token(sub)})  # the role is gone
                await self.expect(lambda m: m == dropped, "role channel dropped")
                await self.expect(lambda m: m["type"] == "authenticated", "authenticated")
                await self.request(
                    {"type": "subscribe", "channel": channel},
                    lambda m: m.get("code") == "forbidden",
                    "forbidden without the role",
                )
                await self.send({"type": "auth", "token": ctx.token(sub, role="vip")})
                await self.expect(lambda m: m["type"] == "authenticated", "authenticated (vip)")
                await self.subscribe(channel)
                await self.send({"type": "auth", "token": ctx.token(other, role="vip")})
                await self.expect(lambda m: m == dropped, "another user's role channel dropped")
                await self.expect(lambda m: m["type"] == "authenticated", "authenticated (other)")
                ctx.counts["re-auths"] += 3
                sub, other = other, sub
                await asyncio.sleep(ctx.rng.uniform(0.05, 0.3))
        finally:
            await self.close()
