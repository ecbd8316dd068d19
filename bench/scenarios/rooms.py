"""Rooms: ingress-heavy, small fan-out (many rooms of two, every client publishes).

4,000 clients in 2,000 rooms of two (``room-0`` holds clients 0 and 1, ...),
spread over client processes with whole rooms in one process. Every client
publishes to its room with a client publish (fazt: the app rule
``"room-*": {"publish": true}``); the server relays it to the other member (no
peer echoes to the sender), so one publish is one delivery.

The load is paced: at each offered rate (the ladder, e.g. 5k, 10k, 20k
publishes/s in total) every client process sends its share on a fixed
schedule, round-robin over its clients; each publish carries its scheduled
send time, so a late sender counts as latency (no coordinated omission).
Measured per rate: server CPU per publish over the window from the first
scheduled send to the last delivery, p50/p99 publish-to-delivery latency,
the share of the client core the clients used. Then a small bisection
between the last rate whose p99 stayed under the bound (50 ms) and the first
that did not finds the highest sustainable rate.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from procs import CpuSampler, percentile
from report import DASH, cell, markdown_table, pyplot, summarize
from servers import Server
from swarm import Swarm, unpack

from scenarios.base import Context, Scenario, Unit


def run_step(
    swarm: Swarm, sampler: CpuSampler, rate: float, duration: float, step: int, sizes: dict
) -> dict[str, Any]:
    """One paced step at ``rate`` publishes/s in total; waits for the drain."""
    start = time.monotonic() + 0.2
    share = rate / len(swarm)
    answers = swarm.all(
        {
            "op": "publish",
            "rate": share,
            "duration": duration,
            "start_at": start,
            "step": step,
            "pad": sizes.get("pad", 80),
            "drain_timeout": sizes["drain_timeout"],
        },
        timeout=duration + sizes["drain_timeout"] + 60,
    )
    sent = sum(a["sent"] for a in answers)
    received = sum(a["received"] for a in answers)
    end = max([a["last_arrival"] for a in answers if a["received"]] or [start + duration])
    end = max(end, start + duration)
    cpu = sampler.between(start, end)
    seconds = end - start
    lat = sorted(x for a in answers for x in unpack(a["latencies"]))
    return {
        "rate": rate,
        "sent": sent,
        "received": received,
        "seconds": seconds,
        "deliveries_per_s": received / seconds if seconds else 0.0,
        "server_us_per_publish": cpu["server"] / received * 1e6 if received else None,
        "server_cpu_share": cpu["server"] / seconds,
        "client_cpu_share": cpu["client"] / seconds,
        "others_cpu_share": cpu["others"] / seconds,
        "p50_ms": percentile(lat, 0.50) * 1e3,
        "p99_ms": percentile(lat, 0.99) * 1e3,
        "max_ms": lat[-1] * 1e3 if lat else None,
        "complete": received >= sent,
        "delivered_pct": 100.0 * received / sent if sent else 0.0,
        "cpu": cpu,
    }


def wait_idle(sampler: CpuSampler, timeout: float, below: float = 0.2) -> float:
    """Wait (up to ``timeout`` s) until the server used < ``below`` of a core over the
    last half second, so that a step never starts on the backlog of the one before."""
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(0.5)
        now = time.monotonic()
        share = sampler.between(now - 0.5, now)["server"] / 0.5
        if share < below or now > deadline:
            return share


class Rooms(Scenario):
    name = "rooms"
    title = "Rooms: many rooms of 2, every client publishes (ingress-heavy)"
    peers = ("fazt", "websockets", "node-ws", "tornado", "socketio")
    full = {
        "clients": 4000,
        "processes": 2,
        "rates": [5000, 10000, 20000],
        "duration": 4.0,
        "warmup_rate": 1000,
        "warmup_duration": 1.0,
        "search_steps": 2,
        "search_granularity": 500,
        "p99_bound_ms": 50.0,
        "drain_timeout": 30.0,
        "pause": 0.5,
    }
    smoke = {
        "clients": 40,
        "processes": 2,
        "rates": [200, 400],
        "duration": 0.5,
        "warmup_rate": 100,
        "warmup_duration": 0.2,
        "search_steps": 0,
        "search_granularity": 50,
        "p99_bound_ms": 50.0,
        "drain_timeout": 5.0,
        "pause": 0.0,
    }
    profiles_itself = True

    def measure(
        self, unit: Unit, server: Server, sizes: dict[str, Any], ctx: Context
    ) -> dict[str, Any]:
        swarm = Swarm(sizes["processes"], ctx.tmp)
        try:
            opened = swarm.open(server.url, server.dialect, sizes["clients"], "rooms")
            n_open = sum(a["opened"] for a in opened)
            if n_open < sizes["clients"]:
                samples = [s for a in opened for s in a["error_samples"]]
                raise RuntimeError(f"only {n_open} of {sizes['clients']} clients: {samples[:3]}")
            groups = {"server": server.pids, "client": swarm.pids}
            with CpuSampler(groups) as sampler, ctx.profiled(unit, server, self.name):
                run_step(swarm, sampler, sizes["warmup_rate"], sizes["warmup_duration"], 0, sizes)
                steps = self.ladder(swarm, sampler, sizes)
            status = swarm.all({"op": "status"}, 30)
        finally:
            swarm.close()
        bound = sizes["p99_bound_ms"]
        passing = [s["rate"] for s in steps if s["complete"] and s["p99_ms"] < bound]
        top = max(sizes["rates"])
        result: dict[str, Any] = {
            "p99_bound_ms": bound,
            "clients": n_open,
            "steps": steps,
            "max_rate_p99_under_bound": max(passing) if passing else 0.0,
            "max_rate_is_floor": bool(passing) and max(passing) >= top,
            "alive": sum(a["alive"] for a in status),
            "errors": [s for a in status for s in a["error_samples"]][:5],
            "others_cpu_share": max(s["others_cpu_share"] for s in steps),
        }
        for s in steps:
            if s["rate"] in sizes["rates"]:
                for key in (
                    "server_us_per_publish",
                    "p50_ms",
                    "p99_ms",
                    "server_cpu_share",
                    "delivered_pct",
                ):
                    result[f"{key}@{s['rate']:g}"] = s[key]
        return result

    def ladder(self, swarm: Swarm, sampler: CpuSampler, sizes: dict) -> list[dict[str, Any]]:
        """The rate ladder, then ``search_steps`` bisections where p99 crosses the bound."""
        bound, steps = sizes["p99_bound_ms"], []

        def step(rate: float) -> bool:
            time.sleep(sizes["pause"])
            wait_idle(sampler, sizes["drain_timeout"])
            s = run_step(swarm, sampler, rate, sizes["duration"], len(steps) + 1, sizes)
            steps.append(s)
            return bool(s["complete"] and s["p99_ms"] < bound)

        low, high = 0.0, None
        for rate in sizes["rates"]:
            if step(rate):
                low = rate
            elif high is None:
                high = rate
        if high is not None and high > low:
            grain = sizes["search_granularity"]
            for _ in range(sizes["search_steps"]):
                mid = round((low + high) / 2 / grain) * grain
                if mid <= low or mid >= high:
                    break
                if step(mid):
                    low = mid
                else:
                    high = mid
        return steps

    def check(self, result: dict[str, Any]) -> str | None:
        # An overloaded server may miss the drain, or drop clients (python-socketio's
        # heartbeat does, once its replies lag): that is a result, shown per step.
        # Only the ladder's lowest rate must deliver everything for the run to count.
        first = result["steps"][0] if result["steps"] else None
        if first is None or not first["complete"]:
            return "the lowest rate did not deliver every publish"
        return None

    def brief(self, r: dict[str, Any]) -> str:
        parts = [
            f"{s['rate']:g}/s: {s['server_us_per_publish'] or 0:.0f} us, "
            f"p99 {s['p99_ms']:.0f} ms" + ("" if s["complete"] else " (incomplete)")
            for s in r["steps"]
        ]
        text = "; ".join(parts) + f"; max {r['max_rate_p99_under_bound']:g}/s"
        if r["alive"] < r["clients"]:
            text += f"; {r['clients'] - r['alive']} clients dropped by the server"
        return text

    def summarize(self, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        summary = summarize(runs, ["max_rate_p99_under_bound"])
        for unit, results in runs.items():
            floor = any(r["max_rate_is_floor"] for r in results if r.get("ok", True))
            summary.setdefault(unit, {})["max_rate_is_floor"] = floor
        return summary

    def table(self, summary: dict[str, Any], units: list[Unit], sizes: dict[str, Any]) -> str:
        rows = []
        for u in units:
            mine = summary.get(u.name)
            if not mine:
                continue
            for rate in sizes["rates"]:
                rows.append(
                    [
                        u.label,
                        f"{rate:,}",
                        cell(mine.get(f"server_us_per_publish@{rate:g}"), "{:.1f}"),
                        cell(mine.get(f"server_cpu_share@{rate:g}"), "{:.2f}"),
                        cell(mine.get(f"p50_ms@{rate:g}"), "{:.1f}"),
                        cell(mine.get(f"p99_ms@{rate:g}"), "{:.1f}"),
                        cell(mine.get(f"delivered_pct@{rate:g}"), "{:.1f}"),
                    ]
                )
        head = ["peer", "publishes/s", "server CPU µs / publish", "server cores"]
        head += ["p50 ms", "p99 ms", "% delivered"]
        bound = sizes["p99_bound_ms"]
        best = [
            [
                u.label,
                cell(summary[u.name].get("max_rate_p99_under_bound"), "{:,.0f}")
                + (" (the ladder's top: a floor)" if summary[u.name]["max_rate_is_floor"] else ""),
            ]
            for u in units
            if u.name in summary
        ]
        return (
            markdown_table(head, rows)
            + "\n\n"
            + markdown_table(["peer", f"highest publishes/s with p99 < {bound:g} ms"], best)
        )

    def sizes_line(self, sizes: dict[str, Any]) -> str:
        return (
            f"{sizes['clients']:,} clients in rooms of 2 over {sizes['processes']} client "
            f"processes; each rate paced for {sizes['duration']:g} s "
            f"({DASH.join(f'{r:,}' for r in sizes['rates'])} publishes/s, then "
            f"{sizes['search_steps']} bisection steps); one publish = one delivery."
        )

    def chart(self, summary: dict, runs: dict, units: list[Unit], path: Path) -> bool:
        plt = pyplot()
        fig, (cost, lat) = plt.subplots(1, 2, figsize=(12, 4.5))
        for u in units:
            points = sorted(
                (s["rate"], s["server_us_per_publish"], s["p99_ms"])
                for r in runs.get(u.name, [])
                if r.get("ok", True)
                for s in r["steps"]
                if s["server_us_per_publish"] is not None
            )
            if not points:
                continue
            style = {"color": "#d62728", "linewidth": 2} if u.name == "fazt" else {}
            rates = [p[0] for p in points]
            cost.plot(rates, [p[1] for p in points], "o-", label=u.name, **style)
            lat.plot(rates, [p[2] for p in points], "o-", label=u.name, **style)
        cost.set_title("server CPU µs per publish (= per delivery)", fontsize=10)
        cost.set_xlabel("offered publishes/s")
        lat.set_title("p99 publish→delivery latency, ms (log)", fontsize=10)
        lat.set_xlabel("offered publishes/s")
        lat.set_yscale("log")
        bound = next((r["p99_bound_ms"] for rs in runs.values() for r in rs), 50.0)
        lat.axhline(bound, color="#1f77b4", linestyle="--", linewidth=1, label=f"{bound:g} ms")
        for ax in (cost, lat):
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
        fig.suptitle("Rooms of 2: every run of every peer (same run, alternating)", fontsize=11)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return True
