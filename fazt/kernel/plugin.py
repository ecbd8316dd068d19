"""The contract between the kernel and its plugins.

A plugin adds a subsystem to every app: reserved routes inside the app
(``/_ws``), static assets under ``/_fazt/``, a JS namespace (``fazt.<name>``),
a part of the ``app.json`` schema, its own kernel-config section, per-app limit
overrides, and start/stop hooks. Plugins are found through the
``fazt.plugins`` entry-point group and enabled by the kernel config
(``"plugins": ["realtime"]``), or attached in Python with ``Kernel.use()``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from fazt.config import KernelConfig
from fazt.contracts.app import App
from fazt.contracts.host_calls import HostFunction
from fazt.contracts.js_engine import JsEngineLike
from fazt.edge.request_head import RequestHead
from fazt.kernel.notifications import Notifications
from fazt.kernel.tokens import TokenService

if TYPE_CHECKING:
    import tornado.web


class PluginHost(Protocol):
    """What a plugin's ``start`` and ``stop`` hooks get from the kernel.

    ``fazt.kernel.kernel.Kernel`` is one; the hooks see only these parts.
    """

    @property
    def config(self) -> KernelConfig:
        """The validated kernel config (e.g. ``redis_url``)."""
        ...

    @property
    def tokens(self) -> TokenService:
        """Verifies and mints the kernel's tokens."""
        ...

    @property
    def notifications(self) -> Notifications:
        """Where a plugin tells the owner that an app crossed a threshold."""
        ...

    @property
    def js(self) -> JsEngineLike:
        """The JS engine that runs the apps' code (a plugin may call an app's exports)."""
        ...

    def app_by_uuid(self, uuid: str) -> App | None:
        """The served app with this uuid, if any."""
        ...


@dataclass(frozen=True)
class PluginRoute:
    """A path reserved inside every app, e.g. ``/_ws``.

    The kernel instantiates ``handler`` with ``kernel=``, ``app=`` (``None`` when
    the host names no known app, so the plugin can answer in its own protocol,
    e.g. WebSocket close 4001) and ``**kwargs``.

    ``upgrade``, when set, is offered a new connection whose first request is a
    plain upgrade of this path for a known app, before Tornado reads it
    (``fazt.edge.request_head``): ``upgrade(connection, head, app)`` answers
    True when it took the connection over, False to leave it to ``handler``
    (nothing was read).
    """

    path: str
    handler: type[tornado.web.RequestHandler]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    upgrade: Callable[[socket.socket, RequestHead, App], bool] | None = None


class Plugin:
    """Base class for kernel plugins; every hook has a do-nothing default."""

    #: Unique plugin name: the config key, the ``limits`` key and the JS namespace.
    name: str = ""

    def config_schema(self) -> dict[str, Any] | None:
        """JSON Schema of this plugin's section in the kernel config file."""
        return None

    def configure(self, settings: Mapping[str, Any]) -> None:
        """Receive this plugin's (validated) kernel-config section before start."""

    def manifest_properties(self) -> dict[str, Any]:
        """Top-level ``app.json`` properties this plugin adds (name -> JSON Schema)."""
        return {}

    def manifest_limits_schema(self) -> dict[str, Any] | None:
        """JSON Schema for ``app.json`` ``limits.<name>`` (per-app overrides)."""
        return None

    def manifest_warnings(self, manifest: Mapping[str, Any]) -> list[tuple[str, str]]:
        """``(json_path, reason)`` for settings of a valid ``app.json`` that never take effect.

        ``fazt check`` prints them as warnings; they do not keep the app out.
        """
        return []

    async def app_errors(self, app: App, js: JsEngineLike) -> list[tuple[str, str]]:
        """``(json_path, reason)`` for what keeps a valid app from working as its
        ``app.json`` says, e.g. a function the manifest names that the app's code
        does not export; ``js`` loads the app's code in the sandbox.

        ``fazt check`` prints them as errors (the app is still served).
        """
        return []

    def routes(self) -> list[PluginRoute]:
        """Paths reserved inside every app."""
        return []

    def assets(self) -> dict[str, Path]:
        """Files served at ``/_fazt/<name>`` on every app host."""
        return {}

    def js_namespace(self) -> dict[str, HostFunction]:
        """Functions exposed to JS handlers as ``fazt.<plugin name>.<fn>``."""
        return {}

    async def start(self, kernel: PluginHost) -> None:
        """Called once, after the kernel loaded its apps and before it serves."""

    async def stop(self, kernel: PluginHost) -> None:
        """Called on kernel stop (SIGINT/SIGTERM): finish gracefully."""
