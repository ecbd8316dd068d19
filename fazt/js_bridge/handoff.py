"""The hand-offs between one IOLoop and the worker threads, batched per loop iteration.

Waking a thread is the bridge's dearest step: the woken thread preempts the
waker on a busy machine, and each wake-up trades the GIL back and forth. So
jobs submitted during one loop iteration go to the scheduler together at its
end (a worker already awake takes the rest without a wake-up), and responses
finished while the loop is busy come back with a single
``call_soon_threadsafe`` (one self-pipe write and read for the batch).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable

from fazt.contracts.js_engine import JsResponse
from fazt.js_bridge.jobs import Job, deliver

#: Numbers the batches of jobs handed to the workers, across every loop.
_BATCHES = itertools.count(1)


class LoopLink:
    """The batched hand-offs of one IOLoop; ``enqueue`` receives each batch on that loop."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, enqueue: Callable[[list[Job]], None]
    ) -> None:
        self.loop = loop
        self._enqueue = enqueue
        self._outgoing: list[Job] = []  # loop thread only
        self._lock = threading.Lock()
        self._incoming: list[tuple[asyncio.Future[JsResponse], JsResponse]] = []
        self._drain_scheduled = False  # guarded by _lock

    def submit(self, job: Job) -> None:
        """Called on the loop: hand ``job`` to the workers when this loop iteration ends."""
        if not self._outgoing:
            self.loop.call_soon(self._flush)
        self._outgoing.append(job)

    def _flush(self) -> None:
        jobs, self._outgoing = self._outgoing, []
        batch = next(_BATCHES)
        for job in jobs:
            job.batch = batch
        self._enqueue(jobs)

    def post(self, future: asyncio.Future[JsResponse], response: JsResponse) -> None:
        """Called on a worker: deliver ``response`` to ``future`` on the loop."""
        with self._lock:
            self._incoming.append((future, response))
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:
            # A closed loop: nobody is waiting any more.
            with self._lock:
                self._incoming.clear()
                self._drain_scheduled = False

    def _drain(self) -> None:
        with self._lock:
            items, self._incoming = self._incoming, []
            self._drain_scheduled = False
        for future, response in items:
            deliver(future, response)
