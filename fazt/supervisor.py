"""Worker supervision for ``fazt serve --workers N``: fork, replace the dead, stop on a signal.

The parent forks N workers that share its listening sockets, and keeps those
sockets open so that it can start replacements. When a worker exits while the
parent is not stopping (killed, crashed, out of memory, or it stopped on its
own), the parent starts a new one in its place after a backoff, and logs one
line per restart::

    worker 4242 replaces worker 4107, which was killed by SIGKILL after 812.4 s (backoff 0.5 s)

The backoff (``restart_delay``) is 0.5 s for a worker's first restart and
doubles with each further one, up to 30 s, so a worker that cannot start
(Redis unreachable, a broken config) is retried without spinning. A worker that
ran ``STABLE_AFTER_SECONDS`` before dying starts again from 0.5 s. The other
workers keep serving meanwhile: they accept on the same sockets.

SIGINT or SIGTERM to the parent stops supervision: each worker gets SIGTERM and
runs its graceful stop; the parent waits for all of them (a worker still alive
``STOP_TIMEOUT_SECONDS`` later gets SIGKILL) and returns 0, or 1 if any worker
exited with a failure while stopping. A restart that was still waiting for its
backoff is dropped, with one line. A worker that exits with a *final* status
(``fazt serve`` uses 2: the worker refused its config) stops supervision the
same way, and the parent returns that status.

Realtime state of a dead worker (its connections and presence in the Redis
registry) is cleaned up by the other nodes' liveness sweep, as for any dead
node: within the presence TTL plus one sweep period.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger("fazt")

FIRST_RESTART_DELAY_SECONDS = 0.5
MAX_RESTART_DELAY_SECONDS = 30.0
#: A worker that lived this long counts as healthy: its next restart uses the first delay.
STABLE_AFTER_SECONDS = 60.0
#: How long a stopping worker may take before it is killed.
STOP_TIMEOUT_SECONDS = 60.0

_STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
_FORK_BLOCKED = _STOP_SIGNALS | {signal.SIGCHLD}


def restart_delay(restarts_in_a_row: int) -> float:
    """Seconds to wait before a worker's ``restarts_in_a_row``-th quick restart (1, 2, ...)."""
    exponent = min(max(restarts_in_a_row - 1, 0), 16)
    return min(MAX_RESTART_DELAY_SECONDS, FIRST_RESTART_DELAY_SECONDS * 2.0**exponent)


def describe_exit(exit_code: int) -> str:
    """``os.waitstatus_to_exitcode`` in words: "was killed by SIGKILL", "exited with status 1"."""
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        return f"was killed by {name}"
    return f"exited with status {exit_code}"


@dataclass
class _Slot:
    """One of the N worker places: its process, or when its replacement is due."""

    pid: int | None = None
    started_at: float = 0.0
    restarts_in_a_row: int = 0
    restart_at: float | None = None
    #: What the last worker in this place did, for the restart line.
    last_exit: str = ""
    last_pid: int = 0


class WorkerSupervisor:
    """Runs ``count`` workers, each a forked child running ``run_worker()``.

    ``run_worker`` runs in the child with SIGINT and SIGTERM blocked, so a stop
    signal sent while it sets up is not lost: it installs its own handlers,
    unblocks them, serves, and returns the exit status. The child exits with
    that status (1 if ``run_worker`` raises). ``run()`` supervises until a
    stop signal, then returns the parent's exit status.

    ``on_started(pids)`` runs in the parent once the first workers are forked.
    A worker that exits with one of ``final_exit_codes`` (while the parent is
    not stopping) is not restarted: restarting cannot help, so every worker is
    stopped and ``run()`` returns that code.
    """

    def __init__(
        self,
        count: int,
        run_worker: Callable[[], int],
        *,
        final_exit_codes: Iterable[int] = (),
        on_started: Callable[[list[int]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        self._run_worker = run_worker
        self._clock = clock
        self._slots = [_Slot() for _ in range(count)]
        self._signals_received = 0
        self._signals_forwarded = 0
        self._stop_deadline: float | None = None
        self._status = 0
        self._final_exit_codes = frozenset(final_exit_codes)
        self._on_started = on_started
        self._wake_fds: tuple[int, int] = (-1, -1)

    @property
    def pids(self) -> list[int]:
        """The live workers' process ids, by slot."""
        return [slot.pid for slot in self._slots if slot.pid is not None]

    # -- the parent's loop ---------------------------------------------------------------
    def run(self) -> int:
        """Supervise until stopped (call from the main thread); returns the exit status."""
        wake_read, wake_write = self._wake_fds = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        previous_wakeup = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        previous_handlers = {
            signum: signal.signal(signum, self._on_signal) for signum in _FORK_BLOCKED
        }
        try:
            for slot in self._slots:
                self._spawn(slot)
            log.info("fazt: %d workers started: %s", len(self._slots), self.pids)
            if self._on_started is not None:
                self._on_started(self.pids)
            while self._step():
                self._sleep(wake_read, self._next_wakeup())
        finally:
            # Only after an unexpected error are workers still alive here: stop them.
            for pid in self.pids:
                _signal_quietly(pid, signal.SIGTERM)
            signal.set_wakeup_fd(previous_wakeup)
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
            os.close(wake_read)
            os.close(wake_write)
        return self._status

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only counted here; the loop acts on it (the wakeup fd ends its wait).
        if signum in _STOP_SIGNALS:
            self._signals_received += 1

    def _step(self) -> bool:
        """Reap, forward stop signals, start due restarts; False once stopped."""
        self._reap()
        now = self._clock()
        if self._signals_received > self._signals_forwarded:
            self._signals_forwarded = self._signals_received
            self._begin_stop(now)
        if self._stop_deadline is None:
            for slot in self._slots:
                if slot.pid is None and slot.restart_at is not None and now >= slot.restart_at:
                    self._spawn(slot)
            return True
        if not self.pids:
            return False
        if now >= self._stop_deadline:
            for pid in self.pids:
                log.error(
                    "worker %d did not stop within %.0f s; killing it", pid, STOP_TIMEOUT_SECONDS
                )
                _signal_quietly(pid, signal.SIGKILL)
            self._stop_deadline = float("inf")
        return True

    def _next_wakeup(self) -> float | None:
        now = self._clock()
        due = [slot.restart_at for slot in self._slots if slot.restart_at is not None]
        if self._stop_deadline is not None:
            due = [self._stop_deadline] if self._stop_deadline != float("inf") else []
        if not due:
            return None
        return max(0.0, min(due) - now)

    @staticmethod
    def _sleep(wake_read: int, timeout: float | None) -> None:
        """Wait for a signal (SIGCHLD included) or ``timeout``; drain the wakeup pipe."""
        select.select([wake_read], [], [], timeout)
        with contextlib.suppress(BlockingIOError):
            while os.read(wake_read, 512):
                pass

    # -- workers -------------------------------------------------------------------------
    def _spawn(self, slot: _Slot) -> None:
        # Blocked across fork: the child must not run the parent's handlers
        # before it has its own, and must not lose a stop signal meanwhile.
        signal.pthread_sigmask(signal.SIG_BLOCK, _FORK_BLOCKED)
        try:
            pid = os.fork()
            if pid == 0:
                self._become_worker()
        except OSError as error:
            # No process to be had now (EAGAIN, ENOMEM): try again after a backoff.
            slot.restarts_in_a_row += 1
            delay = restart_delay(slot.restarts_in_a_row)
            slot.restart_at = self._clock() + delay
            log.error("cannot start a worker: %s; trying again in %.1f s", error, delay)
            return
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORK_BLOCKED)
        now = self._clock()
        if slot.last_pid:
            log.warning(
                "worker %d replaces worker %d, which %s (backoff %.1f s)",
                pid,
                slot.last_pid,
                slot.last_exit,
                restart_delay(slot.restarts_in_a_row),
            )
        slot.pid = pid
        slot.started_at = now
        slot.restart_at = None

    def _become_worker(self) -> None:
        """In the child: drop the parent's signal plumbing, run the worker, exit."""
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for fd in self._wake_fds:
                os.close(fd)
            for signum in _FORK_BLOCKED:
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            code = self._run_worker()
        finally:
            os._exit(code)

    def _reap(self) -> None:
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((slot for slot in self._slots if slot.pid == pid), None)
            if slot is None:
                continue
            exit_code = os.waitstatus_to_exitcode(wait_status)
            now = self._clock()
            slot.pid = None
            if self._stop_deadline is not None:
                if exit_code != 0:
                    log.error("worker %d %s while stopping", pid, describe_exit(exit_code))
                    self._status = self._status or 1
                continue
            if exit_code in self._final_exit_codes:
                # Restarting cannot help (e.g. a config the worker refuses): stop.
                log.error(
                    "worker %d %s, which restarting cannot fix: stopping every worker",
                    pid,
                    describe_exit(exit_code),
                )
                self._status = exit_code
                self._begin_stop(now)
                continue
            lived = now - slot.started_at
            slot.restarts_in_a_row = (
                1 if lived >= STABLE_AFTER_SECONDS else slot.restarts_in_a_row + 1
            )
            slot.restart_at = now + restart_delay(slot.restarts_in_a_row)
            slot.last_pid = pid
            slot.last_exit = f"{describe_exit(exit_code)} after {lived:.1f} s"

    def _begin_stop(self, now: float) -> None:
        if self._stop_deadline is None:
            self._stop_deadline = now + STOP_TIMEOUT_SECONDS
            for slot in self._slots:
                if slot.pid is None and slot.restart_at is not None:
                    log.warning(
                        "worker %d %s; not restarted: fazt is stopping",
                        slot.last_pid,
                        slot.last_exit,
                    )
                slot.restart_at = None
        for pid in self.pids:
            _signal_quietly(pid, signal.SIGTERM)


def _signal_quietly(pid: int, signum: int) -> None:
    # Already gone: the next reap collects it.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
