"""The side benchmarks: one question each, outside ``bench/run``'s peer comparison.

Each answers what one feature costs fazt itself (metrics, history, hooks), how the
kernel's HTTP path compares with plain Tornado, or what fazt's own state costs at
100,000 sessions. They are run by hand on a quiet machine (their docstrings say how);
``bench/run --smoke`` runs each here at tiny sizes so that none of them rots.
"""

from __future__ import annotations

import subprocess
import sys
import time

from procs import ROOT

#: script -> its smoke arguments (tiny sizes, nothing written to docs/)
SMOKE_ARGS: dict[str, list[str]] = {
    "metrics_cost.py": ["--smoke"],
    "history_cost.py": ["--smoke"],
    "hooks_cost.py": ["--smoke"],
    "kernel_http.py": ["--smoke"],
    "simulate_100k.py": ["--smoke"],
    "host_call_cost.py": ["--smoke"],
}

#: seconds one smoke run may take before it counts as failed (each takes 5 to 20 s)
SMOKE_TIMEOUT_SECONDS = 180


def smoke() -> list[str]:
    """Run every side benchmark at smoke sizes; the failures, one line each."""
    failures: list[str] = []
    for script, arguments in SMOKE_ARGS.items():
        started = time.monotonic()
        command = [sys.executable, str(ROOT / "bench" / script), *arguments]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=SMOKE_TIMEOUT_SECONDS
            )
        except subprocess.TimeoutExpired:
            failures.append(f"{script}: no result within {SMOKE_TIMEOUT_SECONDS} s")
            continue
        took = time.monotonic() - started
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            failures.append(f"{script}: exit {done.returncode}: {' | '.join(tail)}")
            print(f"bench: side bench {script} FAILED ({took:.1f} s)", file=sys.stderr)
        else:
            print(f"bench: side bench {script} ran ({took:.1f} s)", file=sys.stderr)
    return failures
