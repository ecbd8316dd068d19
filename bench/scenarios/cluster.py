"""Cluster: fazt on 1, 2 and 4 ``--workers`` on Redis, and 1 node in memory.

One ``redis-server`` for the scenario (free port, no persistence, pinned to
the server core, stopped by PID; flushed before each run). The set-ups take
the place of peers and alternate the same way:

* ``memory-1``: ``fazt serve``, the in-memory backplane (the baseline);
* ``redis-1``, ``redis-2``, ``redis-4``: ``fazt serve --redis URL --workers N``
  (one process for N = 1; N forked workers sharing the port otherwise, so the
  kernel spreads the clients' connections over them).

Two workloads against each, with the same clients:

* **fan-out**: the burst of the one-channel scenario (``loadclient.py``:
  1,000 subscribers, publishers keeping 32 publishes in flight);
* **rooms**: 4,000 clients in rooms of 2 publishing at a fixed paced rate
  (``swarm.py``), so most rooms straddle two workers and their publishes
  cross Redis.

Server CPU is the sum over fazt's processes (master and workers); Redis's CPU
is reported apart and added for the total. This machine has 2 cores, so
deliveries/s cannot scale with workers here: CPU per delivery is the figure
that shows whether Redis adds a per-delivery cost or only a per-publish one.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from procs import CpuSampler, free_port, spawn, stop_process, wait_port
from report import DASH, TIMES, Metric, bar_chart, median_of, ratio_target
from servers import BY_NAME, Options, Server
from swarm import Swarm

from scenarios.base import Context, Scenario, Unit
from scenarios.fanout import client_job, run_client
from scenarios.rooms import run_step

SETUPS = [("memory-1", 0), ("redis-1", 1), ("redis-2", 2), ("redis-4", 4)]


@contextlib.contextmanager
def redis_server(log_dir: Path) -> Iterator[dict[str, Any]]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed")
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="redis-", dir=log_dir))
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--save", "", "--appendonly", "no", "--dir", str(work)]
    log = log_dir / f"redis-{port}.log"
    proc = spawn(argv, log, cwd=work)
    try:
        wait_port(port, proc, 30, log)
        yield {"url": f"redis://127.0.0.1:{port}/0", "port": port, "pid": proc.pid}
    finally:
        stop_process(proc)
        shutil.rmtree(work, ignore_errors=True)


def flush(port: int) -> None:
    """FLUSHALL, so that no run sees what an earlier one registered."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
        if not sock.recv(64).startswith(b"+OK"):
            raise RuntimeError("redis FLUSHALL failed")


class Cluster(Scenario):
    name = "cluster"
    unit_title = "set-up"
    # py-spy (--profile) covers the measured phases only, not the clients' connects.
    profiles_itself = True
    title = "Cluster: 1, 2 and 4 workers on Redis against 1 node in memory"
    full = {
        "fanout": {
            "subscribers": 1000,
            "publishers": 4,
            "duration": 3.0,
            "window": 32,
            "warmup": 30,
        },
        # A rate every set-up sustains on one core (the Redis path costs several times
        # the in-memory one per room publish), so that the runs compare costs, not overload.
        "rooms": {"clients": 4000, "processes": 2, "rate": 2000, "duration": 4.0},
        "drain_timeout": 30.0,
    }
    smoke = {
        "fanout": {"subscribers": 20, "publishers": 2, "duration": 0.3, "window": 4, "warmup": 3},
        "rooms": {"clients": 40, "processes": 2, "rate": 200, "duration": 0.5},
        "drain_timeout": 5.0,
    }
    metrics = [
        Metric("fanout_deliveries_per_s", "fan-out deliveries/s", "{:,.0f}"),
        Metric("fanout_server_us", "fan-out fazt µs / delivery"),
        Metric("fanout_redis_us", "fan-out Redis µs / delivery"),
        Metric("fanout_total_us", "fan-out total µs / delivery"),
        Metric("rooms_deliveries_per_s", "rooms deliveries/s", "{:,.0f}"),
        Metric("rooms_server_us", "rooms fazt µs / delivery", "{:.1f}"),
        Metric("rooms_redis_us", "rooms Redis µs / delivery", "{:.1f}"),
        Metric("rooms_total_us", "rooms total µs / delivery", "{:.1f}"),
        Metric("rooms_p99_ms", "rooms p99 ms", "{:.1f}"),
    ]

    @contextlib.contextmanager
    def session(self, ctx: Context, sizes: dict[str, Any]) -> Iterator[dict[str, Any]]:
        with redis_server(ctx.tmp) as redis:
            yield redis

    def units(self, sizes: dict[str, Any], session: dict[str, Any]) -> list[Unit]:
        fazt = BY_NAME["fazt"]
        units = []
        for name, workers in SETUPS:
            if workers == 0:
                units.append(Unit(name, "1 node, in memory", fazt, Options()))
            else:
                label = f"{workers} worker{'s' if workers > 1 else ''} on Redis"
                options = Options(redis=session["url"], workers=workers)
                units.append(Unit(name, label, fazt, options))
        self.redis = session
        return units

    def measure(
        self, unit: Unit, server: Server, sizes: dict[str, Any], ctx: Context
    ) -> dict[str, Any]:
        on_redis = unit.options.redis is not None
        extra = {"redis": [self.redis["pid"]]} if on_redis else {}
        if on_redis:
            flush(self.redis["port"])
        job = client_job("burst", server, sizes["fanout"], ctx, extra_pids=extra)
        with ctx.profiled(unit, server, "cluster-fanout"):
            burst = run_client(job, timeout=300)
        frames = burst["frames"] or 1
        result: dict[str, Any] = {
            "workers": unit.options.workers if on_redis else 1,
            "redis": on_redis,
            "fanout_complete": burst["complete"],
            "fanout_deliveries_per_s": burst["deliveries_per_s"],
            "fanout_server_us": burst["server_us_per_delivery"],
            "fanout_redis_us": burst.get("redis_cpu_s", 0.0) / frames * 1e6,
            "others_cpu_share": burst["others_cpu_share"],
        }
        result["fanout_total_us"] = result["fanout_server_us"] + result["fanout_redis_us"]
        rooms = self.rooms(unit, server, sizes, ctx, extra)
        result.update(rooms)
        return result

    def rooms(
        self, unit: Unit, server: Server, sizes: dict, ctx: Context, extra: dict
    ) -> dict[str, Any]:
        spec = sizes["rooms"]
        swarm = Swarm(spec["processes"], ctx.tmp)
        try:
            opened = swarm.open(server.url, server.dialect, spec["clients"], "rooms")
            if sum(a["opened"] for a in opened) < spec["clients"]:
                raise RuntimeError(f"rooms clients failed: {opened[0]['error_samples']}")
            groups = {"server": server.pids, "client": swarm.pids}
            for name, pids in extra.items():
                groups[name] = lambda pids=pids: pids
            with CpuSampler(groups) as sampler, ctx.profiled(unit, server, "cluster-rooms"):
                time.sleep(0.5)
                pace = {"drain_timeout": sizes["drain_timeout"]}
                step = run_step(swarm, sampler, spec["rate"], spec["duration"], 1, pace)
        finally:
            swarm.close()
        received = step["received"] or 1
        server_us = step["server_us_per_publish"] or 0.0
        redis_us = step["cpu"].get("redis", 0.0) / received * 1e6
        return {
            "rooms_complete": step["complete"],
            "rooms_sent": step["sent"],
            "rooms_lost": step["sent"] - step["received"],
            "rooms_deliveries_per_s": step["deliveries_per_s"],
            "rooms_server_us": server_us,
            "rooms_redis_us": redis_us,
            "rooms_total_us": server_us + redis_us,
            "rooms_p50_ms": step["p50_ms"],
            "rooms_p99_ms": step["p99_ms"],
        }

    def check(self, result: dict[str, Any]) -> str | None:
        if not result["fanout_complete"]:
            return "fan-out: missing deliveries"
        if not result["rooms_complete"]:
            return (
                f"rooms: {result['rooms_lost']} of {result['rooms_sent']} publishes not delivered"
            )
        return None

    def brief(self, r: dict[str, Any]) -> str:
        return (
            f"fan-out {r['fanout_deliveries_per_s']:,.0f}/s at {r['fanout_total_us']:.2f} us "
            f"(Redis {r['fanout_redis_us']:.2f}); rooms {r['rooms_deliveries_per_s']:,.0f}/s at "
            f"{r['rooms_total_us']:.1f} us (Redis {r['rooms_redis_us']:.1f}), "
            f"p99 {r['rooms_p99_ms']:.1f} ms"
        )

    def sizes_line(self, sizes: dict[str, Any]) -> str:
        f, r = sizes["fanout"], sizes["rooms"]
        return (
            f"Fan-out: {f['subscribers']:,} subscribers, {f['publishers']} publishers keeping "
            f"{f['window']} in flight for {f['duration']:g} s. Rooms: {r['clients']:,} clients "
            f"in rooms of 2 at {r['rate']:,} publishes/s for {r['duration']:g} s. fazt "
            f"processes and Redis share the server core."
        )

    def targets(self, summary: dict[str, Any], sizes: dict[str, Any], ctx: Context) -> list[dict]:
        return [
            ratio_target(
                f"Redis path ≤ 1.1{TIMES} the in-memory CPU per delivery on one node (fan-out, "
                "fazt + Redis)",
                median_of(summary, "redis-1", "fanout_total_us"),
                median_of(summary, "memory-1", "fanout_total_us"),
                1.1,
            )
        ]

    def chart(self, summary: dict, runs: dict, units: list[Unit], path: Path) -> bool:
        bar_chart(
            path,
            f"Cluster on one 2-core machine: medians, bars show min{DASH}max",
            summary,
            [u.name for u in units],
            [
                {"key": "fanout_total_us", "title": "fan-out CPU µs / delivery (fazt + Redis)"},
                {"key": "fanout_deliveries_per_s", "title": "fan-out deliveries/s"},
                {"key": "rooms_total_us", "title": "rooms CPU µs / delivery (fazt + Redis)"},
            ],
        )
        return True
