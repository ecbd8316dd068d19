"""A test-only kernel plugin: what the realtime core holds, for the reliability suite.

Not reachable in production: it lives under ``tests/`` (not in the ``fazt``
package) and is loaded only by a config that names it by import path,
``"plugins": ["realtime", "tests.reliability.inspector:InspectorPlugin"]``.

``GET /_inspect`` (inside any app) answers the realtime core's own state:
local sessions and the closing ones among them, local channels, the core's
background tasks and every asyncio task of the server (how many, and how
many run each coroutine). ``?deep=1`` adds
counts of live objects found by the garbage collector (sessions, WebSocket
connections, WebSocket handlers): a session the hub forgot but something
still holds shows there. ``?client=ID`` answers only that client's state
(``open``, ``closing`` or ``gone``): cheap enough to poll.

``?stalls=1`` answers what the plugin watched since the server started: the
longest lateness of a 10 ms IOLoop timer (how long the loop was kept from its
other work) and the longest garbage-collector pass, with every one over 50 ms
as ``[seconds since start, wall ms, IOLoop thread CPU ms, process CPU ms]``
over the same interval (loop stalls add the IOLoop thread's run-queue wait,
ms). The loop thread's CPU close to the wall time: the loop was busy with
fazt's own work. The process's close to it but not the loop's: another thread
of the server (a JS worker) ran, and the loop waited for the GIL. The
run-queue wait close to it: the loop was runnable but the machine gave it no
CPU (other work on shared cores); ``waitingForCpu`` lists those intervals.
"""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path
from typing import Any, Final

import tornado.ioloop
import tornado.web

from fazt.kernel.app import App
from fazt.kernel.kernel import Kernel
from fazt.kernel.plugin import Plugin, PluginRoute
from fazt.realtime.connection import WebSocketConnection
from fazt.realtime.handler import RealtimeHandler
from fazt.realtime.plugin import RealtimePlugin
from fazt.realtime.session import Session
from fazt.realtime.transport import SocketTransport

#: A loop lateness or a GC pass longer than this is listed with its moment.
STALL_MS: Final = 50.0
#: At most this many listed (the maximum is always kept).
MAX_LISTED: Final = 100
#: A loop stall during which the IOLoop thread waited on the run queue (runnable,
#: but the machine gave it no CPU) for at least this share of the stall.
WAITING_FOR_CPU_SHARE: Final = 0.5
#: At most this many such intervals are kept (a soak of hours stays bounded).
MAX_WAITING: Final = 10_000
#: The IOLoop thread's scheduler accounting: CPU time, run-queue wait (ns), slices.
SCHEDSTAT: Final = Path("/proc/thread-self/schedstat")


def _run_queue_wait_ns() -> int:
    """How long this thread has waited, runnable, for a CPU (``schedstat``, Linux)."""
    try:
        return int(SCHEDSTAT.read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


class StallWatch:
    """The IOLoop's lateness (a 10 ms timer) and the GC's passes, in the server.

    Every loop stall is also measured in CPU time (the IOLoop thread's and the
    whole process's) and in run-queue wait (the time the IOLoop thread was
    runnable but the operating system gave it no CPU), so that a stall of
    fazt's own (the loop busy, blocked in a call, or waiting for the GIL while
    a JS worker runs) can be told from one where the machine had no CPU for it.
    The intervals of the latter are kept, on the machine-wide monotonic clock,
    for the health check to line up with its own answers.
    """

    PERIOD_SECONDS: Final = 0.01

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.loop_max_ms = 0.0
        self.gc_max_ms = 0.0
        self.loop_stalls: list[tuple[float, ...]] = []
        self.gc_stalls: list[tuple[float, ...]] = []
        #: [start, end] (monotonic seconds) of loop stalls spent waiting for a CPU
        self.waiting_for_cpu: list[tuple[float, float]] = []
        self._last_tick = 0.0
        self._last_cpu = (0.0, 0.0)
        self._last_wait_ns = 0
        self._gc_started = (0.0, 0.0, 0.0)
        self._timer: tornado.ioloop.PeriodicCallback | None = None

    def start(self) -> None:
        self._last_tick = time.monotonic()
        self._last_cpu = (time.thread_time(), time.process_time())
        self._last_wait_ns = _run_queue_wait_ns()
        self._timer = tornado.ioloop.PeriodicCallback(self._tick, self.PERIOD_SECONDS * 1000)
        self._timer.start()
        gc.callbacks.append(self._gc)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)

    def _tick(self) -> None:
        now, cpu = time.monotonic(), (time.thread_time(), time.process_time())
        wait_ns = _run_queue_wait_ns()
        late_ms = (now - self._last_tick - self.PERIOD_SECONDS) * 1000
        since, before, waited_ms = (
            self._last_tick,
            self._last_cpu,
            (wait_ns - self._last_wait_ns) / 1e6,
        )
        self._last_tick, self._last_cpu, self._last_wait_ns = now, cpu, wait_ns
        self.loop_max_ms = max(self.loop_max_ms, late_ms)
        if late_ms <= STALL_MS:
            return
        if len(self.loop_stalls) < MAX_LISTED:
            self.loop_stalls.append((*self._record(now, late_ms, before, cpu), round(waited_ms, 1)))
        if waited_ms >= WAITING_FOR_CPU_SHARE * late_ms and len(self.waiting_for_cpu) < MAX_WAITING:
            self.waiting_for_cpu.append((round(since, 3), round(now, 3)))

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        now, thread_cpu, process_cpu = time.monotonic(), time.thread_time(), time.process_time()
        if phase == "start":
            self._gc_started = (now, thread_cpu, process_cpu)
            return
        started, *cpu_before = self._gc_started
        took_ms = (now - started) * 1000
        self.gc_max_ms = max(self.gc_max_ms, took_ms)
        if took_ms > STALL_MS and len(self.gc_stalls) < MAX_LISTED:
            record = self._record(now, took_ms, tuple(cpu_before), (thread_cpu, process_cpu))
            self.gc_stalls.append(record)

    def _record(
        self, now: float, wall_ms: float, cpu_before: tuple[float, ...], cpu: tuple[float, ...]
    ) -> tuple[float, ...]:
        """``(seconds since start, wall ms, IOLoop thread CPU ms, process CPU ms)``."""
        thread_ms, process_ms = (
            (after - was) * 1000 for after, was in zip(cpu, cpu_before, strict=True)
        )
        return (
            round(now - self.started, 2),
            round(wall_ms, 1),
            round(thread_ms, 1),
            round(process_ms, 1),
        )

    def report(self) -> dict[str, Any]:
        return {
            "loopMaxLagMs": round(self.loop_max_ms, 1),
            "loopStalls": self.loop_stalls,
            "gcMaxMs": round(self.gc_max_ms, 1),
            "gcStalls": self.gc_stalls,
            "waitingForCpu": self.waiting_for_cpu,
        }


class InspectHandler(tornado.web.RequestHandler):
    def initialize(self, kernel: Kernel, app: App | None, watch: StallWatch) -> None:
        self.kernel = kernel
        self.watch = watch

    def get(self) -> None:
        plugin = self.kernel.plugin("realtime")
        assert isinstance(plugin, RealtimePlugin)
        core = plugin.core
        client = self.get_query_argument("client", None)
        if client is not None:
            self.write({"state": _client_state(plugin, client)})
            return
        if self.get_query_argument("stalls", None):
            self.write(self.watch.report())
            return
        sessions = list(core.hub.sessions())
        stats: dict[str, Any] = {
            "sessions": len(sessions),
            "closing": sum(1 for session in sessions if session.closed),
            "channels": sum(len(state.channels) for state in core.hub._apps.values()),
            "coreTasks": len(core.tasks._tasks),
            "asyncioTasks": len(asyncio.all_tasks()),
            "asyncioTaskNames": _task_names(),
        }
        if self.get_query_argument("deep", None):
            gc.collect()
            kinds = {"sessionObjects": Session, "transportObjects": WebSocketConnection}
            counts = dict.fromkeys(kinds, 0)
            handlers = 0
            for item in gc.get_objects():
                for name, kind in kinds.items():
                    if type(item) is kind:
                        counts[name] += 1
                if isinstance(item, RealtimeHandler):
                    handlers += 1
            stats.update(counts, handlerObjects=handlers)
        self.write(stats)


def _task_names() -> dict[str, int]:
    """How many asyncio tasks run each coroutine (by qualified name): a leak names itself."""
    names: dict[str, int] = {}
    for task in asyncio.all_tasks():
        coro = task.get_coro()
        name = getattr(coro, "__qualname__", None) or type(coro).__name__
        names[name] = names.get(name, 0) + 1
    return dict(sorted(names.items()))


def _client_state(plugin: RealtimePlugin, client_id: str) -> str:
    for session in plugin.core.hub.sessions():
        if session.client_id == client_id:
            # A transport closes itself (4101) without the session knowing yet.
            transport = session.transport
            closing = isinstance(transport, SocketTransport) and transport.closing
            return "closing" if session.closed or closing else "open"
    return "gone"


class InspectorPlugin(Plugin):
    """Adds ``/_inspect`` to every app (see the module docstring)."""

    name = "inspect"

    def __init__(self) -> None:
        self.watch = StallWatch()

    def routes(self) -> list[PluginRoute]:
        return [PluginRoute("/_inspect", InspectHandler, {"watch": self.watch})]

    async def start(self, kernel: Kernel) -> None:
        self.watch.start()

    async def stop(self, kernel: Kernel) -> None:
        self.watch.stop()
