"""What a scenario is, and the loop that runs one: every unit, alternating, repeated.

A *unit* is what a scenario compares: usually a peer (fazt, websockets, ...),
for ``cluster`` a set-up (fazt on 1, 2, 4 workers on Redis, or in memory).
For each repeat the harness starts every unit in turn, as a fresh server, in
an order that rotates between repeats (so no unit always runs first or last),
and calls ``Scenario.measure`` for one run. The runs are then summarised
(median, min, max per metric), checked against the scenario's targets, and
written to ``NAME.json`` and ``NAME.png`` in the output folder.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procs import profiling, wait_for_quiet
from report import Metric, summarize, unit_table
from servers import BY_NAME, Options, Peer, Server, running


@dataclass
class Unit:
    name: str
    label: str
    peer: Peer
    options: Options = field(default_factory=Options)


@dataclass
class Context:
    """What every scenario of one ``bench/run`` shares."""

    tmp: Path
    out: Path
    smoke: bool
    repeats: int | None
    quiet_wait: float
    profile: str | None
    parser: str
    wanted_peers: set[str]
    environment: dict[str, Any]
    # --set SCENARIO.KEY=VALUE
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Summaries of the scenarios already run (connections reads burst's).
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)

    @contextlib.contextmanager
    def profiled(self, unit: Unit, server: Server, scenario: str) -> Iterator[None]:
        """py-spy on the server during the block, when ``--profile`` names this unit."""
        enabled = self.profile in (unit.name, unit.peer.name)
        with profiling(server.pid, self.out, f"{unit.name}-{scenario}", enabled):
            yield


class Scenario:
    """One scenario; subclasses set the class attributes and ``measure``."""

    name = ""
    title = ""
    peers: tuple[str, ...] = ()
    full: dict[str, Any] = {}
    smoke: dict[str, Any] = {}
    metrics: list[Metric] = []
    # The scenario wraps its own measured phase in ctx.profiled() (else the whole run is).
    profiles_itself = False
    unit_title = "peer"  # what the table's rows are

    def sizes(self, ctx: Context) -> dict[str, Any]:
        sizes = json.loads(json.dumps(self.smoke if ctx.smoke else self.full))
        for key, value in ctx.overrides.get(self.name, {}).items():
            if key not in sizes:
                raise SystemExit(f"bench: {self.name} has no size {key!r} ({', '.join(sizes)})")
            sizes[key] = value
        if ctx.repeats:
            sizes["repeats"] = ctx.repeats
        sizes.setdefault("repeats", 1 if ctx.smoke else 3)
        return sizes

    @contextlib.contextmanager
    def session(self, ctx: Context, sizes: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """What the whole scenario shares (e.g. a Redis server); nothing by default."""
        yield {}

    def units(self, sizes: dict[str, Any], session: dict[str, Any]) -> list[Unit]:
        return [
            Unit(name, BY_NAME[name].label, BY_NAME[name], self.options(sizes))
            for name in self.peers
        ]

    def options(self, sizes: dict[str, Any]) -> Options:
        return Options()

    def measure(
        self, unit: Unit, server: Server, sizes: dict[str, Any], ctx: Context
    ) -> dict[str, Any]:
        raise NotImplementedError

    def check(self, result: dict[str, Any]) -> str | None:
        """Why a finished run does not count, or None."""
        return None

    def brief(self, result: dict[str, Any]) -> str:
        return ""

    def summarize(self, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        return summarize(runs, [m.key for m in self.metrics])

    def table(self, summary: dict[str, Any], units: list[Unit], sizes: dict[str, Any]) -> str:
        units_shown = [(u.name, u.label) for u in units]
        return unit_table(summary, units_shown, self.metrics, self.unit_title)

    def targets(
        self, summary: dict[str, Any], sizes: dict[str, Any], ctx: Context
    ) -> list[dict[str, Any]]:
        return []

    def sizes_line(self, sizes: dict[str, Any]) -> str:
        return ""

    def chart(
        self,
        summary: dict[str, Any],
        runs: dict[str, list[dict[str, Any]]],
        units: list[Unit],
        path: Path,
    ) -> bool:
        """Draw NAME.png; False when there is nothing to draw."""
        return False


def run_scenario(scenario: Scenario, ctx: Context) -> tuple[dict[str, Any], list[str]]:
    """Every unit, every repeat, alternating; returns the results document and failures."""
    sizes = scenario.sizes(ctx)
    failures: list[str] = []
    runs: dict[str, list[dict[str, Any]]] = {}
    skipped: dict[str, str] = {}
    units: list[Unit] = []
    with scenario.session(ctx, sizes) as session:
        for unit in scenario.units(sizes, session):
            if unit.peer.name not in ctx.wanted_peers and unit.name not in ctx.wanted_peers:
                continue
            reason = unit.peer.available()
            if reason:
                skipped[unit.name] = reason
                print(f"bench: skipping {unit.name}: {reason}", file=sys.stderr)
            else:
                units.append(unit)
        for rep in range(sizes["repeats"]):
            shift = rep % len(units) if units else 0
            for unit in units[shift:] + units[:shift]:
                label = f"{scenario.name} #{rep + 1} {unit.name}"
                print(f"  {label} ...", end="", flush=True, file=sys.stderr)
                if ctx.quiet_wait:
                    wait_for_quiet(ctx.quiet_wait)
                started = time.monotonic()
                try:
                    with running(unit.peer, ctx.tmp, unit.options) as server:
                        if scenario.profiles_itself:
                            result = scenario.measure(unit, server, sizes, ctx)
                        else:
                            with ctx.profiled(unit, server, scenario.name):
                                result = scenario.measure(unit, server, sizes, ctx)
                except Exception as error:  # a failed run is reported, the others go on
                    failures.append(f"{label}: {error}")
                    print(f" FAILED: {str(error)[-600:]}", file=sys.stderr)
                    continue
                problem = scenario.check(result)
                result["ok"] = problem is None
                result["wall_s"] = time.monotonic() - started
                if problem:
                    failures.append(f"{label}: {problem}")
                    result["problem"] = problem
                runs.setdefault(unit.name, []).append(result)
                note = f" [{problem}]" if problem else ""
                print(f" {scenario.brief(result)}{note}", file=sys.stderr)
    summary = scenario.summarize(runs)
    ctx.summaries[scenario.name] = summary
    others = [
        r["others_cpu_share"]
        for results in runs.values()
        for r in results
        if isinstance(r.get("others_cpu_share"), int | float)
    ]
    doc = {
        "name": scenario.name,
        "title": scenario.title,
        "smoke": ctx.smoke,
        "environment": ctx.environment,
        "sizes": sizes,
        "sizes_line": scenario.sizes_line(sizes),
        "repeats": sizes["repeats"],
        "units": [{"name": u.name, "label": u.label} for u in units],
        "summary": summary,
        "table": scenario.table(summary, units, sizes),
        "targets": scenario.targets(summary, sizes, ctx),
        "others_cpu_share": (
            {"median": statistics.median(others), "max": max(others)} if others else None
        ),
        "runs": runs,
        "failures": failures,
        "skipped": skipped,
        "chart": None,
    }
    try:
        if scenario.chart(summary, runs, units, ctx.out / f"{scenario.name}.png"):
            doc["chart"] = f"{scenario.name}.png"
    except ImportError as error:  # the chart is a nicety; the numbers are the result
        print(f"bench: no chart for {scenario.name} ({error})", file=sys.stderr)
    (ctx.out / f"{scenario.name}.json").write_text(json.dumps(doc, indent=1, default=str))
    return doc, failures
