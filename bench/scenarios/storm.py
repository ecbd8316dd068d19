"""Storm: 15,000 SDK-like clients reconnect after a server restart.

Each client (``swarm.py``, several processes and source addresses) connects,
authenticates with a JWT in an ``auth`` message (HS256, the secret fazt runs
with), subscribes to 1-3 channels and answers pings. Two phases per peer:

1. **Handshakes** (the cost): the clients connect at a bounded concurrency;
   server CPU over the phase / handshakes gives µs of server CPU per
   connect+auth+subscribe, and handshakes per second of server CPU. The peers
   check the JWT in their ``auth`` handler too (pyjwt; node:crypto HMAC).
2. **Storm**: SIGTERM to the server, then the same command again on the same
   port. fazt sends ``server_restart`` (the clients leave at once, as the SDK
   does) and closes the rest with 4200; the other peers just drop their
   sockets. Every client comes back with the SDK's full-jitter backoff
   (``sdkpolicy.py``: 500 ms base, 20 s cap; counter reset on ``connected``)
   and resubscribes. Measured: time from SIGTERM until every client is
   subscribed again, time until the new server listened, the peak rate of
   completed handshakes (per 1 s window; upgrades alone, and upgrade + auth +
   subscribe), the HTTP 503s and refused connects on the way, server CPU per
   handshake during the storm, RSS before the restart and after the storm
   (target: back within ``RSS_SLACK`` of the level before), and clients still
   not back at the deadline.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from procs import cpu_of, rss_of
from report import DASH, TIMES, Metric, bar_chart, median_of, ratio_target, target
from servers import JWT_SECRET, Server
from swarm import HANDSHAKING, Swarm, unpack

from scenarios.base import Context, Scenario, Unit

#: How far above its level before the restart the server's RSS may be once the storm settled.
RSS_SLACK = 1.10


def peak_rate(times: list[float], window: float = 1.0, bin_s: float = 0.1) -> float:
    """The most events in any ``window`` seconds (in ``bin_s`` steps), per second."""
    if not times:
        return 0.0
    t0 = min(times)
    bins: dict[int, int] = {}
    for t in times:
        k = int((t - t0) / bin_s)
        bins[k] = bins.get(k, 0) + 1
    span = round(window / bin_s)
    best = max(sum(bins.get(k + j, 0) for j in range(span)) for k in bins)
    return best / window


class Storm(Scenario):
    name = "storm"
    title = "Reconnect storm: every client comes back after a restart"
    peers = ("fazt", "websockets", "node-ws")
    full = {
        "clients": 15000,
        "channels": 100,
        "processes": 4,
        "concurrency": 128,
        "settle": 2.0,
        "deadline": 120.0,
        "stop_grace": 30.0,
    }
    smoke = {
        "clients": 60,
        "channels": 10,
        "processes": 2,
        "concurrency": 16,
        "settle": 0.2,
        "deadline": 20.0,
        "stop_grace": 15.0,
    }
    metrics = [
        Metric("handshake_us", "server CPU µs / handshake", "{:.0f}"),
        Metric("handshakes_per_cpu_s", "handshakes / server CPU-second", "{:,.0f}"),
        Metric("storm_s", "SIGTERM → all back, s", "{:.1f}"),
        Metric("stop_s", "SIGTERM → old server gone, s", "{:.1f}"),
        Metric("restart_s", "SIGTERM → new one listening, s", "{:.1f}"),
        Metric("peak_upgrades_per_s", "peak upgrades/s", "{:,.0f}"),
        Metric("peak_handshakes_per_s", "peak handshakes/s", "{:,.0f}"),
        Metric("storm_handshake_us", "storm server CPU µs / handshake", "{:.0f}"),
        Metric("http_503", "503s", "{:,.0f}"),
        Metric("refused", "refused connects", "{:,.0f}"),
        Metric("not_back", "not back", "{:,.0f}"),
        Metric("rss_before_mb", "RSS before, MB", "{:.0f}"),
        Metric("rss_after_mb", "RSS after, MB", "{:.0f}"),
    ]

    def measure(
        self, unit: Unit, server: Server, sizes: dict[str, Any], ctx: Context
    ) -> dict[str, Any]:
        n = sizes["clients"]
        swarm = Swarm(sizes["processes"], ctx.tmp)
        try:
            cpu0 = cpu_of(server.pids())
            t0 = time.monotonic()
            answers = swarm.open(
                server.url,
                server.dialect,
                n,
                "storm",
                channels_total=sizes["channels"],
                token=True,
                jwt_secret=JWT_SECRET,
                concurrency=sizes["concurrency"],
                timeout=300,
            )
            cpu = cpu_of(server.pids()) - cpu0
            opened = sum(a["opened"] for a in answers)
            if opened < n:
                samples = [s for a in answers for s in a["error_samples"]]
                raise RuntimeError(f"only {opened} of {n} clients connected: {samples[:3]}")
            connect_s = max(a["last_ready"] for a in answers) - t0
            time.sleep(sizes["settle"])
            rss_before = rss_of(server.pids())
            storm = self.storm(swarm, server, sizes)
            time.sleep(sizes["settle"])
            rss_after = rss_of(server.pids())
        finally:
            swarm.close()
        return {
            "clients": n,
            "connect_s": connect_s,
            "handshake_us": cpu / n * 1e6,
            "handshakes_per_cpu_s": n / cpu if cpu else None,
            "rss_before_mb": rss_before / 1024,
            "rss_after_mb": rss_after / 1024,
            **storm,
        }

    def storm(self, swarm: Swarm, server: Server, sizes: dict[str, Any]) -> dict[str, Any]:
        n = sizes["clients"]
        swarm.all({"op": "storm", "seconds": sizes["deadline"]}, 30)
        client0 = cpu_of(swarm.pids())
        t0 = time.monotonic()
        killed = server.stop_for_restart(grace=sizes["stop_grace"])
        stopped = time.monotonic()
        server.start_again()
        listening = time.monotonic()
        cpu0 = cpu_of(server.pids())
        deadline = t0 + sizes["deadline"] + 5
        while True:
            stats = swarm.all({"op": "storm_stats"}, 60)
            states: dict[str, int] = {}
            for a in stats:
                for state, count in a["states"].items():
                    states[state] = states.get(state, 0) + count
            back = states.get("ready", 0)
            pending = sum(states.get(s, 0) for s in ("waiting", *HANDSHAKING))
            if back >= n or not pending or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        cpu = cpu_of(server.pids()) - cpu0
        client_share = (cpu_of(swarm.pids()) - client0) / (time.monotonic() - t0)
        ready = [t for a in stats for t in unpack(a["ready_times"])]
        upgrades = [t for a in stats for t in unpack(a["upgrade_times"])]

        def total(field: str, key: str) -> int:
            return sum(a[field].get(key, 0) for a in stats)

        return {
            "storm_s": (max(ready) - t0) if back >= n and ready else None,
            "stop_s": stopped - t0,
            "stop_killed": killed,
            "restart_s": listening - t0,
            "back": back,
            "not_back": n - back,
            "states": states,
            "restart_notices": sum(a["restart_notices"] for a in stats),
            "peak_handshakes_per_s": peak_rate(ready),
            "peak_upgrades_per_s": peak_rate(upgrades),
            "storm_handshake_us": cpu / len(ready) * 1e6 if ready else None,
            "storm_client_cpu_share": client_share,
            "http_503": total("statuses", "503"),
            "refused": total("errors", "refused"),
            "timeouts": total("errors", "timeout"),
            "closes": {k: sum(a["closes"].get(k, 0) for a in stats) for k in ("4200", "1006")},
            "max_attempt": max(a["max_attempt"] for a in stats),
            "errors": [s for a in stats for s in a["error_samples"]][:5],
        }

    def check(self, result: dict[str, Any]) -> str | None:
        if result["not_back"]:
            return f"{result['not_back']} of {result['clients']} clients did not come back"
        return None

    def brief(self, r: dict[str, Any]) -> str:
        storm = f"{r['storm_s']:.1f} s" if r["storm_s"] is not None else "incomplete"
        if r["stop_killed"]:
            storm += f", old server killed after {r['stop_s']:.0f} s"
        return (
            f"{r['handshake_us']:.0f} us/handshake, storm {storm} "
            f"(listening after {r['restart_s']:.1f} s), peak {r['peak_upgrades_per_s']:,.0f} "
            f"upgrades/s, {r['peak_handshakes_per_s']:,.0f} handshakes/s, "
            f"503s {r['http_503']}, refused {r['refused']}, "
            f"RSS {r['rss_before_mb']:.0f}→{r['rss_after_mb']:.0f} MB"
        )

    def sizes_line(self, sizes: dict[str, Any]) -> str:
        return (
            f"{sizes['clients']:,} clients (JWT in an `auth` message, 1{DASH}3 of "
            f"{sizes['channels']} channels each) over {sizes['processes']} client processes; "
            f"handshake cost from the first connect at {sizes['concurrency']} in flight; then "
            f"SIGTERM, restart on the same port, SDK full-jitter reconnects "
            f"(deadline {sizes['deadline']:g} s)."
        )

    def targets(self, summary: dict[str, Any], sizes: dict[str, Any], ctx: Context) -> list[dict]:
        not_back = median_of(summary, "fazt", "not_back")
        rss_before = median_of(summary, "fazt", "rss_before_mb")
        rss_after = median_of(summary, "fazt", "rss_after_mb")
        return [
            ratio_target(
                "handshake cost (connect+auth+subscribe) ≤ websockets'",
                median_of(summary, "fazt", "handshake_us"),
                median_of(summary, "websockets", "handshake_us"),
                1.0,
            ),
            target(
                "the whole storm absorbed, no client giving up",
                not_back,
                0.0,
                f"{not_back:.0f} not back" if not_back is not None else "",
            ),
            ratio_target(
                f"memory back to its level before the restart (RSS within {RSS_SLACK:.2f}{TIMES})",
                rss_after,
                rss_before,
                RSS_SLACK,
            ),
        ]

    def chart(self, summary: dict, runs: dict, units: list[Unit], path: Path) -> bool:
        names = [u.name for u in units]
        bar_chart(
            path,
            f"Reconnect storm: medians of the same run, bars show min{DASH}max",
            summary,
            names,
            [
                {"key": "handshake_us", "title": "server CPU µs per handshake"},
                {"key": "storm_s", "title": "SIGTERM → every client back, s"},
                {"key": "peak_handshakes_per_s", "title": "peak handshakes/s"},
            ],
        )
        return True
