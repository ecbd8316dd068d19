"""``JsEngine``: runs an app's ``api/*.js`` handler in QuickJS, off the IOLoop.

Threads. ``run_handler`` is called on the IOLoop; it queues a job and awaits a
future (jobs and responses cross between threads in batches, see ``_LoopLink``).
``threads`` worker threads take jobs from one queue. Each worker owns its
QuickJS contexts (one per app, LRU-bounded) and is the only thread that ever
touches them, because the wrapper aborts the process when two threads use one
runtime. An infinite loop therefore blocks one worker, never the IOLoop.

Host calls. JS never calls Python. A ``fazt.<ns>.<fn>(...)`` call queues
``[id, name, args]`` in the context; the worker drains the queue between
``execute_pending_job`` calls, runs each host coroutine on the IOLoop that called
``run_handler`` (``asyncio.run_coroutine_threadsafe``), waits for them, and
settles each JS Promise. Calls queued in the same turn run concurrently. While
it waits, the worker is held by that request (its context is mid-request), so
if no other worker is free it first starts a spare worker, which exits when idle.

Limits. CPU time per request (``time_limit_seconds``, see ``CpuBudget`` for how
it is measured) gives 503; memory per context (``memory_limit_mb``) gives 500.
A context that hit a limit, or misbehaved, is discarded and rebuilt on the next
request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import logging
import queue
import re
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import quickjs

from fazt.js_bridge.modules import HandlerPathError, ModuleStore
from fazt.js_bridge.response import (
    BadResponseError,
    JsResponse,
    error_response,
    format_seconds,
    memory_limit_response,
    response_from_envelope,
    time_limit_response,
)
from fazt.js_bridge.runtime import (
    AppRuntime,
    BridgeFault,
    CpuBudget,
    HostCall,
    HostResult,
    LimitExceeded,
    classify,
)
from fazt.kernel.plugin import HostCallContext, HostCallError, HostFunction

__all__ = ["JsEngine", "JsResponse"]

log = logging.getLogger("fazt.js_bridge")

#: How long a worker waits for one batch of host calls before rejecting them.
HOST_CALL_TIMEOUT_SECONDS = 30.0
#: Contexts a worker keeps warm (an idle context holds about 80 KB).
MAX_CONTEXTS_PER_THREAD = 256
#: QuickJS's own stack limit, and the worker threads' C stack (kept well above it:
#: the limit is checked against the real C stack, and overrunning that crashes).
JS_STACK_BYTES = 8 * 1024 * 1024
WORKER_STACK_BYTES = 32 * 1024 * 1024
#: Spare workers, per configured thread, started while every worker waits on host
#: calls (a waiting worker holds its request's context, so it cannot take another).
SPARE_WORKERS_PER_THREAD = 4
#: A spare worker exits after this long without a job.
SPARE_IDLE_SECONDS = 10.0
#: Names the kernel itself defines on ``fazt``.
RESERVED_NAMESPACES = frozenset({"app", "log"})

_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_stack_size_lock = threading.Lock()


@dataclass(eq=False)
class _Job:
    context: HostCallContext
    handler_file: Path
    api_root: Path
    request: dict[str, Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[JsResponse]
    link: _LoopLink
    abandoned: bool = field(default=False)
    # Set when handed to the workers (see ModuleStore.closure); None: always stat.
    batch: int | None = field(default=None)


#: ASCII-only: lone surrogates from a lenient body decode cannot reach C. Made once:
#: ``json.dumps`` with options builds a new encoder per call.
_REQUEST_ENCODER = json.JSONEncoder(ensure_ascii=True, allow_nan=False)


def _app_log(slug: str) -> logging.Logger:
    """The app's logger; looked up only when there is something to log."""
    return logging.getLogger(f"fazt.app.{slug}")


def _traceback() -> str:
    """The current exception's traceback as text.

    Worker-side log records must not hold exception objects: their frames
    reference contexts, and a context freed later on another thread (e.g. when
    a log handler drops the record) can abort the process.
    """
    return traceback.format_exc().rstrip()


def _forget(error: BaseException) -> None:
    """Drop the frames an exception chain holds, here on the worker thread.

    Those frames reference the context; released later by the cyclic GC they
    could be freed on another thread, which the wrapper does not survive.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if current.__traceback__ is not None:
            traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


def _deliver(future: asyncio.Future[JsResponse], response: JsResponse) -> None:
    if not future.done():
        future.set_result(response)


#: Numbers the batches of jobs handed to the workers, across every loop.
_BATCHES = itertools.count(1)


class _LoopLink:
    """The hand-offs between one IOLoop and the workers, batched per loop iteration.

    Waking a thread is the bridge's dearest step: the woken thread preempts the
    waker on a busy machine, and each wake-up trades the GIL back and forth.
    So jobs submitted during one loop iteration go to the queue together at its
    end (a worker already awake takes the rest without a wake-up), and
    responses finished while the loop is busy come back with a single
    ``call_soon_threadsafe`` (one self-pipe write and read for the batch).
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, enqueue: Callable[[list[_Job]], None]
    ) -> None:
        self.loop = loop
        self._enqueue = enqueue
        self._outgoing: list[_Job] = []  # loop thread only
        self._lock = threading.Lock()
        self._incoming: list[tuple[asyncio.Future[JsResponse], JsResponse]] = []
        self._drain_scheduled = False  # guarded by _lock

    def submit(self, job: _Job) -> None:
        """Called on the loop: queue ``job`` when this loop iteration ends."""
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
            _deliver(future, response)


class JsEngine:
    """A pool of QuickJS worker threads that run app handlers.

    ``time_limit_seconds`` is the CPU budget of one request, ``memory_limit_mb``
    the memory limit of one app's context, ``threads`` the number of permanent
    workers; up to ``SPARE_WORKERS_PER_THREAD * threads`` spares join while all
    workers wait on host calls. Raises ValueError for non-positive values.
    """

    def __init__(
        self, *, time_limit_seconds: float = 5.0, memory_limit_mb: int = 64, threads: int = 2
    ) -> None:
        if not time_limit_seconds > 0:
            raise ValueError("time_limit_seconds must be positive")
        if isinstance(memory_limit_mb, bool) or not isinstance(memory_limit_mb, int):
            raise ValueError("memory_limit_mb must be an integer")
        if memory_limit_mb < 1:
            raise ValueError("memory_limit_mb must be at least 1")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError("threads must be a positive integer")
        self.time_limit_seconds = float(time_limit_seconds)
        self.memory_limit_mb = memory_limit_mb
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._modules = ModuleStore()
        self._lock = threading.Lock()
        # (generation, namespace -> function name -> function), replaced whole.
        self._namespaces: tuple[int, dict[str, dict[str, HostFunction]]] = (0, {})
        self._closed = False
        # The link of the loop that called last (one per process in practice).
        self._link: _LoopLink | None = None
        self._stop = threading.Event()
        self._max_workers = threads * (1 + SPARE_WORKERS_PER_THREAD)
        self._idle = 0  # workers blocked in the job queue (guarded by _lock)
        self._started = 0  # workers ever started, for thread names (guarded by _lock)
        self._workers: list[threading.Thread] = []  # guarded by _lock
        with self._lock:
            for _ in range(threads):
                self._start_worker_locked(spare=False)

    # -- public API ------------------------------------------------------------------

    def register_namespace(self, name: str, functions: Mapping[str, HostFunction]) -> None:
        """Expose ``functions`` to JS as ``fazt.<name>.<fn>(...)``, each returning a Promise.

        Contexts built before this call are rebuilt on their next request.
        Raises ValueError for a name that is not a JS identifier, is reserved
        (``app``, ``log``) or is already registered.
        """
        if not _IDENTIFIER.match(name) or name in RESERVED_NAMESPACES:
            raise ValueError(f"invalid JS namespace name {name!r}")
        for fn_name in functions:
            if not _IDENTIFIER.match(fn_name):
                raise ValueError(f"invalid JS function name {name}.{fn_name!r}")
        with self._lock:
            generation, spaces = self._namespaces
            if name in spaces:
                raise ValueError(f"JS namespace {name!r} is already registered")
            self._namespaces = (generation + 1, {**spaces, name: dict(functions)})

    async def run_handler(
        self,
        context: HostCallContext,
        handler_file: Path,
        api_root: Path,
        request: dict[str, Any],
    ) -> JsResponse:
        """Run ``handler_file`` (inside ``api_root``) with ``request`` as ``req``.

        Never raises for anything the handler does: errors, limits and bad
        responses all come back as JSON error responses (docs/js-handlers.md).
        """
        # Kept lean: this is the only part on the IOLoop thread. The worker encodes
        # `request` (the kernel builds a fresh dict per request and never mutates it).
        loop = asyncio.get_running_loop()
        if self._closed:
            return error_response(503, "the JS engine is shut down")
        link = self._link
        if link is None or link.loop is not loop:
            link = self._link = _LoopLink(loop, self._enqueue)
        job = _Job(context, handler_file, api_root, request, loop, loop.create_future(), link)
        link.submit(job)
        try:
            return await job.future
        except asyncio.CancelledError:
            job.abandoned = True  # a worker that has not started it yet skips it
            raise

    def _enqueue(self, jobs: list[_Job]) -> None:
        """Queue a batch of jobs (on their loop); after close() they get a 503."""
        with self._lock:  # never queue behind close()'s stop markers
            if not self._closed:
                for job in jobs:
                    self._jobs.put(job)
                return
        for job in jobs:
            _deliver(job.future, error_response(503, "the JS engine is shut down"))

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
            workers = [worker for worker in self._workers if worker.is_alive()]
            for _ in workers:
                self._jobs.put(None)
        deadline = time.monotonic() + min(self.time_limit_seconds, 2.0) + 0.5
        for worker in workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                log.warning("JS worker %s still busy at shutdown", worker.name)

    # -- workers -----------------------------------------------------------------------

    def _start_worker_locked(self, *, spare: bool) -> None:
        """Start a worker (the caller holds ``_lock``); a spare one exits when idle."""
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
        self._workers = [worker for worker in self._workers if worker.is_alive()]
        self._workers.append(thread)

    def _add_spare_if_all_busy(self) -> None:
        """Called by a worker about to wait on host calls: keep one worker free for jobs."""
        with self._lock:
            if self._closed or self._idle > 0:
                return
            alive = sum(1 for worker in self._workers if worker.is_alive())
            if alive < self._max_workers:
                self._start_worker_locked(spare=True)

    def _next_job(self, spare: bool) -> _Job | None:
        """The next job; ``None`` to stop (engine closed, or a spare idle too long)."""
        with self._lock:
            self._idle += 1
        try:
            return self._jobs.get(timeout=SPARE_IDLE_SECONDS) if spare else self._jobs.get()
        except queue.Empty:
            return None
        finally:
            with self._lock:
                self._idle -= 1

    def _work(self, spare: bool) -> None:
        runtimes: OrderedDict[tuple[str, str], AppRuntime] = OrderedDict()
        try:
            while True:
                job = self._next_job(spare)
                if job is None:
                    break
                if job.abandoned:
                    continue
                if self._closed:
                    response = error_response(503, "the JS engine is shut down")
                else:
                    try:
                        response = self._execute(job, runtimes)
                    except Exception as error:  # a bug here must not kill the worker
                        log.error("JS worker failed on %s\n%s", job.handler_file, _traceback())
                        _forget(error)
                        response = error_response(500, "internal error in the JS engine")
                job.link.post(job.future, response)
        finally:
            # Contexts must be freed on the thread that used them.
            runtimes.clear()

    def _runtime_for(
        self, job: _Job, runtimes: OrderedDict[tuple[str, str], AppRuntime]
    ) -> AppRuntime:
        app = job.context.app
        cache_key = (app.uuid, str(job.api_root))
        generation, spaces = self._namespaces
        runtime = runtimes.get(cache_key)
        if runtime is not None and runtime.generation == generation:
            runtimes.move_to_end(cache_key)
            return runtime
        runtimes.pop(cache_key, None)
        try:
            runtime = AppRuntime(
                slug=app.slug,
                uuid=app.uuid,
                namespaces={name: sorted(fns) for name, fns in spaces.items()},
                memory_limit_bytes=self.memory_limit_mb * 1024 * 1024,
                stack_bytes=JS_STACK_BYTES,
                generation=generation,
            )
        except Exception as error:
            # The original stays as __context__; _execute clears its frames (_forget).
            if isinstance(classify(error), LimitExceeded):
                raise LimitExceeded("memory") from None
            reason = str(error).split("\n", 1)[0] or type(error).__name__
            raise BridgeFault(f"cannot create a JS context: {reason}") from None
        runtimes[cache_key] = runtime
        while len(runtimes) > MAX_CONTEXTS_PER_THREAD:
            runtimes.popitem(last=False)
        return runtime

    def _execute(self, job: _Job, runtimes: OrderedDict[tuple[str, str], AppRuntime]) -> JsResponse:
        app = job.context.app
        try:
            request_json = _REQUEST_ENCODER.encode(job.request)
        except ValueError as error:
            if "float" in str(error):
                # Python's json accepts NaN/Infinity in a body; JSON (and JS) does not.
                return error_response(
                    400, "the request JSON holds NaN or Infinity, which JSON forbids"
                )
            log.error("app %s: request cannot be passed to JS: %s", app.slug, str(error))
            return error_response(500, "the request cannot be passed to the handler")
        except (TypeError, RecursionError) as error:
            log.error("app %s: request cannot be passed to JS: %s", app.slug, str(error))
            return error_response(500, "the request cannot be passed to the handler")
        try:
            key = self._modules.handler_key(job.api_root, job.handler_file)
        except HandlerPathError as error:
            log.error("app %s: %s", app.slug, str(error))
            return error_response(404, "no such handler")
        modules = self._modules.closure(job.api_root, key, job.batch)
        budget = CpuBudget(self.time_limit_seconds)
        entry = modules[0]  # closure() lists the entry first
        if entry.kind == "error" and entry.version is None:
            return error_response(404, f"no handler api/{key}")
        cache_key = (app.uuid, str(job.api_root))
        try:
            runtime = self._runtime_for(job, runtimes)
            envelope = runtime.run(
                key,
                modules,
                request_json,
                budget,
                lambda calls: self._run_host_calls(job, calls),
            )
        except LimitExceeded as error:
            _forget(error)
            runtimes.pop(cache_key, None)
            return self._limit_response(_app_log(app.slug), key, error.kind, budget.used())
        except quickjs.JSException as error:
            _forget(error)
            runtimes.pop(cache_key, None)
            first = str(error).split("\n", 1)[0]
            _app_log(app.slug).error("api/%s failed: %s", key, str(error), extra={"app": app.slug})
            return error_response(500, first.removeprefix("RangeError: "))
        except BridgeFault as error:
            _forget(error)
            runtimes.pop(cache_key, None)
            log.error("app %s: api/%s: JS bridge fault: %s", app.slug, key, str(error))
            return error_response(500, "internal error in the JS engine")
        except Exception as error:
            log.error("app %s: api/%s: JS engine error\n%s", app.slug, key, _traceback())
            _forget(error)
            runtimes.pop(cache_key, None)
            return error_response(500, "internal error in the JS engine")

        if "error" in envelope:
            limit = envelope.get("limit")
            if limit in ("time", "memory"):
                runtimes.pop(cache_key, None)
                return self._limit_response(_app_log(app.slug), key, limit, budget.used())
            if envelope.get("name") == "NeverSettled":
                runtimes.pop(cache_key, None)  # it may have broken its own bridge
            message = str(envelope.get("error"))
            name = str(envelope.get("name") or "Error")
            stack = str(envelope.get("stack") or "")
            _app_log(app.slug).error(
                "api/%s threw %s: %s\n%s",
                key,
                name,
                message,
                stack.rstrip(),
                extra={"app": app.slug},
            )
            return error_response(500, message)
        try:
            return response_from_envelope(envelope)
        except BadResponseError as error:
            _app_log(app.slug).error("api/%s: %s", key, str(error), extra={"app": app.slug})
            return error_response(500, str(error))

    def _limit_response(
        self, app_log: logging.Logger, key: str, kind: str, used: float
    ) -> JsResponse:
        slug = app_log.name.removeprefix("fazt.app.")
        if kind == "time":
            # The wrapper's clock counts every thread of the process; say so when the
            # handler itself used clearly less than its budget (see CpuBudget).
            early = (
                f", after {used:.2f} s of its own CPU: other threads' time counted"
                if used < 0.9 * self.time_limit_seconds
                else ""
            )
            app_log.error(
                "api/%s exceeded its CPU time limit (%s%s); context discarded",
                key,
                format_seconds(self.time_limit_seconds),
                early,
                extra={"app": slug},
            )
            return time_limit_response(self.time_limit_seconds)
        app_log.error(
            "api/%s exceeded its memory limit (%d MB); context discarded",
            key,
            self.memory_limit_mb,
            extra={"app": slug},
        )
        return memory_limit_response(self.memory_limit_mb)

    # -- host calls (worker side) ------------------------------------------------------

    def _run_host_calls(self, job: _Job, calls: Sequence[HostCall]) -> list[HostResult]:
        """Run a batch of host calls on the job's IOLoop and wait for all of them."""
        _, spaces = self._namespaces
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
            self._add_spare_if_all_busy()
        waiting = set(pending)
        stop = self._stop
        deadline = time.monotonic() + HOST_CALL_TIMEOUT_SECONDS
        # Short waits so that close() is noticed even while the IOLoop is gone.
        while waiting and not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            _, waiting = concurrent.futures.wait(
                waiting, timeout=min(left, 0.25), return_when=concurrent.futures.FIRST_COMPLETED
            )
        for future, (call_id, name) in pending.items():
            if not future.done():
                future.cancel()
                reason = (
                    "the server is shutting down"
                    if stop.is_set()
                    else (f"timed out after {format_seconds(HOST_CALL_TIMEOUT_SECONDS)}")
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
