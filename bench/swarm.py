"""The swarm: thousands of WebSocket clients over several processes, driven by the harness.

Scenarios with more connections than one process may hold (the machine caps
open files at 20,000 per process), or with phases the harness must time from
outside (a restart, a broadcast triggered over HTTP), use this instead of
``loadclient.py``. ``Swarm`` (harness side) starts ``processes`` workers
(``python bench/swarm.py``), each pinned to the client core, bound to its own
loopback source address (127.0.0.2, 127.0.0.3, ...) so that no process runs
out of file descriptors and no address runs out of ephemeral ports. Each
worker reads one JSON command per line on stdin and answers one JSON line on
stdout.

A worker's clients are SDK-like (``sdk/src/client.js``): upgrade, wait for
fazt's ``connected`` (other peers send none), send ``auth`` with a JWT when
asked, subscribe to their channels, answer every ``ping`` (JSON, Engine.IO or
WebSocket-level). In storm mode they also leave on ``server_restart`` and come
back like the SDK: full-jitter backoff (``sdkpolicy.py``, the SDK's constants),
attempt counter reset on ``connected``, connect timeout 10 s.

The opening handshake goes through ``websockets``' sans-I/O ``ClientProtocol``
(a real implementation checks the server's answer); after it, client frames are
masked by hand and server frames parsed by a small parser, as in
``loadclient.py``, so the client stays cheap.

Commands (``op``): ``open``, ``publish``, ``broadcasts``, ``probe``, ``storm``,
``storm_stats``, ``status``, ``exit``; see ``Worker``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import selectors
import subprocess
import sys
import time
from array import array
from collections import deque
from pathlib import Path
from typing import Any

import orjson
from pacing import send_paced
from sdkpolicy import CONNECT_TIMEOUT_S, NOW, RETRY, STOP, close_policy, reconnect_delay_ms
from wsframes import CLOSE, PING, PONG, TEXT, FrameReader, split_head


def pack(values: array[float]) -> str:
    """A float array for the JSON answer: base64 of the raw doubles."""
    return base64.b64encode(values.tobytes()).decode()


def unpack(text: str) -> array[float]:
    out = array("d")
    out.frombytes(base64.b64decode(text))
    return out


def channels_for(layout: str, index: int, total: int) -> list[str]:
    """The channels client ``index`` subscribes to.

    ``rooms``: rooms of two (``room-0`` holds clients 0 and 1, ...);
    ``spread``: one of ``total`` channels, round-robin;
    ``storm``: 1-3 of ``total`` channels (like an app with a few channels per page).
    """
    if layout == "rooms":
        return [f"room-{index // 2}"]
    if layout == "spread":
        return [f"ch-{index % total}"]
    if layout == "storm":
        return [f"ch-{(index * 7 + k * 13) % total}" for k in range(1 + index % 3)]
    if layout == "none":
        return []
    raise ValueError(f"unknown layout {layout!r}")


# ------------------------------------------------------------------------------------------
# Worker side
# ------------------------------------------------------------------------------------------
def run_worker() -> None:
    import uvloop

    uvloop.run(Worker().serve())


class Worker:
    """One client process: its clients and the command loop."""

    def __init__(self) -> None:
        self.clients: list[Client] = []
        self.conf: dict[str, Any] = {}
        self.gate: asyncio.Semaphore | None = None
        # counters and event times
        self.errors: dict[str, int] = {}
        self.error_samples: list[str] = []
        self.statuses: dict[str, int] = {}
        self.ready = 0
        self.upgrade_times = array("d")
        self.ready_times = array("d")
        self.closes: dict[str, int] = {}
        self.storm = False
        self.retry_until = 0.0  # clients retry failed attempts until then
        self.restart_notices = 0
        # publishing (rooms)
        self.recording = False
        self.step = -1
        self.received = 0
        self.last_arrival = 0.0
        self.latencies = array("d")
        # broadcastAll arrivals: id -> [count, first arrival, last arrival]
        self.broadcasts: dict[int, list[float]] = {}
        self.rtts = array("d")
        self.settled = asyncio.Event()
        self.open_left = 0  # clients the current open still waits for

    # -- events the clients report ------------------------------------------------------
    def error(self, kind: str, text: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if len(self.error_samples) < 5:
            self.error_samples.append(text[:300])

    def on_ready(self, client: Client, now: float) -> None:
        self.ready += 1
        self.ready_times.append(now)
        self.settle_open(client)

    def settle_open(self, client: Client) -> None:
        """``client`` is ready, or gave up: one fewer for the current open to wait for."""
        if client.awaited:
            client.awaited = False
            self.open_left -= 1
            if self.open_left <= 0:
                self.settled.set()

    # -- the command loop ---------------------------------------------------------------
    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 24)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                return
            command = json.loads(line)
            try:
                answer = await getattr(self, "op_" + command["op"])(command)
            except Exception as error:  # the harness reports it; the worker goes on
                answer = {"error": f"{type(error).__name__}: {error}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
            if command["op"] == "exit":
                return

    async def op_open(self, c: dict[str, Any]) -> dict[str, Any]:
        """Open ``count`` clients (indexes ``base``..) and wait until each is subscribed
        (or failed). Answers how many made it, the time it took and the errors."""
        self.conf = c
        self.gate = asyncio.Semaphore(c.get("concurrency", 64))
        token = c.get("token", False)
        secret = c.get("jwt_secret", "")
        fresh = []
        for index in range(c["base"], c["base"] + c["count"]):
            channels = channels_for(c["layout"], index, c.get("channels_total", 1))
            fresh.append(Client(self, index, channels, mint(index, secret) if token else None))
        self.clients.extend(fresh)
        for client in fresh:
            client.awaited = True
        self.open_left = len(fresh)
        self.settled.clear()
        self.errors, self.error_samples, self.statuses = {}, [], {}
        t0 = time.monotonic()
        # Like the SDK, a failed attempt is retried with backoff, until the deadline.
        self.retry_until = t0 + c.get("timeout", 120)
        cpu0 = cpu_now()
        for client in fresh:
            client.start()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.settled.wait(), c.get("timeout", 120))
        return {
            "opened": sum(1 for x in fresh if x.state == "ready"),
            "failed": sum(1 for x in fresh if x.state != "ready"),
            "retries": sum(self.errors.values()),
            "seconds": time.monotonic() - t0,
            "last_ready": max((x.ready_at for x in fresh), default=0.0),
            "client_cpu_s": cpu_now() - cpu0,
            **self.counters(),
        }

    def counters(self) -> dict[str, Any]:
        states: dict[str, int] = {}
        for x in self.clients:
            states[x.state] = states.get(x.state, 0) + 1
        return {
            "states": states,
            "errors": dict(self.errors),
            "error_samples": list(self.error_samples),
            "statuses": dict(self.statuses),
            "closes": dict(self.closes),
            "alive": sum(1 for x in self.clients if x.state == "ready"),
        }

    async def op_publish(self, c: dict[str, Any]) -> dict[str, Any]:
        """Publish ``rate``/s (this worker's share) for ``duration`` s from ``start_at``
        (monotonic), round-robin over the clients, each to its first channel; every
        publish carries its scheduled time, so a late sender counts as latency (no
        coordinated omission). Then wait until every expected delivery arrived."""
        publishers = [x for x in self.clients if x.state == "ready" and x.channels]
        rate, count = c["rate"], round(c["rate"] * c["duration"])
        fanout = c.get("fanout", 1)  # deliveries per publish (room size - 1)
        pad = "x" * c.get("pad", 80)
        self.latencies = array("d")
        self.received = 0
        self.step = c["step"]
        self.recording = True
        start = c["start_at"]
        cpu0 = cpu_now()
        m = len(publishers)
        step = self.step
        sent = await send_paced(
            count, rate, start, lambda i, t: publishers[i % m].publish(t, step, pad)
        )
        expected = sent * fanout
        deadline = time.monotonic() + c.get("drain_timeout", 30.0)
        while self.received < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        self.recording = False
        return {
            "sent": sent,
            "expected": expected,
            "received": self.received,
            "last_arrival": self.last_arrival,
            "latencies": pack(self.latencies),
            "client_cpu_s": cpu_now() - cpu0,
            **self.counters(),
        }

    async def op_broadcasts(self, c: dict[str, Any]) -> dict[str, Any]:
        """broadcastAll arrivals so far: {id: [clients that got it, first, last arrival]}."""
        return {"broadcasts": self.broadcasts, "clients": len(self.clients)}

    async def op_probe(self, c: dict[str, Any]) -> dict[str, Any]:
        """One extra client that sends ``{"type":"ping"}`` every ``interval`` s for
        ``duration`` s and times each ``pong``: the server's event-loop lag."""
        conf = {**self.conf, "layout": "none", "token": False}
        probe = Client(self, -1, [], None, conf)
        probe.start()
        deadline = time.monotonic() + 15
        while probe.state != "ready" and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if probe.state != "ready":
            return {"error": "the probe connection did not open"}
        self.rtts = array("d")
        end = time.monotonic() + c["duration"]
        next_at = time.monotonic()
        sent = 0
        while time.monotonic() < end:
            # Pongs come back in order on one connection: match them first-in, first-out
            # (several pings are in flight whenever the lag exceeds the interval).
            probe.pings.append(time.monotonic())
            probe.send_json(b'{"type":"ping"}')
            sent += 1
            next_at += c["interval"]
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        grace = time.monotonic() + c.get("grace", 5.0)
        while probe.pings and time.monotonic() < grace:
            await asyncio.sleep(0.01)
        unanswered = len(probe.pings)
        now = time.monotonic()
        self.rtts.extend(now - t for t in probe.pings)  # their age: a lower bound
        probe.close()
        return {"rtts": pack(self.rtts), "sent": sent, "unanswered": unanswered}

    async def op_storm(self, c: dict[str, Any]) -> dict[str, Any]:
        """From now on, clients come back after a restart (SDK behaviour) until ``deadline``."""
        self.storm = True
        self.retry_until = time.monotonic() + c["seconds"]
        self.ready_times = array("d")
        self.upgrade_times = array("d")
        self.errors, self.error_samples, self.statuses, self.closes = {}, [], {}, {}
        self.restart_notices = 0
        return {"armed": len(self.clients)}

    async def op_storm_stats(self, c: dict[str, Any]) -> dict[str, Any]:
        return {
            "restart_notices": self.restart_notices,
            "ready_times": pack(self.ready_times),
            "upgrade_times": pack(self.upgrade_times),
            "max_attempt": max((x.max_attempt for x in self.clients), default=0),
            **self.counters(),
        }

    async def op_status(self, c: dict[str, Any]) -> dict[str, Any]:
        return self.counters()

    async def op_exit(self, c: dict[str, Any]) -> dict[str, Any]:
        for client in self.clients:
            client.close()
        return {"closed": len(self.clients)}


def mint(index: int, secret: str) -> str:
    import jwt

    claims = {"sub": f"user{index}", "name": f"User {index}", "exp": int(time.time()) + 7200}
    return jwt.encode(claims, secret, algorithm="HS256")


def cpu_now() -> float:
    t = os.times()
    return t.user + t.system


try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the pure-Python fallback
    from websockets.utils import apply_mask


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A final, masked client frame."""
    n = len(payload)
    mask = random.getrandbits(32).to_bytes(4, "big")
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
    return head + mask + apply_mask(payload, mask)


class Link(asyncio.Protocol):
    """One connection attempt of a client; events of an attempt the client has since
    dropped (a late ``connection_lost``) are ignored."""

    __slots__ = ("client", "transport")

    def __init__(self, client: Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        if self.client.link is self:
            self.client.connection_made(transport)
        else:
            transport.close()

    def data_received(self, data: bytes) -> None:
        if self.client.link is self:
            self.client.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client.link is self:
            self.client.connection_lost(exc)


HANDSHAKING = ("connecting", "upgrading", "welcome", "auth", "subscribing")


class Client:
    """One SDK-like client; reconnects by itself in storm mode."""

    def __init__(
        self,
        worker: Worker,
        index: int,
        channels: list[str],
        token: str | None,
        conf: dict[str, Any] | None = None,
    ) -> None:
        self.worker = worker
        self.conf = conf or worker.conf
        self.index = index
        self.channels = channels
        self.token = token
        self.state = "new"
        self.link: Link | None = None
        self.proto: Any = None
        self.buf = b""
        self.reader = FrameReader()
        self.pending = 0
        self.attempt = 0
        self.max_attempt = 0
        self.connected_at = 0.0
        self.ready_at = 0.0
        self.awaited = False  # an open waits for this client to be ready or give up
        self.opening: asyncio.Task[Any] | None = None  # the TCP connect in progress
        self.pings: deque[float] = deque()  # send times of the probe's pings in flight
        self.timer: asyncio.TimerHandle | None = None
        self.settled: asyncio.Future[None] | None = None
        self.dialect: str = self.conf.get("dialect", "plain")

    @property
    def transport(self) -> asyncio.Transport | None:
        return self.link.transport if self.link is not None else None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        asyncio.get_running_loop().create_task(self.connect())

    async def connect(self) -> None:
        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        loop = asyncio.get_running_loop()
        gate = self.worker.gate if not self.worker.storm else None
        if gate is not None:
            await gate.acquire()
        try:
            self.state = "connecting"
            self.buf = b""
            self.reader.reset()
            self.settled = loop.create_future()
            self.proto = ClientProtocol(parse_uri(self.conf["url"]), max_size=None)
            self.timer = loop.call_later(CONNECT_TIMEOUT_S, self.on_timeout)
            link = self.link = Link(self)
            source = self.conf.get("source")
            # A SYN the server's full backlog dropped is retried by the kernel for
            # minutes; the connect timeout ends this attempt long before, and cancels
            # the connect (as a browser aborts its socket).
            opening = self.opening = loop.create_task(
                loop.create_connection(
                    lambda: link,
                    self.conf["host"],
                    self.conf["port"],
                    local_addr=(source, 0) if source else None,
                )
            )
            opening.add_done_callback(lambda task: self.connect_done(link, task))
            if gate is not None:
                await self.settled  # hold the gate until this handshake is over
        finally:
            if gate is not None:
                gate.release()

    def connect_done(self, link: Link, task: asyncio.Task[Any]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is None:
            return
        if self.link is link:
            kind = "refused" if isinstance(error, ConnectionRefusedError) else "connect"
            self.failed(kind, f"connect: {error}")

    def settle(self) -> None:
        if self.settled is not None and not self.settled.done():
            self.settled.set_result(None)

    def on_timeout(self) -> None:
        self.timer = None
        if self.state in HANDSHAKING:
            self.failed("timeout", f"no answer within {CONNECT_TIMEOUT_S:.0f} s in {self.state}")

    def drop(self, close_frame: bytes | None = None) -> None:
        """Forget the current connection (its late events are ignored) and close it."""
        link, self.link = self.link, None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.opening is not None and not self.opening.done():
            self.opening.cancel()  # still connecting: abort the attempt
        if link is not None and link.transport is not None and not link.transport.is_closing():
            if close_frame is not None:
                link.transport.write(client_frame(close_frame, 0x8))
                link.transport.close()
            else:
                link.transport.abort()

    def failed(self, kind: str, text: str) -> None:
        """This attempt failed: retry with the SDK's backoff until the worker's deadline."""
        self.drop()
        self.settle()
        self.worker.error(kind, text)
        self.retry()

    def retry(self, policy: str = RETRY) -> None:
        """Come back like the SDK (``client.js`` ``_lost``): the delay per policy and attempt."""
        attempt = self.attempt
        self.attempt += 1
        self.max_attempt = max(self.max_attempt, self.attempt)
        delay = reconnect_delay_ms(policy, attempt) / 1000
        if time.monotonic() + delay > self.worker.retry_until:
            self.state = "gave_up"
            self.worker.settle_open(self)
            return
        self.state = "waiting"
        asyncio.get_running_loop().call_later(delay, self.start)

    def close(self) -> None:
        self.state = "closed"
        self.drop()
        self.settle()

    # -- connection events (from the current Link) ------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.state = "upgrading"
        self.proto.send_request(self.proto.connect())
        for chunk in self.proto.data_to_send():
            transport.write(chunk)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.link = None
        if self.state == "ready":
            self.worker.closes["1006"] = self.worker.closes.get("1006", 0) + 1
            if self.worker.storm:
                self.retry()  # 1006: the SDK's RETRY policy
            else:
                self.state = "lost"
            return
        if self.state in HANDSHAKING:
            self.failed("lost", f"connection lost in {self.state}: {exc}")

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if self.state == "upgrading":
            self.handshake(data, now)
        else:
            self.parse_frames(data, now)

    def handshake(self, data: bytes, now: float) -> None:
        from websockets.http11 import Response

        self.buf += data
        parts = split_head(self.buf)
        if parts is None:
            return
        (head, rest), self.buf = parts, b""
        # A refusal (503) has a body that websockets would wait for: read its status here.
        status_line = head.split(b"\r\n", 1)[0].split(b" ", 2)
        status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
        if status != 101:
            self.worker.statuses[str(status)] = self.worker.statuses.get(str(status), 0) + 1
            self.failed(f"http_{status}", f"handshake: HTTP {status}")
            return
        self.proto.receive_data(head)
        events = self.proto.events_received()
        if self.proto.handshake_exc is not None or not any(isinstance(e, Response) for e in events):
            self.failed("handshake", f"handshake: {self.proto.handshake_exc}")
            return
        self.proto = None  # the sans-I/O object is only for the handshake
        self.worker.upgrade_times.append(now)
        if self.dialect == "fazt":
            self.state = "welcome"  # wait for fazt's "connected", as the SDK does
        elif self.dialect == "socketio":
            self.state = "welcome"  # wait for Engine.IO's open packet
        else:
            self.welcomed(now)
        if rest:
            self.parse_frames(rest, now)

    def welcomed(self, now: float) -> None:
        """The server said hello (fazt: ``connected``): authenticate, then subscribe."""
        # The SDK's connect timeout ends here; auth and subscribe wait as long as it takes.
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.attempt = 0  # the SDK resets its backoff on "connected"
        self.connected_at = now
        if self.token is not None:
            self.state = "auth"
            self.send_json(json.dumps({"type": "auth", "token": self.token}).encode())
        else:
            self.subscribe_all(now)

    def subscribe_all(self, now: float) -> None:
        if not self.channels:
            self.became_ready(now)
            return
        self.state = "subscribing"
        self.pending = len(self.channels)
        for channel in self.channels:
            if self.dialect == "socketio":
                self.send_json(b'42["subscribe",' + json.dumps(channel).encode() + b"]")
            else:
                self.send_json(b'{"type":"subscribe","channel":"' + channel.encode() + b'"}')

    def became_ready(self, now: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.settle()
        self.state = "ready"
        self.ready_at = now
        if self.index >= 0:
            self.worker.on_ready(self, now)

    # -- frames ---------------------------------------------------------------------------------
    def send_json(self, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(payload))

    def publish(self, t: float, step: int, pad: str) -> None:
        body = {"t": t, "s": step, "pad": pad}
        if self.dialect == "socketio":
            event = ["publish", {"channel": self.channels[0], "data": body}]
            self.send_json(b"42" + orjson.dumps(event))
        else:
            message = {"type": "message", "channel": self.channels[0], "data": body}
            self.send_json(orjson.dumps(message))

    def parse_frames(self, data: bytes, now: float) -> None:
        link = self.link
        for opcode, payload in self.reader.feed(data):
            if self.link is not link:
                return  # this connection was dropped by an earlier frame
            if opcode == TEXT:
                self.on_text(payload, now)
            elif opcode == PING:  # WebSocket-level ping (websockets' keepalive)
                if self.transport is not None:
                    self.transport.write(client_frame(payload, PONG))
            elif opcode == CLOSE:
                self.on_close_frame(payload)
                return

    def on_close_frame(self, payload: bytes) -> None:
        code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
        closes = self.worker.closes
        closes[str(code)] = closes.get(str(code), 0) + 1
        was_ready = self.state == "ready"
        self.drop(close_frame=payload[:2])
        # The SDK: 4000-4099 stop for good; "reconnect now" only for a connection that
        # lasted a second (else it backs off like any other close).
        policy = close_policy(code)
        if policy == STOP:
            self.worker.error(f"close_{code}", f"closed {code}: {payload[2:80]!r}")
            self.settle()
            self.state = "stopped"
            self.worker.settle_open(self)
            return
        if not was_ready:
            self.failed(f"close_{code}", f"closed {code} in {self.state}: {payload[2:80]!r}")
            return
        if not self.worker.storm:
            self.state = "lost"
            return
        if policy == NOW and time.monotonic() - self.connected_at < 1.0:
            policy = RETRY
        self.retry(policy)

    def on_text(self, payload: bytes, now: float) -> None:
        if self.dialect == "socketio":
            self.on_socketio(payload, now)
            return
        try:
            message = orjson.loads(payload)
            kind = message["type"]
        except (ValueError, KeyError, TypeError):
            self.worker.error("frame", f"unexpected frame {payload[:80]!r}")
            return
        if kind == "message":
            self.on_message(message, now)
        elif kind == "subscribed":
            self.on_subscribed(now)
        elif kind == "ping":
            self.send_json(b'{"type":"pong"}')
        elif kind == "pong":
            if self.pings:
                self.worker.rtts.append(now - self.pings.popleft())
        elif kind == "connected":
            if self.state == "welcome":
                self.welcomed(now)
        elif kind == "authenticated":
            if self.state == "auth":
                self.subscribe_all(now)
        elif kind == "server_restart":
            self.worker.restart_notices += 1
            if self.worker.storm and self.state == "ready":
                # The SDK leaves at once (close 1000) and comes back with backoff.
                self.drop(close_frame=b"\x03\xe8")
                self.retry()
        elif kind == "error":
            if self.state in ("auth", "subscribing"):
                self.failed("refused", f"server error in {self.state}: {payload[:200]!r}")
            else:
                self.worker.error("server_error", f"server error: {payload[:200]!r}")

    def on_subscribed(self, now: float) -> None:
        if self.state != "subscribing":
            return
        self.pending -= 1
        if self.pending <= 0:
            self.became_ready(now)

    def on_message(self, message: dict[str, Any], now: float) -> None:
        worker = self.worker
        data = message.get("data")
        if "channel" not in message:  # broadcastAll
            if isinstance(data, dict) and "id" in data:
                seen = worker.broadcasts.setdefault(data["id"], [0, now, now])
                seen[0] += 1
                seen[2] = now
            return
        if worker.recording and data["s"] == worker.step:
            worker.received += 1
            worker.last_arrival = now
            worker.latencies.append(now - data["t"])

    def on_socketio(self, payload: bytes, now: float) -> None:
        # Engine.IO v4: 0 open, 2 ping, 3 pong, 4 message; Socket.IO inside 4:
        # 0 connect, 2 event. So "40" is the namespace connect and "42[...]" an event.
        if payload.startswith(b"42"):
            event, *args = orjson.loads(payload[2:])
            if event == "message":
                self.on_message(args[0], now)
            elif event == "subscribed":
                self.on_subscribed(now)
        elif payload == b"2":
            self.send_json(b"3")
        elif payload.startswith(b"0{"):
            self.send_json(b"40")
        elif payload.startswith(b"40"):
            self.welcomed(now)
        elif payload.startswith(b"44"):
            self.failed("refused", f"socket.io connect error {payload[:200]!r}")


# ------------------------------------------------------------------------------------------
# Harness side
# ------------------------------------------------------------------------------------------
class Swarm:
    """``processes`` worker processes on the client core; one command to each, answers back."""

    def __init__(self, processes: int, log_dir: Path) -> None:
        from procs import BENCH, CLIENT_CORE, PYTHON, pin

        self.procs: list[subprocess.Popen[bytes]] = []
        self.buffers: list[bytes] = []
        self.sources = [f"127.0.0.{2 + i}" for i in range(processes)]
        for i in range(processes):
            with (log_dir / f"swarm-{i}.log").open("ab") as log:
                self.procs.append(
                    subprocess.Popen(
                        [PYTHON, str(BENCH / "swarm.py")],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=log,
                        preexec_fn=pin(CLIENT_CORE),
                        cwd=BENCH,
                    )
                )
            self.buffers.append(b"")

    def __len__(self) -> int:
        return len(self.procs)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def call(self, commands: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
        """Send ``commands[i]`` to worker ``i``; wait for every answer (``timeout`` s)."""
        for proc, command in zip(self.procs, commands, strict=True):
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(command).encode() + b"\n")
            proc.stdin.flush()
        answers: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            for i, proc in enumerate(self.procs):
                assert proc.stdout is not None
                sel.register(proc.stdout.fileno(), selectors.EVENT_READ, i)
            while len(answers) < len(self.procs):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"swarm: no answer to {commands[0]['op']} in {timeout} s")
                for key, _ in sel.select(left):
                    i = key.data
                    chunk = os.read(key.fd, 1 << 20)
                    if not chunk:
                        raise RuntimeError(f"swarm worker {i} exited (see swarm-{i}.log)")
                    self.buffers[i] += chunk
                    if b"\n" in self.buffers[i]:
                        line, self.buffers[i] = self.buffers[i].split(b"\n", 1)
                        answers[i] = json.loads(line)
                        sel.unregister(key.fd)
        out = [answers[i] for i in range(len(self.procs))]
        for answer in out:
            if "error" in answer:
                raise RuntimeError(f"swarm: {commands[0]['op']} failed: {answer['error']}")
        return out

    def all(self, command: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
        return self.call([command] * len(self.procs), timeout)

    def open(
        self,
        url: str,
        dialect: str,
        count: int,
        layout: str,
        *,
        first: int = 0,
        channels_total: int = 1,
        token: bool = False,
        jwt_secret: str = "",
        concurrency: int = 64,
        timeout: float = 120.0,
    ) -> list[dict[str, Any]]:
        """Open ``count`` more clients (indexes ``first``..), split evenly (and in whole
        rooms of two) over the workers; waits until each is subscribed or failed."""
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        shares = split_even(count, len(self.procs))
        commands, base = [], first
        for i, share in enumerate(shares):
            commands.append(
                {
                    "op": "open",
                    "url": url,
                    "host": parts.hostname,
                    "port": parts.port,
                    "source": self.sources[i],
                    "dialect": dialect,
                    "base": base,
                    "count": share,
                    "layout": layout,
                    "channels_total": channels_total,
                    "token": token,
                    "jwt_secret": jwt_secret,
                    "concurrency": max(1, concurrency // len(self.procs)),
                    "timeout": timeout,
                }
            )
            base += share
        return self.call(commands, timeout + 30)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.all({"op": "exit"}, 30)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def split_even(count: int, parts: int) -> list[int]:
    """``count`` split into ``parts`` even shares (rooms of two stay in one worker)."""
    pairs = count // 2
    shares = [2 * (pairs // parts + (1 if i < pairs % parts else 0)) for i in range(parts)]
    shares[-1] += count - sum(shares)
    return shares


if __name__ == "__main__":
    run_worker()
