"""What metrics cost the fan-out: ``fazt serve`` with the admin listener against without it.

Same run, same machine, alternating: each repeat starts ``fazt serve`` twice,
once with ``--admin-port`` (metrics counted, and ``/metrics`` scraped every
second by a thread of this script, as Prometheus would) and once without (no
listener: every counting call returns at once). The order flips every repeat.
Each run is the bench's ``burst`` scenario (``scenarios/fanout.py``): 1,000 subscribers on one
channel, publishers sending back to back, the load client on the other core.
The figure compared is the server's CPU time per delivery.

First, in this process and without sockets, the same A/B on the hub alone:
``Hub.publish`` to 1,000 sessions whose transports take frames and do nothing,
counting on and off, alternating 20 rounds. It is what counting adds to the
fan-out, with the network, the kernel and the other processes out of the
picture, so it is far less noisy than the end-to-end figure on a shared
machine.

    .venv/bin/python bench/metrics_cost.py              # 6 repeats of each
    .venv/bin/python bench/metrics_cost.py --repeats 2 --subscribers 200
    .venv/bin/python bench/metrics_cost.py --smoke      # checks that it runs (CI)

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
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from procs import free_port, raise_fd_limit, wait_for_quiet
from scenarios.base import Context
from scenarios.fanout import Burst, client_job, run_client
from servers import BY_NAME, Options, running

BURST = Burst()


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


def one_run(metrics: bool, scrape: bool, sizes: dict[str, Any], ctx: Context) -> dict[str, Any]:
    admin_port = free_port()
    options = Options(admin_port=admin_port if metrics else None)
    with running(BY_NAME["fazt"], ctx.tmp, options) as server:
        scraper = scraping(admin_port) if metrics and scrape else contextlib.nullcontext([])
        with scraper as scrapes:
            result = run_client(client_job("burst", server, sizes, ctx), timeout=300)
    problem = BURST.check(result)
    if problem:
        raise RuntimeError(problem)
    result["scrapes"] = len(scrapes)
    return result


class _NullTransport:
    """A transport that takes frames and does nothing: the hub's own work, alone."""

    def send_frame(self, frame: bytes) -> None:
        pass

    def close(self, code: int, reason: str) -> None:
        pass

    def abort(self) -> None:
        pass


def hub_cost(subscribers: int, publishes: int, rounds: int) -> dict[str, list[float]]:
    """CPU µs per delivery of ``Hub.publish`` in this process, counting on and off,
    alternating ``rounds`` times: the hub's own fan-out with no sockets, so what is
    left between the two sides is what counting adds."""
    import asyncio

    from fazt.kernel.app import App
    from fazt.metrics.realtime import REALTIME
    from fazt.realtime import protocol
    from fazt.realtime.backplane.node import memory_backplane
    from fazt.realtime.hub import Hub
    from fazt.realtime.limits import Limits
    from fazt.realtime.session import Session

    async def measure() -> dict[str, list[float]]:
        backplane = memory_backplane()
        hub = Hub(backplane.bus, backplane.history, Limits())
        app = App(slug="bench", uuid="app_benchMetrics", root=Path("/nonexistent"), manifest={})
        state = hub.app_state(app)
        for index in range(subscribers):
            session = Session(
                client_id=f"c{index}",
                app_uuid=app.uuid,
                transport=_NullTransport(),
                now=0.0,
                connected_at_ms=0,
                ping_interval=30.0,
                messages_per_second=100,
            )
            hub.add_session(state, session)
            hub.add_subscriber(state, "bench", session)
        head = protocol.publication_head({"x": "y" * 120}, 0)
        found: dict[str, list[float]] = {"on": [], "off": []}
        for index in range(rounds):
            for enabled in (True, False) if index % 2 == 0 else (False, True):
                REALTIME.enabled = enabled
                started = time.process_time()
                for _ in range(publishes):
                    await hub.publish(state, "bench", head)
                    REALTIME.published(app.uuid, "server")
                spent = time.process_time() - started
                found["on" if enabled else "off"].append(spent / (publishes * subscribers) * 1e6)
        REALTIME.enabled = False
        return found

    return asyncio.run(measure())


def describe(values: list[float], digits: int = 2) -> str:
    median, low, high = statistics.median(values), min(values), max(values)
    return f"median {median:.{digits}f}, min {low:.{digits}f}, max {high:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--json", help="also write the runs to this file")
    parser.add_argument(
        "--hub-only", action="store_true", help="only the in-process hub A/B (no sockets)"
    )
    parser.add_argument(
        "--no-scrape", action="store_true", help="listener on, but nobody scrapes /metrics"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="one repeat, 100 subscribers, 1 s: checks it runs"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats, args.subscribers, args.duration = 1, 100, 1.0
    hub = hub_cost(args.subscribers, publishes=200, rounds=4 if args.smoke else 20)
    print(f"hub, in process, counting on : CPU µs/delivery {describe(hub['on'], 4)}")
    print(f"hub, in process, counting off: CPU µs/delivery {describe(hub['off'], 4)}")
    ratio = statistics.median(hub["on"]) / statistics.median(hub["off"])
    print(f"hub ratio of medians (on / off): {ratio:.3f}", flush=True)
    if args.hub_only:
        return 0
    raise_fd_limit()
    sizes = {**Burst.full, "subscribers": args.subscribers, "duration": args.duration}
    runs: dict[str, list[float]] = {"on": [], "off": []}
    records = []
    with tempfile.TemporaryDirectory(prefix="fazt-metrics-cost-") as folder:
        ctx = Context(
            tmp=Path(folder),
            out=Path(folder),
            smoke=False,
            repeats=args.repeats,
            quiet_wait=0.0 if args.smoke else 3.0,
            profile=None,
            parser="fast",
            wanted_peers={"fazt"},
            environment={},
        )
        for repeat in range(args.repeats):
            order = (True, False) if repeat % 2 == 0 else (False, True)
            for metrics in order:
                wait_for_quiet(ctx.quiet_wait)
                result = one_run(metrics, not args.no_scrape, sizes, ctx)
                side = "on" if metrics else "off"
                runs[side].append(result["server_us_per_delivery"])
                records.append({"repeat": repeat, "metrics": side, **result})
                print(
                    f"#{repeat + 1} metrics {side:>3}: {BURST.brief(result)}"
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
