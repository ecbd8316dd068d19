"""The realtime kernel plugin: ``/_ws``, ``fazt.realtime``, its config and ``app.json`` parts.

Start-up builds the backplane (Redis when the kernel config names one, else
in-memory), the realtime core (``core.RealtimeCore``), the ``Endpoint`` the
``/_ws`` handler uses and the scan timer, then calls ``gc.freeze()``: the
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

from fazt.contracts.host_calls import HostCallContext
from fazt.contracts.js_engine import JsEngineLike
from fazt.kernel.app import App
from fazt.kernel.manifest import PATTERN_DESCRIPTION, child_path
from fazt.kernel.plugin import Plugin, PluginRoute
from fazt.realtime.api import JsNamespace, RealtimeAPI, js_namespace
from fazt.realtime.backplane.node import Backplane, memory_backplane, redis_backplane
from fazt.realtime.channels import (
    HOOK_KINDS,
    HistoryCaps,
    auth_false_never_holds,
    history_caps_schema,
    history_rule_schema,
    rule_pattern_schema,
)
from fazt.realtime.core import RealtimeCore
from fazt.realtime.direct_upgrade import DirectUpgrade
from fazt.realtime.endpoint import Endpoint
from fazt.realtime.handler import RealtimeHandler
from fazt.realtime.hooks import (
    HOOK_FUNCTIONS,
    HOOK_MODULE,
    HookSettings,
    JsHookCaller,
    hooks_schema,
)
from fazt.realtime.hub import Hub
from fazt.realtime.limits import REJECTION, Limits, limits_schema
from fazt.realtime.scan_timer import ScanTimer
from fazt.realtime.session import HeartbeatPolicy, Session
from fazt.realtime.transport import WriteCoalescer, ended_with

if TYPE_CHECKING:
    from fazt.kernel.plugin import PluginHost as Kernel

log = logging.getLogger("fazt.realtime")

#: Notification kinds (``kernel.notifications``): a usage at 80 % of a limit, and the
#: first refusal at 100 % (docs/operations.md, Limit notifications).
LIMIT_WARNING_KIND = "realtime.limit.warning"
LIMIT_REJECTION_KIND = "realtime.limit.rejection"

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
        "history": history_rule_schema(),
        "hooks": {"type": "array", "items": {"enum": list(HOOK_KINDS)}, "uniqueItems": True},
    },
}


class RealtimePlugin(Plugin):
    """WebSocket pub/sub for every app. See ``docs/protocol.md``."""

    name = "realtime"

    def __init__(self, backplane: Backplane | None = None) -> None:
        """``backplane`` overrides the one chosen from the kernel config (tests, embedding)."""
        self._backplane_override = backplane
        self._settings: dict[str, Any] = dict(DEFAULTS)
        self._core: RealtimeCore | None = None
        self._endpoint: Endpoint | None = None
        self._scan_timer: ScanTimer | None = None
        self._kernel: Kernel | None = None

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
                "history": history_caps_schema(),
                "hooks": hooks_schema(),
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
                            **rule_pattern_schema(),
                            PATTERN_DESCRIPTION: "a channel pattern may contain only letters, "
                            "digits, _ - = @ , . ; : and the wildcard *, plus at most one {sub}",
                        },
                        "additionalProperties": CHANNEL_RULE_SCHEMA,
                    }
                },
            }
        }

    def manifest_limits_schema(self) -> dict[str, Any]:
        return limits_schema()

    def manifest_warnings(self, manifest: Mapping[str, Any]) -> list[tuple[str, str]]:
        section = manifest.get("realtime")
        rules = section.get("channels") if isinstance(section, Mapping) else None
        if not isinstance(rules, Mapping):
            return []
        warnings = []
        for pattern, spec in rules.items():
            why = auth_false_never_holds(pattern, spec) if isinstance(spec, Mapping) else None
            if why is not None:
                where = child_path(child_path("$.realtime.channels", pattern), "auth")
                warnings.append((where, f'"auth": false never holds: {why}'))
        return warnings

    async def app_errors(self, app: App, js: JsEngineLike) -> list[tuple[str, str]]:
        """Every hook a channel rule names that ``api/_realtime.js`` does not export
        (one error per rule and function), or the module failing to load."""
        rules = app.section("realtime").get("channels")
        named: list[tuple[str, str]] = []  # (json path of the kind, function)
        for pattern, spec in (rules if isinstance(rules, Mapping) else {}).items():
            kinds = spec.get("hooks") if isinstance(spec, Mapping) else None
            for index, kind in enumerate(kinds if isinstance(kinds, list) else ()):
                where = f"{child_path(child_path('$.realtime.channels', pattern), 'hooks')}"
                for function in HOOK_FUNCTIONS.get(kind, ()):
                    named.append((child_path(where, index), function))
        if not named:
            return []
        api_root = app.root / "api"
        listed = await js.module_functions(
            HostCallContext(app=app), api_root / HOOK_MODULE, api_root
        )
        module = f"api/{HOOK_MODULE}"
        if listed.outcome == "missing":
            return [
                (where, f"{module} does not exist (it must export {fn})") for where, fn in named
            ]
        if listed.outcome == "failed":
            return [("$.realtime.channels", f"{module} fails to load: {listed.error}")]
        exported = set(listed.value or ())
        return [
            (where, f"{module} does not export {function}")
            for where, function in named
            if function not in exported
        ]

    # -- what the kernel serves ----------------------------------------------------
    def routes(self) -> list[PluginRoute]:
        # The kernel builds its routes again once the plugins started; before
        # that the handler has no endpoint and refuses upgrades with 503.
        endpoint, kernel = self._endpoint, self._kernel
        direct = None
        if endpoint is not None and kernel is not None:
            direct = DirectUpgrade(endpoint, kernel.config.http_max_pending_connections)
        return [PluginRoute("/_ws", RealtimeHandler, {"endpoint": endpoint}, upgrade=direct)]

    def assets(self) -> dict[str, Path]:
        path = STATIC_DIR / SDK_ASSET
        return {SDK_ASSET: path} if path.is_file() else {}

    def js_namespace(self) -> JsNamespace:
        return js_namespace(self.api)

    # -- running -----------------------------------------------------------------------
    @property
    def core(self) -> RealtimeCore:
        if self._core is None:
            raise RuntimeError("the realtime plugin is not started")
        return self._core

    @property
    def hub(self) -> Hub:
        """This node's hub: its apps, connections and channels."""
        return self.core.hub

    @property
    def outgoing_queue_size(self) -> int:
        return int(self._settings["outgoingQueueSize"])

    def api(self, app: App) -> RealtimeAPI:
        """The Python server API scoped to ``app``."""
        return self.core.api(app)

    def _make_backplane(self, kernel: Kernel) -> Backplane:
        if self._backplane_override is not None:
            return self._backplane_override
        ttl = float(self._settings.get("presenceTtlSeconds", 30))
        url = kernel.config.redis_url
        if url:
            return redis_backplane(url, presence_ttl_seconds=ttl)
        return memory_backplane(presence_ttl_seconds=ttl)

    async def start(self, kernel: Kernel) -> None:
        self._kernel = kernel
        limits = Limits.from_config(self._settings.get("limits"))
        policy = HeartbeatPolicy(
            float(self._settings["pingIntervalSeconds"]),
            float(self._settings["pongTimeoutSeconds"]),
            float(limits.idleTimeoutSeconds),
        )
        core = RealtimeCore(
            self._make_backplane(kernel),
            kernel.tokens,
            limits=limits,
            heartbeat=policy,
            notify=self._notify,
            history_caps=HistoryCaps(**self._settings.get("history", {})),
            hook_caller=JsHookCaller(kernel.js),
            hook_settings=HookSettings.from_config(self._settings.get("hooks")),
            find_app=kernel.app_by_uuid,
        )
        await core.start()
        self._core = core

        def disconnected(session: Session) -> None:
            # Counted with its close code now; forgotten in the background.
            core.commands.closed(session, ended_with(session.transport))
            core.tasks.spawn(core.commands.disconnect(session))

        self._endpoint = Endpoint(
            verify_token=kernel.tokens.verify,
            admit=core.admission.admit,
            connect=core.connect,
            receive=core.commands.handle,
            disconnected=disconnected,
            max_message_bytes=lambda app: core.hub.limits_for(app).max_message_bytes,
            queue_size=self.outgoing_queue_size,
            coalescer=WriteCoalescer(),
            inline=core.backplane.runs_inline,
        )
        self._scan_timer = ScanTimer(core.scanner.scan, core.scanner.period)
        self._scan_timer.start()
        gc.freeze()

    def _notify(self, limit: str, message: str, app_uuid: str | None, data: dict[str, Any]) -> None:
        from fazt.kernel.notifications import Notification

        kernel = self._kernel
        if kernel is None:
            return
        details: dict[str, Any] = {"limit": limit, "used": data["used"], "max": data["limit"]}
        if "clientId" in data:
            details["clientId"] = data["clientId"]
        kernel.notifications.notify(
            Notification(
                LIMIT_REJECTION_KIND if data.get("event") == REJECTION else LIMIT_WARNING_KIND,
                message,
                app_uuid=app_uuid,
                data=details,
            )
        )

    async def stop(self, kernel: Kernel) -> None:
        if self._scan_timer is not None:
            self._scan_timer.stop()
            self._scan_timer = None
        core = self._core
        if core is None:
            return
        try:
            await core.stop(float(self._settings["shutdownGraceSeconds"]))
        finally:
            self._core = None
            self._endpoint = None
            gc.unfreeze()
