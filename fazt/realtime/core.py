"""The realtime core of one node, wired: hub, admission, commands, membership, lifecycle.

``RealtimeCore`` builds every part once and hands each one only the parts it
needs, so no part reaches another through a back door. It knows no Tornado:
the plugin adds the ``/_ws`` handler and the scan timer around it.
"""

from __future__ import annotations

from fazt.kernel.app import App
from fazt.kernel.tokens import TokenService
from fazt.realtime.api import RealtimeAPI
from fazt.realtime.backplane.node import Backplane
from fazt.realtime.channels import HistoryCaps
from fazt.realtime.clocks import Clocks
from fazt.realtime.commands import Commands
from fazt.realtime.hub import Admission, Hub
from fazt.realtime.lifecycle import Scanner, Shutdown
from fazt.realtime.limits import Limits, Notifier, ThresholdWatcher
from fazt.realtime.membership import Membership
from fazt.realtime.relay import BackplaneRelay
from fazt.realtime.session import HeartbeatPolicy
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
    ) -> None:
        limits = limits or Limits()
        heartbeat = heartbeat or HeartbeatPolicy(30.0, 10.0, limits.idleTimeoutSeconds)
        self.clocks = clocks or Clocks()
        self.backplane = backplane
        watcher = ThresholdWatcher(notify or (lambda *_: None))
        bus, registry, history = backplane.bus, backplane.registry, backplane.history
        self.tasks = Tasks()
        self.hub = Hub(bus, history, limits, history_caps)
        self.admission = Admission(self.hub, registry, watcher)
        self.membership = Membership(self.hub, bus, registry, history, watcher)
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
        )
        self.scanner = Scanner(
            self.hub, self.membership, heartbeat, self.tasks, self.clocks.monotonic
        )
        self.shutdown = Shutdown(self.hub, self.admission, self.tasks, self.clocks.monotonic)
        self.relay = BackplaneRelay(self.hub, self.membership, self.tasks)

    async def start(self) -> None:
        """Join the cluster (or start the lone in-memory node)."""
        await self.backplane.start(self.relay, self.relay)

    async def stop(self, grace_seconds: float) -> None:
        """Graceful shutdown of every connection, then leave the cluster."""
        try:
            await self.shutdown.run(grace_seconds)
        finally:
            await self.backplane.stop()

    def api(self, app: App) -> RealtimeAPI:
        """The Python server API scoped to ``app``."""
        return RealtimeAPI(self.hub, self.backplane, app, self.clocks.wall_ms)
