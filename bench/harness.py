"""The benchmark harness: every scenario, every peer in the same run, alternating peers.

``bench/run`` (the one command) installs what is needed and calls this module.
Scenarios live in ``bench/scenarios/`` (one module per family: ``fanout`` for
the one-channel burst, paced, memory and http; ``rooms``, ``connections``,
``storm``, ``cluster``); the servers in ``peers.py``; process, CPU and pinning
helpers in ``procs.py``; the load clients in ``loadclient.py`` (one process)
and ``swarm.py`` (many connections over several processes, paced by
``pacing.py``); tables, charts
and the docs block in ``report.py``.

For each scenario and each repeat every peer runs in turn (the order rotates
between repeats), each as a fresh server pinned to core 0 with its clients on
core 1. Each scenario writes ``NAME.json`` (every run, the summary, the
targets) and ``NAME.png`` to the output folder (``docs/bench/`` by default); a
full run into ``docs/bench/`` then rewrites the results block of
``docs/benchmarks.md`` from every ``NAME.json`` there.

Exit status: 0 when every run completed; 1 when a peer could not start or a
run failed (a crash, a timeout, missing deliveries), so ``--smoke`` in CI
fails only when something is really broken. ``--smoke`` with no scenario named
also runs the side benchmarks (``side_benches.py``) at tiny sizes.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from procs import CLIENT_CORE, ROOT, SERVER_CORE, environment, raise_fd_limit
from report import docs_block, section, update_docs
from scenarios import BY_NAME, SCENARIOS
from scenarios.base import Context, run_scenario
from servers import PEERS
from side_benches import smoke as smoke_side_benches

DOCS = ROOT / "docs" / "bench"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, each peer once")
    parser.add_argument("--repeats", type=int, help="repeats per peer and scenario")
    parser.add_argument(
        "--peers", help="comma-separated subset: " + ",".join(p.name for p in PEERS)
    )
    names = ",".join(s.name for s in SCENARIOS)
    parser.add_argument("--scenario", metavar="NAME", help=f"run one scenario: {names}")
    parser.add_argument("--scenarios", metavar="A,B", help=f"comma-separated subset of {names}")
    parser.add_argument(
        "--profile", metavar="PEER", help="py-spy the PEER server during each scenario's run"
    )
    parser.add_argument(
        "--client-parser",
        choices=["fast", "websockets"],
        default="fast",
        help="how loadclient.py parses server frames (websockets: the library's parser)",
    )
    parser.add_argument(
        "--out", type=Path, help="output folder (default docs/bench, smoke: a temp dir)"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help="seconds to wait for a quiet machine before each run (default 5, smoke 0)",
    )
    parser.add_argument(
        "--set",
        metavar="SCENARIO.KEY=JSON",
        action="append",
        default=[],
        help="override one size, e.g. --set rooms.clients=2000 --set rooms.rates=[5000,10000]",
    )
    args = parser.parse_args(argv)
    # SIGTERM (a CI timeout) unwinds through the finally blocks that stop every
    # server and client process this run started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    wanted = [s for s in (args.scenario, args.scenarios) if s]
    chosen = [n for part in wanted for n in part.split(",") if n] or [s.name for s in SCENARIOS]
    unknown = [n for n in chosen if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)} (known: {names})")
    peers = set(args.peers.split(",")) if args.peers else {p.name for p in PEERS}
    if args.peers and peers - {p.name for p in PEERS}:
        parser.error(f"unknown peers: {', '.join(sorted(peers - {p.name for p in PEERS}))}")
    overrides: dict[str, dict[str, Any]] = {}
    for item in args.set:
        name, _, rest = item.partition(".")
        key, eq, value = rest.partition("=")
        if name not in BY_NAME or not key or not eq:
            parser.error(f"--set {item}: want SCENARIO.KEY=JSON with a known scenario")
        try:
            overrides.setdefault(name, {})[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides.setdefault(name, {})[key] = value
    limit = raise_fd_limit()
    out = args.out or (Path(tempfile.mkdtemp(prefix="bench-smoke-")) if args.smoke else DOCS)
    out.mkdir(parents=True, exist_ok=True)
    env = environment()
    print(
        f"bench: {env['cpu']}, {env['nproc']} cores; servers on core {SERVER_CORE}, "
        f"clients on core {CLIENT_CORE}; open files limit {limit}",
        file=sys.stderr,
    )
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        ctx = Context(
            tmp=Path(tmp),
            out=out,
            smoke=args.smoke,
            repeats=args.repeats,
            quiet_wait=args.quiet_wait if args.quiet_wait is not None else (0 if args.smoke else 5),
            profile=args.profile,
            parser=args.client_parser,
            wanted_peers=peers,
            environment=env,
            overrides=overrides,
        )
        # In the registry's order, so that connections can use this run's burst figure.
        for scenario in [s for s in SCENARIOS if s.name in chosen]:
            print(f"bench: scenario {scenario.name}", file=sys.stderr)
            try:
                doc, failed = run_scenario(scenario, ctx)
            except Exception as error:  # e.g. no redis-server: the other scenarios go on
                failures.append(f"{scenario.name}: {error}")
                print(f"bench: scenario {scenario.name} FAILED: {error}", file=sys.stderr)
                continue
            failures += failed
            print(section(doc))
    if args.smoke and not wanted:
        failures += smoke_side_benches()
    if out.resolve() == DOCS.resolve() and not args.smoke:
        block = docs_block(out, [s.name for s in SCENARIOS])
        if block and update_docs(ROOT / "docs" / "benchmarks.md", block):
            print("bench: docs/benchmarks.md updated", file=sys.stderr)
    if args.smoke:
        print("bench: smoke sizes check that everything runs; not a measurement", file=sys.stderr)
    print(f"bench: results in {out}", file=sys.stderr)
    if failures:
        print("bench: FAILED runs:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
