"""Scenario 5: fan-out with subscribers on one node against subscribers spread over two nodes.

Self-contained: starts its own ``redis-server`` (free port, persistence off) and
its own ``fazt serve`` processes, and stops them all by PID. In the same run it
measures three set-ups with the same subscribers and the same publisher:

* ``1 node (memory)``: one kernel, the default in-memory backplane;
* ``1 node (Redis)``: one kernel on Redis (the cost of the backplane alone);
* ``2 nodes (Redis)``: two kernels on one Redis, subscribers split evenly, the
  publisher on node 1, so half the deliveries cross Redis.

Per set-up, two phases:

* **burst**: the publisher sends ``burst`` messages back to back; deliveries/s
  is subscribers x messages over the time from the first send to the last
  delivery, and p50/p99 are the per-delivery latencies (queueing included);
* **paced**: ``rate`` messages/s for ``duration`` s; p50/p99 latency at a load
  the server can sustain.

Latency is measured from the publisher's send (``time.time_ns()`` in the
message) to the subscriber's receive, on one machine. Server CPU per delivery
is the kernels' user+system CPU time over the burst divided by its deliveries.
Subscribers run in two client processes (the websockets client tops out near
150k messages/s per process).

Prints a markdown table and writes ``docs/bench/cluster.json``
(``--out`` to change). ``--smoke`` runs tiny sizes for a quick check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

FULL = {"subscribers": 1000, "burst": 100, "rate": 10, "duration": 5.0, "repeats": 3}
SMOKE = {"subscribers": 20, "burst": 10, "rate": 20, "duration": 0.5, "repeats": 1}

APP_JSON = {
    "uuid": "app_benchCluster01",
    "realtime": {"channels": {"room": {"publish": True}}},
}
LIMITS = {
    "maxConnectionsTotal": 20000,
    "maxConnectionsPerApp": 20000,
    "maxMessagesPerSecond": 100000,
    "maxSubscriptionsPerClient": 20,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Processes:
    """Every process this bench starts, stopped by PID at the end."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: list[subprocess.Popen[bytes]] = []

    def redis(self) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        port = free_port()
        args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        proc = subprocess.Popen(
            [binary, *args, "--dir", str(self.work)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        wait_port(port, proc, "redis-server")
        return f"redis://127.0.0.1:{port}/0"

    def fazt(self, name: str, redis_url: str | None) -> tuple[int, subprocess.Popen[bytes]]:
        apps = self.work / "apps"
        (apps / "bench").mkdir(parents=True, exist_ok=True)
        (apps / "bench" / "app.json").write_text(json.dumps(APP_JSON))
        config: dict[str, Any] = {
            "realtime": {
                "limits": LIMITS,
                "shutdownGraceSeconds": 0.5,
                # Pings are answered, but they are not what is measured.
                "pingIntervalSeconds": 600,
            }
        }
        if redis_url:
            config["redis"] = redis_url
        config_path = self.work / f"{name}.json"
        config_path.write_text(json.dumps(config))
        port = free_port()
        log = (self.work / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [
                PYTHON, "-m", "fazt", "--log-level", "WARNING", "serve", str(apps),
                "--address", "127.0.0.1", "--port", str(port),
                "--config", str(config_path), "--data", str(self.work / f"data-{name}"),
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self.procs.append(proc)
        wait_port(port, proc, f"fazt {name}")
        return port, proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)


# -- client processes ----------------------------------------------------------------
def client_worker(pipe: Connection, urls: list[str]) -> None:
    """Hold one subscriber per URL in ``urls``; answer the parent's commands over ``pipe``."""
    asyncio.run(_client_main(pipe, urls))


async def _client_main(pipe: Connection, urls: list[str]) -> None:
    from websockets.asyncio.client import connect

    loop = asyncio.get_running_loop()
    conns = []
    for url in urls:
        ws = await connect(url, ping_interval=None, compression=None, max_queue=None)
        await ws.recv()  # connected
        await ws.send(json.dumps({"type": "subscribe", "channel": "room"}))
        reply = json.loads(await ws.recv())
        assert reply["type"] == "subscribed", reply
        conns.append(ws)
    pipe.send("ready")
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command[0] == "quit":
            break
        expected, timeout = command[1], command[2]
        latencies: list[int] = []
        lasts: list[int] = [0]
        unexpected: list[str] = []
        pipe.send("armed")
        drains = (_drain(ws, expected, latencies, lasts, unexpected) for ws in conns)
        try:
            await asyncio.wait_for(asyncio.gather(*drains), timeout)
            ok = True
        except asyncio.TimeoutError:
            ok = False
        result = {"ok": ok, "latencies": latencies, "last": max(lasts), "unexpected": unexpected}
        pipe.send(result)
    for ws in conns:
        await ws.close()


async def _drain(
    ws: Any, expected: int, latencies: list[int], lasts: list[int], unexpected: list[str]
) -> None:
    """Read ``expected`` broadcasts; record each latency and the last receive time.

    Other frames (a server ``ping``, which gets its ``pong``) are not counted.
    """
    got, now = 0, 0
    while got < expected:
        text = await ws.recv()
        now = time.time_ns()
        # The clients share the machine with the servers: read the send time
        # without a full JSON parse, the costliest part of receiving.
        at = text.find('"t":') if text.startswith('{"type":"message"') else -1
        if at >= 0:
            end = at + 4
            while text[end].isdigit():
                end += 1
            latencies.append(now - int(text[at + 4 : end]))
            got += 1
            continue
        message = json.loads(text)
        if message.get("type") == "message":
            latencies.append(now - message["data"]["t"])
            got += 1
        elif message.get("type") == "ping":
            await ws.send('{"type":"pong"}')
        else:
            unexpected.append(str(message)[:200])
    lasts.append(now)


class Subscribers:
    def __init__(self, urls: list[str], processes: int = 2) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs = []
        for i in range(processes):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=client_worker, args=(child, urls[i::processes]), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)
        for pipe in self.pipes:
            if not pipe.poll(120) or pipe.recv() != "ready":
                raise RuntimeError("subscribers did not connect")

    def arm(self, expected: int, timeout: float) -> None:
        for pipe in self.pipes:
            pipe.send(("expect", expected, timeout))
        for pipe in self.pipes:
            assert pipe.recv() == "armed"

    def results(self, timeout: float) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": True, "latencies": [], "last": 0, "unexpected": []}
        for pipe in self.pipes:
            if not pipe.poll(timeout + 30):
                raise RuntimeError("subscriber process did not answer")
            part = pipe.recv()
            out["ok"] &= part["ok"]
            out["latencies"].extend(part["latencies"])
            out["last"] = max(out["last"], part["last"])
            out["unexpected"].extend(part["unexpected"])
        return out

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(("quit",))
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


async def publish(url: str, count: int, rate: float | None) -> int:
    """Send ``count`` messages (paced at ``rate``/s, or back to back); returns start ns."""
    from websockets.asyncio.client import connect

    async with connect(url, ping_interval=None, compression=None) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "subscribe", "channel": "room"}))
        await ws.recv()
        start = time.time_ns()
        t0 = time.monotonic()
        for i in range(count):
            if rate:
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            message = {"type": "message", "channel": "room", "data": {"t": time.time_ns(), "i": i}}
            await ws.send(json.dumps(message))
        await asyncio.sleep(0.2)  # let the last frames leave before closing
        return start


def percentile(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


def run_setup(
    label: str, nodes: list[tuple[int, subprocess.Popen[bytes]]], sizes: dict[str, Any]
) -> dict[str, Any]:
    urls = [
        f"ws://127.0.0.1:{nodes[i % len(nodes)][0]}/_app/bench/_ws"
        for i in range(sizes["subscribers"])
    ]
    subs = Subscribers(urls)
    publisher_url = f"ws://127.0.0.1:{nodes[0][0]}/_app/bench/_ws"
    try:
        # Burst.
        burst = sizes["burst"]
        timeout = 60.0
        subs.arm(burst, timeout)
        cpu_before = sum(cpu_seconds(proc.pid) for _, proc in nodes)
        start = asyncio.run(publish(publisher_url, burst, None))
        result = subs.results(timeout)
        cpu = sum(cpu_seconds(proc.pid) for _, proc in nodes) - cpu_before
        deliveries = len(result["latencies"])
        elapsed = (result["last"] - start) / 1e9 if deliveries else float("nan")
        burst_row = {
            "complete": result["ok"] and deliveries == burst * sizes["subscribers"],
            "deliveries": deliveries,
            "deliveries_per_s": deliveries / elapsed if elapsed > 0 else 0.0,
            "p50_ms": percentile(result["latencies"], 0.50),
            "p99_ms": percentile(result["latencies"], 0.99),
            "server_cpu_us_per_delivery": cpu / deliveries * 1e6 if deliveries else None,
            "unexpected_frames": result["unexpected"][:5],
        }
        # Paced.
        count = int(sizes["rate"] * sizes["duration"])
        subs.arm(count, sizes["duration"] + 30)
        asyncio.run(publish(publisher_url, count, sizes["rate"]))
        result = subs.results(sizes["duration"] + 30)
        paced_row = {
            "complete": result["ok"] and len(result["latencies"]) == count * sizes["subscribers"],
            "deliveries": len(result["latencies"]),
            "rate_msgs_per_s": sizes["rate"],
            "p50_ms": percentile(result["latencies"], 0.50),
            "p99_ms": percentile(result["latencies"], 0.99),
            "unexpected_frames": result["unexpected"][:5],
        }
    finally:
        subs.close()
    return {"setup": label, "burst": burst_row, "paced": paced_row}


def median_of(runs: list[dict[str, Any]], phase: str, key: str) -> float:
    values = [run[phase][key] for run in runs if run[phase][key] is not None]
    return statistics.median(values) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "cluster.json")
    args = parser.parse_args(argv)
    sizes = dict(SMOKE if args.smoke else FULL)
    # SIGTERM (a timeout, the harness) unwinds through the finally blocks that
    # stop every process this bench started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    setups = ["1 node (memory)", "1 node (Redis)", "2 nodes (Redis)"]
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in setups}
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        procs = Processes(Path(tmp))
        try:
            redis_url = procs.redis()
            for repeat in range(sizes["repeats"]):
                # Rotate the order so no set-up always runs first.
                for label in setups[repeat % 3 :] + setups[: repeat % 3]:
                    print(f"cluster bench: {label}, repeat {repeat + 1}", file=sys.stderr)
                    count = 2 if label.startswith("2") else 1
                    url = None if "memory" in label else redis_url
                    nodes = [procs.fazt(f"n{repeat}-{label[0]}-{i}-{'r' if url else 'm'}", url)
                             for i in range(count)]  # fmt: skip
                    try:
                        run = run_setup(label, nodes, sizes)
                        runs[label].append(run)
                        for phase in ("burst", "paced"):
                            if not run[phase]["complete"]:
                                failures.append(f"{label} {phase}: missing deliveries")
                    except Exception as exc:
                        failures.append(f"{label}: {exc!r}")
                    finally:
                        for _, proc in nodes:
                            procs.stop(proc)
        finally:
            procs.stop_all()

    lines = [
        f"Fan-out to {sizes['subscribers']:,} subscribers, one publisher on node 1; "
        f"burst of {sizes['burst']} messages, then {sizes['rate']} msg/s for "
        f"{sizes['duration']} s. Medians of {sizes['repeats']} runs; {os.cpu_count()} cores "
        "shared by every kernel, Redis and the clients.",
        "",
        "| set-up | burst deliveries/s | burst p50 ms | burst p99 ms "
        "| server CPU µs/delivery | paced p50 ms | paced p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label in setups:
        if not runs[label]:
            lines.append(f"| {label} | failed | | | | | |")
            continue
        r = runs[label]
        lines.append(
            f"| {label} | {median_of(r, 'burst', 'deliveries_per_s'):,.0f} "
            f"| {median_of(r, 'burst', 'p50_ms'):.1f} | {median_of(r, 'burst', 'p99_ms'):.1f} "
            f"| {median_of(r, 'burst', 'server_cpu_us_per_delivery'):.1f} "
            f"| {median_of(r, 'paced', 'p50_ms'):.1f} | {median_of(r, 'paced', 'p99_ms'):.1f} |"
        )
    table = "\n".join(lines)
    print(table)
    if failures:
        print("\nFailures:\n" + "\n".join(f"- {f}" for f in failures))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "environment": {
                    "python": platform.python_version(),
                    "machine": platform.machine(),
                    "cores": os.cpu_count(),
                },
                "sizes": sizes,
                "runs": runs,
                "table": table,
                "failures": failures,
            },
            indent=1,
        )
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
