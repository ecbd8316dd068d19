"""One big channel: burst, paced, memory, and the JS handler path (http).

Each run is one ``loadclient.py`` process (pinned to the client core) against
a fresh server; the client measures its window itself and reads the server's
CPU from ``/proc`` at the window's edges.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from procs import BENCH, CLIENT_CORE, PYTHON, pin
from report import DASH, TIMES, Metric, bar_chart, median_of, ratio_target, target
from servers import Server

from scenarios.base import Context, Scenario, Unit

ALL_PEERS = ("fazt", "tornado", "websockets", "socketio", "node-ws", "rawsend")


def run_client(job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One ``loadclient.py`` run; its last stdout line is the JSON result."""
    proc = subprocess.run(
        [PYTHON, str(BENCH / "loadclient.py"), json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=pin(CLIENT_CORE),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"load client failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def client_job(
    scenario: str,
    server: Server,
    sizes: dict[str, Any],
    ctx: Context,
    extra_pids: dict[str, list[int]] | None = None,
) -> dict[str, Any]:
    job: dict[str, Any] = {
        "scenario": scenario,
        "url": server.url,
        "dialect": server.dialect,
        "server_pids": server.pids(),
        "extra_pids": extra_pids or {},
        "channel": "bench",
        "frame_bytes": 170,
        "parser": ctx.parser,
        **{k: v for k, v in sizes.items() if k != "repeats"},
    }
    if scenario == "http":
        job.update(
            http_host="127.0.0.1",
            http_port=server.port,
            path=server.publish_path,
            host_header="127.0.0.1",
        )
    return job


class LoadClientScenario(Scenario):
    def measure(
        self, unit: Unit, server: Server, sizes: dict[str, Any], ctx: Context
    ) -> dict[str, Any]:
        return run_client(client_job(self.name, server, sizes, ctx), timeout=300)

    def check(self, result: dict[str, Any]) -> str | None:
        if "complete" in result and not result["complete"]:
            return f"missing deliveries: {result['delivered']} of {result['expected']}"
        return None


class Burst(LoadClientScenario):
    name = "burst"
    title = "Burst fan-out: one big channel"
    peers = ALL_PEERS
    full = {"subscribers": 1000, "publishers": 4, "duration": 3.0, "window": 32, "warmup": 30}
    smoke = {"subscribers": 20, "publishers": 2, "duration": 0.3, "window": 4, "warmup": 3}
    metrics = [
        Metric("server_us_per_delivery", "server CPU µs / delivery"),
        Metric("deliveries_per_s", "deliveries/s", "{:,.0f}"),
        Metric("client_us_per_delivery", "client CPU µs / delivery"),
        Metric("machine_us_per_delivery", "machine CPU µs / delivery"),
    ]

    def measure(
        self, unit: Unit, server: Server, sizes: dict[str, Any], ctx: Context
    ) -> dict[str, Any]:
        result = super().measure(unit, server, sizes, ctx)
        if result.get("server_us_per_delivery") is not None:
            result["machine_us_per_delivery"] = (
                result["server_us_per_delivery"] + result["client_us_per_delivery"]
            )
        return result

    def brief(self, r: dict[str, Any]) -> str:
        return (
            f"{r['deliveries_per_s']:,.0f} deliveries/s, "
            f"server {r['server_us_per_delivery']:.2f} us/delivery, "
            f"client {r['client_us_per_delivery']:.2f} us ({r['client_cpu_share']:.0%} busy), "
            f"others {r['others_cpu_share']:.0%}"
        )

    def sizes_line(self, sizes: dict[str, Any]) -> str:
        return (
            f"{sizes['subscribers']:,} subscribers, {sizes['publishers']} publishers keeping "
            f"{sizes['window']} publishes in flight for {sizes['duration']:g} s."
        )

    def targets(self, summary: dict[str, Any], sizes: dict[str, Any], ctx: Context) -> list[dict]:
        key = "server_us_per_delivery"
        return [
            ratio_target(
                f"server CPU/delivery ≤ 0.6{TIMES} websockets `broadcast()`",
                median_of(summary, "fazt", key),
                median_of(summary, "websockets", key),
                0.6,
            )
        ]

    def chart(self, summary: dict, runs: dict, units: list[Unit], path: Path) -> bool:
        ws = median_of(summary, "websockets", "server_us_per_delivery")
        bar_chart(
            path,
            f"Burst fan-out, one channel: medians of the same run, bars show min{DASH}max",
            summary,
            [u.name for u in units],
            [
                {
                    "key": "server_us_per_delivery",
                    "title": "server CPU µs per delivery (lower is better)",
                    "target": 0.6 * ws if ws else None,
                    "target_label": f"target 0.6{TIMES} websockets",
                },
                {"key": "deliveries_per_s", "title": "deliveries/s"},
            ],
        )
        return True


class Paced(LoadClientScenario):
    name = "paced"
    title = "Paced latency: one big channel"
    peers = ALL_PEERS
    full = {"subscribers": 1000, "publishers": 4, "rate": 20, "duration": 6.0, "warmup": 10}
    smoke = {"subscribers": 20, "publishers": 2, "rate": 20, "duration": 0.3, "warmup": 2}
    metrics = [
        Metric("p50_ms", "p50 ms"),
        Metric("p99_ms", "p99 ms"),
        Metric("server_cpu_share", "server CPU (cores)"),
    ]

    def brief(self, r: dict[str, Any]) -> str:
        return (
            f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
            f"server {r['server_cpu_share']:.0%} busy, client {r['client_cpu_share']:.0%}, "
            f"others {r['others_cpu_share']:.0%}"
        )

    def sizes_line(self, sizes: dict[str, Any]) -> str:
        return (
            f"{sizes['rate']} publishes/s for {sizes['duration']:g} s to "
            f"{sizes['subscribers']:,} subscribers; latency from the scheduled send time."
        )

    def targets(self, summary: dict[str, Any], sizes: dict[str, Any], ctx: Context) -> list[dict]:
        p99 = median_of(summary, "fazt", "p99_ms")
        text = f"p99 ≤ 15 ms at 20 publishes/s {TIMES} 1,000 subscribers"
        return [target(text, p99, 15.0, f"{p99:.2f} ms" if p99 is not None else "")]

    def chart(self, summary: dict, runs: dict, units: list[Unit], path: Path) -> bool:
        bar_chart(
            path,
            "Paced latency, one channel (log scale)",
            summary,
            [u.name for u in units],
            [
                {"key": "p50_ms", "title": "p50 latency ms", "log": True},
                {
                    "key": "p99_ms",
                    "title": "p99 latency ms",
                    "log": True,
                    "target": 15.0,
                    "target_label": "target 15 ms",
                },
            ],
        )
        return True


class Memory(LoadClientScenario):
    name = "memory"
    title = "Memory: idle subscribed connections"
    peers = ("fazt", "tornado", "websockets", "socketio", "node-ws")
    full = {"connections": 5000, "warm_connections": 50, "settle": 1.5}
    smoke = {"connections": 40, "warm_connections": 5, "settle": 0.2}
    metrics = [
        Metric("kb_per_connection", "KB / idle subscribed connection", "{:.1f}"),
        Metric("connect_s", "seconds to open them", "{:.2f}"),
    ]

    def check(self, result: dict[str, Any]) -> str | None:
        if result["alive"] < result["connections"]:
            return f"only {result['alive']} of {result['connections']} connections stayed open"
        return None

    def brief(self, r: dict[str, Any]) -> str:
        return f"{r['kb_per_connection']:.1f} KB/connection"

    def sizes_line(self, sizes: dict[str, Any]) -> str:
        return (
            f"Server RSS before and after {sizes['connections']:,} idle subscribed connections "
            f"(after {sizes['warm_connections']} warm-up ones)."
        )

    def targets(self, summary: dict[str, Any], sizes: dict[str, Any], ctx: Context) -> list[dict]:
        kb = median_of(summary, "fazt", "kb_per_connection")
        text = "≤ 10 KB per idle subscribed connection"
        return [target(text, kb, 10.0, f"{kb:.2f}" if kb is not None else "")]

    def chart(self, summary: dict, runs: dict, units: list[Unit], path: Path) -> bool:
        bar_chart(
            path,
            "Memory per idle subscribed connection",
            summary,
            [u.name for u in units],
            [
                {
                    "key": "kb_per_connection",
                    "title": "KB per connection (RSS delta / connections)",
                    "target": 10.0,
                    "target_label": "target 10 KB",
                }
            ],
        )
        return True


class Http(LoadClientScenario):
    name = "http"
    title = "JS handler path: HTTP POST → broadcast"
    peers = ("fazt", "tornado")
    full = {"subscribers": 10, "concurrency": 16, "duration": 3.0}
    smoke = {"subscribers": 5, "concurrency": 2, "duration": 0.3}
    metrics = [
        Metric("requests_per_s", "POST→broadcast req/s", "{:,.0f}"),
        Metric("server_us_per_request", "server CPU µs / request", "{:,.0f}"),
    ]

    def check(self, result: dict[str, Any]) -> str | None:
        if result["succeeded"] == 0:
            return f"no successful request: {result['bad_statuses']}"
        return None

    def brief(self, r: dict[str, Any]) -> str:
        return f"{r['requests_per_s']:,.0f} requests/s, others {r['others_cpu_share']:.0%}"

    def sizes_line(self, sizes: dict[str, Any]) -> str:
        return (
            f"{sizes['concurrency']} keep-alive POST clients for {sizes['duration']:g} s, "
            f"{sizes['subscribers']} subscribers receiving every broadcast."
        )

    def targets(self, summary: dict[str, Any], sizes: dict[str, Any], ctx: Context) -> list[dict]:
        return [
            ratio_target(
                f"POST → fazt.realtime.broadcast ≥ 0.8{TIMES} a plain Tornado handler "
                "doing the same",
                median_of(summary, "fazt", "requests_per_s"),
                median_of(summary, "tornado", "requests_per_s"),
                0.8,
                at_most=False,
            )
        ]

    def chart(self, summary: dict, runs: dict, units: list[Unit], path: Path) -> bool:
        bar_chart(
            path,
            "JS handler path: POST → broadcast",
            summary,
            [u.name for u in units],
            [
                {"key": "requests_per_s", "title": "requests/s (higher is better)"},
                {"key": "server_us_per_request", "title": "server CPU µs per request"},
            ],
        )
        return True
