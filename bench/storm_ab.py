"""Same-run A/B of two fazt trees on the storm's handshakes (and the storm itself).

    .venv/bin/python bench/storm_ab.py --old main --peers websockets,node-ws --storm

``--old`` is any git revision (its ``fazt/`` exported to a temp folder and put
first on the server's ``PYTHONPATH``); the new side is this worktree. For each
repeat every unit (old, new, and the ``--peers``) runs in turn, in an order
that rotates between repeats, as a fresh server pinned to core 0 with the
swarm on core 1, exactly as ``bench/run --scenario storm`` starts them.

Each run opens ``--clients`` SDK-like clients (connect, JWT in an ``auth``
message, 1-3 of 100 channels) at 128 handshakes in flight and reports the
server CPU per handshake; with ``--storm`` it then restarts the server as the
storm scenario does (``Storm.storm``) and reports its figures and the server's
RSS before and after. ``--profile UNIT`` writes py-spy profiles of that unit's
first connect to ``--out``. Medians with min-max at the end.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import procs
import servers
from procs import cpu_of, export_tree, profiling, rss_of
from scenarios.storm import Storm
from servers import BY_NAME, JWT_SECRET, running
from swarm import Swarm

#: The storm figures printed per run and summarised.
STORM_KEYS = (
    "storm_s",
    "stop_s",
    "restart_s",
    "peak_upgrades_per_s",
    "peak_handshakes_per_s",
    "storm_handshake_us",
    "http_503",
    "not_back",
)


def one_run(
    unit: str, peer: str, tmp: Path, args: argparse.Namespace, repeat: int
) -> dict[str, Any]:
    with running(BY_NAME[peer], tmp) as server:
        time.sleep(0.5)
        swarm = Swarm(args.processes, tmp)
        try:
            with profiling(server.pid, args.out, f"{unit}-r{repeat}", args.profile == unit):
                cpu0 = cpu_of(server.pids())
                answers = swarm.open(
                    server.url,
                    server.dialect,
                    args.clients,
                    "storm",
                    channels_total=100,
                    token=True,
                    jwt_secret=JWT_SECRET,
                    concurrency=128,
                    timeout=300,
                )
                cpu = cpu_of(server.pids()) - cpu0
            result: dict[str, Any] = {
                "handshake_us": cpu / args.clients * 1e6,
                "opened": sum(a["opened"] for a in answers),
                "load": os.getloadavg()[0],
            }
            if args.storm:
                time.sleep(2)
                result["rss_before_mb"] = rss_of(server.pids()) / 1024
                sizes = {"clients": args.clients, "deadline": 120.0, "stop_grace": 30.0}
                result.update(Storm().storm(swarm, server, sizes))
                time.sleep(2)
                result["rss_after_mb"] = rss_of(server.pids()) / 1024
        finally:
            swarm.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", default="main", help="git revision of the old side")
    parser.add_argument("--peers", default="", help="comma-separated peers to run alongside")
    parser.add_argument("--clients", type=int, default=3000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--storm", action="store_true", help="restart the server after")
    parser.add_argument("--profile", metavar="UNIT", help="py-spy the first connect of UNIT")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "storm-ab")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    procs.raise_fd_limit()
    results: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="storm-ab-") as tmp_name:
        tmp = Path(tmp_name)
        old_tree = export_tree(args.old, tmp)
        units = [("old", "fazt", old_tree), ("new", "fazt", None)]
        units += [(peer, peer, None) for peer in args.peers.split(",") if peer]
        for repeat in range(args.repeats):
            shift = repeat % len(units)
            for unit, peer, tree in units[shift:] + units[:shift]:
                env = {"PYTHONPATH": str(tree)} if tree is not None else None
                servers.spawn = functools.partial(procs.spawn, env=env)  # type: ignore[assignment]
                result = one_run(unit, peer, tmp, args, repeat)
                results.setdefault(unit, []).append(result)
                storm = " ".join(f"{k} {result[k]}" for k in STORM_KEYS if k in result)
                print(
                    f"#{repeat + 1} {unit:10s} {result['handshake_us']:5.0f} us/handshake, "
                    f"{result['opened']}/{args.clients} opened, load {result['load']:.1f} {storm}",
                    flush=True,
                )
    keys = ("handshake_us", *STORM_KEYS, "rss_before_mb", "rss_after_mb")
    for unit, runs in results.items():
        for key in keys:
            values = [r[key] for r in runs if r.get(key) is not None]
            if values:
                print(
                    f"{unit:10s} {key:22s} median {statistics.median(values):9.1f} "
                    f"({min(values):.1f}-{max(values):.1f})"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
