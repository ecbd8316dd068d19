"""Running one job on a worker thread, and mapping everything that can go wrong to a response.

An :class:`Executor` belongs to one worker thread. It keeps that thread's
QuickJS contexts (one per app, LRU-bounded), runs a job in its app's context,
and turns the outcome into a finished response: the handler's own answer
(validated by ``response``), or a JSON error for a limit, a thrown error or a
fault of the bridge. A context that hit a limit, or misbehaved, is discarded
and rebuilt on the app's next request. An export call (``Job.export``) runs
the same way and answers with the same error responses; its success is a 200
whose body is ``{"value": ...}`` (``{}`` for ``undefined``), and a module
without that function is a 404. Errors go to the app's log (one line
each, escaped) or, for faults of the bridge, to ``fazt.js_bridge``.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

import quickjs

from fazt.contracts.js_engine import JsResponse, json_error
from fazt.js_bridge.app_log import app_logger, escape_log_text
from fazt.js_bridge.host_calls import HostCallRunner, HostNamespaces
from fazt.js_bridge.jobs import Job
from fazt.js_bridge.modules import HandlerPathError, ModuleStore
from fazt.js_bridge.response import (
    BadResponseError,
    busy_response,
    format_seconds,
    memory_limit_response,
    response_from_envelope,
    time_limit_response,
    wall_time_limit_response,
)
from fazt.js_bridge.runtime import (
    CONTEXT_JSON,
    AppRuntime,
    BridgeFault,
    CpuBudget,
    LimitExceeded,
    LimitKind,
    classify,
)
from fazt.js_bridge.worker_errors import forget_frames, traceback_text
from fazt.metrics.requests import REQUESTS

log = logging.getLogger("fazt.js_bridge")

#: The ``outcome`` label of ``fazt_js_executions_total`` for each limit.
_LIMIT_OUTCOMES: dict[LimitKind, str] = {
    "time": "cpu_limit",
    "wall": "wall_limit",
    "memory": "memory_limit",
}

#: Contexts a worker keeps warm (an idle context holds about 80 KB).
MAX_CONTEXTS_PER_THREAD = 256
#: QuickJS's own stack limit (the worker threads' C stack is far larger, see workers).
JS_STACK_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class SandboxLimits:
    """What one request and one app context may use (``docs/js-handlers.md``, Limits)."""

    time_limit_seconds: float
    wall_time_limit_seconds: float
    memory_limit_mb: int
    console_limit_bytes: int


class Executor:
    """Runs jobs on the one worker thread that created it; see the module docstring."""

    def __init__(
        self,
        *,
        limits: SandboxLimits,
        modules: ModuleStore,
        namespaces: HostNamespaces,
        host_calls: HostCallRunner,
    ) -> None:
        self._limits = limits
        self._modules = modules
        self._namespaces = namespaces
        self._host_calls = host_calls
        self._runtimes: OrderedDict[tuple[str, str], AppRuntime] = OrderedDict()
        #: How the current job's JS run ended (ok, error, a limit); None: JS never ran.
        self._outcome: str | None = None

    def close(self) -> None:
        """Free this thread's contexts (on this thread)."""
        self._runtimes.clear()

    def execute(self, job: Job) -> JsResponse:
        """Run ``job``; never raises: every failure is a JSON error response."""
        self._outcome = None
        started = time.perf_counter()
        try:
            response = self._execute(job)
        except Exception as error:  # a bug here must not kill the worker
            log.error("JS worker failed on %s\n%s", job.handler_file, traceback_text())
            forget_frames(error)
            self._runtimes.pop(self._cache_key(job), None)
            self._outcome = "error"
            response = json_error(500, "internal error in the JS engine")
        if self._outcome is not None:
            seconds = time.perf_counter() - started
            REQUESTS.js_executed(job.context.app.slug, self._outcome, seconds)
        return response

    @staticmethod
    def _cache_key(job: Job) -> tuple[str, str]:
        return (job.context.app.uuid, str(job.api_root))

    def _execute(self, job: Job) -> JsResponse:
        if time.monotonic() >= job.deadline:
            return waited_too_long(job, self._wall_limit(job))
        slug = job.context.app.slug
        export = job.export
        try:
            request_json = CONTEXT_JSON.encode(job.request)
        except (TypeError, ValueError, RecursionError) as error:
            what = "request" if export is None else "argument"
            log.error("app %s: %s cannot be passed to JS: %s", slug, what, str(error))
            return json_error(500, f"the {what} cannot be passed to JS")
        try:
            key = self._modules.handler_key(job.api_root, job.handler_file)
        except HandlerPathError as error:
            log.error("app %s: %s", slug, str(error))
            return json_error(404, "no such handler")
        modules = self._modules.closure(job.api_root, key, job.batch)
        entry = modules[0]  # closure() lists the entry first
        if entry.kind == "error" and entry.version is None:
            return json_error(404, f"no {'handler' if export is None else 'module'} api/{key}")
        # What log lines name: the file, and for an export call the function too.
        label = key if export is None or export.name is None else f"{key} {export.name}"
        # Decoded here, off the IOLoop; JS parses req.json from it, without the GIL.
        body_text = job.body.decode("utf-8", errors="replace")
        budget = CpuBudget(self._limits.time_limit_seconds)
        cache_key = self._cache_key(job)
        try:
            runtime = self._runtime_for(job)
            envelope = runtime.run(
                key,
                modules,
                request_json,
                body_text,
                budget,
                job.deadline,
                lambda calls: self._host_calls.run(job, calls),
                export=None if export is None else export.name,
                list_functions=export is not None and export.name is None,
            )
        except LimitExceeded as error:
            forget_frames(error)
            self._runtimes.pop(cache_key, None)
            return self._limit_response(job, label, error.kind, budget.used())
        except quickjs.JSException as error:
            forget_frames(error)
            self._runtimes.pop(cache_key, None)
            self._outcome = "error"
            first = str(error).split("\n", 1)[0]
            app_logger(slug).error(
                "api/%s failed: %s", label, escape_log_text(str(error)), extra={"app": slug}
            )
            return json_error(500, first.removeprefix("RangeError: "))
        except BridgeFault as error:
            forget_frames(error)
            self._runtimes.pop(cache_key, None)
            self._outcome = "error"
            log.error("app %s: api/%s: JS bridge fault: %s", slug, label, str(error))
            return json_error(500, "internal error in the JS engine")

        # A limit reached in JS overwrites this in _limit_response.
        self._outcome = "error" if "error" in envelope else "ok"
        if "error" in envelope:
            return self._error_response(job, label, envelope, budget, runtime)
        try:
            built = response_from_envelope(envelope)
        except BadResponseError as error:
            self._outcome = "error"
            app_logger(slug).error(
                "api/%s: %s", label, escape_log_text(str(error)), extra={"app": slug}
            )
            return json_error(500, str(error))
        for note in built.dropped:
            app_logger(slug).warning("api/%s: %s", label, note, extra={"app": slug})
        return built.response

    def _error_response(
        self,
        job: Job,
        key: str,
        envelope: dict[str, object],
        budget: CpuBudget,
        runtime: AppRuntime,
    ) -> JsResponse:
        """The response for an *error* envelope: the handler threw, or hit a limit in JS."""
        slug = job.context.app.slug
        cache_key = self._cache_key(job)
        limit = envelope.get("limit")
        if limit == "memory":
            self._runtimes.pop(cache_key, None)
            return self._limit_response(job, key, "memory", budget.used())
        if limit == "time":
            self._runtimes.pop(cache_key, None)
            # The interrupt may have been armed by the wall-clock limit (see AppRuntime).
            kind: LimitKind = runtime.interrupted_by()
            return self._limit_response(job, key, kind, budget.used())
        if envelope.get("name") == "NeverSettled":
            self._runtimes.pop(cache_key, None)  # it may have broken its own bridge
        message = str(envelope.get("error"))
        name = str(envelope.get("name") or "Error")
        stack = str(envelope.get("stack") or "").rstrip()
        app_logger(slug).error(
            "api/%s threw %s: %s%s",
            key,
            escape_log_text(name),
            escape_log_text(message),
            f" | stack: {escape_log_text(stack)}" if stack else "",
            extra={"app": slug},
        )
        return json_error(500, message)

    def _runtime_for(self, job: Job) -> AppRuntime:
        app = job.context.app
        cache_key = self._cache_key(job)
        generation, spaces = self._namespaces.snapshot()
        runtime = self._runtimes.get(cache_key)
        if runtime is not None and runtime.generation == generation:
            self._runtimes.move_to_end(cache_key)
            return runtime
        self._runtimes.pop(cache_key, None)
        try:
            runtime = AppRuntime(
                slug=app.slug,
                uuid=app.uuid,
                namespaces={name: sorted(fns) for name, fns in spaces.items()},
                memory_limit_bytes=self._limits.memory_limit_mb * 1024 * 1024,
                stack_bytes=JS_STACK_BYTES,
                console_limit_bytes=self._limits.console_limit_bytes,
                generation=generation,
            )
        except Exception as error:
            # The original stays as __context__; the caller clears its frames.
            if isinstance(classify(error), LimitExceeded):
                raise LimitExceeded("memory") from None
            reason = str(error).split("\n", 1)[0] or type(error).__name__
            raise BridgeFault(f"cannot create a JS context: {reason}") from None
        self._runtimes[cache_key] = runtime
        while len(self._runtimes) > MAX_CONTEXTS_PER_THREAD:
            self._runtimes.popitem(last=False)
        return runtime

    def _wall_limit(self, job: Job) -> float:
        """The job's wall-clock limit: its own (an export call's), else the sandbox's."""
        own = job.wall_limit_seconds
        return self._limits.wall_time_limit_seconds if own is None else own

    def _limit_response(self, job: Job, key: str, kind: LimitKind, used: float) -> JsResponse:
        self._outcome = _LIMIT_OUTCOMES[kind]
        slug = job.context.app.slug
        app_log = app_logger(slug)
        limits = self._limits
        if kind == "time":
            # The wrapper's clock counts every thread of the process; say so when the
            # handler itself used clearly less than its budget (see CpuBudget).
            early = (
                f", after {used:.2f} s of its own CPU: other threads' time counted"
                if used < 0.9 * limits.time_limit_seconds
                else ""
            )
            app_log.error(
                "api/%s exceeded its CPU time limit (%s%s); context discarded",
                key,
                format_seconds(limits.time_limit_seconds),
                early,
                extra={"app": slug},
            )
            return time_limit_response(limits.time_limit_seconds)
        if kind == "wall":
            app_log.error(
                "api/%s exceeded its wall-clock time limit (%s, %.2f s of its own CPU); "
                "context discarded",
                key,
                format_seconds(self._wall_limit(job)),
                used,
                extra={"app": slug},
            )
            return wall_time_limit_response(self._wall_limit(job))
        app_log.error(
            "api/%s exceeded its memory limit (%d MB); context discarded",
            key,
            limits.memory_limit_mb,
            extra={"app": slug},
        )
        return memory_limit_response(limits.memory_limit_mb)


def waited_too_long(job: Job, wall_seconds: float) -> JsResponse:
    """The answer to a job whose wall-clock time ran out before it could start: retry."""
    slug = job.context.app.slug
    app_logger(slug).warning(
        "a request waited %s for a free JS worker (this app's other requests held its "
        "share of the workers); answered 503",
        format_seconds(wall_seconds),
        extra={"app": slug},
    )
    return busy_response()
