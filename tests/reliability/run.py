"""One reliability run: a real ``fazt serve``, a seeded hostile population, the invariants.

``run(RunConfig(...), workdir)`` starts the server (and its Redis), warms it
up, takes a baseline, starts the health probe, sets the population on it for
``seconds``, lets everyone leave, and checks:

1. **exactly once, in order**: every well-behaved subscriber got every
   publication on its channels (and every ``broadcastAll``) exactly once, in
   publish order, by each publisher's sequence numbers;
2. **back to zero**: ``fazt.realtime.count()`` (through ``api/count.js``) is 0
   and a fresh member of the presence channels finds only itself;
3. **nothing leaked**: the realtime core holds no session, channel or
   background task, the server runs no more asyncio tasks than at the
   baseline, and the garbage collector finds no session, transport or
   WebSocket handler object (``tests.reliability.inspector``);
4. **bounded memory**: the server's RSS grew by at most ``rss_bound_kb``;
5. **always answering**: every health request (``server.HEALTH_PATH``, on a
   fresh connection every 50 ms, from its own process) was answered 200
   within ``health_bound_ms``.

``python -m tests.reliability.run --seconds 600 --backplane redis`` runs one
from the command line (``scripts/soak`` wraps it); ``docs/reliability.md``
describes the figures it prints.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from tests.harness import REPO_ROOT
from tests.reliability.population import (
    APP_WIDE,
    CLIENT_CHANNELS,
    FIREHOSE,
    FULL,
    LOBBY,
    ROOM,
    SERVER_CHANNELS,
    Churner,
    ClientPublisher,
    Context,
    Expirer,
    KickCycle,
    NeverReader,
    Peer,
    Reauther,
    ServerPublisher,
    Shape,
    Subscriber,
    Vandal,
    burst_channel,
)
from tests.reliability.server import REALTIME_CONFIG, ServerUnderTest

#: The seed of a run unless one is given (``FAZT_RELIABILITY_SEED`` or ``--seed``).
DEFAULT_SEED: Final = 20261130
#: How much the server's RSS may grow over a run (after its warm-up).
RSS_BOUND_KB: Final = 32 * 1024
#: The longest a health request may take.
HEALTH_BOUND_MS: Final = 100.0
#: How long everyone has to finish, leave and be forgotten after the chaos ends.
SETTLE_SECONDS: Final = 20.0
#: The inspector's counts of live objects that must come back to zero.
OBJECT_COUNTS: Final = ("sessionObjects", "transportObjects", "handlerObjects")


@dataclass(frozen=True)
class RunConfig:
    seconds: float = 60.0
    backplane: str = "memory"
    seed: int = DEFAULT_SEED
    #: Population size relative to ``population.FULL``.
    scale: float = 1.0
    rss_bound_kb: int = RSS_BOUND_KB
    health_bound_ms: float = HEALTH_BOUND_MS

    @property
    def shape(self) -> Shape:
        return FULL.scaled(self.scale)


@dataclass
class Report:
    config: RunConfig
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        head = (
            f"reliability run: {self.config.seconds:g} s on {self.config.backplane}, "
            f"seed {self.config.seed}, scale {self.config.scale:g}: "
            + ("OK" if self.ok else f"{len(self.failures)} FAILURE(S)")
        )
        lines = [head, *(f"  {key}: {value}" for key, value in self.figures.items())]
        lines += [f"  FAILED {failure}" for failure in self.failures]
        return "\n".join(lines)

    def as_json(self) -> str:
        return json.dumps(
            {"config": asdict(self.config), "figures": self.figures, "failures": self.failures},
            indent=2,
        )


def run(config: RunConfig, workdir: Path) -> Report:
    """One run in ``workdir`` (the apps, the server's data and log, the probe's output)."""
    report = Report(config)
    with ServerUnderTest(workdir, config.backplane) as server:
        try:
            asyncio.run(_drive(server, config, workdir, report))
        finally:
            log = server.log_text()
            if "Traceback" in log:
                report.failures.append(f"the server logged a traceback:\n{_excerpt(log)}")
    return report


async def _drive(server: ServerUnderTest, config: RunConfig, workdir: Path, report: Report) -> None:
    ctx = Context(server, random.Random(config.seed))
    try:
        await _warm_up(ctx)
        baseline = await asyncio.to_thread(server.inspect, True)
        rss_before = server.rss_kb()
        probe_out = workdir / "probe.json"
        probe = _start_probe(server, probe_out)
        started, cpu_before, load_before = time.monotonic(), server.cpu_seconds(), os.getloadavg()
        try:
            subscribers = await _population(ctx, config)
        finally:
            health = _stop_probe(probe, probe_out)
        stalls = await ctx.get("/_inspect?stalls=1")
        figures = report.figures
        figures["wall seconds"] = round(time.monotonic() - started, 1)
        figures["server CPU seconds"] = round(server.cpu_seconds() - cpu_before, 1)
        figures["machine load (1 min) before/after"] = (
            f"{load_before[0]:.1f}/{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        figures["server IOLoop: longest lateness / GC pass ms"] = (
            f"{stalls['loopMaxLagMs']}/{stalls['gcMaxMs']}"
        )
        if stalls["loopStalls"] or stalls["gcStalls"]:
            figures["server stalls over 50 ms (s, wall, loop CPU, process CPU, CPU wait ms)"] = (
                f"{stalls['loopStalls'][:10]}, {stalls['gcStalls'][:10]}"
            )
        await _back_to_zero(ctx)
        final = await _settled(ctx, baseline)
        rss_after = server.rss_kb()
    finally:
        ctx.http.close()
    _check_leaks(ctx, baseline, final)
    _check_health(ctx, health, stalls["waitingForCpu"], config.health_bound_ms)
    growth = rss_after - rss_before
    if growth > config.rss_bound_kb:
        ctx.fail("memory", f"RSS grew {growth} KB (bound {config.rss_bound_kb} KB)")
    _figures(report, ctx, subscribers, health, rss_before, rss_after, final)
    report.failures += ctx.failures
    for kind, times in ctx.repeated_failures.items():
        if times > 1:
            report.failures.append(f"{kind}: {times - 1} more like it")


async def _warm_up(ctx: Context) -> None:
    """One of everything, so the baseline has the JS contexts, Redis links and buffers."""
    subscriber = Subscriber(ctx, [SERVER_CHANNELS[0]], ctx.token("warm"))
    await subscriber.start()
    await ctx.post("/api/pub", {"channel": SERVER_CHANNELS[0], "data": 0})
    await ctx.post("/api/pub", {"channel": None, "data": 0})
    await ctx.post("/api/kick", {"clientId": "x" * 24, "reason": "warm-up"})
    await ctx.get("/api/count")
    await subscriber.close()
    await _wait_for_count(ctx, 0)
    ctx.counts.clear()


async def _population(ctx: Context, config: RunConfig) -> list[Subscriber]:
    """Subscribers first; then publishers and chaos for ``config.seconds``; then the wait
    for every subscriber to hold every publication, and their check."""
    rng, shape = ctx.rng, config.shape
    channels = [*SERVER_CHANNELS, *CLIENT_CHANNELS]
    subscribers = []
    for number in range(shape.subscribers):
        chosen = rng.sample(channels, rng.randint(2, 3))
        if number % 4 == 0:
            chosen.append(FIREHOSE)
        if number % 6 == 0:
            # Beside a never-reader: the burst that cuts it off must not hurt them.
            chosen.append(burst_channel(number // 6 % shape.never_readers))
        token = ctx.token(f"sub{number}", name=f"Subscriber {number}") if number % 2 else None
        subscribers.append(Subscriber(ctx, chosen, token))
    client_publishers = [
        ClientPublisher(ctx, f"client-{channel}", channel, shape.publish_rate)
        for channel in CLIENT_CHANNELS
    ]
    try:
        await _publish_and_check(ctx, config, subscribers, client_publishers)
    finally:
        # Whatever happened, nobody of ours stays connected (the checks need zero).
        peers: list[Peer] = [*subscribers, *client_publishers]
        await asyncio.gather(*(peer.close() for peer in peers))
    return subscribers


async def _publish_and_check(
    ctx: Context,
    config: RunConfig,
    subscribers: list[Subscriber],
    client_publishers: list[ClientPublisher],
) -> None:
    """Publishers and chaos for ``config.seconds``; then the wait for every subscriber
    to hold every publication, and their check."""
    shape = config.shape
    await asyncio.gather(*(subscriber.start() for subscriber in subscribers))
    await asyncio.gather(*(publisher.start() for publisher in client_publishers))

    ctx.deadline = ctx.now() + config.seconds
    server_publishers = [
        *(ServerPublisher(ctx, f"server-{c}", c, shape.publish_rate, 64) for c in SERVER_CHANNELS),
        ServerPublisher(ctx, "firehose", FIREHOSE, shape.firehose_rate, 1024),
        ServerPublisher(ctx, "app-wide", APP_WIDE, shape.app_wide_rate, 0),
    ]
    never_readers_until = max(ctx.now() + 0.1, ctx.deadline - 6)
    work: list[Awaitable[None]] = [
        *(publisher.run() for publisher in server_publishers),
        *(publisher.run() for publisher in client_publishers),
        *(Churner(ctx, number).run() for number in range(shape.churners)),
        *(
            NeverReader(ctx, number, never_readers_until).run()
            for number in range(shape.never_readers)
        ),
        *(Vandal(ctx).run() for _ in range(shape.vandals)),
        *(KickCycle(ctx).run() for _ in range(shape.kick_cycles)),
        *(Expirer(ctx, number).run() for number in range(shape.expirers)),
        *(Reauther(ctx, number).run() for number in range(shape.reauthers)),
    ]
    results = await asyncio.wait_for(
        asyncio.gather(*work, return_exceptions=True), config.seconds + 60
    )
    for result in results:
        if isinstance(result, BaseException):
            ctx.fail("a role crashed", repr(result))

    deadline = ctx.now() + SETTLE_SECONDS
    while not all(subscriber.complete() for subscriber in subscribers) and ctx.now() < deadline:
        await asyncio.sleep(0.05)
    for subscriber in subscribers:
        subscriber.check()


async def _wait_for_count(ctx: Context, expected: int) -> int:
    deadline = ctx.now() + SETTLE_SECONDS
    while True:
        count = int((await ctx.get("/api/count"))["count"])
        if count == expected or ctx.now() > deadline:
            return count
        await asyncio.sleep(0.05)


async def _back_to_zero(ctx: Context) -> None:
    """``count()`` is 0, and a fresh member finds the presence channels empty."""
    count = await _wait_for_count(ctx, 0)
    if count != 0:
        ctx.fail("count", f"fazt.realtime.count() is {count} after everyone left")
    probe = Peer(ctx, "presence probe")
    await probe.open(ctx.token("probe"))
    for channel in (LOBBY, ROOM):
        await probe.send({"type": "subscribe", "channel": channel})
        reply = await probe.expect(lambda m, c=channel: m.get("channel") == c, f"{channel}")
        if reply is not None and reply.get("members") != [{"id": "probe"}]:
            ctx.fail("presence", f"{channel} after everyone left: {reply!r}")
    await probe.close()
    count = await _wait_for_count(ctx, 0)
    if count != 0:
        ctx.fail("count", f"fazt.realtime.count() is {count} after the presence probe left")


async def _settled(ctx: Context, baseline: dict[str, Any]) -> dict[str, Any]:
    """The inspector's counts once the server's own clean-up ran (deep: with object counts).

    The scan's timer wheel keeps a closed session until the tick it was filed
    for comes (at most ``pingIntervalSeconds`` away), so the object counts are
    given that long, and a little more, to reach zero; one still held after
    that is a leak. The asyncio tasks get the same time to fall back to the
    baseline: Tornado serves each HTTP connection in a task of its own, and a
    connection the last client closed ends only when the server reads its EOF.
    """
    deadline = ctx.now() + SETTLE_SECONDS
    while ctx.now() < deadline:
        stats = await ctx.get("/_inspect")
        if not any(stats[key] for key in ("sessions", "closing", "channels", "coreTasks")):
            break
        await asyncio.sleep(0.05)
    started = ctx.now()
    deadline = started + REALTIME_CONFIG["pingIntervalSeconds"] + 3
    while True:
        stats = await asyncio.to_thread(ctx.server.inspect, True)
        settled = not any(stats[key] for key in OBJECT_COUNTS) and (
            stats["asyncioTasks"] <= baseline["asyncioTasks"]
        )
        if settled or ctx.now() > deadline:
            stats["objectsGoneAfterSeconds"] = round(ctx.now() - started, 1)
            return stats
        await asyncio.sleep(0.5)


def _check_leaks(ctx: Context, baseline: dict[str, Any], final: dict[str, Any]) -> None:
    for key in ("sessions", "closing", "channels", "coreTasks", "sessionObjects"):
        if final[key] != 0:
            ctx.fail("leak", f"{key} is {final[key]} after everyone left ({final})")
    for key in OBJECT_COUNTS[1:]:
        if final[key] != 0:
            ctx.fail("leak", f"{key} is {final[key]} after everyone left ({final})")
    if final["asyncioTasks"] > baseline["asyncioTasks"]:
        ctx.fail(
            "leak",
            f"asyncio tasks: {baseline['asyncioTasks']} -> {final['asyncioTasks']}"
            f" ({baseline['asyncioTaskNames']} -> {final['asyncioTaskNames']})",
        )


def _start_probe(server: ServerUnderTest, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.probe", server.health_url, str(out)],
        cwd=REPO_ROOT,
    )


def _stop_probe(probe: subprocess.Popen[bytes], out: Path) -> dict[str, Any]:
    probe.send_signal(signal.SIGTERM)
    try:
        probe.wait(timeout=10)
    except subprocess.TimeoutExpired:
        probe.kill()
        probe.wait(timeout=10)
    try:
        result: dict[str, Any] = json.loads(out.read_text("utf-8"))
    except (OSError, ValueError):
        return {"requests": 0, "errors": ["the probe wrote no result"], "latencies_ms": []}
    return result


def _check_health(
    ctx: Context, health: dict[str, Any], waiting_for_cpu: list[list[float]], bound_ms: float
) -> None:
    """Every answer within ``bound_ms``, but for the instants the machine did not run
    processes on time: the answer is within the bound once the idle control's own
    time at that instant is taken off, or the server's IOLoop thread was waiting
    on the run queue for a CPU (``inspector.StallWatch``). Those are counted, not
    held against fazt."""
    latencies = health["latencies_ms"]
    if not latencies:
        ctx.fail("health", "no health request was answered")
    held = []
    for at, ms, idle in zip(health["started_at"], latencies, health["control_ms"], strict=True):
        if ms <= bound_ms:
            continue
        end = at + ms / 1000
        if ms - max(idle, 0.0) <= bound_ms:
            ctx.counts["health answers over the bound: the control was as late"] += 1
        elif any(start < end and stop > at for start, stop in waiting_for_cpu):
            ctx.counts["health answers over the bound: the server waited for a CPU"] += 1
        else:
            held.append((ms, idle))
    if held:
        ctx.fail(
            "health",
            f"{len(held)} of {len(latencies)} answers over {bound_ms:g} ms while the "
            f"machine ran processes on time: (ms, control ms) {held[:10]}",
        )
    for error in health["errors"]:
        ctx.fail("health", error)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def _figures(
    report: Report,
    ctx: Context,
    subscribers: list[Subscriber],
    health: dict[str, Any],
    rss_before: int,
    rss_after: int,
    final: dict[str, Any],
) -> None:
    latencies = health["latencies_ms"]
    figures = report.figures
    figures["well-behaved subscribers"] = len(subscribers)
    figures.update(sorted(ctx.counts.items()))
    figures["publications checked"] = sum(ctx.published.values())
    figures["lost or duplicated"] = ctx.repeated_failures["exactly once, in order"]
    figures["health requests"] = health["requests"]
    control = health["control_ms"]
    figures["health p50/p99/max ms"] = (
        f"{_percentile(latencies, 0.5):.1f}/{_percentile(latencies, 0.99):.1f}/"
        f"{max(latencies, default=0):.1f}"
    )
    figures["control p50/p99/max ms"] = (
        f"{_percentile(control, 0.5):.1f}/{_percentile(control, 0.99):.1f}/"
        f"{max(control, default=0):.1f}"
    )
    figures["RSS before/after KB"] = f"{rss_before}/{rss_after} (+{rss_after - rss_before})"
    figures["after: sessions/channels/core tasks"] = (
        f"{final['sessions']}/{final['channels']}/{final['coreTasks']}"
    )
    figures["closed sessions' objects all gone after (s)"] = final["objectsGoneAfterSeconds"]


def _excerpt(log: str) -> str:
    at = log.find("Traceback")
    return log[max(0, at - 400) : at + 2000]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One reliability run against a real fazt serve.")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--backplane", choices=["memory", "redis"], default="memory")
    parser.add_argument(
        "--seed", type=int, default=int(os.environ.get("FAZT_RELIABILITY_SEED", DEFAULT_SEED))
    )
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    config = RunConfig(
        seconds=args.seconds, backplane=args.backplane, seed=args.seed, scale=args.scale
    )
    with tempfile.TemporaryDirectory(prefix="fazt-reliability-") as workdir:
        report = run(config, Path(workdir))
    print(report.summary())
    if args.json:
        args.json.write_text(report.as_json(), "utf-8")
    return 0 if report.ok else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
