"""100,000 in-process sessions on a fake transport: what fazt's own state costs at that size.

    .venv/bin/python bench/simulate_100k.py [--sessions 100000]

No sockets: each session's transport only counts frames. The hub, commands,
membership, the in-memory backplane and the scan are the real ones, driven by
a hand-moved clock. Measured at 10k, 30k and --sessions:

* memory per session: tracemalloc growth per connected session with one
  subscription (fazt's state only: session, hub and registry entries; the
  socket side is measured by ``bench/run --scenarios memory``), in a pass of
  its own;
* connect, subscribe and unsubscribe: CPU time per call, in a second pass
  without tracemalloc (which slows every allocation several times over);
* fan-out: CPU time per delivery for one publish to a channel of 1,000
  subscribers, and for a publish to a room of two;
* the scan: CPU time of a tick with nothing due, of the ticks that carry a
  heartbeat wave, and the sessions each tick looked at.

Costs that grow linearly show up as a flat per-item cost across sizes; the
scan's per-tick cost must stay flat while the number of sessions grows.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fazt.kernel.app import App
from fazt.kernel.tokens import TokenService
from fazt.realtime.backplane.node import memory_backplane
from fazt.realtime.clocks import Clocks
from fazt.realtime.core import RealtimeCore
from fazt.realtime.limits import Limits
from fazt.realtime.session import HeartbeatPolicy, Session


class CountingTransport:
    """A transport that only counts what it is asked to send."""

    __slots__ = ("closed", "frames")

    def __init__(self) -> None:
        self.frames = 0
        self.closed = False

    def send_frame(self, frame: bytes) -> None:
        self.frames += 1

    def close(self, code: int, reason: str) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_app(folder: Path) -> App:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "slug": "sim",
        "name": "sim",
        "realtime": {"channels": {"room-*": {"publish": True}}},
    }
    return App(slug="sim", uuid="app_sim", root=folder, manifest=manifest)


def new_core(sessions: int, clock: Clock) -> RealtimeCore:
    limits = Limits(
        maxConnectionsTotal=sessions * 2,
        maxConnectionsPerApp=sessions * 2,
        maxChannelsPerApp=sessions * 2,
        maxMessagesPerSecond=1000,
    )
    return RealtimeCore(
        memory_backplane(),
        TokenService(b"k" * 32),
        limits=limits,
        heartbeat=HeartbeatPolicy(30, 10, 300),
        clocks=Clocks(monotonic=clock, wall_ms=lambda: 1),
    )


async def populate(
    core: RealtimeCore, app: App, sessions: int
) -> tuple[list[tuple[Session, CountingTransport]], float, float]:
    """Connect ``sessions`` sessions, two per room; them, and the CPU seconds of
    the connects and of the subscribes."""
    started = time.process_time()
    connected: list[tuple[Session, CountingTransport]] = []
    for _ in range(sessions):
        transport = CountingTransport()
        connected.append((await core.connect(app, transport, None), transport))
    connect_cpu = time.process_time() - started
    started = time.process_time()
    for index, (session, _) in enumerate(connected):
        await core.commands.handle(
            session, json.dumps({"type": "subscribe", "channel": f"room-{index // 2}"})
        )
    return connected, connect_cpu, time.process_time() - started


async def memory_per_session(sessions: int, folder: Path) -> float:
    """Bytes of fazt state per connected, subscribed session (tracemalloc), in a
    pass of its own: tracemalloc slows every allocation, so the timed pass runs
    without it."""
    core = new_core(sessions, Clock())
    await core.start()
    app = make_app(folder)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    connected, _, _ = await populate(core, app, sessions)
    gc.collect()
    per_session = (tracemalloc.get_traced_memory()[0] - before) / sessions
    tracemalloc.stop()
    del connected
    await core.backplane.stop()
    return per_session


async def run(sessions: int, folder: Path) -> dict[str, Any]:
    per_session = await memory_per_session(sessions, folder / "memory")
    gc.collect()
    clock = Clock()
    core = new_core(sessions, clock)
    await core.start()
    app = make_app(folder)
    connected, connect_cpu, subscribe_cpu = await populate(core, app, sessions)

    # Fan-out: a room of two (client publish), and one channel of 1,000 subscribers.
    started = time.process_time()
    rooms = min(sessions, 20_000)
    for index in range(0, rooms, 2):
        session = connected[index][0]
        payload = json.dumps({"type": "message", "channel": f"room-{index // 2}", "data": 1})
        await core.commands.handle(session, payload)
    room_cpu = (time.process_time() - started) / (rooms // 2)
    big = [session for session, _ in connected[:1000]]
    for session in big:
        await core.commands.handle(session, '{"type":"subscribe","channel":"big"}')
    api = core.api(app)
    started = time.process_time()
    for _ in range(20):
        await api.broadcast("big", {"n": 1})
    fanout_cpu = (time.process_time() - started) / (20 * 1000)

    # The scan: a quiet tick, then the ticks that carry the first heartbeat wave.
    scanner = core.scanner
    clock.now += 10
    started = time.perf_counter()
    scanner.scan()
    quiet_tick = time.perf_counter() - started
    quiet_looked = scanner.last_looked_at
    clock.now += 20 - scanner.period
    wave: list[tuple[float, int]] = []
    pinged = 0
    while pinged < sessions and len(wave) < 200:
        clock.now += scanner.period
        started = time.perf_counter()
        scanner.scan()
        wave.append((time.perf_counter() - started, scanner.last_looked_at))
        pinged = sum(1 for _, transport in connected if transport.frames >= 3)
    busiest = max(wave)

    # Unsubscribe everyone.
    started = time.process_time()
    for index, (session, _) in enumerate(connected):
        await core.commands.handle(
            session, json.dumps({"type": "unsubscribe", "channel": f"room-{index // 2}"})
        )
    unsubscribe_cpu = time.process_time() - started
    await core.backplane.stop()  # (the graceful shutdown waits on the real clock)
    return {
        "sessions": sessions,
        "bytes_per_session": round(per_session),
        "connect_us": round(connect_cpu / sessions * 1e6, 2),
        "subscribe_us": round(subscribe_cpu / sessions * 1e6, 2),
        "unsubscribe_us": round(unsubscribe_cpu / sessions * 1e6, 2),
        "room_publish_us": round(room_cpu * 1e6, 2),
        "fanout_us_per_delivery": round(fanout_cpu * 1e6, 3),
        "quiet_tick_ms": round(quiet_tick * 1e3, 3),
        "quiet_tick_looked_at": quiet_looked,
        "wave_ticks": len(wave),
        "wave_busiest_tick_ms": round(busiest[0] * 1e3, 2),
        "wave_busiest_tick_looked_at": busiest[1],
        "wave_median_tick_ms": round(statistics.median(t for t, _ in wave) * 1e3, 2),
        "ping_budget_per_tick": scanner.ping_budget,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--smoke", action="store_true", help="1,000 and 2,000 sessions only")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "docs" / "bench" / "simulate_100k.json",
        help="where the results go (not written by --smoke); bench/run's connections "
        "scenario reads them for its simulated point",
    )
    args = parser.parse_args()
    import tempfile

    sizes = {1_000, 2_000} if args.smoke else {10_000, 30_000, args.sessions}
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for size in sorted(sizes):
            result = asyncio.run(run(size, Path(folder) / str(size)))
            print(json.dumps(result), flush=True)
            results.append(result)
    if not args.smoke:
        document = {"date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": results}
        args.out.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
