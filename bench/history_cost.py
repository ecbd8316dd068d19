"""What channel history costs: fan-out and publish with history on and off, and recovery time.

Runnable alone (``python bench/history_cost.py``; ``--smoke`` for a quick
check). It starts its own ``fazt serve`` (``servers``, pinned to the server
core) and ``redis-server`` (``scenarios.cluster.redis_server``), and stops
them by PID. The bench app's channel ``bench`` is measured without a rule
change ("history off") and with ``"history": {"size": 1000, "ttlSeconds":
600}`` ("history on"), on the memory store and on Redis. Three measurements,
each set-up started fresh, the median of ``repeats`` runs, set-ups
interleaved so that a change of the machine's load hits them alike:

* **fan-out**: ``loadclient.py``'s burst (the benchmark's own: 1,000
  subscribers, 4 publishers keeping 32 publishes in flight for 3 s): server
  CPU per delivery. History is per publication, not per delivery, so history
  in memory should add at most 10 % here (the target);
* **publish**: one client publishing alone on the channel (its own messages
  are not echoed: nothing is delivered), one publish at a time: the kernel's
  CPU per publication, and with Redis the kernel's plus Redis';
* **recovery**: a client that missed 100 messages subscribes again with
  ``since``: the time from sending that subscribe to the 100th recovered
  message, over real sockets.

Other load on the machine skews every number here (``others_cpu_share`` in the
JSON says how much there was): run it on a quiet machine. Prints a markdown
table and writes JSON (``--out``, default ``docs/bench/history.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Sibling modules of bench/ (run as a script: bench/ is on the path, as for bench/run).
import servers
from procs import ROOT, cpu_of, environment, free_port, wait_port
from scenarios.cluster import redis_server
from scenarios.fanout import run_client

FULL = {
    "burst": {"subscribers": 1000, "publishers": 4, "duration": 3.0, "window": 32, "warmup": 30},
    "publishes": 3000,
    "missed": 100,
    "recoveries": 20,
    "repeats": 3,
}
SMOKE = {
    "burst": {"subscribers": 20, "publishers": 2, "duration": 0.3, "window": 4, "warmup": 3},
    "publishes": 100,
    "missed": 100,
    "recoveries": 3,
    "repeats": 1,
}

HISTORY = {"size": 1000, "ttlSeconds": 600}
SETUPS = [
    ("memory, history off", False, False),
    ("memory, history on", True, False),
    ("Redis, history off", False, True),
    ("Redis, history on", True, True),
]


@contextlib.contextmanager
def bench_app(history: bool) -> Iterator[None]:
    """The bench app's ``bench`` channel with (or without) a history rule, for the
    servers started meanwhile."""
    original = servers.FAZT_APP_JSON
    manifest = copy.deepcopy(original)
    if history:
        manifest["realtime"]["channels"]["bench"]["history"] = HISTORY
    servers.FAZT_APP_JSON = manifest
    try:
        yield
    finally:
        servers.FAZT_APP_JSON = original


@contextlib.contextmanager
def fazt(tmp: Path, history: bool, redis_url: str | None) -> Iterator[servers.Server]:
    with bench_app(history):
        server = servers.fazt_start(free_port(), tmp, servers.Options(redis=redis_url))
    try:
        wait_port(server.port, server.proc, 60, server.log)
        yield server
    finally:
        server.stop_for_restart()


# -- one publisher, and one recovering client -----------------------------------------------
async def _connect(url: str) -> Any:
    from websockets.asyncio.client import connect

    ws = await connect(url, ping_interval=None, compression=None, max_queue=None)
    await ws.recv()  # connected
    return ws


async def _subscribe(ws: Any, since: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "subscribe", "channel": "bench"}
    if since is not None:
        message["since"] = since
    await ws.send(json.dumps(message))
    while True:
        reply: dict[str, Any] = json.loads(await ws.recv())
        if reply["type"] == "subscribed":
            return reply


async def _publish(ws: Any, count: int) -> None:
    """``count`` publishes, then a ping: its pong means the server handled them all."""
    for i in range(count):
        await ws.send(json.dumps({"type": "message", "channel": "bench", "data": {"i": i}}))
    await ws.send('{"type":"ping"}')
    while json.loads(await ws.recv())["type"] != "pong":
        pass


async def publish_cost(url: str, count: int, pids: list[int]) -> float:
    """CPU µs of ``pids`` per publication, with nobody to deliver to."""
    ws = await _connect(url)
    try:
        await _subscribe(ws)
        before = cpu_of(pids)
        await _publish(ws, count)
        return (cpu_of(pids) - before) / count * 1e6
    finally:
        await ws.close()


async def recovery_ms(url: str, missed: int) -> float:
    """ms from a recovering subscribe to the last of ``missed`` recovered messages."""
    away = await _connect(url)
    position = await _subscribe(away)
    await away.close()
    writer = await _connect(url)
    try:
        await _subscribe(writer)
        await _publish(writer, missed)
    finally:
        await writer.close()
    back = await _connect(url)
    try:
        since = {"offset": position["offset"], "epoch": position["epoch"]}
        started = time.perf_counter()
        reply = await _subscribe(back, since)
        got = 0
        while got < missed:
            if json.loads(await back.recv())["type"] == "message":
                got += 1
        elapsed = (time.perf_counter() - started) * 1000
    finally:
        await back.close()
    if reply.get("recovered") is not True:
        raise RuntimeError(f"recovery failed: {reply}")
    return elapsed


# -- one set-up -----------------------------------------------------------------------------------
def run_setup(
    tmp: Path, history: bool, redis: dict[str, Any] | None, sizes: dict[str, Any]
) -> dict[str, Any]:
    with fazt(tmp, history, redis["url"] if redis else None) as server:
        pids = server.pids()
        extra = {"redis": [redis["pid"]]} if redis else {}
        job = {
            "scenario": "burst",
            "url": server.url,
            "dialect": server.dialect,
            "server_pids": pids,
            "extra_pids": extra,
            "channel": "bench",
            "frame_bytes": 170,
            "parser": "fast",
            **sizes["burst"],
        }
        burst = run_client(job, timeout=300)
        if not burst["complete"]:
            raise RuntimeError(f"incomplete burst: {burst['delivered']} of {burst['expected']}")
        row: dict[str, Any] = {
            "fan_out_us_per_delivery": burst["server_us_per_delivery"],
            "others_cpu_share": burst["others_cpu_share"],
            "publish_us": asyncio.run(publish_cost(server.url, sizes["publishes"], pids)),
        }
        if redis:
            both = [*pids, redis["pid"]]
            row["publish_us_with_redis"] = asyncio.run(
                publish_cost(server.url, sizes["publishes"], both)
            )
        if history:
            times = [
                asyncio.run(recovery_ms(server.url, sizes["missed"]))
                for _ in range(sizes["recoveries"])
            ]
            row["recovery_ms_p50"] = statistics.median(times)
            row["recovery_ms_max"] = max(times)
        return row


def median_row(runs: list[dict[str, Any]]) -> dict[str, float]:
    keys = {key for run in runs for key in run}
    return {key: statistics.median(run[key] for run in runs if key in run) for key in keys}


def fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(results: dict[str, dict[str, float]], sizes: dict[str, Any]) -> str:
    burst = sizes["burst"]
    lines = [
        f"fan-out: {burst['subscribers']} subscribers, {burst['publishers']} publishers for "
        f"{burst['duration']} s; publish: {sizes['publishes']} publishes alone; recovery of "
        f"{sizes['missed']} missed messages; medians of {sizes['repeats']} runs",
        "",
        "| set-up | fan-out: server CPU µs/delivery | publish: kernel CPU µs "
        "| publish: kernel + Redis CPU µs | recovery p50 ms | recovery max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in results.items():
        lines.append(
            f"| {name} | {fmt(row.get('fan_out_us_per_delivery'))} | {fmt(row.get('publish_us'))} "
            f"| {fmt(row.get('publish_us_with_redis'))} | {fmt(row.get('recovery_ms_p50'), 1)} "
            f"| {fmt(row.get('recovery_ms_max'), 1)} |"
        )
    off = results["memory, history off"]["fan_out_us_per_delivery"]
    on = results["memory, history on"]["fan_out_us_per_delivery"]
    if off > 0:
        verdict = "met" if on <= off * 1.10 else "NOT met"
        lines += [
            "",
            f"History in memory, fan-out: {on / off:.3f}x the server CPU per delivery without "
            f"history (target at most 1.10x: {verdict}).",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "history.json")
    args = parser.parse_args(argv)
    sizes = copy.deepcopy(SMOKE if args.smoke else FULL)
    if args.repeats:
        sizes["repeats"] = args.repeats
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in SETUPS}
    with tempfile.TemporaryDirectory(prefix="fazt-history-bench-") as tmp:
        work = Path(tmp)
        with redis_server(work) as redis:
            for repeat in range(sizes["repeats"]):
                for name, history, on_redis in SETUPS:
                    print(f"[{repeat + 1}/{sizes['repeats']}] {name} ...", flush=True)
                    row = run_setup(work, history, redis if on_redis else None, sizes)
                    runs[name].append(row)
    results = {name: median_row(rows) for name, rows in runs.items()}
    print(markdown(results, sizes))
    if not args.smoke:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"sizes": sizes, "environment": environment(), "results": results, "runs": runs}
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
