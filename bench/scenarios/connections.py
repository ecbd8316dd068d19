"""Connections: toward 100,000 connections per process (5k, 10k, 18k real sockets).

The machine caps open files at 20,000 per process, so one server cannot hold
100,000 sockets; the scenario climbs to 18,000 real, subscribed connections
on one server, spread over 1,000 channels, opened by several client processes
from several loopback source addresses (no process runs out of file
descriptors, no address out of ephemeral ports).

At each step (after opening the step's new connections):
- RSS per connection: (server RSS - RSS with a few warm-up connections) / connections;
- the time it took to open the step's connections (upgrade, subscribe);
- event-loop lag through a full heartbeat period: a probe client sends
  ``{"type":"ping"}`` every 10 ms and times each ``pong`` (fazt runs with a
  short ``pingIntervalSeconds``, so the server's own heartbeat sweeps and pings
  every connection during the probe);
- fazt only: the time for one ``broadcastAll`` (an ``api/broadcast_all.js``
  handler calling ``fazt.realtime.broadcastAll``, triggered by an HTTP POST) to
  reach every client, and the server CPU it cost per delivery.

websockets and Node ``ws`` hold the same connections in the same run, for the
memory-per-connection comparison.

The in-process 100,000-session point comes from a simulation of the hub's
sessions without sockets; ``simulated_points`` is where it plugs in (the plot
draws its points hollow, apart from the real ones).
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
from pathlib import Path
from typing import Any

from procs import cpu_of, percentile, rss_of
from report import TIMES, cell, markdown_table, median_of, pyplot, target
from servers import Options, Server
from swarm import Swarm, unpack

from scenarios.base import Context, Scenario, Unit

#: written by ``bench/simulate_100k.py`` (run by hand: it takes a few minutes)
SIMULATION = Path(__file__).resolve().parents[2] / "docs" / "bench" / "simulate_100k.json"


def simulated_points(sizes: dict[str, Any]) -> list[dict[str, Any]]:
    """The in-process simulation of hub sessions without sockets, when it has been run.

    Each point: ``{"connections": N, "kb_per_connection": KB, "simulated": True}``
    where KB is fazt's own state per session (tracemalloc: session, hub, registry
    and wheel entries); the socket side is not in it, so it sits below the real
    points by what a socket adds.
    """
    if not SIMULATION.exists():
        return []
    runs = json.loads(SIMULATION.read_text()).get("runs", [])
    return [
        {
            "connections": run["sessions"],
            "kb_per_connection": run["bytes_per_session"] / 1024,
            "simulated": True,
        }
        for run in runs
        if run.get("sessions", 0) >= 100_000
    ]


def post_json(port: int, path: str, body: dict[str, Any], timeout: float = 30.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = json.dumps(body)
        conn.request("POST", path, payload, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def broadcast_all(swarm: Swarm, server: Server, ident: int, expected: int, timeout: float) -> dict:
    """One ``broadcastAll`` through the JS handler; time until the last client got it."""
    assert server.broadcast_all_path is not None
    cpu0 = cpu_of(server.pids())
    t0 = time.monotonic()
    status = post_json(server.port, server.broadcast_all_path, {"data": {"id": ident, "t": t0}})
    if status != 200:
        raise RuntimeError(f"broadcast_all.js answered HTTP {status}")
    deadline = t0 + timeout
    got, first, last = 0, t0, t0
    while time.monotonic() < deadline:
        answers = swarm.all({"op": "broadcasts"}, 30)
        seen = [a["broadcasts"][str(ident)] for a in answers if str(ident) in a["broadcasts"]]
        if seen:
            got = sum(s[0] for s in seen)
            first, last = min(s[1] for s in seen), max(s[2] for s in seen)
        if got >= expected:
            break
        time.sleep(0.02)
    cpu = cpu_of(server.pids()) - cpu0  # includes the polls' idle time: a bound from above
    return {
        "delivered": got,
        "ms": (last - t0) * 1e3,
        "first_ms": (first - t0) * 1e3,
        "server_us_per_delivery": cpu / got * 1e6 if got else None,
    }


STEP_METRICS = (
    "kb_per_connection",
    "open_s",
    "lag_p99_ms",
    "lag_max_ms",
    "broadcast_all_ms",
    "broadcast_all_us_per_delivery",
)


class Connections(Scenario):
    name = "connections"
    title = "Connections: toward 100,000 connections per process"
    peers = ("fazt", "websockets", "node-ws")
    full = {
        "steps": [5000, 10000, 18000],
        "channels": 1000,
        "processes": 4,
        "warm": 20,
        "concurrency": 128,
        "settle": 2.0,
        "ping_interval": 5.0,
        "probe_interval": 0.01,
        "broadcasts": 3,
    }
    smoke = {
        "steps": [60, 120],
        "channels": 10,
        "processes": 2,
        "warm": 4,
        "concurrency": 16,
        "settle": 0.2,
        "ping_interval": 0.5,
        "probe_interval": 0.01,
        "broadcasts": 1,
    }

    def options(self, sizes: dict[str, Any]) -> Options:
        # A short heartbeat so that a whole period (a ping to every connection) fits
        # in the probe; the pong timeout stays at its default.
        return Options(realtime={"pingIntervalSeconds": sizes["ping_interval"]})

    def measure(
        self, unit: Unit, server: Server, sizes: dict[str, Any], ctx: Context
    ) -> dict[str, Any]:
        swarm = Swarm(sizes["processes"], ctx.tmp)
        rows = []
        try:
            channels = sizes["channels"]
            warm = swarm.open(
                server.url, server.dialect, sizes["warm"], "spread", channels_total=channels
            )
            if sum(a["opened"] for a in warm) < sizes["warm"]:
                raise RuntimeError(f"warm-up connections failed: {warm[0]['error_samples']}")
            time.sleep(sizes["settle"])
            rss0 = rss_of(server.pids())
            total = 0
            for step in sizes["steps"]:
                t0 = time.monotonic()
                answers = swarm.open(
                    server.url,
                    server.dialect,
                    step - total,
                    "spread",
                    first=sizes["warm"] + total,
                    channels_total=channels,
                    concurrency=sizes["concurrency"],
                    timeout=300,
                )
                opened = sum(a["opened"] for a in answers)
                open_s = max(a["last_ready"] for a in answers) - t0 if opened else None
                total = step
                time.sleep(sizes["settle"])
                rss = rss_of(server.pids())
                row: dict[str, Any] = {
                    "connections": step,
                    "opened": opened,
                    "failed": sum(a["failed"] for a in answers),
                    "retries": sum(a["retries"] for a in answers),
                    "open_s": open_s,
                    "rss_kb": rss,
                    "kb_per_connection": (rss - rss0) / step,
                    "errors": [s for a in answers for s in a["error_samples"]][:3],
                }
                row.update(self.probe(swarm, sizes))
                if server.broadcast_all_path:
                    row.update(self.broadcasts(swarm, server, sizes, step))
                alive = sum(a["alive"] for a in swarm.all({"op": "status"}, 30))
                row["alive"] = alive - sizes["warm"]
                rows.append(row)
        finally:
            swarm.close()
        result: dict[str, Any] = {"steps": rows}
        for row in rows:
            for key in STEP_METRICS:
                if row.get(key) is not None:
                    result[f"{key}@{row['connections']}"] = row[key]
        return result

    def probe(self, swarm: Swarm, sizes: dict[str, Any]) -> dict[str, Any]:
        """Loop lag over 1.2 heartbeat periods, from one client process (others idle)."""
        duration = 1.2 * sizes["ping_interval"]
        commands = [{"op": "probe", "interval": sizes["probe_interval"], "duration": duration}]
        commands += [{"op": "status"}] * (len(swarm) - 1)
        answer = swarm.call(commands, duration + 60)[0]
        rtts = sorted(unpack(answer["rtts"]))
        return {
            "lag_p50_ms": percentile(rtts, 0.5) * 1e3,
            "lag_p99_ms": percentile(rtts, 0.99) * 1e3,
            "lag_max_ms": rtts[-1] * 1e3 if rtts else None,
            "probe_unanswered": answer["unanswered"],
        }

    def broadcasts(self, swarm: Swarm, server: Server, sizes: dict, step: int) -> dict[str, Any]:
        expected = step + sizes["warm"]
        shots = [
            broadcast_all(swarm, server, step * 100 + k, expected, 60.0)
            for k in range(sizes["broadcasts"])
        ]
        complete = all(s["delivered"] >= expected for s in shots)
        costs = [s["server_us_per_delivery"] for s in shots if s["server_us_per_delivery"]]
        return {
            "broadcast_all_ms": statistics.median(s["ms"] for s in shots) if complete else None,
            "broadcast_all_first_ms": statistics.median(s["first_ms"] for s in shots),
            "broadcast_all_us_per_delivery": statistics.median(costs) if costs else None,
            "broadcast_all_complete": complete,
            "broadcast_all_delivered": min(s["delivered"] for s in shots),
        }

    def check(self, result: dict[str, Any]) -> str | None:
        for row in result["steps"]:
            if row["failed"]:
                return f"{row['failed']} of {row['connections']} failed to open: {row['errors']}"
            if row["alive"] < row["connections"]:
                return f"only {row['alive']} of {row['connections']} stayed open"
            if row.get("broadcast_all_complete") is False:
                return f"a broadcastAll reached {row['broadcast_all_delivered']} clients"
        return None

    def brief(self, r: dict[str, Any]) -> str:
        parts = []
        for row in r["steps"]:
            text = (
                f"{row['connections']:,}: {row['kb_per_connection']:.1f} KB, "
                f"open {row['open_s'] or 0:.1f} s ({row['retries']} retries), "
                f"lag p99 {row['lag_p99_ms']:.1f} ms"
            )
            if row.get("broadcast_all_ms") is not None:
                text += f", broadcastAll {row['broadcast_all_ms']:.0f} ms"
            parts.append(text)
        return "; ".join(parts)

    def table(self, summary: dict[str, Any], units: list[Unit], sizes: dict[str, Any]) -> str:
        head = [
            "peer",
            "connections",
            "KB / connection",
            "seconds to open",
            "loop lag p99 ms",
            "loop lag max ms",
            "broadcastAll ms",
            "broadcastAll server µs / delivery",
        ]
        rows = []
        for u in units:
            mine = summary.get(u.name, {})
            for n in sizes["steps"]:
                if f"kb_per_connection@{n}" not in mine:
                    continue
                rows.append(
                    [
                        u.label,
                        f"{n:,}",
                        cell(mine.get(f"kb_per_connection@{n}"), "{:.1f}"),
                        cell(mine.get(f"open_s@{n}"), "{:.2f}"),
                        cell(mine.get(f"lag_p99_ms@{n}"), "{:.1f}"),
                        cell(mine.get(f"lag_max_ms@{n}"), "{:.1f}"),
                        cell(mine.get(f"broadcast_all_ms@{n}"), "{:.0f}"),
                        cell(mine.get(f"broadcast_all_us_per_delivery@{n}"), "{:.1f}"),
                    ]
                )
        simulated = simulated_points(sizes)
        for point in simulated:
            shown = f"{point['kb_per_connection']:.1f} (fazt state only, no socket)"
            rows.append(
                ["fazt, simulated in-process", f"{point['connections']:,}", shown] + ["—"] * 5
            )
        if not simulated:
            rows.append(["fazt, simulated in-process", "100,000", "not yet measured"] + ["—"] * 5)
        return markdown_table(head, rows)

    def sizes_line(self, sizes: dict[str, Any]) -> str:
        return (
            f"Steps of {', '.join(f'{n:,}' for n in sizes['steps'])} subscribed connections "
            f"over {sizes['channels']:,} channels, {sizes['processes']} client processes on "
            f"{sizes['processes']} source addresses; fazt's `pingIntervalSeconds` "
            f"{sizes['ping_interval']:g} s, loop lag probed every "
            f"{sizes['probe_interval'] * 1e3:g} ms over 1.2 heartbeat periods."
        )

    def one_channel_cost(self, ctx: Context) -> tuple[float | None, str]:
        """fazt's burst server CPU per delivery: this run's, else the last results file's."""
        value = median_of(ctx.summaries.get("burst", {}), "fazt", "server_us_per_delivery")
        if value is not None:
            return value, "this run's burst"
        path = ctx.out / "burst.json"
        if path.exists():
            doc = json.loads(path.read_text())
            value = median_of(doc.get("summary", {}), "fazt", "server_us_per_delivery")
            if value is not None:
                return value, f"burst of {doc['environment']['date_utc']}"
        return None, ""

    def targets(self, summary: dict[str, Any], sizes: dict[str, Any], ctx: Context) -> list[dict]:
        top = max(sizes["steps"])
        out = []
        mine = median_of(summary, "fazt", f"kb_per_connection@{top}")
        node = median_of(summary, "node-ws", f"kb_per_connection@{top}")
        text = f"memory per connection at {top:,} ≤ Node `ws`'s"
        if mine is not None and node:
            out.append(target(text, mine / node, 1.0, f"{mine:.1f} KB vs {node:.1f} KB"))
        else:
            out.append(target(text, None, 1.0, ""))
        lag = median_of(summary, "fazt", f"lag_p99_ms@{top}")
        shown = f"{lag:.1f} ms" if lag is not None else ""
        out.append(target(f"loop lag p99 ≤ 20 ms through a heartbeat at {top:,}", lag, 20.0, shown))
        took = median_of(summary, "fazt", f"broadcast_all_ms@{top}")
        per, source = self.one_channel_cost(ctx)
        text = f"broadcastAll to {top:,} within 2{TIMES} N {TIMES} the one-channel µs/delivery"
        if took is not None and per:
            bound = 2 * (top + sizes["warm"]) * per / 1e3
            shown = f"{took:.0f} ms vs {bound:.0f} ms (2 {TIMES} N {TIMES} {per:.2f} µs, {source})"
            out.append(target(text, took, bound, shown))
        else:
            out.append(target(text, None, 0.0, ""))
        return out

    def chart(self, summary: dict, runs: dict, units: list[Unit], path: Path) -> bool:
        plt = pyplot()
        fig, (mem, lag) = plt.subplots(1, 2, figsize=(12, 4.5))
        for u in units:
            rows = [row for r in runs.get(u.name, []) if r.get("ok", True) for row in r["steps"]]
            if not rows:
                continue
            style = {"color": "#d62728"} if u.name == "fazt" else {}
            xs = [x["connections"] for x in rows]
            mem.plot(xs, [x["kb_per_connection"] for x in rows], "o", label=u.name, **style)
            lag.plot(xs, [x["lag_p99_ms"] for x in rows], "o", label=u.name, **style)
        sim = [p for p in simulated_points({}) if p.get("kb_per_connection")]
        if sim:
            xs, ys = [p["connections"] for p in sim], [p["kb_per_connection"] for p in sim]
            mem.plot(xs, ys, "o", mfc="none", color="#d62728", label="fazt, simulated in-process")
        else:
            note = "simulated in-process 100k point: not yet measured"
            mem.text(0.98, 0.02, note, transform=mem.transAxes, ha="right", fontsize=8)
        mem.set_title("KB per subscribed connection (RSS delta / N)", fontsize=10)
        lag.set_title("event-loop lag p99 through a heartbeat, ms", fontsize=10)
        lag.axhline(20, color="#1f77b4", linestyle="--", linewidth=1, label="target 20 ms")
        for ax in (mem, lag):
            ax.set_xlabel("connections")
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
            ax.set_ylim(bottom=0)
        fig.suptitle("Connections: every run of every peer (same run)", fontsize=11)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return True
