"""The benchmark harness: every peer, every scenario, in one run, alternating peers.

``bench/run`` (the one command) installs what is needed and calls this module.
For each scenario and each repeat it starts every peer in turn (the order
rotates between repeats, so no peer always runs first or last), each server as
a fresh subprocess pinned to core 0, and the load client (``loadclient.py``)
as a subprocess pinned to core 1. It prints a markdown table (median, min,
max over the repeats) and writes ``results.json``, ``results.md`` and
``fanout.png`` to the output folder (``docs/bench/`` by default).

Exit status: 0 when every run completed; 1 when a peer could not start or a
run failed (a crash, a timeout, missing deliveries), so ``--smoke`` in CI fails
only when something is really broken.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
SERVER_CORE = 0
CLIENT_CORE = 1
DOCS = ROOT / "docs" / "bench"
TIMES, DASH = "\u00d7", "\u2013"  # for the markdown table and the chart


# -- sizes -----------------------------------------------------------------------------
FULL = {
    "repeats": 3,
    "quiet_wait": 5.0,
    "burst": {"subscribers": 1000, "publishers": 4, "duration": 3.0, "window": 32, "warmup": 30},
    "paced": {"subscribers": 1000, "publishers": 4, "rate": 20, "duration": 6.0, "warmup": 10},
    "memory": {"connections": 5000, "warm_connections": 50, "settle": 1.5},
    "http": {"subscribers": 10, "concurrency": 16, "duration": 3.0},
}
SMOKE = {
    "repeats": 1,
    "quiet_wait": 0,
    "burst": {"subscribers": 20, "publishers": 2, "duration": 0.3, "window": 4, "warmup": 3},
    "paced": {"subscribers": 20, "publishers": 2, "rate": 20, "duration": 0.3, "warmup": 2},
    "memory": {"connections": 40, "warm_connections": 5, "settle": 0.2},
    "http": {"subscribers": 5, "concurrency": 2, "duration": 0.3},
}


# -- peers -------------------------------------------------------------------------------
@dataclass
class Server:
    """A running peer: its process, the URL to connect to and the client dialect."""

    proc: subprocess.Popen[bytes]
    port: int
    ws_path: str
    dialect: str = "plain"
    publish_path: str | None = None
    host_header: str | None = None
    workdir: Path | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.ws_path}"


@dataclass
class Peer:
    name: str
    label: str
    start: Callable[[int, Path], Server]
    available: Callable[[], str | None] = lambda: None  # reason it cannot run, or None
    scenarios: set[str] = field(default_factory=lambda: {"burst", "paced", "memory"})


# Servers and the load client run at a higher CPU priority than the rest of the
# machine (when allowed), so that other work sharing the cores disturbs the
# measurement less; every peer gets the same treatment.
NICE = -10


def pin(core: int) -> Callable[[], None]:
    def pre() -> None:
        if os.cpu_count() and os.cpu_count() > 1:  # type: ignore[operator]
            os.sched_setaffinity(0, {core})
        os.setpgrp()  # own process group: stopping a peer stops its children too
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, NICE)

    return pre


def spawn(argv: list[str], log: Path, cwd: Path = BENCH, env: dict[str, str] | None = None) -> Any:
    out = log.open("wb")
    return subprocess.Popen(
        argv,
        cwd=cwd,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=pin(SERVER_CORE),
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def simple_peer(script: str, path: str, dialect: str = "plain", publish: str | None = None) -> Any:
    def start(port: int, tmp: Path) -> Server:
        log = tmp / f"{Path(script).stem}-{port}.log"
        argv = (
            ["node", script, str(port)] if script.endswith(".js") else [PYTHON, script, str(port)]
        )
        proc = spawn(argv, log, cwd=BENCH / "peers")
        return Server(proc, port, path, dialect, publish_path=publish, log=log)

    return start


def node_available() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (BENCH / "node_modules" / "ws").is_dir():
        return "bench/node_modules/ws is missing (npm ci in bench/ failed?)"
    return None


FAZT_APP_JSON = {
    "slug": "bench",
    "name": "bench",
    "realtime": {"channels": {"bench": {"publish": True}}},
}
FAZT_PUBLISH_JS = """\
// The JS handler path: an HTTP POST that broadcasts to a channel.
module.exports = async (req) => {
  const { channel, data } = req.json;
  await fazt.realtime.broadcast(channel, data);
  return { json: { sent: true } };
};
"""


def fazt_available() -> str | None:
    probe = subprocess.run(
        [PYTHON, "-c", "import fazt.cli, fazt.realtime.plugin, fazt.js_bridge"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return "fazt serve or the realtime plugin is not importable yet"
    return None


def fazt_start(port: int, tmp: Path, extra_args: list[str] | None = None) -> Server:
    work = Path(tempfile.mkdtemp(prefix="fazt-", dir=tmp))
    app = work / "apps" / "bench"
    (app / "api").mkdir(parents=True)
    (app / "app.json").write_text(json.dumps(FAZT_APP_JSON, indent=2))
    (app / "api" / "publish.js").write_text(FAZT_PUBLISH_JS)
    (app / "index.html").write_text("<!doctype html><title>bench</title>\n")
    config = work / "fazt.json"
    config.write_text(json.dumps(FAZT_CONFIG, indent=2))
    log = tmp / f"fazt-{port}.log"
    argv = [
        PYTHON,
        "-m",
        "fazt",
        # Access logs off, as in the bare peers (they have no log handler).
        "--log-level",
        "WARNING",
        "serve",
        str(work / "apps"),
        "--address",
        "127.0.0.1",
        "--port",
        str(port),
        "--config",
        str(config),
        "--data",
        str(work / "data"),
        *(extra_args or []),
    ]
    proc = spawn(argv, log, cwd=work)
    return Server(
        proc,
        port,
        "/_app/bench/_ws",
        "plain",
        publish_path="/_app/bench/api/publish",
        workdir=work,
        log=log,
    )


# Limits raised so the bench measures the fan-out path, not the admission limits.
FAZT_CONFIG: dict[str, Any] = {
    "realtime": {
        "limits": {
            "maxConnectionsTotal": 20000,
            "maxConnectionsPerApp": 20000,
            "maxMessagesPerSecond": 100000,
        }
    }
}

PEERS = [
    Peer(
        "fazt",
        "fazt (`fazt serve`)",
        fazt_start,
        fazt_available,
        {"burst", "paced", "memory", "http"},
    ),
    Peer(
        "tornado",
        "bare Tornado `write_message` loop",
        simple_peer("tornado_peer.py", "/ws", publish="/publish"),
        scenarios={"burst", "paced", "memory", "http"},
    ),
    Peer("websockets", "websockets `broadcast()`", simple_peer("websockets_peer.py", "/")),
    Peer(
        "socketio",
        "python-socketio (aiohttp)",
        simple_peer("socketio_peer.py", "/socket.io/?EIO=4&transport=websocket", "socketio"),
    ),
    Peer("node-ws", "Node.js `ws`", simple_peer("node_peer.js", "/"), node_available),
    Peer(
        "rawsend",
        "calibration: bare `socket.send()`",
        simple_peer("rawsend_peer.py", "/"),
        scenarios={"burst", "paced"},
    ),
]


# -- process plumbing --------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited with {server.proc.returncode}: {tail(server.log)}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", server.port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen within {timeout:.0f} s: {tail(server.log)}")


def tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def stop(server: Server) -> None:
    proc = server.proc
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    if server.workdir is not None:
        shutil.rmtree(server.workdir, ignore_errors=True)


@contextlib.contextmanager
def running(peer: Peer, tmp: Path) -> Iterator[Server]:
    server = peer.start(free_port(), tmp)
    try:
        wait_listening(server, 30)
        yield server
    finally:
        stop(server)


def busy_cores(interval: float = 0.5) -> float:
    """How many cores the whole machine kept busy over ``interval`` seconds."""

    def sample() -> float:
        with open("/proc/stat", "rb") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
        return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")

    before = sample()
    time.sleep(interval)
    return (sample() - before) / interval


def wait_for_quiet(max_wait: float, threshold: float = 0.5) -> float:
    """Wait (up to ``max_wait`` s) until the rest of the machine uses < ``threshold`` cores.

    Returns the last load seen; the run goes on either way (the load is recorded
    with every result as ``others_cpu_share``).
    """
    deadline = time.monotonic() + max_wait
    load = busy_cores()
    while load >= threshold and time.monotonic() < deadline:
        load = busy_cores()
    return load


@contextlib.contextmanager
def profiling(server: Server, scenario: str, peer: Peer, sizes: dict[str, Any]) -> Iterator[None]:
    """With ``--profile PEER``: py-spy samples that peer's server during the burst scenario.

    Writes ``profile-PEER.txt`` (collapsed stacks, for the top-functions digest)
    and ``profile-PEER.svg`` (a flame graph) next to the results.
    """
    target = sizes.get("profile")
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(PYTHON).parent))
    if target != peer.name or scenario != "burst" or spy is None:
        yield
        return
    out: Path = sizes["out"]
    procs = [
        subprocess.Popen(
            [
                spy,
                *("record", "--pid", str(server.proc.pid), "--rate", "250", "--nonblocking"),
                *("--format", fmt, "--output", str(out / f"profile-{peer.name}.{ext}")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fmt, ext in (("raw", "txt"), ("flamegraph", "svg"))
    ]
    try:
        yield
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        raw = out / f"profile-{peer.name}.txt"
        if raw.exists():
            (out / f"profile-{peer.name}-top.txt").write_text(profile_digest(raw))


def profile_digest(collapsed: Path, top: int = 20) -> str:
    """The functions with the most samples (self and inclusive) in py-spy's raw output."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    if not total:
        return "no samples\n"
    lines = [f"{total} samples (connection set-up included)", "", "self time:"]
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {n / total:6.1%}  {frame}")
    lines += ["", "inclusive time:"]
    for frame, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[: top + 10]:
        lines.append(f"  {n / total:6.1%}  {frame}")
    return "\n".join(lines) + "\n"


def run_client(job: dict[str, Any], timeout: float) -> dict[str, Any]:
    proc = subprocess.run(
        [PYTHON, str(BENCH / "loadclient.py"), json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=pin(CLIENT_CORE),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"load client failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# -- scenarios ---------------------------------------------------------------------------
def job_for(scenario: str, server: Server, sizes: dict[str, Any]) -> dict[str, Any]:
    job: dict[str, Any] = {
        "scenario": scenario,
        "url": server.url,
        "dialect": server.dialect,
        "server_pid": server.proc.pid,
        "channel": "bench",
        "frame_bytes": 170,
        "parser": sizes.get("parser", "fast"),
        **sizes[scenario],
    }
    if scenario == "http":
        job.update(
            http_host="127.0.0.1",
            http_port=server.port,
            path=server.publish_path,
            host_header=server.host_header or "127.0.0.1",
        )
    return job


def check(scenario: str, result: dict[str, Any]) -> str | None:
    """Why a finished run does not count, or None."""
    if scenario in ("burst", "paced") and not result.get("complete"):
        return f"missing deliveries: {result['delivered']} of {result['expected']}"
    if scenario == "memory" and result["alive"] < result["connections"]:
        return f"only {result['alive']} of {result['connections']} connections stayed open"
    if scenario == "http" and result["succeeded"] == 0:
        return f"no successful request: {result['bad_statuses']}"
    return None


def measure(
    peers: list[Peer], scenarios: list[str], sizes: dict[str, Any], tmp: Path
) -> tuple[dict[str, dict[str, list[dict[str, Any]]]], list[str]]:
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    failures: list[str] = []
    for scenario in scenarios:
        results[scenario] = {}
        runnable = [p for p in peers if scenario in p.scenarios]
        for rep in range(sizes["repeats"]):
            shift = rep % len(runnable) if runnable else 0
            for peer in runnable[shift:] + runnable[:shift]:
                label = f"{scenario} #{rep + 1} {peer.name}"
                print(f"  {label} ...", end="", flush=True, file=sys.stderr)
                if sizes.get("quiet_wait"):
                    wait_for_quiet(sizes["quiet_wait"])
                try:
                    with running(peer, tmp) as server, profiling(server, scenario, peer, sizes):
                        result = run_client(job_for(scenario, server, sizes), timeout=300)
                except Exception as error:  # a failed run is reported, the others go on
                    failures.append(f"{label}: {error}")
                    print(f" FAILED: {str(error)[-600:]}", file=sys.stderr)
                    continue
                problem = check(scenario, result)
                result["ok"] = problem is None
                if problem:
                    failures.append(f"{label}: {problem}")
                    result["problem"] = problem
                results[scenario].setdefault(peer.name, []).append(result)
                print(f" {brief(scenario, result)}", file=sys.stderr)
    return results, failures


def brief(scenario: str, r: dict[str, Any]) -> str:
    if scenario == "burst":
        return (
            f"{r['deliveries_per_s']:,.0f} deliveries/s, "
            f"server {r['server_us_per_delivery']:.2f} us/delivery, "
            f"client {r['client_us_per_delivery']:.2f} us ({r['client_cpu_share']:.0%} busy), "
            f"others {r['others_cpu_share']:.0%}"
        )
    if scenario == "paced":
        return (
            f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
            f"server {r['server_cpu_share']:.0%} busy, client {r['client_cpu_share']:.0%}, "
            f"others {r['others_cpu_share']:.0%}"
        )
    if scenario == "memory":
        return f"{r['kb_per_connection']:.1f} KB/connection"
    return f"{r['requests_per_s']:,.0f} requests/s, others {r['others_cpu_share']:.0%}"


# -- summary --------------------------------------------------------------------------------
METRICS = [
    # (scenario, key, column title, format)
    ("burst", "server_us_per_delivery", "server CPU µs / delivery", "{:.2f}"),
    ("burst", "deliveries_per_s", "deliveries/s", "{:,.0f}"),
    ("burst", "client_us_per_delivery", "client CPU µs / delivery", "{:.2f}"),
    ("burst", "machine_us_per_delivery", "machine CPU µs / delivery", "{:.2f}"),
    ("paced", "p50_ms", "p50 ms (paced)", "{:.2f}"),
    ("paced", "p99_ms", "p99 ms (paced)", "{:.2f}"),
    ("memory", "kb_per_connection", "KB / idle subscribed conn", "{:.1f}"),
    ("http", "requests_per_s", "POST→broadcast req/s", "{:,.0f}"),
    ("http", "server_us_per_request", "POST→broadcast server µs/req", "{:,.0f}"),
]


def summarize(results: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    summary: dict[str, dict[str, Any]] = {}
    for scenario, by_peer in results.items():
        for peer, runs in by_peer.items():
            for run in runs:
                if scenario == "burst" and run.get("server_us_per_delivery") is not None:
                    run["machine_us_per_delivery"] = (
                        run["server_us_per_delivery"] + run["client_us_per_delivery"]
                    )
            for sc, key, _, _ in METRICS:
                if sc != scenario:
                    continue
                values = [r[key] for r in runs if r.get(key) is not None and r.get("ok", True)]
                if values:
                    summary.setdefault(peer, {})[key] = {
                        "median": statistics.median(values),
                        "min": min(values),
                        "max": max(values),
                        "n": len(values),
                    }
    return summary


def cell(stat: dict[str, Any] | None, fmt: str) -> str:
    if not stat:
        return "—"
    if stat["n"] == 1:
        return fmt.format(stat["median"])
    return (
        f"{fmt.format(stat['median'])} ({fmt.format(stat['min'])}{DASH}{fmt.format(stat['max'])})"
    )


def table(summary: dict[str, Any], peers: list[Peer]) -> str:
    metrics = [m for m in METRICS if any(m[1] in summary.get(p.name, {}) for p in peers)]
    head = "| peer | " + " | ".join(m[2] for m in metrics) + " |"
    rule = "|---|" + "---|" * len(metrics)
    rows = [head, rule]
    for peer in peers:
        if peer.name not in summary:
            continue
        values = [cell(summary[peer.name].get(m[1]), m[3]) for m in metrics]
        rows.append(f"| {peer.label} | " + " | ".join(values) + " |")
    return "\n".join(rows)


TARGETS = [
    # (description, numerator peer/key, denominator peer/key or absolute, comparison, bound)
    (
        f"server CPU/delivery ≤ 0.6{TIMES} websockets `broadcast()`",
        "server_us_per_delivery",
        "websockets",
        0.6,
    ),
    (f"p99 ≤ 15 ms at 20 publishes/s {TIMES} 1,000 subscribers", "p99_ms", None, 15.0),
    ("≤ 10 KB per idle subscribed connection", "kb_per_connection", None, 10.0),
    ("JS handler path ≥ 50% of a plain Tornado handler", "requests_per_s", "tornado", 0.5),
]


def targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    fazt = summary.get("fazt", {})
    out = []
    for text, key, other, bound in TARGETS:
        mine = fazt.get(key, {}).get("median")
        if mine is None:
            out.append({"target": text, "status": "not measured"})
            continue
        if other is None:
            value, met = mine, mine <= bound
            shown = f"{mine:.2f}"
        else:
            theirs = summary.get(other, {}).get(key, {}).get("median")
            if not theirs:
                out.append({"target": text, "status": f"not measured ({other} missing)"})
                continue
            value = mine / theirs
            met = value <= bound if key != "requests_per_s" else value >= bound
            shown = f"{value:.2f}{TIMES} ({mine:,.2f} vs {theirs:,.2f})"
        out.append(
            {"target": text, "value": value, "shown": shown, "status": "met" if met else "MISSED"}
        )
    return out


def target_lines(rows: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"- {r['target']}: **{r['status']}**" + (f" — {r['shown']}" if "shown" in r else "")
        for r in rows
    )


def environment() -> dict[str, Any]:
    def version(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as pkg_version

    packages = {}
    for name in ["tornado", "websockets", "python-socketio", "aiohttp", "uvloop", "orjson"]:
        try:
            packages[name] = pkg_version(name)
        except PackageNotFoundError:
            packages[name] = None
    ws_version = None
    with contextlib.suppress(OSError, ValueError):
        ws_version = json.loads((BENCH / "node_modules/ws/package.json").read_text())["version"]
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": version(["node", "--version"]),
        "ws": ws_version,
        "packages": packages,
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def chart(summary: dict[str, Any], peers: list[Peer], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ws_cost = summary.get("websockets", {}).get("server_us_per_delivery", {}).get("median")
    panels: list[tuple[str, str, bool, float | None, str]] = [
        # (metric, title, log scale, target line, target label)
        (
            "server_us_per_delivery",
            "server CPU µs per delivery, burst (lower is better)",
            False,
            0.6 * ws_cost if ws_cost else None,
            f"target 0.6{TIMES} websockets",
        ),
        ("deliveries_per_s", "burst deliveries/s, 1,000 subscribers", False, None, ""),
        (
            "p99_ms",
            f"p99 latency ms, 20 publishes/s {TIMES} 1,000 subs (log)",
            True,
            15.0,
            "target 15 ms",
        ),
        ("kb_per_connection", "KB per idle subscribed connection", False, 10.0, "target 10 KB"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, (key, title, log, target, target_label) in zip(axes.flat, panels, strict=True):
        names, med, low, high, colors = [], [], [], [], []
        for peer in peers:
            stat = summary.get(peer.name, {}).get(key)
            if not stat:
                continue
            names.append(peer.name)
            med.append(stat["median"])
            low.append(stat["median"] - stat["min"])
            high.append(stat["max"] - stat["median"])
            colors.append("#d62728" if peer.name == "fazt" else "#7f7f7f")
        if not names:
            ax.set_visible(False)
            continue
        ax.barh(names, med, xerr=[low, high], color=colors, capsize=3, ecolor="#444444")
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        if log:
            ax.set_xscale("log")
        if target:
            ax.axvline(target, color="#1f77b4", linestyle="--", linewidth=1, label=target_label)
            ax.legend(fontsize=8, loc="lower right")
        right = max(m + h for m, h in zip(med, high, strict=True))
        if log:
            ax.set_xlim(left=1, right=right * 3)
        else:
            ax.set_xlim(right=right * 1.25)
        for i, (m, h) in enumerate(zip(med, high, strict=True)):
            shown = f"{m:,.0f}" if m >= 1000 else f"{m:,.1f}"
            ax.text(m + h, i, f"  {shown}", va="center", fontsize=8)
    fig.suptitle(f"fazt vs peers: medians of the same run, bars show min{DASH}max", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def scaling(out: Path) -> dict[str, Any] | None:
    """Scenario 5 lives in bench/cluster_fanout.py (the Redis helper's); run it if present."""
    script = BENCH / "cluster_fanout.py"
    if not script.exists():
        return None
    print("  scaling: bench/cluster_fanout.py ...", file=sys.stderr, flush=True)
    argv = [PYTHON, str(script), "--out", str(out / "cluster.json")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    return {
        "returncode": proc.returncode,
        "stdout": proc.stdout[-8000:],
        "stderr": proc.stderr[-4000:],
    }


MARK_START, MARK_END = "<!-- results:start -->", "<!-- results:end -->"


def machine_line(env: dict[str, Any]) -> str:
    packages = env["packages"]
    return (
        f"{env['cpu']}, {env['nproc']} cores, Linux {env['kernel']}; Python {env['python']}, "
        f"Tornado {packages['tornado']}, websockets {packages['websockets']}, "
        f"python-socketio {packages['python-socketio']}, aiohttp {packages['aiohttp']}, "
        f"uvloop {packages['uvloop']}, Node {env['node']} with ws {env['ws']}; {env['date_utc']}"
    )


def cluster_table(cluster: dict[str, Any] | None) -> str:
    if not cluster:
        return ""
    text = cluster["stdout"].strip()
    return text if "|" in text else ""


def update_docs(doc: Path, block: str) -> bool:
    """Replace the generated block of ``docs/benchmarks.md`` (between the markers)."""
    if not doc.exists():
        return False
    text = doc.read_text()
    if MARK_START not in text or MARK_END not in text:
        return False
    head, rest = text.split(MARK_START, 1)
    _, tail = rest.split(MARK_END, 1)
    doc.write_text(f"{head}{MARK_START}\n{block.strip()}\n{MARK_END}{tail}")
    return True


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
        return
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, each peer once")
    parser.add_argument("--repeats", type=int, help="repeats per peer and scenario")
    parser.add_argument(
        "--peers", help="comma-separated subset: " + ",".join(p.name for p in PEERS)
    )
    parser.add_argument("--scenarios", default="burst,paced,memory,http,scaling")
    parser.add_argument("--profile", metavar="PEER", help="py-spy the PEER server during burst")
    parser.add_argument(
        "--client-parser",
        choices=["fast", "websockets"],
        default="fast",
        help="how the load client parses server frames (websockets: the library's parser)",
    )
    parser.add_argument(
        "--out", type=Path, help="output folder (default docs/bench, smoke: a temp dir)"
    )
    args = parser.parse_args(argv)

    sizes = json.loads(json.dumps(SMOKE if args.smoke else FULL))
    if args.repeats:
        sizes["repeats"] = args.repeats
    sizes["profile"] = args.profile
    sizes["parser"] = args.client_parser
    raise_fd_limit()
    wanted = set(args.peers.split(",")) if args.peers else {p.name for p in PEERS}
    unknown = wanted - {p.name for p in PEERS}
    if unknown:
        parser.error(f"unknown peers: {', '.join(sorted(unknown))}")
    peers, skipped = [], {}
    for peer in PEERS:
        if peer.name not in wanted:
            continue
        reason = peer.available()
        if reason:
            skipped[peer.name] = reason
            print(f"bench: skipping {peer.name}: {reason}", file=sys.stderr)
        else:
            peers.append(peer)
    scenarios = [s for s in args.scenarios.split(",") if s in ("burst", "paced", "memory", "http")]
    out = args.out or (Path(tempfile.mkdtemp(prefix="bench-smoke-")) if args.smoke else DOCS)
    out.mkdir(parents=True, exist_ok=True)
    sizes["out"] = out

    env = environment()
    print(
        f"bench: {env['cpu']}, {env['nproc']} cores; "
        f"servers on core {SERVER_CORE}, client on core {CLIENT_CORE}",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        results, failures = measure(peers, scenarios, sizes, Path(tmp))
    cluster = None
    if "scaling" in args.scenarios.split(",") and not args.smoke:
        cluster = scaling(out)
        if cluster and cluster["returncode"] != 0:
            failures.append(f"scaling: bench/cluster_fanout.py exited {cluster['returncode']}")

    summary = summarize(results)
    md = table(summary, peers)
    goal = targets(summary)
    heading = "Targets (fazt, same run)"
    if args.smoke:
        heading += " - smoke sizes, a check that everything runs, not a measurement"
    report = f"{md}\n\n{heading}:\n{target_lines(goal)}\n"
    if skipped:
        report += "\nSkipped: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()) + "\n"
    print(report)
    (out / "results.md").write_text(report)
    if out.resolve() == DOCS.resolve() and not args.smoke:
        others = [
            r.get("others_cpu_share")
            for by_peer in results.values()
            for runs in by_peer.values()
            for r in runs
            if r.get("others_cpu_share") is not None
        ]
        block = (
            f"Machine: {machine_line(env)}.\n\n"
            f"Medians of {sizes['repeats']} runs (min{DASH}max in brackets); "
            f"1,000 subscribers and {sizes['burst']['duration']:.0f} s of publishing for the "
            f"burst, {sizes['paced']['rate']} publishes/s for {sizes['paced']['duration']:.0f} s "
            f"for the latency, {sizes['memory']['connections']:,} idle subscribed connections "
            f"for the memory, {sizes['http']['concurrency']} keep-alive POST clients and "
            f"{sizes['http']['subscribers']} subscribers for the handler path. Other processes "
            f"on the machine used a median of {statistics.median(others or [0]):.2f} cores "
            f"during the measured windows (max {max(others or [0]):.2f}).\n\n"
            f"{report}\n"
        )
        scaling_md = cluster_table(cluster)
        if scaling_md:
            block += (
                f"\nScenario 5, scaling (`bench/cluster_fanout.py`, same run):\n\n{scaling_md}\n"
            )
        if update_docs(ROOT / "docs" / "benchmarks.md", block):
            print("bench: docs/benchmarks.md updated", file=sys.stderr)
    (out / "results.json").write_text(
        json.dumps(
            {
                "environment": env,
                "sizes": {k: v for k, v in sizes.items() if k != "out"},
                "summary": summary,
                "targets": goal,
                "results": results,
                "scaling": cluster,
                "failures": failures,
                "skipped": skipped,
            },
            indent=1,
        )
    )
    try:
        chart(summary, peers, out / "fanout.png")
    except ImportError as error:  # the chart is a nicety; the numbers are the result
        print(f"bench: no chart ({error})", file=sys.stderr)
    print(f"bench: results in {out}", file=sys.stderr)
    if failures:
        print("bench: FAILED runs:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
