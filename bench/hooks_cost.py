"""What realtime hooks cost: ``onSubscribe`` per subscribe, ``onPublish`` on a busy channel.

One ``fazt serve`` child (one app, default sandbox: 2 JS threads, at most one
of them per app) serves two kinds of channels that differ only in their
rule: ``hooked-*`` runs ``onSubscribe`` and ``onPublish`` from
``api/_realtime.js`` (both answer at once: allow, publish as sent), ``plain-*``
runs none. This process drives both the same way, in turn, over WebSockets:

* **subscribe**: one client subscribes and unsubscribes, one request at a
  time; the round-trip time of each subscribe, p50 and p99;
* **publish, closed loop** (throughput): ``--publishers`` clients publish on one
  channel with ``--subscribers`` subscribers, each keeping at most ``--window``
  messages not yet seen by the probe subscriber; messages per second and the
  server's CPU per message;
* **publish, paced** (latency): the same clients at ``--rate`` messages per
  second in all; send-to-receive time at the probe subscriber, p50 and p99.

The client and the server share the machine, so the numbers compare the two
kinds of channel run back to back; they are not absolute.

    .venv/bin/python bench/hooks_cost.py [--duration 5] [--repeats 3] [--smoke]

Prints a markdown table; writes ``docs/bench/hooks_cost.json`` (not with --smoke).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from procs import free_port, proc_cpu_seconds
from websockets.asyncio.client import ClientConnection, connect

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "bench" / "hooks_cost.json"

HOOKS_JS = """
exports.onSubscribe = () => true;
exports.onPublish = () => undefined;
"""
MANIFEST = {
    "slug": "bench",
    "realtime": {
        "channels": {
            "hooked-*": {"publish": True, "hooks": ["subscribe", "publish"]},
            "plain-*": {"publish": True},
        }
    },
}
# Client publishes are rate-limited per connection (100/s by default): lifted here.
CONFIG = {"realtime": {"limits": {"maxMessagesPerSecond": 1_000_000}}}
KINDS = ("plain", "hooked")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


class Server:
    """``fazt serve`` on a temporary apps folder, stopped by PID."""

    def __init__(self, scratch: Path) -> None:
        apps = scratch / "apps"
        (apps / "bench" / "api").mkdir(parents=True)
        (apps / "bench" / "app.json").write_text(json.dumps(MANIFEST))
        (apps / "bench" / "api" / "_realtime.js").write_text(HOOKS_JS)
        config = scratch / "config.json"
        config.write_text(json.dumps(CONFIG))
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "fazt", "--log-level", "warning", "serve", str(apps)),
                *("--port", str(self.port), "--address", "127.0.0.1"),
                *("--data", str(scratch / "data"), "--config", str(config)),
            ],
            cwd=REPO,
        )
        self.url = f"ws://127.0.0.1:{self.port}/_app/bench/_ws"

    async def ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fazt serve exited with {self.process.returncode}")
            with contextlib.suppress(OSError):
                ws = await connect(self.url, ping_interval=None)
                await ws.close()
                return
            await asyncio.sleep(0.1)
        raise TimeoutError("fazt serve did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


async def open_client(url: str) -> ClientConnection:
    ws = await connect(url, ping_interval=None, compression=None, max_queue=None)
    hello = json.loads(await ws.recv())
    assert hello["type"] == "connected", hello
    return ws


async def request(ws: ClientConnection, message: dict[str, Any], want: str) -> None:
    await ws.send(json.dumps(message))
    while True:
        reply = json.loads(await ws.recv())
        if reply.get("type") == want:
            return
        if reply.get("type") == "error":
            raise RuntimeError(f"refused: {reply}")


async def subscribe_rtts(url: str, kind: str, count: int) -> list[float]:
    """Milliseconds per subscribe (a fresh channel each time, unsubscribed after)."""
    ws = await open_client(url)
    rtts: list[float] = []
    try:
        for index in range(count + count // 10):  # the first tenth warms up
            channel = f"{kind}-sub-{index % 8}"
            started = time.perf_counter()
            await request(ws, {"type": "subscribe", "channel": channel}, "subscribed")
            elapsed = (time.perf_counter() - started) * 1000
            await request(ws, {"type": "unsubscribe", "channel": channel}, "unsubscribed")
            if index >= count // 10:
                rtts.append(elapsed)
    finally:
        await ws.close()
    return rtts


class PublishRun:
    """Publishers and subscribers on one channel; the probe subscriber times every message."""

    def __init__(self, url: str, channel: str, publishers: int, subscribers: int) -> None:
        self.url = url
        self.channel = channel
        self.publisher_count = publishers
        self.subscriber_count = subscribers
        self.publishers: list[ClientConnection] = []
        self.readers: list[ClientConnection] = []
        self.latencies: list[float] = []
        self.received = 0
        self.rejected = 0
        self.unseen = [0] * publishers
        self.progress = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> PublishRun:
        for _ in range(self.subscriber_count):
            ws = await open_client(self.url)
            await request(ws, {"type": "subscribe", "channel": self.channel}, "subscribed")
            self.readers.append(ws)
        for _ in range(self.publisher_count):
            ws = await open_client(self.url)
            await request(ws, {"type": "subscribe", "channel": self.channel}, "subscribed")
            self.publishers.append(ws)
        self.tasks = [asyncio.ensure_future(self._probe(self.readers[0]))]
        self.tasks += [asyncio.ensure_future(self._drain(ws)) for ws in self.readers[1:]]
        self.tasks += [
            asyncio.ensure_future(self._answers(index, ws))
            for index, ws in enumerate(self.publishers)
        ]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in self.readers + self.publishers))

    async def _probe(self, ws: ClientConnection) -> None:
        async for raw in ws:
            message = json.loads(raw)
            if message.get("type") == "message":
                data = message["data"]
                self.latencies.append((time.perf_counter() - data["t"]) * 1000)
                self.unseen[data["p"]] -= 1
                self.received += 1
                self.progress.set()
            elif message.get("type") == "error":
                raise RuntimeError(f"refused: {message}")
        raise RuntimeError(f"the probe subscriber was closed: {ws.close_code} {ws.close_reason}")

    async def _answers(self, index: int, ws: ClientConnection) -> None:
        """A publisher's incoming frames: a ``rejected`` (the app's hooks are busy) is
        counted, and that message is not waited for any more."""
        async for raw in ws:
            message = json.loads(raw)
            if message.get("type") == "error":
                if message.get("code") != "rejected":
                    raise RuntimeError(f"refused: {message}")
                self.rejected += 1
                self.unseen[index] -= 1
                self.progress.set()
        raise RuntimeError(f"a publisher was closed: {ws.close_code} {ws.close_reason}")

    @staticmethod
    async def _drain(ws: ClientConnection) -> None:
        async for raw in ws:
            if b'"error"' in (raw if isinstance(raw, bytes) else raw.encode()):
                raise RuntimeError(f"refused: {raw!r}")
        raise RuntimeError(f"a client was closed: {ws.close_code} {ws.close_reason}")

    async def send(self, publisher: int) -> None:
        self.unseen[publisher] += 1
        data = {"t": time.perf_counter(), "p": publisher, "text": "x" * 100}
        await self.publishers[publisher].send(
            json.dumps({"type": "message", "channel": self.channel, "data": data})
        )

    async def closed_loop(self, duration: float, window: int) -> None:
        stop_at = time.perf_counter() + duration

        async def publish(index: int) -> None:
            while time.perf_counter() < stop_at:
                if self.unseen[index] >= window:
                    self.progress.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self.progress.wait(), 1.0)
                    continue
                await self.send(index)

        await asyncio.gather(*(publish(index) for index in range(self.publisher_count)))
        await self.settle()

    async def paced(self, duration: float, rate: float) -> None:
        interval = self.publisher_count / rate
        stop_at = time.perf_counter() + duration

        async def publish(index: int) -> None:
            next_at = time.perf_counter() + interval * index / self.publisher_count
            while next_at < stop_at:
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                await self.send(index)
                next_at += interval

        await asyncio.gather(*(publish(index) for index in range(self.publisher_count)))
        await self.settle()

    async def settle(self, timeout: float = 10) -> None:
        deadline = time.perf_counter() + timeout
        while any(self.unseen) and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        if any(self.unseen):
            for task in self.tasks:
                if task.done() and task.exception() is not None:
                    raise RuntimeError("a client failed") from task.exception()
            raise RuntimeError(f"messages lost: {self.unseen}")


async def measure(server: Server, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    pid = server.process.pid
    for kind in KINDS:
        rtts = await subscribe_rtts(server.url, kind, args.subscribes)
        async with PublishRun(server.url, f"{kind}-busy", args.publishers, args.subscribers) as run:
            await run.closed_loop(min(1.0, args.duration / 4), args.window)  # warm-up
            run.received, run.latencies, run.rejected = 0, [], 0
            cpu_before, started = proc_cpu_seconds(pid), time.perf_counter()
            await run.closed_loop(args.duration, args.window)
            elapsed, cpu = time.perf_counter() - started, proc_cpu_seconds(pid) - cpu_before
            throughput, cpu_per_message = run.received / elapsed, cpu / run.received * 1e6
            run.received, run.latencies, run.rejected = 0, [], 0
            await run.paced(args.duration, args.rate)
            paced, rejected = run.latencies, run.rejected
        results[kind] = {
            "subscribe_p50_ms": percentile(rtts, 0.5),
            "subscribe_p99_ms": percentile(rtts, 0.99),
            "publish_msgs_per_s": throughput,
            "publish_server_us_per_msg": cpu_per_message,
            "paced_p50_ms": percentile(paced, 0.5),
            "paced_p99_ms": percentile(paced, 0.99),
            "paced_rejected": rejected,
        }
    return results


def median_of(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {
        kind: {key: statistics.median(run[kind][key] for run in runs) for key in runs[0][kind]}
        for kind in KINDS
    }


def table(result: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    rows = [
        ("subscribe round trip, p50 ms", "subscribe_p50_ms", "{:.2f}"),
        ("subscribe round trip, p99 ms", "subscribe_p99_ms", "{:.2f}"),
        (
            f"publish, closed loop: messages/s ({args.publishers} publishers, "
            f"{args.subscribers} subscribers)",
            "publish_msgs_per_s",
            "{:,.0f}",
        ),
        ("publish: server CPU µs per message", "publish_server_us_per_msg", "{:.0f}"),
        (f"publish at {args.rate:g}/s: send to receive, p50 ms", "paced_p50_ms", "{:.2f}"),
        (f"publish at {args.rate:g}/s: send to receive, p99 ms", "paced_p99_ms", "{:.2f}"),
        (f"publish at {args.rate:g}/s: refused as busy", "paced_rejected", "{:.0f}"),
    ]
    lines = [
        "| | channel without hooks | channel with onSubscribe + onPublish |",
        "|---|---:|---:|",
    ]
    for label, key, fmt in rows:
        plain, hooked = (fmt.format(result[kind][key]) for kind in KINDS)
        lines.append(f"| {label} | {plain} | {hooked} |")
    return "\n".join(lines)


def wait_for_quiet(max_wait: float) -> float:
    """Wait (up to ``max_wait`` s) for the 1-minute load average to drop below the core
    count; returns the load average when the run starts."""
    cores = os.cpu_count() or 1
    deadline = time.monotonic() + max_wait
    while os.getloadavg()[0] >= cores and time.monotonic() < deadline:
        time.sleep(5)
    return os.getloadavg()[0]


async def main(args: argparse.Namespace) -> None:
    load_at_start = wait_for_quiet(args.quiet_wait)
    with tempfile.TemporaryDirectory(prefix="fazt-hooks-bench-") as scratch:
        server = Server(Path(scratch))
        try:
            await server.ready()
            runs = [await measure(server, args) for _ in range(args.repeats)]
        finally:
            server.stop()
    result = median_of(runs)
    load_at_end = os.getloadavg()[0]
    print(
        f"Medians of {args.repeats} run(s); load average {load_at_start:.1f} at the start, "
        f"{load_at_end:.1f} at the end.\n"
    )
    print(table(result, args))
    if not args.smoke:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
            "python": platform.python_version(),
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_average": [load_at_start, load_at_end],
            "options": vars(args),
            "median": result,
            "runs": runs,
        }
        OUT.write_text(json.dumps(record, indent=2) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per publish phase")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--subscribes", type=int, default=500, help="subscribes timed per kind")
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--subscribers", type=int, default=20)
    parser.add_argument("--window", type=int, default=8, help="unseen messages per publisher")
    parser.add_argument("--rate", type=float, default=200.0, help="paced messages/s in all")
    parser.add_argument(
        "--quiet-wait", type=float, default=120, help="seconds to wait for a quiet machine"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, nothing written")
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration, args.repeats, args.subscribes = 0.5, 1, 40
        args.subscribers, args.rate, args.quiet_wait = 4, 50.0, 0
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
