"""The load client: one process, uvloop, raw sockets, the websockets sans-I/O protocol.

Run by the one-channel scenarios (``bench/scenarios/fanout.py``) and the
fan-out of ``cluster``, pinned to the client core; it takes one JSON argument
(the job) and prints one JSON object (the result) on stdout. Scenarios that
need more connections than one process may hold use ``swarm.py``.

Why it looks the way it does:
- Each connection is an asyncio ``Protocol`` on a raw socket (no streams, no
  per-message Futures), driven by uvloop.
- The opening handshake and every client frame (masked) go through
  ``websockets``' sans-I/O ``ClientProtocol``, so the wire format is checked by
  a real implementation.
- Server frames are parsed by ``websockets`` too (``--parser websockets``), or,
  by default, by ``wsframes.FrameReader``: unmasked server frames are a two- or
  four-byte header and a payload, and parsing them by hand costs a fraction of
  the generator-based parser, which keeps the client from being the bottleneck.
- The server's CPU time is read from ``/proc/PID/stat`` around the measured
  window here, where the window is known exactly; the client's own CPU comes
  from ``os.times()`` over the same window.

Scenarios: ``burst`` (windowed publishing for a fixed time, then drain),
``paced`` (fixed publish schedule, per-delivery latency from the timestamp the
publisher embedded in ``data``), ``memory`` (server RSS per idle subscribed
connection), ``http`` (keep-alive POSTs per second, for the JS handler path).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from array import array
from collections.abc import Callable
from typing import Any

import orjson
from procs import CpuMeter, percentile, proc_rss_kb
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri
from wsframes import CLOSE, PING, TEXT, FrameReader, split_head

MESSAGE_PREFIX = b'{"type":"message"'


class Run:
    """State shared by all connections of one run (one process, one loop)."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.dialect: str = job.get("dialect", "plain")
        self.channel: str = job.get("channel", "bench")
        self.fast_parser = job.get("parser", "fast") == "fast"
        self.delivered = 0  # message frames received by subscriber (non-publisher) connections
        self.pub_delivered = 0  # message frames received by publisher connections
        self.wake_at = 1 << 62
        self.wake = asyncio.Event()
        self.record_latency = False
        self.latencies = array("d")
        self.bytes_in_messages = 0
        self.errors: list[str] = []
        self.closed = 0
        self.subscribed = 0
        self.all_subscribed = asyncio.Event()
        self.expect_subscribed = 0

    def delivered_one(self) -> None:
        self.delivered += 1
        if self.delivered >= self.wake_at:
            self.wake.set()

    def note_error(self, text: str) -> None:
        if len(self.errors) < 5:
            self.errors.append(text)


class Conn(asyncio.Protocol):
    """One WebSocket connection speaking the bench protocol (or socket.io's)."""

    __slots__ = ("buf", "is_pub", "opened", "proto", "reader", "run", "sent_sub", "transport")

    def __init__(self, run: Run, url: str, is_pub: bool) -> None:
        self.run = run
        self.is_pub = is_pub
        self.proto = ClientProtocol(parse_uri(url), max_size=None)
        self.transport: asyncio.Transport | None = None
        self.buf = b""  # the handshake's bytes until the HTTP response is whole
        self.reader = FrameReader()
        self.opened = asyncio.get_running_loop().create_future()
        self.sent_sub = False

    # -- asyncio.Protocol -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.proto.send_request(self.proto.connect())
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.closed += 1
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if self.proto.state is State.CONNECTING:
            self.handshake(data, now)
        elif self.fast_path:
            self.parse_frames(data, now)
        else:
            self.proto.receive_data(data)
            self.websockets_events(now)

    @property
    def fast_path(self) -> bool:
        return self.run.fast_parser

    # -- handshake ----------------------------------------------------------------
    def handshake(self, data: bytes, now: float) -> None:
        if not self.run.fast_parser:
            self.proto.receive_data(data)
            self.websockets_events(now)
            return
        # Feed websockets exactly the HTTP response so that it validates the
        # handshake; the frames after it go to the fast parser.
        self.buf += data
        parts = split_head(self.buf)
        if parts is None:
            return
        (head, rest), self.buf = parts, b""
        self.proto.receive_data(head)
        for event in self.proto.events_received():
            if isinstance(event, Response):
                self.on_response(event)
        if rest and self.proto.state is State.OPEN:
            self.parse_frames(rest, now)

    def on_response(self, response: Response) -> None:
        if self.proto.handshake_exc is not None or response.status_code != 101:
            error = self.proto.handshake_exc or f"status {response.status_code}"
            self.run.note_error(f"handshake failed: {error}")
            if not self.opened.done():
                self.opened.set_exception(ConnectionError(str(error)))
            if self.transport:
                self.transport.close()
            return
        if not self.opened.done():
            self.opened.set_result(None)
        if self.run.dialect != "socketio":
            self.subscribe()

    def websockets_events(self, now: float) -> None:
        for event in self.proto.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    self.on_text(bytes(event.data), now)
                elif event.opcode is Opcode.CLOSE:
                    self.run.note_error("server closed the connection")
            elif isinstance(event, Response):
                self.on_response(event)
        self.flush()

    # -- the fast frame parser (server frames are never masked) -------------------
    def parse_frames(self, data: bytes, now: float) -> None:
        for opcode, payload in self.reader.feed(data):
            if opcode == TEXT:
                self.on_text(payload, now)
            elif opcode == PING:
                self.proto.send_pong(payload)
                self.flush()
            elif opcode == CLOSE:
                self.run.note_error(f"server closed the connection: {payload[:60]!r}")
                if self.transport:
                    self.transport.close()
                return

    # -- the bench protocol -------------------------------------------------------
    def on_text(self, payload: bytes, now: float) -> None:
        run = self.run
        if run.dialect == "socketio":
            self.on_socketio(payload, now)
            return
        if not run.record_latency and payload.startswith(MESSAGE_PREFIX):
            # Burst counting needs no parse: every peer (fazt included) writes compact
            # JSON with "type" first, so a prefix test keeps the client off the
            # critical path. The paced scenario parses every frame for its timestamp.
            self.on_message(None, len(payload), now)
            return
        try:
            message = orjson.loads(payload)
            kind = message["type"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            run.note_error(f"unexpected frame {payload[:80]!r}")
            return
        if kind == "message":
            self.on_message(message, len(payload), now)
        elif kind == "subscribed":
            self.on_subscribed()
        elif kind == "ping":
            self.send(b'{"type":"pong"}')
        elif kind == "error":
            run.note_error(f"server error: {payload[:200]!r}")

    def on_message(self, message: dict[str, Any] | None, size: int, now: float) -> None:
        run = self.run
        if self.is_pub:
            # Counted for the CPU per delivery only: publishers are subscribed too, and
            # get the other publishers' messages (no peer echoes a publish to its sender).
            run.pub_delivered += 1
            return
        run.bytes_in_messages += size
        if run.record_latency and message is not None:
            run.latencies.append(now - message["data"]["t"])
        run.delivered_one()

    def on_subscribed(self) -> None:
        run = self.run
        run.subscribed += 1
        if run.subscribed >= run.expect_subscribed:
            run.all_subscribed.set()

    def on_socketio(self, payload: bytes, now: float) -> None:
        # Engine.IO v4 packets: 0 open, 2 ping, 3 pong, 4 message; Socket.IO inside 4:
        # 0 connect, 2 event. So "40" is the namespace connect and "42[...]" an event.
        if payload.startswith(b"42"):
            event, *args = orjson.loads(payload[2:])
            if event == "message":
                self.on_message(args[0], len(payload), now)
            elif event == "subscribed":
                self.on_subscribed()
        elif payload == b"2":
            self.send(b"3")
        elif payload.startswith(b"0{"):
            self.send(b"40")
        elif payload.startswith(b"40"):
            self.subscribe()
        elif payload.startswith(b"44"):
            self.run.note_error(f"socket.io connect error {payload[:200]!r}")

    # -- client frames --------------------------------------------------------------
    def send(self, payload: bytes) -> None:
        if self.proto.state is State.OPEN:
            self.proto.send_text(payload)
            self.flush()

    def flush(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        for chunk in self.proto.data_to_send():
            if chunk:
                self.transport.write(chunk)

    def subscribe(self) -> None:
        if self.sent_sub:
            return
        self.sent_sub = True
        channel = self.run.channel
        if self.run.dialect == "socketio":
            self.send(b'42["subscribe",' + orjson.dumps(channel) + b"]")
        else:
            self.send(orjson.dumps({"type": "subscribe", "channel": channel}))

    def publish(self, data: dict[str, Any]) -> None:
        run = self.run
        if run.dialect == "socketio":
            body = {"channel": run.channel, "data": data}
            self.send(b'42["publish",' + orjson.dumps(body) + b"]")
        else:
            self.send(orjson.dumps({"type": "message", "channel": run.channel, "data": data}))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


# -- helpers ------------------------------------------------------------------------
def pad_for(frame_bytes: int) -> str:
    """Padding that brings the server's ``message`` frame payload to about ``frame_bytes``.

    The reference frame is what the plain peers send:
    {"type":"message","channel":"bench","data":{"seq":N,"t":T,"pad":"..."},"timestamp":MS}
    """
    sample = {
        "type": "message",
        "channel": "bench",
        "data": {"seq": 1000, "t": time.monotonic(), "pad": ""},
        "timestamp": 1764000000000,
    }
    return "x" * max(0, frame_bytes - len(json.dumps(sample, separators=(",", ":"))))


async def open_connections(
    run: Run, url: str, count: int, is_pub: bool, concurrency: int, sink: list[Conn]
) -> None:
    """Open ``count`` connections, at most ``concurrency`` handshakes at a time."""
    loop = asyncio.get_running_loop()
    uri = parse_uri(url)
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            conn = Conn(run, url, is_pub)
            await loop.create_connection(lambda: conn, uri.host, uri.port)
            await asyncio.wait_for(conn.opened, 10)
            sink.append(conn)

    await asyncio.gather(*(one() for _ in range(count)))


async def connect_all(run: Run, job: dict[str, Any]) -> tuple[list[Conn], list[Conn]]:
    subs: list[Conn] = []
    pubs: list[Conn] = []
    n, p = job["subscribers"], job.get("publishers", 1)
    run.expect_subscribed = n + p
    concurrency = job.get("connect_concurrency", 64)
    await open_connections(run, job["url"], p, True, concurrency, pubs)
    await open_connections(run, job["url"], n, False, concurrency, subs)
    try:
        await asyncio.wait_for(run.all_subscribed.wait(), job.get("subscribe_timeout", 60))
    except asyncio.TimeoutError:
        raise RuntimeError(
            f"only {run.subscribed} of {n + p} connections subscribed; errors: {run.errors}"
        ) from None
    return subs, pubs


class Publisher:
    """Round-robin over the publisher connections (keeps each under per-connection limits)."""

    def __init__(self, run: Run, pubs: list[Conn], frame_bytes: int) -> None:
        self.run = run
        self.pubs = pubs
        self.pad = pad_for(frame_bytes)
        self.seq = 0

    def publish(self, t: float) -> None:
        self.pubs[self.seq % len(self.pubs)].publish({"seq": self.seq, "t": t, "pad": self.pad})
        self.seq += 1


async def wait_delivered(run: Run, target: int, timeout: float) -> bool:
    """Wait until ``run.delivered >= target``; False on timeout."""
    if run.delivered >= target:
        return True
    run.wake_at = target
    run.wake.clear()
    try:
        await asyncio.wait_for(run.wake.wait(), timeout)
        return True
    except asyncio.TimeoutError:
        return False
    finally:
        run.wake_at = 1 << 62


# -- scenarios ------------------------------------------------------------------------
async def burst(job: dict[str, Any]) -> dict[str, Any]:
    """Keep ``window`` publishes in flight for ``duration`` s, then drain."""
    run = Run(job)
    subs, pubs = await connect_all(run, job)
    n = len(subs)
    pub = Publisher(run, pubs, job.get("frame_bytes", 170))
    window = job.get("window", 32)
    drain_timeout = job.get("drain_timeout", 20.0)

    async def publish_for(seconds: float | None, count: int | None) -> tuple[int, bool]:
        start_seq = pub.seq
        base = run.delivered
        deadline = time.monotonic() + seconds if seconds is not None else None

        def more() -> bool:
            if count is not None:
                return pub.seq - start_seq < count
            assert deadline is not None
            return time.monotonic() < deadline

        stalled = False
        while more():
            done_pubs = (run.delivered - base) // n
            while pub.seq - start_seq - done_pubs < window and more():
                pub.publish(time.monotonic())
            published = pub.seq - start_seq
            if not await wait_delivered(run, base + (published - window + 1) * n, 5.0):
                stalled = True
                break
        published = pub.seq - start_seq
        if not await wait_delivered(run, base + published * n, drain_timeout):
            stalled = True
        return published, stalled

    await publish_for(None, job.get("warmup", 20))
    base, pub_base = run.delivered, run.pub_delivered
    run.bytes_in_messages = 0
    meter = CpuMeter(job["server_pids"], job.get("extra_pids"))
    published, stalled = await publish_for(job["duration"], None)
    cpu = meter.close()
    delivered = run.delivered - base
    # Every frame the server wrote counts for its CPU per delivery, publishers' too.
    frames = delivered + run.pub_delivered - pub_base
    for conn in subs + pubs:
        conn.close()
    seconds = cpu["seconds"]
    return {
        **cpu,
        "scenario": "burst",
        "subscribers": n,
        "publishes": published,
        "expected": published * n,
        "delivered": delivered,
        "complete": delivered >= published * n and not stalled,
        "frames": frames,
        "deliveries_per_s": frames / seconds if seconds else 0.0,
        "server_us_per_delivery": cpu["server_cpu_s"] / frames * 1e6 if frames else None,
        "client_us_per_delivery": cpu["client_cpu_s"] / frames * 1e6 if frames else None,
        "frame_bytes": run.bytes_in_messages / delivered if delivered else None,
        "errors": run.errors,
    }


async def paced(job: dict[str, Any]) -> dict[str, Any]:
    """Publish at ``rate``/s on a fixed schedule; latency = arrival - scheduled time."""
    run = Run(job)
    subs, pubs = await connect_all(run, job)
    n = len(subs)
    pub = Publisher(run, pubs, job.get("frame_bytes", 170))
    for _ in range(job.get("warmup", 5)):
        pub.publish(time.monotonic())
    await wait_delivered(run, pub.seq * n, 10.0)
    base = run.delivered
    run.record_latency = True
    rate, duration = job["rate"], job["duration"]
    count = max(1, round(rate * duration))
    meter = CpuMeter(job["server_pids"], job.get("extra_pids"))
    start = time.monotonic() + 0.05
    for i in range(count):
        scheduled = start + i / rate
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        # The scheduled time, not the send time: a late publisher counts as latency
        # (no coordinated omission).
        pub.publish(scheduled)
    complete = await wait_delivered(run, base + count * n, job.get("drain_timeout", 10.0))
    cpu = meter.close()
    for conn in subs + pubs:
        conn.close()
    lat = sorted(run.latencies)
    return {
        **cpu,
        "scenario": "paced",
        "subscribers": n,
        "rate": rate,
        "publishes": count,
        "expected": count * n,
        "delivered": run.delivered - base,
        "complete": complete,
        "p50_ms": percentile(lat, 0.50) * 1e3,
        "p99_ms": percentile(lat, 0.99) * 1e3,
        "p999_ms": percentile(lat, 0.999) * 1e3,
        "max_ms": (lat[-1] * 1e3) if lat else None,
        "errors": run.errors,
    }


async def memory(job: dict[str, Any]) -> dict[str, Any]:
    """RSS delta per idle subscribed connection (after a warm-up set is open)."""
    run = Run(job)
    pid = job["server_pids"][0]
    warm = job.get("warm_connections", 20)
    n = job["connections"]
    conns: list[Conn] = []
    run.expect_subscribed = warm
    await open_connections(run, job["url"], warm, False, 32, conns)
    await asyncio.wait_for(run.all_subscribed.wait(), 30)
    await asyncio.sleep(job.get("settle", 1.0))
    rss0 = proc_rss_kb(pid)
    run.all_subscribed.clear()
    run.expect_subscribed = warm + n
    t0 = time.monotonic()
    await open_connections(run, job["url"], n, False, job.get("connect_concurrency", 64), conns)
    try:
        await asyncio.wait_for(run.all_subscribed.wait(), 120)
    except asyncio.TimeoutError:
        raise RuntimeError(
            f"only {run.subscribed - warm} of {n} subscribed: {run.errors}"
        ) from None
    connect_s = time.monotonic() - t0
    await asyncio.sleep(job.get("settle", 1.0))
    rss1 = proc_rss_kb(pid)
    alive = len(conns) - run.closed
    for conn in conns:
        conn.close()
    return {
        "scenario": "memory",
        "connections": n,
        "alive": alive,
        "rss_before_kb": rss0,
        "rss_after_kb": rss1,
        "kb_per_connection": (rss1 - rss0) / n,
        "connect_s": connect_s,
        "errors": run.errors,
    }


class HttpConn(asyncio.Protocol):
    """A keep-alive HTTP/1.1 client connection that POSTs one request at a time."""

    def __init__(self, request: bytes, on_response: Callable[[HttpConn, int], None]) -> None:
        self.request = request
        self.on_response = on_response
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.ready = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.ready.set_result(None)

    def fire(self) -> None:
        assert self.transport is not None
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buf) < end + 4 + length:
                return
            status = int(head.split(" ", 2)[1])
            self.buf = self.buf[end + 4 + length :]
            self.on_response(self, status)

    def connection_lost(self, exc: Exception | None) -> None:
        pass


async def http(job: dict[str, Any]) -> dict[str, Any]:
    """POST ``path`` on ``concurrency`` keep-alive connections for ``duration`` s.

    Subscribers (``subscribers``) are connected first so each request really
    fans out; their deliveries are counted as a check that the broadcast happened.
    """
    run = Run(job)
    subs: list[Conn] = []
    if job.get("subscribers"):
        job = {**job, "publishers": 0}
        subs, _ = await connect_all(run, job)
    body = orjson.dumps({"channel": run.channel, "data": {"seq": 1, "t": 0.0, "pad": "x" * 80}})
    host, port = job["http_host"], job["http_port"]
    request = (
        f"POST {job['path']} HTTP/1.1\r\nHost: {job.get('host_header', host)}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    loop = asyncio.get_running_loop()
    counts = {"ok": 0, "bad": 0}
    statuses: dict[int, int] = {}
    deadline = [0.0]
    done = asyncio.Event()
    live = [0]

    def on_response(conn: HttpConn, status: int) -> None:
        if 200 <= status < 300:
            counts["ok"] += 1
        else:
            counts["bad"] += 1
            statuses[status] = statuses.get(status, 0) + 1
        if time.monotonic() < deadline[0]:
            conn.fire()
        else:
            live[0] -= 1
            if live[0] == 0:
                done.set()

    conns: list[HttpConn] = []
    for _ in range(job.get("concurrency", 16)):
        _, conn = await loop.create_connection(lambda: HttpConn(request, on_response), host, port)
        conns.append(conn)
    # Warm-up: one request per connection.
    deadline[0] = 0.0
    live[0] = len(conns)
    for conn in conns:
        conn.fire()
    await asyncio.wait_for(done.wait(), 30)
    counts["ok"] = counts["bad"] = 0
    done.clear()
    meter = CpuMeter(job["server_pids"], job.get("extra_pids"))
    deadline[0] = time.monotonic() + job["duration"]
    live[0] = len(conns)
    for conn in conns:
        conn.fire()
    await asyncio.wait_for(done.wait(), job["duration"] + 30)
    cpu = meter.close()
    for conn in conns:
        if conn.transport:
            conn.transport.close()
    for sub in subs:
        sub.close()
    total = counts["ok"] + counts["bad"]
    return {
        **cpu,
        "scenario": "http",
        "requests": total,
        "succeeded": counts["ok"],
        "bad_statuses": statuses,
        "requests_per_s": counts["ok"] / cpu["seconds"],
        "server_us_per_request": cpu["server_cpu_s"] / total * 1e6 if total else None,
        "subscribers": len(subs),
        "deliveries": run.delivered,
        "errors": run.errors,
    }


SCENARIOS = {"burst": burst, "paced": paced, "memory": memory, "http": http}


def main() -> None:
    job = json.loads(sys.argv[1])
    import uvloop

    result = uvloop.run(SCENARIOS[job["scenario"]](job))
    with contextlib.suppress(BrokenPipeError):
        print(json.dumps(result))


if __name__ == "__main__":
    main()
