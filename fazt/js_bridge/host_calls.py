"""Host calls from the worker's side: the registered namespaces, and running a batch.

JS never calls Python. A ``fazt.<ns>.<fn>(...)`` call queues ``[id, name, args]``
in the context; between slices the worker hands every call queued in that turn
to :meth:`HostCallRunner.run`, which starts each host coroutine on the IOLoop
that submitted the job (``asyncio.run_coroutine_threadsafe``), so the calls of
one turn run concurrently, and waits for all of them. While it waits, the
worker is held by that request: its context is mid-request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fazt.contracts.host_calls import (
    BRIDGE_NAMESPACES,
    HostCallContext,
    HostCallError,
    HostFunction,
)
from fazt.js_bridge.jobs import Job
from fazt.js_bridge.response import format_seconds
from fazt.js_bridge.runtime import HostCall, HostResult, LimitExceeded

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
        job.release_loop()
        _, spaces = self._namespaces.snapshot()
        results: dict[int, HostResult] = {}
        pending: dict[concurrent.futures.Future[tuple[bool, str]], tuple[int, str]] = {}
        for call_id, name, args in calls:
            _, ns, fn_name = [*name.split(".", 2), "", ""][:3]
            fn = spaces.get(ns, {}).get(fn_name)
            if fn is None:
                results[call_id] = (call_id, False, f"{name}: no such function")
                continue
            try:
                future = asyncio.run_coroutine_threadsafe(
                    _call_host(job.context, name, fn, args), job.loop
                )
            except RuntimeError:
                results[call_id] = (call_id, False, f"{name}: the server is shutting down")
                continue
            pending[future] = (call_id, name)
        if pending:
            self._before_waiting()
        waiting = set(pending)
        timeout_at = time.monotonic() + HOST_CALL_TIMEOUT_SECONDS
        # Short waits, so that close() is noticed even while the IOLoop is gone.
        while waiting and not self._stop.is_set():
            now = time.monotonic()
            if now >= job.deadline:
                for future in pending:
                    future.cancel()
                raise LimitExceeded("wall")
            left = min(timeout_at, job.deadline) - now
            if left <= 0:
                break
            _, waiting = concurrent.futures.wait(
                waiting,
                timeout=min(left, _POLL_SECONDS),
                return_when=concurrent.futures.FIRST_COMPLETED,
            )
        for future, (call_id, name) in pending.items():
            if not future.done():
                future.cancel()
                reason = (
                    "the server is shutting down"
                    if self._stop.is_set()
                    else f"timed out after {format_seconds(HOST_CALL_TIMEOUT_SECONDS)}"
                )
                results[call_id] = (call_id, False, f"{name}: {reason}")
            elif future.cancelled():
                results[call_id] = (call_id, False, f"{name}: cancelled")
            else:
                ok, text = future.result()
                results[call_id] = (call_id, ok, text)
        return [results[call_id] for call_id, _, _ in calls]


async def _call_host(
    context: HostCallContext, name: str, fn: HostFunction, args: list[Any]
) -> tuple[bool, str]:
    """Run one host function on the IOLoop: ``(True, result JSON)`` or ``(False, message)``."""
    try:
        result = await fn(context, args)
    except HostCallError as error:
        return False, str(error) or f"{name}: failed"
    except Exception:
        log.exception("host function %s raised (app %s)", name, context.app.slug)
        return False, f"{name}: internal error"
    try:
        return True, json.dumps(result, allow_nan=False)
    except (TypeError, ValueError):
        log.exception("host function %s returned a non-JSON value (app %s)", name, context.app.slug)
        return False, f"{name}: internal error"
