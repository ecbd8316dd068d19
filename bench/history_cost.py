"""What channel history costs: publish and fan-out with history on and off, and recovery time.

Self-contained and runnable alone (``python bench/history_cost.py``, ``--smoke``
for a quick check): it starts its own ``redis-server`` and ``fazt serve``
processes (through ``cluster_fanout.Processes``) and stops them by PID. One
app, one channel ``room``, with and without a ``history`` rule, on the memory
store and on Redis. Three measurements, each the median of ``repeats`` runs:

* **fan-out**: 1,000 subscribers (two client processes), one client
  publishing a burst back to back, ``bursts`` times; server CPU per delivery
  is the kernel's user+system CPU over a burst divided by its deliveries (the
  median burst). History is per publication, not per delivery, so history in
  memory should add at most 10 % here (the target);
* **publish**: the same publisher alone on the channel (its own messages are
  not echoed, so nothing is delivered): kernel CPU per publication, plus Redis'
  own CPU on Redis;
* **recovery**: a client that missed 100 messages subscribes again with
  ``since``: the time from sending that subscribe to the 100th recovered
  message, over real sockets.

The machine's other load skews every number here: run it on a quiet machine.
Prints a markdown table and writes JSON (``--out``, default
``docs/bench/history.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cluster_fanout as fanout  # a sibling script (bench/ is not a package)

ROOT = Path(__file__).resolve().parent.parent

FULL = {
    "subscribers": 1000,
    "burst": 200,
    "bursts": 5,
    "publishes": 3000,
    "missed": 100,
    "recoveries": 20,
}
SMOKE = {
    "subscribers": 20,
    "burst": 10,
    "bursts": 1,
    "publishes": 100,
    "missed": 100,
    "recoveries": 3,
}
REPEATS = {"full": 3, "smoke": 1}

HISTORY = {"size": 1000, "ttlSeconds": 600}


def app_json(history: bool) -> dict[str, Any]:
    rule: dict[str, Any] = {"publish": True}
    if history:
        rule["history"] = HISTORY
    return {"uuid": "app_benchHistory01", "realtime": {"channels": {"room": rule}}}


def ws_url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/_app/bench/_ws"


async def _connect(url: str) -> Any:
    from websockets.asyncio.client import connect

    ws = await connect(url, ping_interval=None, compression=None, max_queue=None)
    await ws.recv()  # connected
    return ws


async def _subscribe(ws: Any, since: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "subscribe", "channel": "room"}
    if since is not None:
        message["since"] = since
    await ws.send(json.dumps(message))
    while True:
        reply: dict[str, Any] = json.loads(await ws.recv())
        if reply["type"] == "subscribed":
            return reply


async def publish_cost(port: int, count: int, pids: list[int]) -> float:
    """Kernel (and Redis) CPU µs per publication, with nobody to deliver to."""
    ws = await _connect(ws_url(port))
    try:
        await _subscribe(ws)
        before = sum(fanout.cpu_seconds(pid) for pid in pids)
        for i in range(count):
            await ws.send(json.dumps({"type": "message", "channel": "room", "data": {"i": i}}))
        # A ping is answered after every publish before it: then all were handled.
        await ws.send('{"type":"ping"}')
        while json.loads(await ws.recv())["type"] != "pong":
            pass
        return (sum(fanout.cpu_seconds(pid) for pid in pids) - before) / count * 1e6
    finally:
        await ws.close()


async def recovery_time(port: int, missed: int) -> float:
    """ms from a recovering subscribe to the last of ``missed`` recovered messages."""
    away = await _connect(ws_url(port))
    position = await _subscribe(away)
    await away.close()
    writer = await _connect(ws_url(port))
    try:
        await _subscribe(writer)
        for i in range(missed):
            await writer.send(json.dumps({"type": "message", "channel": "room", "data": {"i": i}}))
        await writer.send('{"type":"ping"}')
        while json.loads(await writer.recv())["type"] != "pong":
            pass
    finally:
        await writer.close()
    back = await _connect(ws_url(port))
    try:
        since = {"offset": position["offset"], "epoch": position["epoch"]}
        started = time.perf_counter()
        reply = await _subscribe(back, since)
        got = 0
        while got < missed:
            if json.loads(await back.recv())["type"] == "message":
                got += 1
        elapsed = (time.perf_counter() - started) * 1000
        if reply.get("recovered") is not True:
            raise RuntimeError(f"recovery failed: {reply}")
        return elapsed
    finally:
        await back.close()


def fan_out_cost(port: int, proc: subprocess.Popen[bytes], sizes: dict[str, Any]) -> float:
    """Kernel CPU µs per delivery for bursts to ``subscribers`` (the median burst)."""
    subs = fanout.Subscribers([ws_url(port)] * sizes["subscribers"])
    costs: list[float] = []
    try:
        burst = sizes["burst"]
        for _ in range(sizes["bursts"]):
            subs.arm(burst, 120.0)
            before = fanout.cpu_seconds(proc.pid)
            asyncio.run(fanout.publish(ws_url(port), burst, None))
            result = subs.results(120.0)
            cpu = fanout.cpu_seconds(proc.pid) - before
            deliveries = len(result["latencies"])
            if not result["ok"] or deliveries != burst * sizes["subscribers"]:
                raise RuntimeError(f"incomplete burst: {deliveries}, {result['unexpected']}")
            costs.append(cpu / deliveries * 1e6)
        return statistics.median(costs)
    finally:
        subs.close()


def run_setup(
    work: Path, name: str, history: bool, redis: bool, sizes: dict[str, Any]
) -> dict[str, Any]:
    procs = fanout.Processes(work / name)
    (work / name).mkdir(parents=True, exist_ok=True)
    fanout.APP_JSON = app_json(history)
    try:
        redis_url = procs.redis() if redis else None
        port, kernel = procs.fazt(name, redis_url)
        pids = [kernel.pid] + ([procs.procs[0].pid] if redis else [])
        row: dict[str, Any] = {
            "fan_out_us_per_delivery": fan_out_cost(port, kernel, sizes),
            "publish_us": asyncio.run(publish_cost(port, sizes["publishes"], [kernel.pid])),
            "publish_us_with_redis": (
                asyncio.run(publish_cost(port, sizes["publishes"], pids)) if redis else None
            ),
        }
        if history:
            times = [
                asyncio.run(recovery_time(port, sizes["missed"]))
                for _ in range(sizes["recoveries"])
            ]
            row["recovery_ms_p50"] = statistics.median(times)
            row["recovery_ms_max"] = max(times)
        return row
    finally:
        procs.stop_all()


SETUPS = [
    ("memory, history off", False, False),
    ("memory, history on", True, False),
    ("Redis, history off", False, True),
    ("Redis, history on", True, True),
]


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = {key for run in runs for key, value in run.items() if value is not None}
    return {
        key: statistics.median(run[key] for run in runs if run.get(key) is not None) for key in keys
    }


def fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(results: dict[str, dict[str, Any]], sizes: dict[str, Any]) -> str:
    lines = [
        f"{sizes['subscribers']} subscribers, {sizes['bursts']} bursts of {sizes['burst']}; "
        f"{sizes['publishes']} publishes alone; recovery of {sizes['missed']} missed messages",
        "",
        "| set-up | fan-out: kernel CPU µs/delivery | publish: kernel CPU µs "
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "history.json")
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "full"
    sizes = dict(SMOKE if args.smoke else FULL)
    repeats = args.repeats or REPEATS[mode]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in SETUPS}
    with tempfile.TemporaryDirectory(prefix="fazt-history-bench-") as tmp:
        for repeat in range(repeats):
            for name, history, redis in SETUPS:
                print(f"[{repeat + 1}/{repeats}] {name} ...", flush=True)
                folder = f"r{repeat}-{name.replace(',', '').replace(' ', '-')}"
                runs[name].append(run_setup(Path(tmp), folder, history, redis, sizes))
    results = {name: median_row(rows) for name, rows in runs.items()}
    table = markdown(results, sizes)
    print(table)
    if not args.smoke:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "sizes": sizes,
            "repeats": repeats,
            "machine": platform.platform(),
            "python": platform.python_version(),
            "results": results,
            "runs": runs,
        }
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
