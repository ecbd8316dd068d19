"""Which job a free worker runs next: fair across apps, capped per app, bounded queues.

Each app has its own FIFO queue of at most ``max_queued_per_app`` jobs; a job
that would overflow it is refused (the engine answers 503 with
``Retry-After``). At most ``max_running_per_app`` jobs of one app run at once
(a job that awaits host calls still counts: it holds its worker). A free
worker takes the first job of the next app in round-robin order among the apps
that have a queued job and a free slot. So one app that floods its handlers, or
holds them in long host calls, waits behind its own cap, while every other
app's requests keep being taken as they come.

Thread-safe: the IOLoop submits, worker threads take and finish.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from fazt.js_bridge.jobs import Job


class FairScheduler:
    """Per-app queues served round-robin, with a cap on each app's running jobs.

    Raises ValueError for limits below 1.
    """

    def __init__(self, *, max_running_per_app: int, max_queued_per_app: int) -> None:
        if max_running_per_app < 1 or max_queued_per_app < 1:
            raise ValueError("per-app limits must be at least 1")
        self.max_running_per_app = max_running_per_app
        self.max_queued_per_app = max_queued_per_app
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._queues: dict[str, deque[Job]] = {}
        self._running: dict[str, int] = {}
        # Apps with a queued job and a free slot, in the order they get their turn;
        # an app is in it exactly when both hold.
        self._turns: deque[str] = deque()
        self._idle = 0  # workers waiting in take()
        self._busy = 0  # jobs taken and not finished: the workers they hold
        self._closed = False

    # -- the IOLoop's side ----------------------------------------------------------

    def submit(self, jobs: list[Job]) -> tuple[list[Job], bool]:
        """Queue ``jobs``; returns the refused ones and whether a worker should be added.

        A job is refused when its app's queue is full or the scheduler is closed.
        The flag is true when a job can run now but no worker is waiting for one
        (then see :meth:`needs_worker`).
        """
        refused: list[Job] = []
        with self._lock:
            for job in jobs:
                if job.abandoned:
                    continue  # nobody waits for it any more
                key = job.app_key
                queue = self._queues.get(key)
                if queue is None:
                    queue = self._queues[key] = deque()
                if self._closed or len(queue) >= self.max_queued_per_app:
                    refused.append(job)
                    if not queue:
                        del self._queues[key]
                    continue
                queue.append(job)
                if len(queue) == 1 and self._running.get(key, 0) < self.max_running_per_app:
                    self._turns.append(key)
            runnable = bool(self._turns)
            if runnable and self._idle:
                self._ready.notify()
            return refused, runnable and not self._idle

    def abandon(self, job: Job) -> bool:
        """Withdraw ``job`` unless a worker took it; returns whether it had started."""
        with self._lock:
            if job.started:
                return True
            job.abandoned = True
            key = job.app_key
            queue = self._queues.get(key)
            if queue is not None and job in queue:
                queue.remove(job)
                if not queue:
                    del self._queues[key]
                    if key in self._turns:
                        self._turns.remove(key)
            return False

    def has_work(self) -> bool:
        """Whether a job is queued or running (read without the lock: a hint)."""
        return bool(self._busy or self._queues)

    def worker_waiting(self) -> bool:
        """Whether a worker waits for a job and none runs (read without the lock: a hint)."""
        return bool(self._idle and not self._busy)

    def needs_worker(self, workers: int) -> bool:
        """Whether a job could run now while all ``workers`` are busy with other jobs.

        A worker between two jobs is not busy: it is about to take the next one.
        """
        with self._lock:
            return bool(self._turns) and not self._idle and self._busy >= workers

    def close(self) -> list[Job]:
        """Refuse new jobs, wake every waiting worker (they get None); returns the queued jobs."""
        with self._lock:
            self._closed = True
            left = [job for queue in self._queues.values() for job in queue]
            self._queues.clear()
            self._turns.clear()
            self._ready.notify_all()
        return left

    # -- the workers' side -----------------------------------------------------------------

    def take(self, timeout: float | None = None) -> Job | None:
        """The next job to run, marked started; None when closed or after ``timeout`` seconds."""
        with self._lock:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._closed:
                job = self._pop_locked()
                if job is not None:
                    if self._turns and self._idle:
                        self._ready.notify()  # more work: pass the wake-up on
                    return job
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._idle += 1
                try:
                    self._ready.wait(left)
                finally:
                    self._idle -= 1
            return None

    def finished(self, job: Job) -> None:
        """Free the slot ``job`` held (call exactly once per job returned by ``take``)."""
        with self._lock:
            self._busy -= 1
            key = job.app_key
            running = self._running[key] - 1
            if running:
                self._running[key] = running
            else:
                del self._running[key]
            if running == self.max_running_per_app - 1 and self._queues.get(key):
                self._turns.append(key)
                if self._idle:
                    self._ready.notify()

    def _pop_locked(self) -> Job | None:
        if not self._turns:
            return None
        key = self._turns.popleft()
        queue = self._queues[key]
        job = queue.popleft()
        if not queue:
            del self._queues[key]
        running = self._running.get(key, 0) + 1
        self._running[key] = running
        self._busy += 1
        job.started = True
        if queue and running < self.max_running_per_app:
            self._turns.append(key)  # back of the line: the other apps go first
        return job
