"""Process plumbing and meters shared by the harness, the scenarios and the clients.

Everything here reads Linux's ``/proc`` directly (no psutil): CPU time of a
process (or a process tree), RSS, the machine's busy time. The harness side
adds pinning, spawning and stopping of servers by PID, and a background CPU
sampler for scenarios whose measured windows are known only afterwards.

Servers run on ``SERVER_CORE``, load clients on ``CLIENT_CORE``, both at a
higher priority (``NICE``) than the rest of the machine when allowed, so that
other work sharing the cores disturbs the measurement less; every peer gets
the same treatment.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
SERVER_CORE = 0
CLIENT_CORE = 1
NICE = -10
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# -- meters (also imported by the load clients: keep this part cheap to import) -----------
def proc_cpu_seconds(pid: int) -> float:
    """utime+stime of ``pid`` (all its threads) in seconds, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    # Fields after the ")" start at field 3 (state); utime is field 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_of(pids: Iterable[int]) -> float:
    """Summed CPU seconds of ``pids``; a process that is gone counts 0."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += proc_cpu_seconds(pid)
    return total


def proc_rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` in KB, from /proc/PID/statm."""
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * PAGE_KB


def rss_of(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += proc_rss_kb(pid)
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle, from the first line of /proc/stat."""
    with open("/proc/stat", "rb") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: drop idle and iowait.
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLK_TCK


def self_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/PID/task/*/children)."""
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                kids.extend(int(x) for x in f.read().split())
    return kids


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children_of(current))
    return out


class CpuMeter:
    """CPU accounting over one measured window: the server, this client, everyone else.

    ``pids`` is the server (one process, or every process of a cluster);
    ``extra`` names further processes measured apart (e.g. ``{"redis": [pid]}``).
    "others" is the rest of the machine's busy time (other processes sharing
    the cores); a large share means the run was disturbed.
    """

    def __init__(self, pids: list[int], extra: dict[str, list[int]] | None = None) -> None:
        self.pids = pids
        self.extra = extra or {}
        self.t0 = time.monotonic()
        self.server0 = cpu_of(pids)
        self.extra0 = {name: cpu_of(p) for name, p in self.extra.items()}
        self.self0 = self_cpu_seconds()
        self.machine0 = machine_busy_seconds()

    def close(self) -> dict[str, float]:
        seconds = time.monotonic() - self.t0
        server = cpu_of(self.pids) - self.server0
        client = self_cpu_seconds() - self.self0
        machine = machine_busy_seconds() - self.machine0
        extra = {name: cpu_of(p) - self.extra0[name] for name, p in self.extra.items()}
        out = {
            "seconds": seconds,
            "server_cpu_s": server,
            "client_cpu_s": client,
            "server_cpu_share": server / seconds,
            "client_cpu_share": client / seconds,
            "others_cpu_share": max(0.0, machine - server - client - sum(extra.values())) / seconds,
        }
        for name, value in extra.items():
            out[f"{name}_cpu_s"] = value
        return out


def percentile(sorted_values: Any, q: float) -> float:
    """The ``q`` quantile of an already sorted sequence (nearest rank); NaN when empty."""
    if not len(sorted_values):
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return float(sorted_values[index])


# -- the harness side ------------------------------------------------------------------------
def pin(core: int) -> Callable[[], None]:
    """A ``preexec_fn``: run on ``core``, in a process group of its own, at ``NICE``."""

    def pre() -> None:
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {core})
        os.setpgrp()  # own process group: stopping a peer stops its children too
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, NICE)

    return pre


def spawn(
    argv: list[str],
    log: Path,
    cwd: Path = BENCH,
    env: dict[str, str] | None = None,
    core: int = SERVER_CORE,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` pinned to ``core``, output to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=pin(core),
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def export_tree(revision: str, into: Path) -> Path:
    """The ``fazt`` package of git ``revision``, unpacked in a new folder under
    ``into``: the A side of a same-run A/B against the working tree."""
    tree = into / f"tree-{revision.replace('/', '_')}"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "fazt"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def wait_port(
    port: int, proc: subprocess.Popen[bytes], timeout: float, log: Path | None = None
) -> None:
    """Wait until something accepts on 127.0.0.1:``port``; fail if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {tail(log)}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"server did not listen within {timeout:.0f} s: {tail(log)}")


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> bool:
    """SIGTERM ``proc``'s process group, SIGKILL it after ``grace`` seconds.

    Returns True when it had to be killed.
    """
    if proc.poll() is not None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
        return False
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
        return True


def busy_cores(interval: float = 0.5) -> float:
    """How many cores the whole machine kept busy over ``interval`` seconds."""
    before = machine_busy_seconds()
    time.sleep(interval)
    return (machine_busy_seconds() - before) / interval


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


def raise_fd_limit() -> int:
    """Raise this process's open-files limit as far as allowed; returns the soft limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for want in (65536, hard):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
            break
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class CpuSampler:
    """Samples the CPU time of named process groups every ``period`` s in a thread.

    For multi-process scenarios whose measured window is known only afterwards
    (e.g. until the last delivery some client process saw): ``between(t0, t1)``
    interpolates each group's CPU seconds between two ``time.monotonic()``
    instants. ``machine`` (the whole machine's busy time) is always sampled.
    """

    def __init__(self, groups: dict[str, Callable[[], list[int]]], period: float = 0.05):
        self.groups = groups
        self.period = period
        self.times: list[float] = []
        self.values: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> None:
        now = time.monotonic()
        row = {name: cpu_of(pids()) for name, pids in self.groups.items()}
        row["machine"] = machine_busy_seconds()
        with self._lock:
            self.times.append(now)
            self.values.append(row)

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()

    def __enter__(self) -> CpuSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def at(self, t: float) -> dict[str, float]:
        """Each group's CPU seconds at instant ``t`` (linear between samples)."""
        self.sample()
        with self._lock:
            times, values = list(self.times), list(self.values)
        i = bisect.bisect_left(times, t)
        if i <= 0:
            return dict(values[0])
        if i >= len(times):
            return dict(values[-1])
        t0, t1 = times[i - 1], times[i]
        w = (t - t0) / (t1 - t0) if t1 > t0 else 1.0
        return {k: values[i - 1][k] + w * (values[i][k] - values[i - 1][k]) for k in values[i]}

    def between(self, t0: float, t1: float) -> dict[str, float]:
        """CPU seconds each group used in ``[t0, t1]``, plus ``others`` (the rest)."""
        a, b = self.at(t0), self.at(t1)
        out = {k: max(0.0, b[k] - a[k]) for k in a}
        out["others"] = max(0.0, out.pop("machine") - sum(out.values()))
        return out


@contextlib.contextmanager
def profiling(pid: int, out: Path, name: str, enabled: bool) -> Iterator[None]:
    """With ``enabled``: py-spy samples ``pid`` for the duration of the block.

    Writes ``profile-NAME.txt`` (collapsed stacks), ``profile-NAME.svg`` (a
    flame graph) and ``profile-NAME-top.txt`` (the functions with most samples).
    """
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(PYTHON).parent))
    if not enabled or spy is None:
        if enabled:
            print("bench: py-spy not found, no profile", file=sys.stderr)
        yield
        return
    procs = [
        subprocess.Popen(
            [
                spy,
                *("record", "--pid", str(pid), "--rate", "250", "--nonblocking"),
                *("--format", fmt, "--output", str(out / f"profile-{name}.{ext}")),
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
        raw = out / f"profile-{name}.txt"
        if raw.exists():
            (out / f"profile-{name}-top.txt").write_text(profile_digest(raw))


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
    lines = [f"{total} samples over the profiled part of the run", "", "self time:"]
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {n / total:6.1%}  {frame}")
    lines += ["", "inclusive time:"]
    for frame, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[: top + 10]:
        lines.append(f"  {n / total:6.1%}  {frame}")
    return "\n".join(lines) + "\n"


def environment() -> dict[str, Any]:
    """The machine and the versions of everything measured."""

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
        "redis": version(["redis-server", "--version"]).split(" v=")[-1].split(" ")[0],
        "packages": packages,
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
