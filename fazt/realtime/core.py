"""The realtime core of one node, wired: hub, admission, commands, membership, lifecycle, hooks.

``RealtimeCore`` builds every part once and hands each one only the parts it
needs, so no part reaches another through a back door. It knows no Tornado:
the plugin adds the ``/_ws`` handler and the scan timer around it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fazt.kernel.app import App
from fazt.kernel.tokens import TokenService
from fazt.realtime.api import RealtimeAPI
from fazt.realtime.backplane.node import Backplane
from fazt.realtime.channels import HistoryCaps
from fazt.realtime.clocks import Clocks
from fazt.realtime.commands import Commands
from fazt.realtime.hooks import HookCaller, Hooks, HookSettings, NoHookCaller
from fazt.realtime.hub import Admission, Hub
from fazt.realtime.lifecycle import Scanner, Shutdown
from fazt.realtime.limits import Limits, Notifier, ThresholdWatcher
from fazt.realtime.membership import Membership
from fazt.realtime.relay import BackplaneRelay
from fazt.realtime.session import HeartbeatPolicy, Session, Transport
from fazt.realtime.tasks import Tasks


class RealtimeCore:
    """One node's realtime state and the jobs that run on it."""

    def __init__(
        self,
        backplane: Backplane,
        tokens: TokenService,
        *,
        limits: Limits | None = None,
        heartbeat: HeartbeatPolicy | None = None,
        notify: Notifier | None = None,
        clocks: Clocks | None = None,
        history_caps: HistoryCaps | None = None,
        hook_caller: HookCaller | None = None,
        hook_settings: HookSettings | None = None,
        find_app: Callable[[str], App | None] | None = None,
    ) -> None:
        """``hook_caller`` runs the apps' ``api/_realtime.js`` hooks (none: every hook
        fails, so decisions fail closed); ``find_app`` finds an app by uuid for hooks
        of apps without a client here (default: the apps this node has seen)."""
        limits = limits or Limits()
        heartbeat = heartbeat or HeartbeatPolicy(30.0, 10.0, limits.idleTimeoutSeconds)
        self.clocks = clocks or Clocks()
        self.backplane = backplane
        watcher = ThresholdWatcher(notify or (lambda *_: None))
        bus, registry, history = backplane.bus, backplane.registry, backplane.history
        self.tasks = Tasks()
        self.hub = Hub(bus, history, limits, history_caps)
        self.hooks = Hooks(
            hook_caller or NoHookCaller(),
            hook_settings or HookSettings(),
            registry,
            self.tasks,
            find_app or self._app_seen_here,
        )
        self.admission = Admission(self.hub, registry, watcher)
        self.membership = Membership(self.hub, bus, registry, history, watcher, self.hooks)
        self.commands = Commands(
            self.hub,
            self.membership,
            bus,
            registry,
            history,
            tokens,
            heartbeat,
            watcher,
            self.clocks,
            self.hooks,
            self.tasks,
        )
        self.scanner = Scanner(
            self.hub, self.membership, heartbeat, self.tasks, self.clocks.monotonic
        )
        self.shutdown = Shutdown(self.hub, self.admission, self.tasks, self.clocks.monotonic)
        self.relay = BackplaneRelay(self.hub, self.membership, self.tasks, self.hooks)

    def _app_seen_here(self, app_uuid: str) -> App | None:
        state = self.hub.state_of(app_uuid)
        return state.app if state is not None else None

    async def connect(
        self, app: App, transport: Transport, claims: dict[str, Any] | None = None
    ) -> Session:
        """Register a new connection (``Commands.connect``) and start scanning it."""
        session = await self.commands.connect(app, transport, claims)
        if not session.closed:
            self.scanner.watch(session)
        return session

    async def start(self) -> None:
        """Join the cluster (or start the lone in-memory node)."""
        await self.backplane.start(self.relay, self.relay)

    async def stop(self, grace_seconds: float) -> None:
        """Graceful shutdown of every connection, then leave the cluster."""
        try:
            await self.shutdown.run(grace_seconds)
            # The connections are gone: their vacancies are held now; settle them
            # while the registry is still there, and let their hooks run.
            await self.hooks.stop()
            await self.tasks.drain()
        finally:
            await self.backplane.stop()

    def api(self, app: App) -> RealtimeAPI:
        """The Python server API scoped to ``app``."""
        return RealtimeAPI(self.hub, self.backplane, app, self.clocks.wall_ms)
