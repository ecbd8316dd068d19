"""Host calls from the worker's side: the registered namespaces, and running a batch.

JS never calls Python. A ``fazt.<ns>.<fn>(...)`` call queues ``[id, name, args]``
in the context; between slices the worker hands every call queued in that turn
to :meth:`HostCallRunner.run`, which hands them to the IOLoop that submitted the
job in one hand-off (``handoff.LoopLink.run_on_loop``: taken at the end of the
loop's turn, or one ``call_soon_threadsafe`` if it sleeps), where each starts
at once and one that waits on I/O goes on as a task (``eager``: the calls of
one turn still run concurrently, and one that never waits costs no task and
no loop turn), and waits on one lock for all of them. While it
waits, the worker is held by that request: its context is mid-request. When
the last call is done the loop lets the worker go on and waits for it briefly
(``handoff.LoopLink.wait_for_worker``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fazt.contracts.host_calls import (
    BRIDGE_NAMESPACES,
    Effect,
    HostCallContext,
    HostCallError,
    HostFunction,
    PostableHostFunction,
    Posted,
)
from fazt.js_bridge.eager import run_effects, start_eagerly
from fazt.js_bridge.jobs import Job
from fazt.js_bridge.response import format_seconds
from fazt.js_bridge.runtime import CONTEXT_JSON, HostCall, HostResult, LimitExceeded

log = logging.getLogger("fazt.js_bridge")

#: How long a worker waits for one batch of host calls before rejecting them.
HOST_CALL_TIMEOUT_SECONDS = 30.0
#: How often a waiting worker looks whether the engine is closing.
_POLL_SECONDS = 0.25

_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")

#: namespace -> function name -> host function
Spaces = dict[str, dict[str, HostFunction]]


class HostNamespaces:
    """The ``fazt.<ns>`` namespaces, replaced whole on each change (readers never lock).

    ``generation`` grows with every registration, so a context built before it
    knows to rebuild itself.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: tuple[int, Spaces] = (0, {})

    def register(self, name: str, functions: Mapping[str, HostFunction]) -> None:
        """Add ``fazt.<name>``; ValueError for a name that is not a JS identifier,
        is the bridge's own (``app``, ``log``) or is already registered."""
        if not _IDENTIFIER.match(name) or name in BRIDGE_NAMESPACES:
            raise ValueError(f"invalid JS namespace name {name!r}")
        for fn_name in functions:
            if not _IDENTIFIER.match(fn_name):
                raise ValueError(f"invalid JS function name {name}.{fn_name!r}")
        with self._lock:
            generation, spaces = self._current
            if name in spaces:
                raise ValueError(f"JS namespace {name!r} is already registered")
            self._current = (generation + 1, {**spaces, name: dict(functions)})

    def snapshot(self) -> tuple[int, Spaces]:
        """``(generation, namespaces)``; the mapping is never changed in place."""
        return self._current


class HostCallRunner:
    """Runs one turn's host calls on the job's IOLoop and waits for them (worker side)."""

    def __init__(
        self,
        namespaces: HostNamespaces,
        *,
        stop: threading.Event,
        before_waiting: Callable[[], None],
    ) -> None:
        self._namespaces = namespaces
        self._stop = stop
        self._before_waiting = before_waiting

    def run(self, job: Job, calls: Sequence[HostCall]) -> list[HostResult]:
        """The result of each call, in order.

        A call that has not finished after ``HOST_CALL_TIMEOUT_SECONDS``, or when
        the engine closes, is rejected. When the job's wall-clock time runs out
        first, the calls are cancelled and ``LimitExceeded("wall")`` is raised.
        """
        _, spaces = self._namespaces.snapshot()
        results: dict[int, HostResult] = {}
        to_run: list[_Call] = []
        for call_id, name, args in calls:
            _, ns, fn_name = [*name.split(".", 2), "", ""][:3]
            fn = spaces.get(ns, {}).get(fn_name)
            if fn is None:
                results[call_id] = (call_id, False, f"{name}: no such function")
                continue
            to_run.append((call_id, name, fn, args))
        if to_run and not _settle_here(job, to_run, results):
            self._run_on_loop(job, to_run, results)
        return [results[call_id] for call_id, _, _ in calls]

    def _run_on_loop(self, job: Job, to_run: list[_Call], results: dict[int, HostResult]) -> None:
        """Start ``to_run`` on the job's loop in one hand-off and wait for all of them."""
        turn = _LoopTurnCalls(job, to_run, job.take_effects())
        try:
            job.run_on_loop(turn.start)
        except RuntimeError:
            for call_id, name, _, _ in to_run:
                results[call_id] = (call_id, False, f"{name}: the server is shutting down")
            return
        self._before_waiting()
        timeout_at = time.monotonic() + HOST_CALL_TIMEOUT_SECONDS
        finished = False
        # Short waits, so that close() is noticed even while the IOLoop is gone.
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= job.deadline:
                turn.cancel()
                raise LimitExceeded("wall")
            left = min(timeout_at, job.deadline) - now
            if left <= 0:
                break
            if turn.done.acquire(timeout=min(left, _POLL_SECONDS)):
                finished = True
                break
        if not finished:
            turn.cancel()
        for call_id, name, _, _ in to_run:
            outcome = turn.results.get(call_id)
            if outcome is not None:
                results[call_id] = (call_id, *outcome)
                continue
            reason = (
                "the server is shutting down"
                if self._stop.is_set()
                else f"timed out after {format_seconds(HOST_CALL_TIMEOUT_SECONDS)}"
            )
            results[call_id] = (call_id, False, f"{name}: {reason}")


#: (call id, "fazt.ns.fn", host function, JSON-decoded args)
_Call = tuple[int, str, HostFunction, list[Any]]

#: At most this many effects of posted calls wait on a job for the loop: a handler
#: that broadcasts in a long loop then crosses to the loop with them (and runs its
#: calls there), so what waits stays bounded (each effect holds one message).
MAX_WAITING_EFFECTS = 64


def _settle_here(job: Job, calls: list[_Call], results: dict[int, HostResult]) -> bool:
    """On the worker: settle ``calls`` without the loop when every one of them is a
    postable host function that posts; their effects join the job's. False (nothing
    settled, nothing posted) when any needs the loop, or when their effects would
    make more than ``MAX_WAITING_EFFECTS`` wait: they all go there then, so that
    effects and calls keep their order."""
    if len(job.effects) + len(calls) > MAX_WAITING_EFFECTS:
        return False
    posted: list[tuple[int, str, Posted | HostCallError]] = []
    for call_id, name, fn, args in calls:
        if not isinstance(fn, PostableHostFunction):
            return False
        try:
            outcome: Posted | HostCallError | None = fn.post(job.context, args)
        except HostCallError as error:
            outcome = error
        except Exception:
            log.exception("host function %s failed to post (app %s)", name, job.context.app.slug)
            return False  # the loop's run of it reports the failure
        if outcome is None:
            return False
        posted.append((call_id, name, outcome))
    for call_id, name, outcome in posted:
        if isinstance(outcome, HostCallError):
            results[call_id] = (call_id, False, _refusal(name, outcome))
            continue
        settled = _encoded(job.context, name, outcome.result)
        results[call_id] = (call_id, *settled)
        if settled[0]:
            job.effects.append(outcome.effect)
    return True


class _LoopTurnCalls:
    """One turn's host calls of one job, run as tasks on the job's loop.

    ``done`` is held until the last call finished; then the loop lends the
    worker the GIL for a moment (``Job.wait_for_worker``), so that settling
    the calls and running the handler on happen without a fight over it.
    """

    def __init__(self, job: Job, calls: list[_Call], effects: list[Effect]) -> None:
        self._job = job
        self._calls = calls
        #: Effects of the job's earlier posted calls: they run first, in call order.
        self._effects = effects
        self._left = len(calls)
        self._tasks: list[asyncio.Task[tuple[bool, str]]] = []
        self._given_up = False  # set on the worker; read on the loop
        #: call id -> (ok, result JSON or message); written on the loop only.
        self.results: dict[int, tuple[bool, str]] = {}
        self.done = threading.Lock()
        self.done.acquire()

    def start(self) -> None:
        """On the loop: start every call, each at once, up to its first wait.

        A call that finishes without waiting (most do: a broadcast in memory, a
        count) is done here, with no task and no further loop turn; only one
        that waits on I/O goes on as a task.
        """
        loop = self._job.loop
        if self._effects:
            run_effects(loop, self._effects)
        if self._given_up:
            return
        context = self._job.context
        for call_id, name, fn, args in self._calls:
            try:
                started = start_eagerly(loop, _call_host(context, name, fn, args))
            except asyncio.CancelledError:  # it awaited something cancelled already
                self._finished(call_id, (False, f"{name}: cancelled"))
                continue
            if isinstance(started, asyncio.Task):
                started.add_done_callback(functools.partial(self._task_finished, call_id, name))
                self._tasks.append(started)
            else:
                self._finished(call_id, started)

    def _task_finished(self, call_id: int, name: str, task: asyncio.Task[tuple[bool, str]]) -> None:
        if task.cancelled():
            self._finished(call_id, (False, f"{name}: cancelled"))
        else:
            self._finished(call_id, task.result())  # _call_host never raises

    def _finished(self, call_id: int, outcome: tuple[bool, str]) -> None:
        self.results[call_id] = outcome
        self._left -= 1
        if self._left == 0 and not self._given_up:
            self._job.wait_for_worker(self.done.release)

    def cancel(self) -> None:
        """On the worker: give up; the calls still running are cancelled on the loop."""
        self._given_up = True
        with contextlib.suppress(RuntimeError):  # a closed loop: nothing runs any more
            self._job.loop.call_soon_threadsafe(self._cancel_tasks)

    def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()


async def _call_host(
    context: HostCallContext, name: str, fn: HostFunction, args: list[Any]
) -> tuple[bool, str]:
    """Run one host function on the IOLoop: ``(True, result JSON)`` or ``(False, message)``."""
    try:
        result = await fn(context, args)
    except HostCallError as error:
        return False, _refusal(name, error)
    except Exception:
        log.exception("host function %s raised (app %s)", name, context.app.slug)
        return False, f"{name}: internal error"
    return _encoded(context, name, result)


def _refusal(name: str, error: HostCallError) -> str:
    """The rejection message of a host function's own refusal."""
    return str(error) or f"{name}: failed"


def _encoded(context: HostCallContext, name: str, result: Any) -> tuple[bool, str]:
    """``(True, result JSON)``, or ``(False, message)`` for a result JSON cannot carry
    (logged: it is the host function's bug, not the caller's)."""
    try:
        return True, CONTEXT_JSON.encode(result)
    except (TypeError, ValueError):
        log.exception("host function %s returned a non-JSON value (app %s)", name, context.app.slug)
        return False, f"{name}: internal error"
