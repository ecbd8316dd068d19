"""One QuickJS context for one app, driven by exactly one worker thread.

The ``quickjs`` wrapper aborts the process when two threads touch one runtime,
even one after the other, so an :class:`AppRuntime` is created, used and dropped
on the same thread (the engine's worker that owns it); nothing here locks.

Create one only on a thread whose C stack is far larger than ``stack_bytes``
(the engine's workers have 32 MB): QuickJS's stack check trusts that number,
and with an 8 MB limit on an 8 MB main-thread stack, deep recursion in
``JSON.stringify`` segfaults (seen on this machine).

A request is a sequence of *slices*: the ``__fazt_run`` call, then after each
batch of host calls one slice that settles them (``__fazt_settle``), runs every
pending JS job (``execute_pending_job``) and polls (``__fazt_poll``): the limit
is checked and armed once per batch, not once per job. Between slices the host
calls that JS queued are run (by the engine, on the IOLoop, or on the worker
when they post) and the log lines JS buffered are written. Each slice is armed
with the wrapper's time limit set to what is left of the request's CPU budget
or of its wall-clock time, whichever is less; see :class:`CpuBudget` for why
the CPU budget is measured per thread.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any, Literal

import quickjs

from fazt.js_bridge.app_log import app_logger, escape_log_text
from fazt.js_bridge.modules import ModuleLines, ModuleSource

HostCall = tuple[int, str, list[Any]]  # (call id, "fazt.ns.fn", JSON-decoded args)
HostResult = tuple[int, bool, str]  # (call id, ok, JSON result or rejection message)
HostRunner = Callable[[Sequence[HostCall]], list[HostResult]]

PRELUDE_SOURCE = resources.files("fazt.js_bridge").joinpath("prelude.js").read_text("utf-8")
_INTERNALS = (
    "__fazt_run",
    "__fazt_call",
    "__fazt_poll",
    "__fazt_settle",
    "__fazt_define",
    "__fazt_reset",
)
_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
#: One console line is cut to this many characters.
MAX_LOG_CHARS = 8192
#: Encodes what Python hands into a context (a request, a host call's result):
#: ASCII-only, so nothing that C cannot take reaches the context, and no NaN.
#: Made once: ``json.dumps`` with options builds a new encoder per call.
CONTEXT_JSON = json.JSONEncoder(ensure_ascii=True, allow_nan=False)


def _encode_results(results: Sequence[HostResult]) -> str:
    """``[[id, true, <result JSON>], [id, false, "message"], ...]`` without re-encoding results."""
    parts = [
        f"[{call_id},true,{text}]" if ok else f"[{call_id},false,{json.dumps(text)}]"
        for call_id, ok, text in results
    ]
    return "[" + ",".join(parts) + "]"


LimitKind = Literal["time", "wall", "memory"]


class LimitExceeded(Exception):
    """The request ran out of CPU time (``time``), wall-clock time (``wall``) or
    memory; its context must be discarded."""

    def __init__(self, kind: LimitKind) -> None:
        super().__init__(kind)
        self.kind: LimitKind = kind


class BridgeFault(Exception):
    """The context misbehaved (wrapper error, unreadable poll); discard the context."""


class CpuBudget:
    """A request's CPU time budget, charged with *this thread's* CPU time.

    The wrapper's own limit uses ``clock()``, the CPU time of the whole process,
    and restarts at every slice. Charging ``time.thread_time()`` across slices
    makes the budget cover the whole request (a handler cannot escape it by
    awaiting host calls) and makes other threads' work not count between
    slices. Inside one slice only the wrapper can interrupt JS, so the slice is
    armed with the remaining budget in process CPU time: under parallel CPU
    load a slice can be stopped early, never late.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        # Started by the first slice, not here: reading a thread's CPU clock is a
        # syscall (not vDSO), and the first slice has the whole budget anyway.
        self._start: float | None = None

    def used(self) -> float:
        """CPU seconds this thread spent on the request since its first slice."""
        if self._start is None:
            return 0.0
        return time.thread_time() - self._start

    def remaining(self) -> float:
        if self._start is None:
            self._start = time.thread_time()
            return self.seconds
        return self.seconds - self.used()


def classify(error: Exception) -> Exception:
    """Map a wrapper exception to LimitExceeded, a JS error, or BridgeFault."""
    message = str(error)
    first = message.split("\n", 1)[0].strip()
    if first.startswith("InternalError: interrupted"):
        return LimitExceeded("time")
    if first in ("null", "InternalError: out of memory"):
        return LimitExceeded("memory")
    if isinstance(error, quickjs.JSException):
        return error  # type: ignore[no-any-return]
    return BridgeFault(f"{type(error).__name__}: {first}")


class AppRuntime:
    """A context with the prelude installed, for one app (slug, uuid) on one thread."""

    def __init__(
        self,
        *,
        slug: str,
        uuid: str,
        namespaces: dict[str, list[str]],
        memory_limit_bytes: int,
        stack_bytes: int,
        console_limit_bytes: int,
        generation: int,
    ) -> None:
        self.slug = slug
        self.generation = generation
        self.log = app_logger(slug)
        self._ctx = quickjs.Context()
        self._ctx.set_memory_limit(memory_limit_bytes)
        self._ctx.set_max_stack_size(stack_bytes)
        config = {
            "app": {"slug": slug, "uuid": uuid},
            "namespaces": [[ns, names] for ns, names in sorted(namespaces.items())],
            "maxLogChars": MAX_LOG_CHARS,
            "consoleLimitBytes": console_limit_bytes,
        }
        install = self._ctx.eval(PRELUDE_SOURCE)
        install(self._ctx.parse_json(json.dumps(config)))
        self._run, self._call, self._poll, self._settle, self._define, self._reset = (
            self._ctx.get(name) for name in _INTERNALS
        )
        self._ctx.eval(";".join(f"delete globalThis.{name}" for name in _INTERNALS))
        self._loaded: dict[str, tuple[Any, str, str]] = {}  # key -> (version, kind, text)
        self._lines = ModuleLines(reserved=PRELUDE_SOURCE.count("\n") + 1)
        self._budget = CpuBudget(0.0)
        self._deadline = 0.0  # time.monotonic() at which the request's wall-clock time is up
        #: the limit the current slice was armed with ("wall" when less wall time than
        #: CPU budget was left): what an interrupt of that slice means
        self._armed_for: LimitKind = "time"

    # -- slices ------------------------------------------------------------------

    def _slice(self, fn: Callable[..., Any], *args: Any) -> Any:
        cpu_left = self._budget.remaining()
        wall_left = self._deadline - time.monotonic()
        if wall_left <= 0:
            raise LimitExceeded("wall")
        if cpu_left <= 0:
            raise LimitExceeded("time")
        # The wrapper counts process CPU time; a thread that gets the CPU counts at
        # least as fast as the wall clock, so the slice stops by the deadline too.
        self._armed_for = "wall" if wall_left < cpu_left else "time"
        self._ctx.set_time_limit(min(cpu_left, wall_left))
        try:
            return fn(*args)
        except Exception as error:  # the wrapper raises JSException, StackOverflow, SystemError
            # No local may hold the raised exception: its traceback holds this frame,
            # and a cycle would leave the context to the cyclic GC, on any thread.
            if classify(error) is error:
                raise
            if getattr(classify(error), "kind", None) == "time":
                raise LimitExceeded(self.interrupted_by()) from error
            raise classify(error) from error

    def wall_time_is_up(self) -> bool:
        """Whether the current request has used up its wall-clock time."""
        return time.monotonic() >= self._deadline

    def interrupted_by(self) -> LimitKind:
        """Which limit an interrupt of the current slice enforced.

        The wrapper's clock is the process's CPU time, which runs faster than the
        wall clock while other threads work, so a slice armed with the wall time
        left can be interrupted before the deadline: it is still the wall-clock
        limit that stopped it, not the CPU budget.
        """
        return "wall" if self.wall_time_is_up() else self._armed_for

    # -- modules -------------------------------------------------------------------

    def _sync_modules(self, modules: Sequence[ModuleSource]) -> None:
        changed = False
        for module in modules:
            stamp = (module.version, module.kind, module.text if module.version is None else "")
            if self._loaded.get(module.key) == stamp:
                continue
            changed = True
            if module.kind == "js":
                try:
                    # At its own lines, so that locations name the file (see ModuleLines).
                    source = self._lines.wrap(module.key, module.text)
                    factory = self._slice(self._ctx.eval, source)
                except quickjs.JSException as error:
                    message = self._lines.compile_error(module.key, str(error))
                    self._slice(self._define, module.key, "error", message)
                else:
                    self._slice(self._define, module.key, "js", factory)
            else:
                self._slice(self._define, module.key, module.kind, module.text)
            self._loaded[module.key] = stamp
        if changed:
            self._slice(self._reset)

    # -- requests ------------------------------------------------------------------

    def run(
        self,
        entry_key: str,
        modules: Sequence[ModuleSource],
        request_json: str,
        body_text: str,
        budget: CpuBudget,
        deadline: float,
        run_host_calls: HostRunner,
        export: str | None = None,
        list_functions: bool = False,
    ) -> dict[str, Any]:
        """Run the handler ``entry_key`` to completion and return its envelope.

        ``request_json`` is ``req`` without ``body`` and ``json``; JS sets those
        from ``body_text`` (parsing JSON in the sandbox, where it holds no GIL).
        With ``export``, the module's export of that name is called instead, with
        ``request_json`` as its argument; with ``list_functions``, the envelope
        lists the module's exported functions (see ``prelude.js``).
        ``deadline`` (``time.monotonic()``) ends the request's wall-clock time.
        Raises LimitExceeded, BridgeFault or ``quickjs.JSException`` (a JS error
        outside the handler's promise, e.g. a stack overflow at top level); after
        any of them the caller discards this runtime.
        """
        self._budget = budget
        self._deadline = deadline
        self._sync_modules(modules)
        # A poll, or "" if not done.
        if export is not None or list_functions:
            raw = self._slice(self._call, entry_key, export or "", request_json, list_functions)
        else:
            raw = self._slice(self._run, entry_key, request_json, body_text)
        drained = False  # whether the job queue is known to be empty
        while True:
            if not raw:
                raw = self._slice(self._drain_and_poll)
                drained = True
            calls, done = self._read_poll(raw)
            raw = ""
            if calls:
                results = run_host_calls(calls)
                raw = self._slice(self._settle_and_poll, _encode_results(results))
                drained = True
                continue
            # A synchronous finish may leave jobs (a then() nobody awaited): run them too.
            if not drained:
                drained = True
                if self._slice(self._ctx.execute_pending_job):
                    continue
            if isinstance(done, dict):
                if isinstance(done.get("stack"), str):
                    done["stack"] = self._lines.rewrite_stack(done["stack"])
                return done
            return {
                "error": "the handler's promise never settled (it awaits something that "
                "nothing resolves; fazt has no timers)",
                "name": "NeverSettled",
                "stack": "",
                "limit": None,
            }

    def _drain_and_poll(self) -> Any:
        """Run every pending JS job, then poll (inside one slice)."""
        execute = self._ctx.execute_pending_job
        while execute():
            pass
        return self._poll()

    def _settle_and_poll(self, results_text: str) -> Any:
        """Settle a batch of host calls, run what that set going, then poll (one slice)."""
        self._settle(results_text)
        return self._drain_and_poll()

    def _read_poll(self, raw: Any) -> tuple[list[HostCall], Any]:
        """Decode one poll string, write its log lines, return (host calls, done envelope)."""
        try:
            poll = json.loads(raw)
            calls = [(int(c[0]), str(c[1]), list(c[2])) for c in poll["calls"]]
            logs = poll["logs"]
            done = poll["done"]
        except (TypeError, ValueError, KeyError, IndexError) as error:
            raise BridgeFault(f"unreadable poll from the context: {error}") from error
        self._write_logs(logs)
        return calls, done

    def _write_logs(self, logs: Any) -> None:
        """One record per console call; the handler's text is escaped onto one line."""
        if isinstance(logs, list):
            for entry in logs:
                if isinstance(entry, list) and len(entry) == 2:
                    level = _LOG_LEVELS.get(str(entry[0]), logging.INFO)
                    # A logged Error's stack names files; then it all goes on one line.
                    text = escape_log_text(self._lines.rewrite_stack(str(entry[1])))
                    self.log.log(level, "%s", text, extra={"app": self.slug})
