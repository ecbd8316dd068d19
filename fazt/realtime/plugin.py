"""The realtime kernel plugin: ``/_ws``, ``fazt.realtime``, its config and ``app.json`` parts.

Start-up builds the backplane (Redis when the kernel config names one, else
in-memory), the hub and the shared heartbeat, then calls ``gc.freeze()``: the
long-lived start-up objects (modules, apps, the hub) move out of the cyclic
collector's sight, so a burst of fan-out garbage does not make the GC walk them
again and again. Connections opened later are not frozen.

Stop runs the graceful shutdown: ``server_restart`` to every client, wait up to
``shutdownGraceSeconds``, close the rest with 4200, then leave the backplane.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fazt.contracts.host_calls import HostFunction
from fazt.kernel.app import App
from fazt.kernel.plugin import Plugin, PluginRoute
from fazt.realtime.api import RealtimeAPI, js_namespace
from fazt.realtime.backplane.base import Backplane
from fazt.realtime.heartbeat import SharedHeartbeat, sweep_period
from fazt.realtime.hub import Hub
from fazt.realtime.limits import Limits, limits_schema
from fazt.realtime.session import HeartbeatPolicy
from fazt.realtime.transport import WriteCoalescer

if TYPE_CHECKING:
    from fazt.kernel.plugin import PluginHost as Kernel

log = logging.getLogger("fazt.realtime")

STATIC_DIR = Path(__file__).resolve().parent / "static"
SDK_ASSET = "realtime.min.js"

DEFAULTS: dict[str, Any] = {
    "pingIntervalSeconds": 30,
    "pongTimeoutSeconds": 10,
    "shutdownGraceSeconds": 5,
    "outgoingQueueSize": 256,
}

_POSITIVE = {"type": "number", "exclusiveMinimum": 0}

CHANNEL_RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "auth": {"type": "boolean"},
        "role": {
            "oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string", "minLength": 1}},
            ]
        },
        "publish": {"type": "boolean"},
    },
}


class RealtimePlugin(Plugin):
    """WebSocket pub/sub for every app. See ``docs/protocol.md``."""

    name = "realtime"

    def __init__(self, backplane: Backplane | None = None) -> None:
        """``backplane`` overrides the one chosen from the kernel config (tests, embedding)."""
        self._backplane_override = backplane
        self._settings: dict[str, Any] = dict(DEFAULTS)
        self._hub: Hub | None = None
        self._heartbeat: SharedHeartbeat | None = None
        self._kernel: Kernel | None = None
        self._coalescer: WriteCoalescer | None = None

    # -- schema and config -------------------------------------------------------
    def config_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "pingIntervalSeconds": _POSITIVE,
                "pongTimeoutSeconds": _POSITIVE,
                "shutdownGraceSeconds": {"type": "number", "minimum": 0},
                "outgoingQueueSize": {"type": "integer", "minimum": 1},
                "presenceTtlSeconds": _POSITIVE,
                "limits": limits_schema(),
            },
        }

    def configure(self, settings: Mapping[str, Any]) -> None:
        self._settings = {**DEFAULTS, **dict(settings)}

    def manifest_properties(self) -> dict[str, Any]:
        return {
            "realtime": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "channels": {
                        "type": "object",
                        # Channel characters plus "*" globs and at most one "{sub}".
                        "propertyNames": {
                            "minLength": 1,
                            "maxLength": 200,
                            "pattern": r"^[A-Za-z0-9_\-=@,.;:*]*(\{sub\})?[A-Za-z0-9_\-=@,.;:*]*$",
                        },
                        "additionalProperties": CHANNEL_RULE_SCHEMA,
                    }
                },
            }
        }

    def manifest_limits_schema(self) -> dict[str, Any]:
        return limits_schema()

    # -- what the kernel serves ----------------------------------------------------
    def routes(self) -> list[PluginRoute]:
        from fazt.realtime.handler import RealtimeHandler

        return [PluginRoute("/_ws", RealtimeHandler, {"plugin": self})]

    def assets(self) -> dict[str, Path]:
        path = STATIC_DIR / SDK_ASSET
        return {SDK_ASSET: path} if path.is_file() else {}

    def js_namespace(self) -> dict[str, HostFunction]:
        return js_namespace(lambda: self.hub)

    # -- running -----------------------------------------------------------------------
    @property
    def hub(self) -> Hub:
        if self._hub is None:
            raise RuntimeError("the realtime plugin is not started")
        return self._hub

    @property
    def coalescer(self) -> WriteCoalescer:
        if self._coalescer is None:
            raise RuntimeError("the realtime plugin is not started")
        return self._coalescer

    @property
    def outgoing_queue_size(self) -> int:
        return int(self._settings["outgoingQueueSize"])

    def api(self, app: App) -> RealtimeAPI:
        """The Python server API scoped to ``app``."""
        return RealtimeAPI(self.hub, app)

    def _make_backplane(self, kernel: Kernel) -> Backplane:
        if self._backplane_override is not None:
            return self._backplane_override
        ttl = float(self._settings.get("presenceTtlSeconds", 30))
        url = kernel.config.redis_url
        if url:
            from fazt.realtime.backplane.redis import RedisBackplane

            return RedisBackplane(url, presence_ttl_seconds=ttl)
        from fazt.realtime.backplane.memory import MemoryBackplane

        return MemoryBackplane(presence_ttl_seconds=ttl)

    async def start(self, kernel: Kernel) -> None:
        self._kernel = kernel
        limits = Limits.from_config(self._settings.get("limits"))
        policy = HeartbeatPolicy(
            float(self._settings["pingIntervalSeconds"]),
            float(self._settings["pongTimeoutSeconds"]),
            float(limits.idleTimeoutSeconds),
        )
        backplane = self._make_backplane(kernel)
        hub = Hub(backplane, kernel.tokens, limits=limits, heartbeat=policy, notify=self._notify)
        await backplane.start(hub)
        self._hub = hub
        self._coalescer = WriteCoalescer()
        self._heartbeat = SharedHeartbeat(
            hub, sweep_period(policy.ping_interval, policy.pong_timeout, policy.idle_timeout)
        )
        self._heartbeat.start()
        gc.freeze()

    def _notify(self, limit: str, message: str, app_uuid: str | None, data: dict[str, Any]) -> None:
        from fazt.kernel.notifications import Notification

        kernel = self._kernel
        if kernel is None:
            return
        kernel.notifications.notify(
            Notification(
                "realtime.limit.warning",
                message,
                app_uuid=app_uuid,
                data={"limit": limit, "used": data["used"], "max": data["limit"]},
            )
        )

    async def stop(self, kernel: Kernel) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        hub = self._hub
        if hub is None:
            return
        try:
            await hub.shutdown(float(self._settings["shutdownGraceSeconds"]))
        finally:
            await hub.backplane.stop()
            self._hub = None
            gc.unfreeze()
