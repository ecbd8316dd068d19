"""The worker threads that run JS: permanent ones, and spares while all are busy.

Each worker owns its QuickJS contexts (through its own executor) and is the only
thread that ever touches them: the wrapper aborts the process when two threads
use one runtime. A worker takes jobs from the :class:`FairScheduler` until it
is closed; an infinite loop therefore blocks one worker, never the IOLoop.

A job that awaits host calls holds its worker (its context is mid-request).
So whenever a job could run but no worker is free, a *spare* worker starts, up
to ``max_workers`` threads in all; a spare exits after ``SPARE_IDLE_SECONDS``
without a job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from fazt.contracts.js_engine import JsResponse, json_error
from fazt.js_bridge.jobs import Job, Waker
from fazt.js_bridge.scheduler import FairScheduler
from fazt.js_bridge.wakeup_policy import run_as_batch
from fazt.js_bridge.worker_errors import forget_frames, traceback_text

log = logging.getLogger("fazt.js_bridge")

#: The worker threads' C stack: QuickJS's own stack limit (8 MB) is checked against
#: the real C stack, so it must be well below this, or deep recursion crashes.
WORKER_STACK_BYTES = 32 * 1024 * 1024
#: A spare worker exits after this long without a job.
SPARE_IDLE_SECONDS = 10.0

_stack_size_lock = threading.Lock()


class Executor(Protocol):
    """Runs jobs on one worker thread (see ``execution.Executor``)."""

    def execute(self, job: Job) -> JsResponse:
        """Run ``job`` and return its response; never raises."""
        ...

    def close(self) -> None:
        """Free what the thread holds; called on that thread as it exits."""
        ...


class WorkerPool:
    """``threads`` permanent workers, and spares up to ``max_workers`` threads in all."""

    def __init__(
        self,
        *,
        threads: int,
        max_workers: int,
        scheduler: FairScheduler,
        make_executor: Callable[[], Executor],
        respond: Callable[[Job, JsResponse], Waker | None],
    ) -> None:
        self._scheduler = scheduler
        self._make_executor = make_executor
        self._respond = respond
        self._max_workers = max_workers
        self._lock = threading.Lock()
        self._closed = False
        self._started = 0  # workers ever started, for thread names (guarded by _lock)
        self._workers: list[threading.Thread] = []  # guarded by _lock
        with self._lock:
            for _ in range(threads):
                self._start_locked(spare=False)

    def add_spare_if_needed(self) -> None:
        """Start a spare when a job could run but every worker is busy with another."""
        with self._lock:
            if self._closed:
                return
            self._workers = [worker for worker in self._workers if worker.is_alive()]
            alive = len(self._workers)
            if alive < self._max_workers and self._scheduler.needs_worker(alive):
                self._start_locked(spare=True)

    def close(self, wait_seconds: float) -> None:
        """Let the workers exit (the scheduler must be closed); wait up to ``wait_seconds``.

        A worker busy in a runaway handler finishes when its limit stops it
        (workers are daemon threads).
        """
        with self._lock:
            self._closed = True
            workers = [worker for worker in self._workers if worker.is_alive()]
        deadline = time.monotonic() + wait_seconds
        for worker in workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                log.warning("JS worker %s still busy at shutdown", worker.name)

    def _start_locked(self, *, spare: bool) -> None:
        name = f"fazt-js-{self._started}" + ("-spare" if spare else "")
        self._started += 1
        thread = threading.Thread(target=self._work, args=(spare,), name=name, daemon=True)
        # threading.stack_size is process-wide: set it just around this start.
        with _stack_size_lock:
            previous = threading.stack_size(WORKER_STACK_BYTES)
            try:
                thread.start()
            finally:
                threading.stack_size(previous)
        self._workers.append(thread)

    def _work(self, spare: bool) -> None:
        # Waking this worker never preempts the loop that hands it a job (wakeup_policy).
        run_as_batch()
        executor = self._make_executor()
        # Wake-ups of sleeping loops held back while this worker has more jobs: the
        # loop sleeps through the batch instead of fighting this thread for the GIL.
        wakes: dict[Waker, None] = {}
        try:
            while True:
                job = self._scheduler.take(0.0 if wakes else SPARE_IDLE_SECONDS if spare else None)
                if job is None:
                    if wakes:
                        for wake in wakes:
                            wake()
                        wakes.clear()
                        continue
                    break
                try:
                    response = executor.execute(job)
                except Exception as error:  # execute() never raises; a bug must not kill us
                    log.error("JS worker failed on %s\n%s", job.handler_file, traceback_text())
                    forget_frames(error)
                    response = json_error(500, "internal error in the JS engine")
                finally:
                    self._scheduler.finished(job)
                held = self._respond(job, response)
                if held is not None:
                    wakes[held] = None
        finally:
            for wake in wakes:
                wake()
            # Contexts must be freed on the thread that used them.
            executor.close()
