"""A ``WorkerSupervisor`` over toy workers, run as ``python -m tests.edge.supervised COUNT MODE``.

Workers in mode ``crash`` exit with status 3 a tenth of a second after they
start, in mode ``refuse`` with status 2 (final for this supervisor, as for
``fazt serve``); in mode ``serve`` they run until SIGTERM. Every mode exits 0
on SIGTERM. The parent logs to stderr as ``fazt serve`` does; its exit status is
the supervisor's.
"""

from __future__ import annotations

import logging
import signal
import sys
import time

from fazt.supervisor import WorkerSupervisor


def _worker(mode: str) -> int:
    stopped = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    deadline = time.monotonic() + 0.1
    while not stopped:
        if mode != "serve" and time.monotonic() > deadline:
            return 2 if mode == "refuse" else 3
        time.sleep(0.01)
    return 0


def main() -> int:
    count, mode = int(sys.argv[1]), sys.argv[2]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return WorkerSupervisor(count, lambda: _worker(mode), final_exit_codes={2}).run()


if __name__ == "__main__":
    sys.exit(main())
