"""Same-run A/B of two fazt trees on the chat-rooms workload: client publish in rooms of 2.

    .venv/bin/python bench/rooms_ab.py --old main --rates 10000,20000 --repeats 3

``--old`` is any git revision (exported to a temp folder); the new side is this
worktree. For each rate and repeat the two servers run in turn (alternating
which goes first), each pinned to core 0 with the load client on core 1.
``--connections`` clients join rooms of two (``room-<n>``), and every client
publishes to its room by client publish (the app's rule ``"publish": true``;
rules, the rate limit and the subscribe checks all run). The client paces
``rate`` publishes per second in 10 ms ticks; each publish is one delivery.

Reported per run: server CPU per publish (utime+stime from /proc/PID/stat over
the measured window, divided by the publishes delivered in it), deliveries per
second, and the delivery latency p50/p99 (from the send time embedded in the
message). The machine is shared: compare the two sides within a run, and look
at the spread over repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from procs import export_tree, free_port

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
APP = {"slug": "bench", "name": "bench", "realtime": {"channels": {"room-*": {"publish": True}}}}
CONFIG = {
    "realtime": {
        "limits": {
            "maxConnectionsTotal": 20000,
            "maxConnectionsPerApp": 20000,
            "maxMessagesPerSecond": 1000,
            "maxChannelsPerApp": 20000,
        }
    }
}


def start_server(tree: Path, work: Path, port: int) -> subprocess.Popen[bytes]:
    apps = work / "apps" / "bench"
    apps.mkdir(parents=True, exist_ok=True)
    (apps / "app.json").write_text(json.dumps(APP))
    (apps / "index.html").write_text("<!doctype html>")
    (work / "fazt.json").write_text(json.dumps(CONFIG))
    argv = ["taskset", "-c", "0", PYTHON, "-m", "fazt", "--log-level", "WARNING", "serve"]
    argv += [str(work / "apps"), "--address", "127.0.0.1", "--port", str(port)]
    argv += ["--config", str(work / "fazt.json"), "--data", str(work / "data")]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    log = open(work / "server.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(argv, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server did not start: {(work / 'server.log').read_text()[-2000:]}")


# -- the load client (runs in its own process on core 1) ------------------------------------
CLIENT = r"""
import asyncio, json, os, sys, time
try:
    import uvloop
except ImportError:
    uvloop = None
import orjson

job = json.loads(sys.argv[1])
PID, PORT, N, RATE, WARM, WINDOW = (job[k] for k in ("pid", "port", "n", "rate", "warm", "window"))
CLK = os.sysconf("SC_CLK_TCK")

def cpu(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK

def frame(payload):
    n = len(payload)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    else:
        head = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    return head + b"\0\0\0\0" + payload  # a zero mask is a valid mask

UPGRADE = (f"GET /_app/bench/_ws HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n").encode()

state = {"measuring": False, "delivered": 0, "lat": [], "subscribed": 0}

class Conn(asyncio.Protocol):
    def __init__(self, room):
        self.room = room
        self.buf = b""
        self.upgraded = False
        self.ready = asyncio.get_running_loop().create_future()
    def connection_made(self, transport):
        self.t = transport
        transport.write(UPGRADE)
    def data_received(self, data):
        buf = self.buf + data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            self.upgraded = True
            buf = buf[end + 4:]
            self.t.write(frame(b'{"type":"subscribe","channel":"%s"}' % self.room))
        pos, n = 0, len(buf)
        while n - pos >= 2:
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 4], "big")
                head = 4
            if n - pos < head + length:
                break
            payload = buf[pos + head:pos + head + length]
            pos += head + length
            if payload.startswith(b'{"type":"message"'):
                if state["measuring"]:
                    sent = orjson.loads(payload)["data"]["t"]
                    state["delivered"] += 1
                    state["lat"].append(time.monotonic() - sent)
            elif payload.startswith(b'{"type":"subscribed"'):
                state["subscribed"] += 1
                if not self.ready.done():
                    self.ready.set_result(None)
            elif payload.startswith(b'{"type":"ping"'):
                self.t.write(frame(b'{"type":"pong"}'))
        self.buf = buf[pos:]
    def publish(self):
        self.t.write(frame(b'{"type":"message","channel":"%s","data":{"t":%r}}'
                           % (self.room, time.monotonic())))

async def main():
    loop = asyncio.get_running_loop()
    conns = []
    for i in range(N):
        room = b"room-%d" % (i // 2)
        _, conn = await loop.create_connection(lambda room=room: Conn(room), "127.0.0.1", PORT)
        conns.append(conn)
        if i % 200 == 199:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(asyncio.gather(*(c.ready for c in conns)), 60)
    tick = 0.01
    per_tick = RATE * tick
    owed = 0.0
    index = 0
    start = loop.time()
    t0 = c0 = None
    sent_in_window = 0
    while True:
        now = loop.time()
        if t0 is None and now - start >= WARM:
            state["measuring"] = True
            t0, c0 = time.monotonic(), cpu(PID)
            sent_in_window = 0
        if now - start >= WARM + WINDOW:
            break
        owed += per_tick
        while owed >= 1:
            conns[index].publish()
            index = (index + 1) % N
            owed -= 1
            sent_in_window += 1
        next_tick = start + (round((now - start) / tick) + 1) * tick
        await asyncio.sleep(max(0.0, next_tick - loop.time()))
    t1, c1 = time.monotonic(), cpu(PID)
    state["measuring"] = False
    await asyncio.sleep(0.5)
    lat = sorted(state["lat"])
    delivered = state["delivered"]
    def pct(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else None
    print(json.dumps({
        "sent": sent_in_window, "delivered": delivered, "seconds": t1 - t0,
        "server_cpu": c1 - c0, "us_per_publish": (c1 - c0) / max(delivered, 1) * 1e6,
        "per_second": delivered / (t1 - t0), "p50_ms": pct(0.5), "p99_ms": pct(0.99),
    }))
    for c in conns:
        c.t.close()

if uvloop is not None:
    uvloop.install()
asyncio.run(main())
"""


def run_one(tree: Path, tmp: Path, args: argparse.Namespace, rate: int) -> dict[str, Any]:
    port = free_port()
    work = Path(tempfile.mkdtemp(dir=tmp))
    server = start_server(tree, work, port)
    try:
        job = {
            "pid": server.pid,
            "port": port,
            "n": args.connections,
            "rate": rate,
            "warm": args.warm,
            "window": args.seconds,
        }
        out = subprocess.run(
            ["taskset", "-c", "1", PYTHON, "-c", CLIENT, json.dumps(job)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return result
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", default="main", help="git revision of the A side")
    parser.add_argument("--rates", default="10000,20000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warm", type=float, default=2.0)
    args = parser.parse_args()
    results: dict[str, dict[int, list[dict[str, Any]]]] = {"old": {}, "new": {}}
    with tempfile.TemporaryDirectory(prefix="rooms-ab-") as folder:
        tmp = Path(folder)
        trees = {"old": export_tree(args.old, tmp), "new": ROOT}
        for rate in (int(r) for r in args.rates.split(",")):
            for repeat in range(args.repeats):
                order = ["old", "new"] if repeat % 2 == 0 else ["new", "old"]
                for side in order:
                    result = run_one(trees[side], tmp, args, rate)
                    results[side].setdefault(rate, []).append(result)
                    print(
                        f"{rate}/s #{repeat + 1} {side}: "
                        f"{result['us_per_publish']:.1f} us/publish, "
                        f"{result['per_second']:.0f}/s, p50 {result['p50_ms']:.1f} ms, "
                        f"p99 {result['p99_ms']:.1f} ms",
                        file=sys.stderr,
                        flush=True,
                    )
    for rate in sorted(results["new"]):
        for side in ("old", "new"):
            runs = results[side][rate]
            cpu = [r["us_per_publish"] for r in runs]
            p99 = [r["p99_ms"] for r in runs]
            print(
                f"{side} @ {rate}/s: us/publish median {statistics.median(cpu):.1f} "
                f"(min {min(cpu):.1f}, max {max(cpu):.1f}); p99 ms median "
                f"{statistics.median(p99):.1f} (min {min(p99):.1f}, max {max(p99):.1f})"
            )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
