"""What one host call costs a JS handler: the IOLoop↔worker round trip, in process.

The JS engine runs alone here (no HTTP, no kernel): ``--concurrency`` coroutines
on one IOLoop await ``JsEngine.run_handler`` back to back, for two handlers of
one app, in turn:

* ``ping``: ``module.exports = () => ({json: {ok: true}})``;
* ``host call``: an ``async`` handler that awaits one ``fazt.bench.noop()``, a
  host function that returns at once;
* ``posted call``: the same with ``fazt.bench.posted()``, a postable host
  function (settled on the worker, its no-op effect run on the loop with the
  response, as ``fazt.realtime.broadcast`` is); a tree without postable host
  functions skips it. The bench checks that one effect ran per request.

The difference between the two is what a host call adds: the worker hands the
call to the loop, the loop runs it and hands the result back. The process is
pinned to one core (as ``bench/run`` pins servers), so every hand-off is a
switch between threads on that core. Reported per request: CPU time (all
threads), requests/s, and the loop thread's and the workers' share with their
voluntary and involuntary context switches (``/proc/self/task``).

``--old REV`` runs the same measurement on the ``fazt`` package of git revision
REV too, alternating with this tree, for a same-run A/B.

    .venv/bin/python bench/host_call_cost.py [--requests 3000] [--repeats 5] [--old REV]

Prints a markdown table (medians over repeats, min-max in brackets).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from procs import export_tree

HANDLERS = {
    "ping": "module.exports = () => ({ json: { ok: true } });\n",
    "host call": (
        "module.exports = async () => {\n"
        "  await fazt.bench.noop();\n"
        "  return { json: { ok: true } };\n"
        "};\n"
    ),
    # A postable host function (fazt.realtime.broadcast's kind): settled on the
    # worker, its effect run on the loop with the response. Trees without
    # postable host functions skip it.
    "posted call": (
        "module.exports = async () => {\n"
        "  await fazt.bench.posted();\n"
        "  return { json: { ok: true } };\n"
        "};\n"
    ),
}


def thread_times() -> dict[int, tuple[int, int, int, int]]:
    """tid -> (user ticks, system ticks, voluntary, involuntary switches) of this process."""
    out: dict[int, tuple[int, int, int, int]] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text().rpartition(")")[2].split()
            status = Path(f"/proc/self/task/{tid}/status").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        out[int(tid)] = (
            int(stat[11]),
            int(stat[12]),
            int(fields["voluntary_ctxt_switches"]),
            int(fields["nonvoluntary_ctxt_switches"]),
        )
    return out


async def measure(requests: int, concurrency: int) -> dict[str, dict[str, float]]:
    """One pass of each handler (after a warm-up): figures per request."""
    from fazt.contracts.host_calls import HostCallContext
    from fazt.js_bridge.engine import JsEngine
    from fazt.kernel.app import App

    async def noop(context: HostCallContext, args: list[Any]) -> None:
        return None

    functions: dict[str, Any] = {"noop": noop}
    try:
        from fazt.contracts.host_calls import PostableHostFunction, Posted
    except ImportError:
        handlers = [name for name in HANDLERS if name != "posted call"]
    else:
        effects = [0]  # the posted calls' effects run: checked against the requests made

        def effect() -> None:
            effects[0] += 1

        functions["posted"] = PostableHostFunction(noop, lambda c, a: Posted(None, effect))
        handlers = list(HANDLERS)

    folder = Path(tempfile.mkdtemp(prefix="host-call-cost-"))
    (folder / "api").mkdir()
    for name, source in HANDLERS.items():
        (folder / "api" / f"{name.replace(' ', '_')}.js").write_text(source)
    engine = JsEngine(threads=2)
    engine.register_namespace("bench", functions)
    context = HostCallContext(app=App(slug="bench", uuid="app_bench", root=folder))
    request = {"method": "POST", "path": "/api/x", "query": {}, "headers": {}}
    loop_tid = threading.get_native_id()
    ticks = os.sysconf("SC_CLK_TCK")
    results: dict[str, dict[str, float]] = {}
    try:
        for name in handlers:
            handler = folder / "api" / f"{name.replace(' ', '_')}.js"

            async def client(count: int, handler: Path = handler, name: str = name) -> None:
                for _ in range(count):
                    response = await engine.run_handler(
                        context, handler, folder / "api", request, b"{}"
                    )
                    if response.status != 200:
                        raise RuntimeError(f"{name}: {response.status} {response.body!r}")

            await asyncio.gather(*(client(50) for _ in range(concurrency)))  # warm-up
            before, cpu, wall = thread_times(), time.process_time(), time.perf_counter()
            per_client = max(1, requests // concurrency)
            await asyncio.gather(*(client(per_client) for _ in range(concurrency)))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            after, done = thread_times(), per_client * concurrency
            split = {"loop": [0.0, 0, 0], "workers": [0.0, 0, 0]}
            for tid, (user, system, voluntary, involuntary) in after.items():
                u0, s0, v0, i0 = before.get(tid, (0, 0, 0, 0))
                side = split["loop" if tid == loop_tid else "workers"]
                side[0] += (user - u0 + system - s0) / ticks
                side[1] += voluntary - v0
                side[2] += involuntary - i0
            if name == "posted call" and effects[0] != (50 + per_client) * concurrency:
                raise RuntimeError(f"posted call: {effects[0]} effects ran, not one per request")
            results[name] = {
                "cpu_us": cpu / done * 1e6,
                "requests_per_s": done / wall,
                **{f"{side}_cpu_us": split[side][0] / done * 1e6 for side in split},
                **{f"{side}_switches": (split[side][1] + split[side][2]) / done for side in split},
            }
    finally:
        engine.close()
        shutil.rmtree(folder, ignore_errors=True)
    return results


def one_pass(args: argparse.Namespace) -> None:
    """Child mode: pin, measure, print one JSON line."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    print(json.dumps(asyncio.run(measure(args.requests, args.concurrency))))


def run_side(tree: Path | None, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--one-pass",
            *("--requests", str(args.requests), "--concurrency", str(args.concurrency)),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result: dict[str, dict[str, float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def table(label: str, runs: list[dict[str, dict[str, float]]]) -> list[str]:
    def cell(name: str, key: str, fmt: str) -> str:
        values = [run[name][key] for run in runs]
        mid, low, high = statistics.median(values), min(values), max(values)
        return f"{fmt.format(mid)} ({fmt.format(low)}-{fmt.format(high)})"

    return [
        f"| {label} | {name} | {cell(name, 'cpu_us', '{:,.0f}')} | "
        f"{cell(name, 'requests_per_s', '{:,.0f}')} | {cell(name, 'loop_cpu_us', '{:,.0f}')} | "
        f"{cell(name, 'workers_cpu_us', '{:,.0f}')} | {cell(name, 'loop_switches', '{:.1f}')} | "
        f"{cell(name, 'workers_switches', '{:.1f}')} |"
        for name in HANDLERS
        if all(name in run for run in runs)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--old", metavar="REV", help="also measure git revision REV, alternating")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument("--one-pass", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.requests, args.repeats, args.concurrency = 100, 1, 4
    if args.one_pass:
        one_pass(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="host-call-ab-") as scratch:
        sides: dict[str, Path | None] = {"this tree": None}
        if args.old:
            sides = {args.old: export_tree(args.old, Path(scratch)), **sides}
        runs: dict[str, list[dict[str, dict[str, float]]]] = {label: [] for label in sides}
        for repeat in range(args.repeats):
            order = list(sides.items())
            for label, tree in order if repeat % 2 == 0 else reversed(order):
                runs[label].append(run_side(tree, args))
    print(
        f"{args.requests:,} requests per handler on {args.concurrency} coroutines, "
        f"{args.repeats} repeats; medians (min-max). Server CPU is all threads.\n"
    )
    print(
        "| tree | handler | CPU µs/request | requests/s | loop thread µs | workers µs "
        "| loop switches/request | workers' switches/request |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, side_runs in runs.items():
        print("\n".join(table(label, side_runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
