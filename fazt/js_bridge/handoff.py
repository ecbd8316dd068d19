"""The hand-offs between one IOLoop and the worker threads, one batch each way per turn.

Waking a thread is the bridge's dearest step: the woken thread preempts the
waker on a busy machine, and each wake-up trades the GIL back and forth. So the
jobs submitted during one loop turn go to the scheduler together at the turn's
end, just before the loop waits for I/O (``loop_turns``): the worker then runs
them while the loop sleeps without the GIL. Answers come back the other way
without a wake-up while the loop is busy: the loop takes them at the end of its
turn. Only when it sleeps does a worker wake it (one ``call_soon_threadsafe``,
a self-pipe write, for all the answers that finish before it runs). The host
calls a worker's job makes cross to the loop the same way (``run_on_loop``).

When a free worker takes the turn's batch, or goes on after host calls, the
loop waits for it on a lock, briefly (``GATE_SECONDS``), so that the worker's
calls into JS give up and take back a GIL nobody else wants.

On a loop without the turn hook, jobs go at the end of the loop iteration
(``call_soon``) and every batch of answers wakes the loop.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable, Sequence

from fazt.contracts.host_calls import Effect
from fazt.contracts.js_engine import JsResponse
from fazt.js_bridge.eager import run_effects
from fazt.js_bridge.jobs import Job, Waker, deliver
from fazt.js_bridge.loop_turns import install_turn_hook, installed_hooks
from fazt.js_bridge.wakeup_policy import BatchWhileWaiting

log = logging.getLogger("fazt.js_bridge")

#: Numbers the batches of jobs handed to the workers, across every loop.
_BATCHES = itertools.count(1)

#: How long the loop sleeps at most while workers have jobs: a worker holds the
#: wake-up for its answers back until it runs out of jobs (see ``LoopLink.post``).
DEFERRED_WAKE_SECONDS = 0.005
#: The longest the loop waits for a free worker's batch (see ``LoopLink._hand_over``).
GATE_SECONDS = 0.002
#: At most this many turns without such a wait after one that ran out.
MAX_GATE_BACKOFF_TURNS = 1024
#: The longest the loop sleeps between looks while a worker runs one long job.
MAX_IDLE_POLL_SECONDS = 0.1

#: Receives a batch of jobs on the loop; returns whether it answered any of them
#: at once (their callbacks are then scheduled on the loop).
Enqueue = Callable[[list[Job]], bool]


class LoopLink:
    """The batched hand-offs of one IOLoop; ``enqueue`` receives each batch on that loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        enqueue: Enqueue,
        workers_busy: Callable[[], bool],
        worker_waiting: Callable[[], bool],
    ) -> None:
        self.loop = loop
        self._enqueue = enqueue
        self._workers_busy = workers_busy
        self._worker_waiting = worker_waiting
        # Guarded by _lock: held by the loop while it waits for a worker's batch.
        self._gate: threading.Lock | None = None
        self._skip_gates = 0  # loop thread only: turns left without waiting (see _hand_over)
        self._gate_backoff = 1  # loop thread only
        self._outgoing: list[Job] = []  # loop thread only
        self._lock = threading.Lock()
        self._incoming: list[tuple[asyncio.Future[JsResponse], JsResponse, Sequence[Effect]]] = []
        self._callbacks: list[Callable[[], object]] = []  # guarded by _lock: run_on_loop
        self._wake_scheduled = False  # guarded by _lock: a _drain is on its way
        self._sleeping = False  # guarded by _lock: the loop waits without looking at _incoming
        # Guarded by _lock: the loop's current sleep ends within DEFERRED_WAKE_SECONDS.
        self._deferrable = False
        self._poll_seconds = DEFERRED_WAKE_SECONDS  # loop thread only: see before_wait
        # The loop thread's waits for a worker do not preempt the worker that ends them.
        self._batch = BatchWhileWaiting()
        # Installed from the loop's thread: the link is made in a coroutine on it.
        self._turns = install_turn_hook(loop, self)

    @classmethod
    def for_loop(
        cls,
        loop: asyncio.AbstractEventLoop,
        enqueue: Enqueue,
        workers_busy: Callable[[], bool],
        worker_waiting: Callable[[], bool],
    ) -> LoopLink:
        """The link of ``enqueue``'s engine on ``loop``: the one hooked there already, if
        any (an engine that serves two loops in turn adds no second hook), else a new one.
        Call on the loop's thread."""
        for hook in installed_hooks(loop):
            if isinstance(hook, LoopLink) and hook._enqueue == enqueue:
                return hook
        return cls(loop, enqueue, workers_busy, worker_waiting)

    def submit(self, job: Job) -> None:
        """Called on the loop: hand ``job`` to the workers when this loop turn ends."""
        if not self._outgoing and not self._turns:
            self.loop.call_soon(self._flush)
        self._outgoing.append(job)

    def _flush(self) -> bool:
        jobs, self._outgoing = self._outgoing, []
        batch = next(_BATCHES)
        for job in jobs:
            job.batch = batch
        return self._enqueue(jobs)

    # -- the turn hook (loop thread) --------------------------------------------------

    def before_wait(self, timeout: float | None) -> float | None:
        """Hand over this turn's jobs, take the answers that are in; sleep only if none.

        While workers have jobs the loop sleeps ``DEFERRED_WAKE_SECONDS`` at most,
        so that a worker may hold back the wake-up for its answers until it runs
        out of jobs (see :meth:`post`); the bound doubles at each sleep without
        news (up to ``MAX_IDLE_POLL_SECONDS``), so a long-running job does not
        keep the loop polling.
        """
        handed = bool(self._outgoing)
        answered = self._hand_over() if handed else False
        ran = self._take_incoming()
        if ran or handed:
            self._poll_seconds = DEFERRED_WAKE_SECONDS
        if ran or answered or timeout == 0:
            return 0 if ran or answered else timeout
        if self._workers_busy():
            bound = self._poll_seconds
            self._poll_seconds = min(2 * bound, MAX_IDLE_POLL_SECONDS)
            if timeout is None or timeout > bound:
                timeout = bound
        with self._lock:
            if self._incoming or self._callbacks:
                return 0  # an answer came in meanwhile
            self._sleeping = True
            self._deferrable = timeout is not None and timeout <= DEFERRED_WAKE_SECONDS
        return timeout

    def _hand_over(self) -> bool:
        """Flush this turn's jobs; wait briefly for them when a worker is free to run them.

        A free worker runs the batch while the loop waits without the GIL, so the
        worker's calls into JS give the GIL up and take it back unopposed, and
        its answers come back at once. The wait ends when the worker runs out of
        jobs or needs the loop (host calls), and after ``GATE_SECONDS`` at most;
        after a wait that ran out, the loop waits for none of the next turns'
        batches, then for none of twice as many, and so on (reset by a batch that
        finished in time), so a slow handler never stalls the loop twice in a row.
        """
        if self._skip_gates:
            self._skip_gates -= 1
            return self._flush()
        if not self._worker_waiting():
            return self._flush()
        return self._wait_for_worker(self._flush)

    def wait_for_worker(self, release_worker: Callable[[], None]) -> None:
        """On the loop: let a worker go on (its host calls are done), and wait for it.

        The same bounded wait as for a batch (:meth:`_hand_over`): the worker
        settles the calls and runs the handler on while the loop holds still,
        and the wait ends when it answers and runs out of jobs, or needs the
        loop again.
        """
        if self._skip_gates or not self._turns:
            self._skip_gates = max(0, self._skip_gates - 1)
            release_worker()
            return
        self._wait_for_worker(release_worker)

    def _wait_for_worker(self, start: Callable[[], object]) -> bool:
        """Run ``start`` (it sets a worker going) and wait until the worker needs the
        loop, at most ``GATE_SECONDS``; returns whether ``start`` answered a job."""
        gate = threading.Lock()
        gate.acquire()
        with self._lock:
            self._gate = gate
            self._sleeping = True
            self._deferrable = True
        answered = start() is True
        in_time = answered or self._batch.acquire(gate, GATE_SECONDS)
        with self._lock:
            self._gate = None
            self._sleeping = False
        if in_time:
            self._gate_backoff = 1
        else:
            self._skip_gates = self._gate_backoff
            self._gate_backoff = min(2 * self._gate_backoff, MAX_GATE_BACKOFF_TURNS)
        return answered

    def run_on_loop(self, callback: Callable[[], object]) -> None:
        """Called on a worker: run ``callback`` on the loop (host calls to start).

        Like an answer, it is taken at the end of the loop's current turn while
        the loop is busy, and wakes it only when it sleeps; a loop that waits for
        this worker stops waiting. Raises RuntimeError when the loop is closed.
        """
        if self.loop.is_closed():
            raise RuntimeError("the loop is closed")
        with self._lock:
            self._callbacks.append(callback)
            gate, self._gate = self._gate, None
            if gate is not None:
                self._wake_scheduled = False  # the loop takes it as it stops waiting
            # Not left to a wake-up a worker holds back: that worker may be this one.
            wake = gate is None and (not self._turns or self._sleeping)
        if gate is not None:
            gate.release()
        elif wake:
            try:
                self.loop.call_soon_threadsafe(self._drain)
            except RuntimeError:
                with self._lock:
                    self._callbacks.clear()
                    self._wake_scheduled = False
                raise

    def after_wait(self) -> None:
        with self._lock:
            self._sleeping = False

    # -- the workers' side ---------------------------------------------------------

    def post(
        self,
        future: asyncio.Future[JsResponse],
        response: JsResponse,
        *,
        defer_wake: bool = False,
        effects: Sequence[Effect] = (),
    ) -> Waker | None:
        """Called on a worker: deliver ``response`` to ``future`` on the loop, after
        running ``effects`` there (those of the job's posted host calls, so that a
        broadcast goes out before the response that follows it).

        With ``defer_wake``, a worker that has more jobs to run gets back the
        wake-up the sleeping loop needs and calls it once it runs out of jobs, so
        that the loop sleeps through the worker's whole batch (meanwhile the loop
        looks for answers every ``DEFERRED_WAKE_SECONDS`` at most).
        """
        with self._lock:
            self._incoming.append((future, response, effects))
            if self._wake_scheduled or (self._turns and not self._sleeping):
                return None  # the loop takes it at the end of its turn
            self._wake_scheduled = True
            deferrable = self._deferrable
        if defer_wake and deferrable:
            return self._wake
        self._wake()
        return None

    def _wake(self) -> None:
        with self._lock:
            gate, self._gate = self._gate, None
            if gate is not None:
                self._wake_scheduled = False  # the loop takes the answers as it stops waiting
        if gate is not None:
            gate.release()
            return
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:
            # A closed loop: nobody is waiting any more.
            with self._lock:
                self._incoming.clear()
                self._wake_scheduled = False

    def _drain(self) -> None:
        with self._lock:
            self._wake_scheduled = False
        if self._take_incoming():
            self._poll_seconds = DEFERRED_WAKE_SECONDS

    def _take_incoming(self) -> bool:
        """On the loop: deliver the answers and run the callbacks that came in."""
        with self._lock:
            items, self._incoming = self._incoming, []
            callbacks, self._callbacks = self._callbacks, []
        for future, response, effects in items:
            if effects:
                run_effects(self.loop, effects)
            deliver(future, response)
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a bug in a callback must not stop the others
                log.exception("a callback from a JS worker failed")
        return bool(items or callbacks)
