"""``JsEngine``: runs an app's ``api/*.js`` handler in QuickJS, off the IOLoop.

The parts, one module each:

- ``handoff``: jobs and responses cross between the IOLoop and the workers in
  batches, one per loop iteration;
- ``scheduler``: which job runs next: round-robin across apps, at most
  ``max_concurrent_per_app`` running per app, at most ``max_queued_per_app``
  waiting per app (a full queue answers 503 with ``Retry-After``);
- ``workers``: the worker threads, each owning its QuickJS contexts, plus
  spares while every worker is busy;
- ``host_calls``: the ``fazt.<ns>`` namespaces and running a turn's host calls;
- ``execution``: one job in its app's context, and every failure mapped to a
  JSON error response.

Besides handlers, the engine calls one named export of a module with one
argument (``call_export``: realtime hooks in ``api/_realtime.js``), through
the same scheduler, workers and limits, under a wall-clock limit of the
caller's choosing.

Limits per request: CPU time (``time_limit_seconds``, 503), wall-clock time
from arrival to answer (``wall_time_limit_seconds``, 503), memory per app
context (``memory_limit_mb``, 500), console output (``console_limit_bytes``,
then one "truncated" line). ``docs/js-handlers.md`` documents them.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fazt.contracts.host_calls import HostCallContext, HostFunction
from fazt.contracts.js_engine import ExportResult, JsResponse, json_error
from fazt.js_bridge.execution import Executor, SandboxLimits, waited_too_long
from fazt.js_bridge.handoff import LoopLink
from fazt.js_bridge.host_calls import HostCallRunner, HostNamespaces
from fazt.js_bridge.jobs import ExportCall, Job, deliver
from fazt.js_bridge.modules import ModuleStore
from fazt.js_bridge.response import busy_response, wall_time_limit_response
from fazt.js_bridge.scheduler import FairScheduler
from fazt.js_bridge.workers import WorkerPool

__all__ = ["JsEngine", "JsResponse"]

#: Spare workers, per configured thread, started while every worker is busy (a
#: worker waiting on host calls holds its request's context, so it takes no other).
SPARE_WORKERS_PER_THREAD = 4
#: How long past its deadline the IOLoop waits for a started job's own answer
#: before answering for it (the worker stops the JS at its next slice boundary).
DEADLINE_GRACE_SECONDS = 0.5

_SHUT_DOWN = "the JS engine is shut down"


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer")
    return value


class JsEngine:
    """A pool of QuickJS worker threads that run app handlers, fairly across apps.

    ``threads`` permanent workers; up to ``SPARE_WORKERS_PER_THREAD * threads``
    spares join while all workers are busy. ``max_concurrent_per_app`` (default:
    half the threads, at least 1) caps one app's running handlers, so the other
    apps keep workers. Raises ValueError for non-positive values.
    """

    def __init__(
        self,
        *,
        time_limit_seconds: float = 5.0,
        wall_time_limit_seconds: float = 10.0,
        memory_limit_mb: int = 64,
        threads: int = 2,
        max_concurrent_per_app: int | None = None,
        max_queued_per_app: int = 100,
        console_limit_bytes: int = 64 * 1024,
    ) -> None:
        if not time_limit_seconds > 0:
            raise ValueError("time_limit_seconds must be positive")
        if not wall_time_limit_seconds > 0:
            raise ValueError("wall_time_limit_seconds must be positive")
        threads = _positive_int("threads", threads)
        if max_concurrent_per_app is None:
            max_concurrent_per_app = max(1, threads // 2)
        self.limits = SandboxLimits(
            time_limit_seconds=float(time_limit_seconds),
            wall_time_limit_seconds=float(wall_time_limit_seconds),
            memory_limit_mb=_positive_int("memory_limit_mb", memory_limit_mb),
            console_limit_bytes=_positive_int("console_limit_bytes", console_limit_bytes),
        )
        self._scheduler = FairScheduler(
            max_running_per_app=_positive_int("max_concurrent_per_app", max_concurrent_per_app),
            max_queued_per_app=_positive_int("max_queued_per_app", max_queued_per_app),
        )
        self._namespaces = HostNamespaces()
        self._modules = ModuleStore()
        self._lock = threading.Lock()
        self._closed = False
        self._stop = threading.Event()
        # The link of the loop that called last (one per process in practice).
        self._link: LoopLink | None = None
        self._host_calls = HostCallRunner(
            self._namespaces, stop=self._stop, before_waiting=self._add_spare_if_needed
        )
        self._pool = WorkerPool(
            threads=threads,
            max_workers=threads * (1 + SPARE_WORKERS_PER_THREAD),
            scheduler=self._scheduler,
            make_executor=self._make_executor,
            respond=lambda job, response: job.post(
                job.future, response, defer_wake=True, effects=job.take_effects()
            ),
        )

    # -- public API ------------------------------------------------------------------

    def register_namespace(self, name: str, functions: Mapping[str, HostFunction]) -> None:
        """Expose ``functions`` to JS as ``fazt.<name>.<fn>(...)``, each returning a Promise.

        Contexts built before this call are rebuilt on their next request.
        Raises ValueError for a name that is not a JS identifier, is reserved
        (``app``, ``log``) or is already registered.
        """
        self._namespaces.register(name, functions)

    async def run_handler(
        self,
        context: HostCallContext,
        handler_file: Path,
        api_root: Path,
        request: Mapping[str, Any],
        body: bytes,
    ) -> JsResponse:
        """Run ``handler_file`` (inside ``api_root``) with ``req`` built from ``request``
        and ``body``.

        Never raises for anything the handler does: errors, limits, a full queue
        and bad responses all come back as JSON error responses
        (docs/js-handlers.md).
        """
        # Kept lean: this is the only part on the IOLoop thread. The worker encodes
        # `request` (the kernel builds a fresh dict per request and never mutates it).
        return await self._run_job(context, handler_file, api_root, request, body)

    async def call_export(
        self,
        context: HostCallContext,
        module_file: Path,
        api_root: Path,
        name: str,
        argument: Mapping[str, Any],
        *,
        wall_time_limit_seconds: float | None = None,
    ) -> ExportResult:
        """Call ``module.exports[name](argument)`` and await its result (``JsEngineLike``).

        The call is a job like a handler's: same scheduler (it counts against the
        app's cap and queue), same CPU and memory limits; its wall-clock limit is
        the sandbox's, or ``wall_time_limit_seconds`` when that is lower. The
        worker encodes ``argument``, which must not change until the call returns.
        """
        response = await self._run_job(
            context,
            module_file,
            api_root,
            argument,
            b"",
            export=ExportCall(name),
            wall_seconds=wall_time_limit_seconds,
        )
        return export_result(response)

    async def module_functions(
        self, context: HostCallContext, module_file: Path, api_root: Path
    ) -> ExportResult:
        """Load the module in the sandbox; ``value`` lists its exported functions, sorted."""
        response = await self._run_job(
            context, module_file, api_root, {}, b"", export=ExportCall(None)
        )
        result = export_result(response)
        if result.outcome == "returned" and isinstance(result.value, list):
            return ExportResult("returned", sorted(str(name) for name in result.value))
        if result.outcome == "returned":
            return ExportResult("failed", error="the module's exports cannot be listed")
        return result

    async def _run_job(
        self,
        context: HostCallContext,
        module_file: Path,
        api_root: Path,
        request: Mapping[str, Any],
        body: bytes,
        *,
        export: ExportCall | None = None,
        wall_seconds: float | None = None,
    ) -> JsResponse:
        loop = asyncio.get_running_loop()
        if self._closed:
            return json_error(503, _SHUT_DOWN)
        link = self._link
        if link is None or link.loop is not loop:
            link = self._link = LoopLink.for_loop(
                loop, self._enqueue, self._scheduler.has_work, self._scheduler.worker_waiting
            )
        wall = self.limits.wall_time_limit_seconds
        own_wall = None
        if wall_seconds is not None and 0 < wall_seconds < wall:
            wall = own_wall = wall_seconds
        job = Job(
            context,
            module_file,
            api_root,
            request,
            body,
            loop,
            loop.create_future(),
            link.post,
            link.run_on_loop,
            link.wait_for_worker,
            deadline=time.monotonic() + wall,
            export=export,
            wall_limit_seconds=own_wall,
        )
        link.submit(job)
        backstop = loop.call_later(wall + DEADLINE_GRACE_SECONDS, self._overdue, job, wall)
        try:
            return await job.future
        except asyncio.CancelledError:
            self._scheduler.abandon(job)  # a worker that has not started it skips it
            raise
        finally:
            backstop.cancel()

    def close(self) -> None:
        """Stop the workers; requests still queued get a 503. Idempotent.

        Waits briefly for the workers; one busy in a runaway handler finishes
        when its time limit stops it (workers are daemon threads).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        for job in self._scheduler.close():
            job.post(job.future, json_error(503, _SHUT_DOWN))
        self._pool.close(wait_seconds=min(self.limits.time_limit_seconds, 2.0) + 0.5)

    # -- internals -----------------------------------------------------------------------

    def _make_executor(self) -> Executor:
        return Executor(
            limits=self.limits,
            modules=self._modules,
            namespaces=self._namespaces,
            host_calls=self._host_calls,
        )

    def _add_spare_if_needed(self) -> None:
        self._pool.add_spare_if_needed()

    def _enqueue(self, jobs: list[Job]) -> bool:
        """Hand a batch to the scheduler (on its loop); refused jobs get their 503 now.

        Returns whether any job was refused (answered here).
        """
        refused, needs_worker = self._scheduler.submit(jobs)
        for job in refused:
            deliver(
                job.future,
                json_error(503, _SHUT_DOWN) if self._closed else busy_response(),
            )
        if needs_worker:
            self._pool.add_spare_if_needed()
        return bool(refused)

    def _overdue(self, job: Job, wall: float) -> None:
        """On the loop, past the job's deadline: answer for it if its worker has not."""
        if job.future.done():
            return
        if self._scheduler.abandon(job):
            # Started: its worker stops the JS at the next slice boundary and logs it then.
            deliver(job.future, wall_time_limit_response(wall))
        else:
            deliver(job.future, waited_too_long(job, wall))


def export_result(response: JsResponse) -> ExportResult:
    """What an export call's response says (see ``execution``): 200 with ``{"value"}``
    or ``{}``, 404 for a missing function or module, any error response otherwise."""
    try:
        body = json.loads(response.body) if response.body else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status == 200:
        if "value" in body:
            return ExportResult("returned", body["value"])
        return ExportResult("returned", undefined=True)
    error = str(body.get("error") or f"failed with status {response.status}")
    if response.status == 404:
        return ExportResult("missing", error=error)
    return ExportResult("failed", error=error)
