"""Realtime hooks: an app's ``api/_realtime.js`` decides, vets and reacts.

An app may export ``onSubscribe``, ``onPublish``, ``onJoin``, ``onLeave``,
``onOccupied`` and ``onVacated`` from ``api/_realtime.js`` (a path segment
starting with ``_`` is never an HTTP route). A hook runs only for channels
whose rule opts in (``"hooks": [...]``, ``channels.HOOK_KINDS``;
``HOOK_FUNCTIONS`` maps each kind to its functions), so a channel without
hooks pays nothing.

Where each one is decided, once:

* ``onSubscribe``: in ``commands._may_subscribe``, after the static rules
  allowed the subscribe; never cached (``allow_subscribe``);
* ``onPublish``: for a client publish, in ``commands``; the connection's
  messages on a channel are published in the order they were sent
  (``publish_lanes``), whatever order their hooks finish in (``vet_publish``);
* ``onJoin``/``onLeave``: in ``membership``, where the registry said that a
  user's first connection joined or last one left a presence channel (or the
  sweep of a dead node reported it): exactly one node;
* ``onOccupied``/``onVacated``: in ``membership``, where the registry said
  that a channel got its first subscriber or lost its last one, cluster-wide,
  on the node that made the change. A vacancy is *held* for
  ``vacatedDelaySeconds`` first; a subscriber back within it cancels it, and
  then neither event fires. A dead node's channels are reported by the sweep,
  at once.

Limits. Calls run on the JS workers (``HookCaller``, the kernel's engine) under
the app's sandbox limits and ``timeLimitMs`` each. At most
``maxPendingPerApp`` calls of one app wait or run at once: past it a decision
hook fails closed and an event hook is dropped; drops are counted and logged
at most once per ``DROP_LOG_INTERVAL_SECONDS`` per app.

Delivery. Decision hooks fail closed. Event hooks are best-effort and
at-most-once: a failure is logged (with the app and the hook) and not retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from fazt.contracts.app import App
from fazt.contracts.host_calls import HostCallContext
from fazt.contracts.js_engine import ExportResult, JsEngineLike
from fazt.edge.log_throttle import LogThrottle
from fazt.realtime.backplane.registry import Registry
from fazt.realtime.channels import ChannelRules
from fazt.realtime.hook_verdicts import Verdict, publish_verdict, subscribe_verdict
from fazt.realtime.presence import user_from_claims
from fazt.realtime.session import Session
from fazt.realtime.tasks import Tasks

log = logging.getLogger("fazt.realtime.hooks")

#: The module, inside the app's ``api/`` folder, that exports the hooks.
HOOK_MODULE: Final = "_realtime.js"
#: The functions each hook kind of a channel rule runs.
HOOK_FUNCTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "subscribe": ("onSubscribe",),
    "publish": ("onPublish",),
    "presence": ("onJoin", "onLeave"),
    "occupancy": ("onOccupied", "onVacated"),
}
#: An app's dropped hook calls are logged at most once per this many seconds.
DROP_LOG_INTERVAL_SECONDS: Final = 10.0
#: How long a stopping node waits for its hooks in flight.
STOP_WAIT_SECONDS: Final = 5.0

DEFAULT_TIME_LIMIT_MS: Final = 1000
DEFAULT_VACATED_DELAY_SECONDS: Final = 3.0
DEFAULT_MAX_PENDING_PER_APP: Final = 50


def hooks_schema() -> dict[str, Any]:
    """JSON Schema of the kernel config's ``realtime.hooks`` section."""
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "timeLimitMs": {"type": "integer", "minimum": 1, "default": DEFAULT_TIME_LIMIT_MS},
            "vacatedDelaySeconds": {
                "type": "number",
                "minimum": 0,
                "default": DEFAULT_VACATED_DELAY_SECONDS,
            },
            "maxPendingPerApp": {
                "type": "integer",
                "minimum": 1,
                "default": DEFAULT_MAX_PENDING_PER_APP,
            },
        },
    }


@dataclass(frozen=True)
class HookSettings:
    """``realtime.hooks`` in the kernel config."""

    time_limit_seconds: float = DEFAULT_TIME_LIMIT_MS / 1000
    vacated_delay_seconds: float = DEFAULT_VACATED_DELAY_SECONDS
    max_pending_per_app: int = DEFAULT_MAX_PENDING_PER_APP

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> HookSettings:
        """From a schema-validated ``realtime.hooks`` section (missing keys: defaults)."""
        values = section or {}
        return cls(
            time_limit_seconds=int(values.get("timeLimitMs", DEFAULT_TIME_LIMIT_MS)) / 1000,
            vacated_delay_seconds=float(
                values.get("vacatedDelaySeconds", DEFAULT_VACATED_DELAY_SECONDS)
            ),
            max_pending_per_app=int(values.get("maxPendingPerApp", DEFAULT_MAX_PENDING_PER_APP)),
        )


class HookCaller(Protocol):
    """Runs one hook function of an app and gives what it returned."""

    async def call(
        self, app: App, function: str, argument: dict[str, Any], time_limit_seconds: float
    ) -> ExportResult:
        """Never raises for anything the hook does."""
        ...


class JsHookCaller:
    """Hooks as exports of ``api/_realtime.js``, on the kernel's JS engine and its limits."""

    def __init__(self, engine: JsEngineLike) -> None:
        self._engine = engine

    async def call(
        self, app: App, function: str, argument: dict[str, Any], time_limit_seconds: float
    ) -> ExportResult:
        api_root = Path(app.root) / "api"
        return await self._engine.call_export(
            HostCallContext(app=app),
            api_root / HOOK_MODULE,
            api_root,
            function,
            argument,
            wall_time_limit_seconds=time_limit_seconds,
        )


class NoHookCaller:
    """Where no JS engine runs hooks: every call fails (decisions fail closed)."""

    async def call(
        self, app: App, function: str, argument: dict[str, Any], time_limit_seconds: float
    ) -> ExportResult:
        return ExportResult("failed", error="hooks cannot run: no JS engine")


@dataclass
class HookCounts:
    """One app's hook calls on this node, since start."""

    calls: int = 0
    failed: int = 0
    dropped: int = 0


class Hooks:
    """Runs an app's hooks for this node: bounded per app, decisions fail closed."""

    def __init__(
        self,
        caller: HookCaller,
        settings: HookSettings,
        registry: Registry,
        tasks: Tasks,
        find_app: Callable[[str], App | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._caller = caller
        self.settings = settings
        self._registry = registry
        self._tasks = tasks
        self._find_app = find_app
        self._clock = clock
        self._pending: dict[str, int] = {}
        self._counts: dict[str, HookCounts] = {}
        self._drop_logs: dict[str, LogThrottle] = {}
        self._rules: dict[str, tuple[App, ChannelRules]] = {}
        #: (app uuid, channel) -> the timer that settles this node's held vacancy
        self._vacancies: dict[tuple[str, str], tuple[App, asyncio.TimerHandle]] = {}
        self._stopping = False

    # -- which channels have which hooks --------------------------------------------------
    def wants(self, app: App, channel: str, kind: str) -> bool:
        """Whether the channel's rule in ``app`` runs hooks of ``kind``."""
        cached = self._rules.get(app.uuid)
        if cached is None or cached[0] is not app:
            cached = (app, ChannelRules.from_manifest(app.section("realtime")))
            self._rules[app.uuid] = cached
        return kind in cached[1].rule_for(channel).hooks

    def counts(self, app_uuid: str) -> HookCounts:
        """The app's hook calls, failures and drops on this node."""
        return self._counts.setdefault(app_uuid, HookCounts())

    # -- running one call -----------------------------------------------------------------
    def _take_place(self, app: App, function: str) -> _Place | None:
        """Count a call against the app's bound, at once (before any await); None when
        the app has too many calls waiting: the call is dropped."""
        counts = self.counts(app.uuid)
        pending = self._pending.get(app.uuid, 0)
        if pending >= self.settings.max_pending_per_app:
            counts.dropped += 1
            self._note_drop(app, function)
            return None
        self._pending[app.uuid] = pending + 1
        counts.calls += 1
        return _Place(self._pending, app.uuid)

    def _start(
        self, app: App, function: str, argument: dict[str, Any], place: _Place | None
    ) -> asyncio.Task[ExportResult | None]:
        """Run a hook in a task (None when ``place`` is None: dropped). Its place is
        freed when it ends, even when the task is cancelled before it started."""

        async def run() -> ExportResult | None:
            if place is None:
                return None
            try:
                return await self._run(app, function, argument)
            finally:
                place.release()

        task = asyncio.ensure_future(run())
        if place is not None:
            task.add_done_callback(lambda _: place.release())
        return task

    async def _call(self, app: App, function: str, argument: dict[str, Any]) -> ExportResult | None:
        """Run one hook; None when the app has too many calls waiting (dropped)."""
        return await self._start(app, function, argument, self._take_place(app, function))

    async def _run(self, app: App, function: str, argument: dict[str, Any]) -> ExportResult:
        try:
            result = await self._caller.call(
                app, function, argument, self.settings.time_limit_seconds
            )
        except Exception as error:  # a caller must not raise; a bug must not kill a hook path
            log.exception("app %s: hook %s could not run", app.slug, function)
            result = ExportResult("failed", error=f"internal error: {type(error).__name__}")
        if result.outcome != "returned":
            self.counts(app.uuid).failed += 1
        return result

    def _note_drop(self, app: App, function: str) -> None:
        throttle = self._drop_logs.get(app.uuid)
        if throttle is None:
            throttle = self._drop_logs[app.uuid] = LogThrottle(DROP_LOG_INTERVAL_SECONDS)
        held_back = throttle.event(now=self._clock())
        if held_back is not None:
            log.warning(
                "app %s: hook %s dropped: %d hook calls already waiting (maxPendingPerApp)%s; "
                "%d dropped so far",
                app.slug,
                function,
                self.settings.max_pending_per_app,
                f", {held_back} more since the last report" if held_back else "",
                self._counts[app.uuid].dropped,
            )

    @staticmethod
    def _log_problem(
        app: App, function: str, result: ExportResult | None, verdict: Verdict, what: str
    ) -> None:
        """Log why a decision hook failed closed (drops are logged apart, throttled)."""
        if result is not None and verdict.problem is not None:
            log.warning(
                "app %s: hook %s failed (%s): %s", app.slug, function, verdict.problem, what
            )

    # -- decisions ------------------------------------------------------------------------
    async def allow_subscribe(self, app: App, session: Session, channel: str) -> Verdict:
        """Ask ``onSubscribe``; a failure refuses (and is logged)."""
        argument = {"channel": channel, "clientId": session.client_id, "user": _user(session)}
        result = await self._call(app, "onSubscribe", argument)
        verdict = subscribe_verdict(result)
        self._log_problem(app, "onSubscribe", result, verdict, f"subscribe to {channel} refused")
        return verdict

    def vet_publish(
        self, app: App, session: Session, channel: str, data: Any
    ) -> asyncio.Task[Verdict]:
        """Start ``onPublish`` for a client message now; the task gives the verdict and
        never raises."""
        argument = {
            "channel": channel,
            "clientId": session.client_id,
            "user": _user(session),
            "data": data,
        }

        call = self._start(app, "onPublish", argument, self._take_place(app, "onPublish"))

        async def vet() -> Verdict:
            result = await call
            verdict = publish_verdict(result, data)
            self._log_problem(app, "onPublish", result, verdict, f"a message on {channel} rejected")
            return verdict

        verdict = asyncio.ensure_future(vet())
        # A verdict nobody waits for any more (a stop) takes its call with it.
        verdict.add_done_callback(lambda _: call.cancel())
        return verdict

    # -- events -----------------------------------------------------------------------------
    def _emit(self, app: App, function: str, argument: dict[str, Any]) -> None:
        """Run an event hook in the background: best-effort, at most once."""

        place = self._take_place(app, function)
        if place is None:
            return
        call = self._start(app, function, argument, place)

        async def run() -> None:
            result = await call
            if result is not None and result.outcome != "returned":
                log.warning(
                    "app %s: hook %s failed for %s: %s",
                    app.slug,
                    function,
                    argument.get("channel"),
                    result.error or result.outcome,
                )

        self._tasks.spawn(run())

    def joined(self, app: App, channel: str, member: dict[str, Any]) -> None:
        """A user's first connection joined a presence channel (decided here)."""
        if self.wants(app, channel, "presence"):
            self._emit(app, "onJoin", {"channel": channel, "member": member})

    def left(self, app_uuid: str, channel: str, member: dict[str, Any]) -> None:
        """A user's last connection left a presence channel (decided here, or swept)."""
        app = self._find_app(app_uuid)
        if app is not None and self.wants(app, channel, "presence"):
            self._emit(app, "onLeave", {"channel": channel, "member": member})

    def occupied(self, app: App, channel: str) -> None:
        """The channel got its first subscriber in the cluster (decided here)."""
        if self.wants(app, channel, "occupancy"):
            self._emit(app, "onOccupied", {"channel": channel})

    def vacancy_held(self, app: App, channel: str) -> None:
        """This node took the channel's last subscriber and holds its vacancy: settle it
        after ``vacatedDelaySeconds``, then announce it unless a subscriber came back."""
        key = (app.uuid, channel)
        previous = self._vacancies.pop(key, None)
        if previous is not None:
            previous[1].cancel()
        if self._stopping:
            self._tasks.spawn(self._settle(app, channel))
            return
        timer = asyncio.get_running_loop().call_later(
            self.settings.vacated_delay_seconds, self._settle_later, app, channel
        )
        self._vacancies[key] = (app, timer)

    def _settle_later(self, app: App, channel: str) -> None:
        self._vacancies.pop((app.uuid, channel), None)
        self._tasks.spawn(self._settle(app, channel))

    async def _settle(self, app: App, channel: str) -> None:
        if await self._registry.settle_vacancy(app.uuid, channel):
            self._emit(app, "onVacated", {"channel": channel})

    def channel_vacated(self, app_uuid: str, channel: str) -> None:
        """The sweep of a dead node left the channel without subscribers (reported here)."""
        app = self._find_app(app_uuid)
        if app is not None and self.wants(app, channel, "occupancy"):
            self._emit(app, "onVacated", {"channel": channel})

    # -- stop -----------------------------------------------------------------------------------
    async def stop(self) -> None:
        """Settle this node's held vacancies now (a stopping node cannot wait out the
        delay), so their ``onVacated`` still fire; later vacancies settle at once too."""
        self._stopping = True
        held, self._vacancies = self._vacancies, {}
        for _, timer in held.values():
            timer.cancel()
        settles = [self._settle(app, channel) for (_, channel), (app, _) in held.items()]
        if not settles:
            return
        try:
            await asyncio.wait_for(
                asyncio.gather(*settles, return_exceptions=True), STOP_WAIT_SECONDS
            )
        except asyncio.TimeoutError:
            log.warning("%d held vacancies were not settled before the stop", len(settles))


class _Place:
    """One call's place in its app's bound; ``release`` frees it, once."""

    __slots__ = ("_app_uuid", "_pending", "_released")

    def __init__(self, pending: dict[str, int], app_uuid: str) -> None:
        self._pending = pending
        self._app_uuid = app_uuid
        self._released = False

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        left = self._pending[self._app_uuid] - 1
        if left:
            self._pending[self._app_uuid] = left
        else:
            del self._pending[self._app_uuid]


def _user(session: Session) -> dict[str, Any] | None:
    """The hook argument's ``user``: as in ``connected`` (None for an anonymous client)."""
    return user_from_claims(session.claims) if session.claims else None
