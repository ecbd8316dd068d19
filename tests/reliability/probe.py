"""The health probe: its own process, so the load generator's work never delays it.

``python -m tests.reliability.probe URL OUT [--interval 0.05]`` sends one
``GET URL`` on a fresh connection every interval until SIGTERM, then writes
JSON to OUT: ``requests``, ``errors`` (a failure or any answer but 200, with
its reason), and for every answered request ``started_at`` (the machine-wide
monotonic clock, seconds), ``latencies_ms`` and ``control_ms`` (-1 when the
control failed).

The control: at the same instant as each health request, the same request goes
to an idle ``python -m http.server`` (a process of its own, serving one small
file). On a quiet machine it answers in a millisecond or two; when it is slow
too, the machine itself did not run processes on time (other work on shared
cores), and that much of a slow health answer at that instant says nothing
about fazt.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import http.client
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from types import FrameType


def probe_once(host: str, port: int, path: str, timeout: float) -> float:
    """Milliseconds for one GET, fresh connection to full body; raises on failure."""
    started = time.monotonic()
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise OSError(f"status {response.status}")
    finally:
        connection.close()
    return (time.monotonic() - started) * 1000


@contextlib.contextmanager
def control_server() -> Iterator[int]:
    """An idle ``http.server`` on a free port serving ``/ok.txt``; yields its port."""
    with tempfile.TemporaryDirectory(prefix="fazt-probe-") as folder:
        Path(folder, "ok.txt").write_text("ok\n", "utf-8")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        process = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    probe_once("127.0.0.1", port, "/ok.txt", 1)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
            yield port
        finally:
            process.kill()
            process.wait(10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("out", type=Path)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    parts = urllib.parse.urlsplit(args.url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path

    stop = False

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    started_at: list[float] = []
    latencies: list[float] = []
    control: list[float] = []
    errors: list[str] = []
    with control_server() as control_port, concurrent.futures.ThreadPoolExecutor(2) as pool:
        next_at = time.monotonic()
        while not stop:
            at = time.monotonic()
            health = pool.submit(probe_once, host, port, path, args.timeout)
            idle = pool.submit(probe_once, "127.0.0.1", control_port, "/ok.txt", args.timeout)
            try:
                idle_ms = round(idle.result(), 2)
            except OSError:
                idle_ms = -1.0  # the control failed: unknown
            try:
                latencies.append(round(health.result(), 2))
                control.append(idle_ms)
                started_at.append(round(at, 3))
            except OSError as error:
                errors.append(f"{time.strftime('%H:%M:%S')} {error!r}")
            # A fixed cadence; after a slow answer, start again from now (no burst).
            next_at = max(next_at + args.interval, time.monotonic())
            time.sleep(max(0.0, next_at - time.monotonic()))
    result = {
        "requests": len(latencies) + len(errors),
        "errors": errors,
        "started_at": started_at,
        "latencies_ms": latencies,
        "control_ms": control,
    }
    args.out.write_text(json.dumps(result), "utf-8")


if __name__ == "__main__":
    main()
