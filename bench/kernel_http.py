"""Kernel-only HTTP benchmark: a JS handler against a plain Tornado handler.

The requests/s of an ``api/*.js`` handler returning a small JSON object,
compared with a plain ``tornado.web.RequestHandler`` writing the same JSON
(target: at least half of it), measured in the same run on the same machine.
A kernel static file is measured too, and so is the kernel's ``/api`` glue
alone (routing, handler lookup, token check, the ``req`` dict) with an engine
that answers at once, to tell the kernel's cost from the QuickJS bridge's.

One server process runs the kernel (one app, ``plugins: []``) and the plain
Tornado app on two ports in one IOLoop, like ``fazt serve`` with one worker.
This process drives load with keep-alive HTTP/1.1 connections on a raw asyncio
client (cheap per request, so the server is the bottleneck), each target in
turn, ``--repeats`` times, and keeps each target's median.

    .venv/bin/python bench/kernel_http.py [--duration 5] [--connections 32] [--smoke]

Prints a markdown table; writes ``docs/bench/kernel_http.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from procs import proc_cpu_seconds

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "bench" / "kernel_http.json"
HANDLER_JS = "module.exports = () => ({json: {ok: true, n: 1}});\n"


# -- server side (runs in a child process) ------------------------------------------


def raise_priority() -> None:
    """Ask for a little more CPU priority (root only); neighbours skew results less."""
    with contextlib.suppress(OSError):
        os.nice(-5)


def wait_for_quiet(max_wait: float) -> float:
    """Wait (up to ``max_wait`` s) for the 1-minute load average to drop below the core
    count; returns the load average when the run starts."""
    cores = os.cpu_count() or 1
    deadline = time.monotonic() + max_wait
    while os.getloadavg()[0] >= cores and time.monotonic() < deadline:
        time.sleep(5)
    return os.getloadavg()[0]


def serve(apps_dir: Path, data_dir: Path, threads: int) -> None:
    """Run the kernel and a plain Tornado app; print their ports as one JSON line."""
    raise_priority()
    import tornado.httpserver
    import tornado.netutil
    import tornado.web

    sys.path.insert(0, str(REPO))
    from fazt.kernel.kernel import Kernel

    class PlainHandler(tornado.web.RequestHandler):
        def get(self) -> None:
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.write(json.dumps({"ok": True, "n": 1}))

    class InstantResponse:
        status = 200
        headers = {"Content-Type": "application/json; charset=utf-8"}
        body = json.dumps({"ok": True, "n": 1}).encode()

    class InstantEngine:
        """Answers at once without JS: isolates the kernel's own /api glue."""

        def register_namespace(self, name: str, functions: Any) -> None:
            pass

        async def run_handler(self, *args: Any) -> InstantResponse:
            return InstantResponse()

        def close(self) -> None:
            pass

    async def main() -> None:
        glue = Kernel(
            apps_dir, data_dir=data_dir, config={"plugins": []}, js_engine=InstantEngine()
        )
        glue_port = await glue.start(port=0)
        kernel = Kernel(
            apps_dir,
            data_dir=data_dir,
            config={"plugins": [], "sandbox": {"threads": threads}},
        )
        kernel_port = await kernel.start(port=0)
        plain = tornado.httpserver.HTTPServer(tornado.web.Application([(r"/ping", PlainHandler)]))
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        plain.add_sockets(sockets)
        plain_port = sockets[0].getsockname()[1]
        ports = {"kernel": kernel_port, "plain": plain_port, "glue": glue_port}
        print(json.dumps(ports), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# -- load side --------------------------------------------------------------------


async def _connection(port: int, request: bytes, stop_at: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    try:
        while time.perf_counter() < stop_at:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if status != b"200":
                raise RuntimeError(f"unexpected status {status!r} from port {port}")
            done += 1
    finally:
        counts.append(done)
        writer.close()


async def measure(
    port: int, path: str, connections: int, duration: float, server_pid: int
) -> tuple[float, float]:
    """(requests/s, server CPU microseconds per request) over ``duration``.

    CPU per request is the robust number on a shared or small machine: it does
    not depend on how much CPU the load generator and neighbours take.
    """
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    counts: list[int] = []
    # Warm up (compiles the handler, fills connection pools), then measure.
    warm = time.perf_counter() + min(0.5, duration / 4)
    await asyncio.gather(*(_connection(port, request, warm, []) for _ in range(connections)))
    cpu_before = proc_cpu_seconds(server_pid)
    started = time.perf_counter()
    stop_at = started + duration
    await asyncio.gather(*(_connection(port, request, stop_at, counts) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    cpu = proc_cpu_seconds(server_pid) - cpu_before
    total = max(sum(counts), 1)
    return total / elapsed, cpu / total * 1e6


def run(args: argparse.Namespace) -> dict[str, Any]:
    raise_priority()
    load_at_start = wait_for_quiet(args.quiet_wait)
    with tempfile.TemporaryDirectory(prefix="fazt-bench-") as scratch:
        apps = Path(scratch) / "apps"
        (apps / "bench" / "api").mkdir(parents=True)
        (apps / "bench" / "app.json").write_text("{}")
        (apps / "bench" / "api" / "ping.js").write_text(HANDLER_JS)
        (apps / "bench" / "ping.json").write_text(json.dumps({"ok": True, "n": 1}))
        server = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                str(apps),
                str(Path(scratch) / "data"),
                "--threads",
                str(args.threads),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            ports = json.loads(server.stdout.readline())
            targets = {
                "plain Tornado handler": (ports["plain"], "/ping"),
                "fazt JS handler (api/ping.js)": (ports["kernel"], "/_app/bench/api/ping"),
                "fazt /api glue, no JS (instant engine)": (ports["glue"], "/_app/bench/api/ping"),
                "fazt static file": (ports["kernel"], "/_app/bench/ping.json"),
            }
            samples: dict[str, list[float]] = {name: [] for name in targets}
            cpu_samples: dict[str, list[float]] = {name: [] for name in targets}
            for _ in range(args.repeats):
                for name, (port, path) in targets.items():
                    rate, cpu_us = asyncio.run(
                        measure(port, path, args.connections, args.duration, server.pid)
                    )
                    samples[name].append(rate)
                    cpu_samples[name].append(cpu_us)
        finally:
            server.terminate()
            server.wait(10)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    cpu = {name: statistics.median(values) for name, values in cpu_samples.items()}
    plain_cpu = cpu["plain Tornado handler"]
    plain = medians["plain Tornado handler"]
    return {
        "benchmark": "kernel_http",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": round(load_at_start, 2),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "settings": {
            "duration_seconds": args.duration,
            "connections": args.connections,
            "repeats": args.repeats,
            "js_threads": args.threads,
        },
        "requests_per_second": {name: round(rate, 1) for name, rate in medians.items()},
        "server_cpu_us_per_request": {name: round(value, 1) for name, value in cpu.items()},
        "samples": {name: [round(v, 1) for v in values] for name, values in samples.items()},
        # Requests/s one fully busy core would give: 1e6 / CPU us per request.
        "cpu_ratio_js_to_plain": round(plain_cpu / cpu["fazt JS handler (api/ping.js)"], 3),
        "ratio_js_to_plain": round(medians["fazt JS handler (api/ping.js)"] / plain, 3),
        "ratio_glue_to_plain": round(medians["fazt /api glue, no JS (instant engine)"] / plain, 3),
        "ratio_static_to_plain": round(medians["fazt static file"] / plain, 3),
        "target": "JS handler >= 50% of the plain handler",
    }


def markdown(result: dict[str, Any]) -> str:
    plain = result["requests_per_second"]["plain Tornado handler"]
    plain_cpu = result["server_cpu_us_per_request"]["plain Tornado handler"]
    lines = [
        "| target | requests/s | vs plain | server CPU µs/request | vs plain (CPU) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, rate in result["requests_per_second"].items():
        cpu = result["server_cpu_us_per_request"][name]
        lines.append(
            f"| {name} | {rate:,.0f} | {rate / plain:.0%} | {cpu:,.0f} | {plain_cpu / cpu:.0%} |"
        )
    settings = result["settings"]
    lines.append("")
    lines.append(
        f"{settings['connections']} keep-alive connections, {settings['duration_seconds']} s per "
        f"target, median of {settings['repeats']}; {result['machine']['cpus']} CPUs, "
        f"{settings['js_threads']} JS threads, "
        f"load average {result['machine']['load_average_at_end']}."
        f" JS/plain = {result['ratio_js_to_plain']:.0%} by throughput, "
        f"{result['cpu_ratio_js_to_plain']:.0%} by server CPU (target >= 50%)."
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per target")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="JS engine worker threads")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="wait up to this many seconds for the load average to drop below the core count",
    )
    parser.add_argument("--smoke", action="store_true", help="1 s, 1 repeat, no JSON written")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--serve", nargs=2, metavar=("APPS", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]), args.threads)
        return 0
    if args.smoke:
        args.duration, args.repeats, args.quiet_wait = 1.0, 1, 0.0
    result = run(args)
    print(markdown(result))
    if not args.smoke:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        shown = args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out
        print(f"\nwritten to {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
