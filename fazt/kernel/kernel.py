"""The fazt kernel: one Tornado server hosting every app under an apps root.

Life cycle: ``Kernel(...)`` resolves the configured plugins and builds the
token service and the JS engine; ``use()`` attaches more plugins; ``start()``
validates the config with every plugin's schema, loads the apps (a broken
``app.json`` keeps only that app out), configures and starts the plugins in
order, then listens; ``stop()`` runs the plugins' stop hooks in reverse order,
stops listening and closes the JS engine.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import socket
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.routing
import tornado.web

from fazt.config import ConfigError, KernelConfig
from fazt.contracts.app import App
from fazt.contracts.host_calls import AUTH_NAMESPACE, RESERVED_NAMESPACES
from fazt.contracts.js_engine import JsEngineLike
from fazt.edge.access_log import log_request
from fazt.edge.redaction import install_log_redaction
from fazt.edge.request_head import RequestHead
from fazt.edge.server import EdgeHTTPServer, EdgeSettings, bind_listeners
from fazt.kernel.auth_api import auth_namespace
from fazt.kernel.engine_factory import create_engine
from fazt.kernel.handlers import ApiEndpoint
from fazt.kernel.manifest import ManifestError, ManifestValidator, build_schema
from fazt.kernel.notifications import Notification, Notifications
from fazt.kernel.plugin import Plugin, PluginRoute
from fazt.kernel.registry import AppRegistry, scan_apps
from fazt.kernel.router import KernelRouter
from fazt.kernel.tokens import TokenService, load_public_keys, load_secret

__all__ = ["Kernel", "Notification", "load_plugin"]

log = logging.getLogger("fazt.kernel")

PLUGIN_GROUP = "fazt.plugins"
#: How long stop() waits for open HTTP connections to finish.
CLOSE_TIMEOUT_SECONDS = 5.0


#: pyjwt warns for shorter HS256 keys (RFC 7518 section 3.2).
MIN_SECRET_BYTES = 32


def check_secret_length(secret: bytes) -> None:
    """Refuse an HS256 secret shorter than 32 bytes (``ConfigError``)."""
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"the JWT secret must be at least {MIN_SECRET_BYTES} bytes long, got {len(secret)}"
            " (--jwt-secret, $FAZT_JWT_SECRET or jwt.secret)"
        )


def load_plugin(name: str) -> Plugin:
    """Instantiate the plugin ``name``.

    ``name`` is an entry-point name in the ``fazt.plugins`` group (``realtime``),
    or, for development and tests, an import path ``package.module:Class``.
    """
    if ":" in name:
        module_name, _, attribute = name.partition(":")
        where = name
        try:
            factory = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as error:
            raise ConfigError(f"plugin {name!r} cannot be imported: {error}") from error
    else:
        matches = [ep for ep in entry_points(group=PLUGIN_GROUP) if ep.name == name]
        if not matches:
            raise ConfigError(
                f"plugin {name!r} is not installed (no {PLUGIN_GROUP!r} entry point named {name!r})"
            )
        where = matches[0].value
        try:
            factory = matches[0].load()
        except Exception as error:
            raise ConfigError(f"plugin {name!r} failed to load from {where}: {error}") from error
    try:
        plugin = factory()
    except Exception as error:
        raise ConfigError(f"plugin {name!r} ({where}) failed to initialise: {error}") from error
    if not isinstance(plugin, Plugin):
        raise ConfigError(f"plugin {name!r} ({where}) is not a fazt Plugin")
    return plugin


class Kernel:
    """The app host. See the module docstring for the life cycle."""

    def __init__(
        self,
        apps_dir: Path,
        *,
        data_dir: Path = Path(".fazt"),
        domain: str = "localhost",
        config: KernelConfig | Mapping[str, Any] | None = None,
        js_engine: JsEngineLike | None = None,
    ) -> None:
        self.apps_dir = Path(apps_dir)
        self.data_dir = Path(data_dir)
        self.domain = domain.lower()
        self.config = config if isinstance(config, KernelConfig) else KernelConfig(config)
        self.notifications = Notifications()
        self.apps = AppRegistry()
        self.manifest_errors: list[ManifestError] = []
        self.assets: dict[str, Path] = {}
        self._plugins: list[Plugin] = []
        self._server: tornado.httpserver.HTTPServer | None = None
        self._router: KernelRouter | None = None
        self._started: list[Plugin] = []
        self._running = False
        self._stopped = False
        self.tokens = self._make_tokens()
        for name in self.config.plugins:
            self.use(load_plugin(name))
        self.js: JsEngineLike = js_engine or create_engine(self.config)
        self.js.register_namespace(AUTH_NAMESPACE, auth_namespace(self.tokens))
        #: What the /api handlers get: not the kernel, only the parts they use.
        self.api = ApiEndpoint(
            tokens=self.tokens, engine=self.js, max_body_bytes=self.config.http_max_body_bytes
        )

    def _make_tokens(self) -> TokenService:
        jwt = self.config.jwt
        try:
            keys = load_public_keys(
                [Path(p) for p in jwt.get("publicKeyFiles", [])],
                [Path(p) for p in jwt.get("jwksFiles", [])],
            )
        except (OSError, ValueError) as error:
            raise ConfigError(f"{self.config.source}: $.jwt: cannot load keys: {error}") from error
        try:
            secret = load_secret(jwt.get("secret"), self.data_dir)
        except OSError as error:
            raise ConfigError(
                f"cannot read or create the JWT secret in {self.data_dir}: {error}"
            ) from error
        check_secret_length(secret)
        return TokenService(secret, keys, leeway_seconds=float(jwt.get("leewaySeconds", 0)))

    # -- plugins -------------------------------------------------------------

    def use(self, plugin: Plugin) -> Kernel:
        """Attach ``plugin`` (before ``start``); returns self for chaining."""
        if self._running:
            raise RuntimeError("Kernel.use() must be called before start()")
        if not plugin.name or not plugin.name.isidentifier():
            raise ValueError(f"plugin {plugin!r} needs an identifier-like name")
        if plugin.name in RESERVED_NAMESPACES:
            raise ValueError(f"plugin name {plugin.name!r} is reserved by the kernel")
        if any(existing.name == plugin.name for existing in self._plugins):
            raise ValueError(f"plugin {plugin.name!r} is already enabled")
        self._plugins.append(plugin)
        return self

    def plugin(self, name: str) -> Plugin:
        """The enabled plugin called ``name``; ``KeyError`` if none."""
        for plugin in self._plugins:
            if plugin.name == name:
                return plugin
        raise KeyError(name)

    @property
    def plugins(self) -> list[Plugin]:
        """Enabled plugins, in start order."""
        return list(self._plugins)

    # -- apps ----------------------------------------------------------------

    def load_apps(self) -> list[ManifestError]:
        """(Re)scan the apps root; log and return the manifests that were refused."""
        validator = ManifestValidator(build_schema(self._plugins))
        result = scan_apps(self.apps_dir, self.data_dir, validator)
        self.apps.replace(result.apps)
        self.manifest_errors = result.errors
        for error in result.errors:
            log.error("app not served: %s: %s: %s", error.file, error.json_path, error.reason)
        return result.errors

    def app(self, slug: str) -> App | None:
        """Shortcut for ``apps.by_slug``."""
        return self.apps.by_slug(slug)

    def app_by_uuid(self, uuid: str) -> App | None:
        """Shortcut for ``apps.by_uuid``."""
        return self.apps.by_uuid(uuid)

    # -- HTTP ----------------------------------------------------------------

    def _plugin_routes(self) -> list[PluginRoute]:
        routes: dict[str, PluginRoute] = {}
        for plugin in self._plugins:
            for route in plugin.routes():
                if not route.path.startswith("/_") or route.path.startswith(("/_fazt", "/_app")):
                    raise ValueError(
                        f"plugin {plugin.name!r}: route {route.path!r} must start with '/_' "
                        "and not be under /_fazt or /_app"
                    )
                if route.path in routes:
                    raise ValueError(f"plugin {plugin.name!r}: route {route.path!r} is taken")
                routes[route.path] = route
        return list(routes.values())

    def make_application(self) -> tornado.web.Application:
        """The Tornado application that routes every request (see router)."""
        routes = self._plugin_routes()
        application = tornado.web.Application(log_function=log_request)
        router = self._router = KernelRouter(application, self, routes)
        application.wildcard_router.add_rules(
            [tornado.routing.Rule(tornado.routing.AnyMatches(), router)]
        )
        return application

    def _take_upgrade(self, connection: socket.socket, head: RequestHead) -> bool:
        """Offer a plain upgrade head to the plugin route it names (``PluginRoute.upgrade``),
        before Tornado reads the connection; False leaves it to Tornado."""
        router = self._router
        target = router.plugin_target(head.host, head.path) if router is not None else None
        if target is None:
            return False
        route, app = target
        if route.upgrade is None or app is None:
            return False  # an unknown app is answered by the route's handler
        return route.upgrade(connection, head, app)

    def _collect_assets(self) -> None:
        self.assets = {}
        for plugin in self._plugins:
            for name, path in plugin.assets().items():
                if name in self.assets:
                    raise ValueError(f"plugin {plugin.name!r}: asset {name!r} is already taken")
                self.assets[name] = Path(path)

    async def start(
        self,
        port: int = 8080,
        address: str = "127.0.0.1",
        sockets: list[socket.socket] | None = None,
    ) -> int:
        """Load apps, start plugins, listen; returns the bound port (0 = a free port)."""
        if self._running:
            raise RuntimeError("kernel already started")
        self._running = True
        self.config.validate_plugins(self._plugins)
        self._plugin_routes()
        self._collect_assets()
        self.load_apps()
        for plugin in self._plugins:
            plugin.configure(self.config.plugin_settings(plugin.name))
            namespace = plugin.js_namespace()
            if namespace:
                self.js.register_namespace(plugin.name, namespace)
        for plugin in self._plugins:
            try:
                await plugin.start(self)
            except BaseException:
                log.error("plugin %s failed to start; stopping the others", plugin.name)
                await self._stop_plugins()
                raise
            self._started.append(plugin)
        install_log_redaction()
        self._server = EdgeHTTPServer(
            self.make_application(),
            edge=EdgeSettings.from_config(self.config),
            take_upgrade=self._take_upgrade,
            max_body_size=self.config.http_max_body_bytes,
        )
        bound = sockets if sockets is not None else bind_listeners(port, address)
        self._server.add_sockets(bound)
        actual = int(bound[0].getsockname()[1])
        names = ", ".join(app.slug for app in self.apps.all()) or "none"
        log.info(
            "fazt serving %d app(s) [%s] at http://%s:%d/_app/<slug>/ and http://<slug>.%s:%d/ "
            "(plugins: %s)",
            len(self.apps),
            names,
            address,
            actual,
            self.domain,
            actual,
            ", ".join(p.name for p in self._plugins) or "none",
        )
        return actual

    async def _stop_plugins(self) -> None:
        while self._started:
            plugin = self._started.pop()
            try:
                await plugin.stop(self)
            except Exception:
                log.exception("plugin %s failed to stop cleanly", plugin.name)

    async def stop(self) -> None:
        """Stop listening, then plugins' stop hooks (reverse order), then close what is
        still open and the JS engine.

        Listening stops first: clients told to reconnect (``server_restart``) get a
        refused connection and back off until the next process listens, instead
        of a flood of handshakes the stopping process can only answer with 503.
        """
        if self._stopped:
            return
        self._stopped = True
        if self._server is not None:
            self._server.stop()
        await self._stop_plugins()
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.close_all_connections(), CLOSE_TIMEOUT_SECONDS)
            except asyncio.TimeoutError:
                log.warning("some connections were still open after %ss", CLOSE_TIMEOUT_SECONDS)
        self.js.close()
        log.info("fazt stopped")
