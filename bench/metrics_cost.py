"""What metrics cost the fan-out: ``fazt serve`` with the admin listener against without it.

Same run, same machine, alternating: each repeat starts ``fazt serve`` twice,
once with ``--admin-port`` (metrics counted, and ``/metrics`` scraped every
second by a thread of this script, as Prometheus would) and once without (no
listener: every counting call returns at once). The order flips every repeat.
Each run is the harness's ``burst`` scenario: 1,000 subscribers on one
channel, publishers sending back to back, the load client on the other core.
The figure compared is the server's CPU time per delivery.

    .venv/bin/python bench/metrics_cost.py              # 6 repeats of each
    .venv/bin/python bench/metrics_cost.py --repeats 2 --subscribers 200

Prints one line per run, then the median, min and max of each side and the
ratio of the medians. The machine may be shared: the spread is the honest
measure of how far to trust the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness


@contextlib.contextmanager
def scraping(port: int) -> Iterator[list[int]]:
    """GET /metrics every second until the block ends; yields the count of scrapes."""
    done = threading.Event()
    scrapes: list[int] = []

    def run() -> None:
        while not done.wait(1.0):
            url = f"http://127.0.0.1:{port}/metrics"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
                response.read()
                scrapes.append(1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield scrapes
    finally:
        done.set()
        thread.join(5)


def one_run(metrics: bool, sizes: dict[str, Any], tmp: Path) -> dict[str, Any]:
    port = harness.free_port()
    admin_port = harness.free_port()
    extra = ["--admin-port", str(admin_port)] if metrics else []
    server = harness.fazt_start(port, tmp, extra)
    try:
        harness.wait_listening(server, 30)
        with scraping(admin_port) if metrics else contextlib.nullcontext([]) as scrapes:
            result = harness.run_client(harness.job_for("burst", server, sizes), timeout=300)
        if harness.check("burst", result):
            raise RuntimeError(harness.check("burst", result))
        result["scrapes"] = len(scrapes)
        return result
    finally:
        harness.stop(server)


def describe(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f}, min {min(values):.2f}, max {max(values):.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--json", help="also write the runs to this file")
    args = parser.parse_args(argv)
    harness.raise_fd_limit()
    burst = {**harness.FULL["burst"], "subscribers": args.subscribers, "duration": args.duration}
    sizes = {"burst": burst}
    runs: dict[str, list[float]] = {"on": [], "off": []}
    records = []
    with tempfile.TemporaryDirectory(prefix="fazt-metrics-cost-") as folder:
        for repeat in range(args.repeats):
            order = (True, False) if repeat % 2 == 0 else (False, True)
            for metrics in order:
                harness.wait_for_quiet(3.0)
                result = one_run(metrics, sizes, Path(folder))
                side = "on" if metrics else "off"
                runs[side].append(result["server_us_per_delivery"])
                records.append({"repeat": repeat, "metrics": side, **result})
                print(
                    f"#{repeat + 1} metrics {side:>3}: {harness.brief('burst', result)}"
                    + (f", {result['scrapes']} scrapes" if metrics else ""),
                    flush=True,
                )
    on, off = runs["on"], runs["off"]
    print(f"metrics on : server µs/delivery {describe(on)}")
    print(f"metrics off: server µs/delivery {describe(off)}")
    ratio = statistics.median(on) / statistics.median(off)
    print(f"ratio of medians (on / off): {ratio:.3f}")
    pairs = [a / b for a, b in zip(on, off, strict=True)]
    print(f"per-repeat ratios: {', '.join(f'{p:.3f}' for p in pairs)}")
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
