"""Which handler answers a request: host/path -> app -> reserved path or file.

Two kinds of host reach the kernel:

- an **app host**, ``<slug>.<domain>`` (port ignored, one label only), names
  that app;
- a **kernel host** is the kernel's own: the bare domain, ``localhost``, any IP
  literal, and the hosts listed in the config key ``kernelHosts``.

On a kernel host:

1. ``/_app/<slug>/...`` is that app (the path route), rules A-E below;
2. ``/_fazt/<name>``: kernel and plugin assets, so a page served under
   ``/_app/<slug>/`` may load ``/_fazt/realtime.min.js`` by its absolute path;
3. ``/``: an HTML index of the apps, with links in both routing styles;
4. anything else: 404 JSON with a hint that names the port.

On an app host, every path is inside the app (rules A-E). The path route is
refused there (404): ``/_app/evil/`` on ``chat.<domain>`` would serve another
app's files and scripts with chat's origin.

Inside an app, in this order:

A. a plugin route (exact path, e.g. ``/_ws``): the plugin's handler, even when
   the app is unknown (``app=None``), so it can answer in its own protocol;
B. unknown app: 404 JSON;
C. ``/_fazt/<name>``: kernel and plugin assets;
D. ``/api`` and ``/api/...``: JS handlers;
E. anything else: the app's static files.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

import tornado.httputil
import tornado.routing
import tornado.web

from fazt.contracts.app import App
from fazt.kernel.handlers import (
    ApiEndpoint,
    ApiHandler,
    AssetHandler,
    NotFoundHandler,
    SlashRedirectHandler,
    StaticHandler,
)
from fazt.kernel.hosts import KernelHosts, host_name, host_port, host_slug
from fazt.kernel.index_page import AppListing, IndexHandler
from fazt.kernel.plugin import PluginHost, PluginRoute


class RouterHost(PluginHost, AppListing, Protocol):
    """What the router uses of the kernel (``Kernel`` is one). Plugin routes get it as
    ``kernel=`` (a ``PluginHost``), the index page as an ``AppListing``."""

    @property
    def assets(self) -> Mapping[str, Path]: ...
    @property
    def api(self) -> ApiEndpoint: ...


APP_PREFIX = "/_app/"
ASSET_PREFIX = "/_fazt/"


def split_app_path(path: str) -> tuple[str, str] | None:
    """``/_app/<slug>/<rest>`` -> (slug, ``/<rest>``); ``/_app/<slug>`` -> (slug, "")."""
    if not path.startswith(APP_PREFIX):
        return None
    slug, slash, rest = path[len(APP_PREFIX) :].partition("/")
    return unquote(slug).lower(), (slash + rest)


class KernelRouter(tornado.routing.Router):
    """Dispatches every request of the kernel's Application (see module doc)."""

    def __init__(
        self, application: tornado.web.Application, kernel: RouterHost, routes: list[PluginRoute]
    ) -> None:
        self._application = application
        self._kernel = kernel
        self._routes = {route.path: route for route in routes}
        self._kernel_hosts = KernelHosts(kernel.domain, kernel.config.kernel_hosts)

    def _delegate(
        self,
        request: tornado.httputil.HTTPServerRequest,
        handler: type[tornado.web.RequestHandler],
        **kwargs: Any,
    ) -> tornado.httputil.HTTPMessageDelegate:
        return self._application.get_handler_delegate(request, handler, kwargs)

    def _not_here(
        self, request: tornado.httputil.HTTPServerRequest
    ) -> tornado.httputil.HTTPMessageDelegate:
        port = host_port(request.host)
        suffix = f":{port}" if port else ""
        here = f"http://{host_name(request.host)}{suffix}"
        message = (
            f"no app here: the apps are listed at {here}/ and each one answers at "
            f"http://<slug>.{self._kernel.domain}{suffix}/ and {here}/_app/<slug>/"
        )
        return self._delegate(request, NotFoundHandler, message=message)

    def plugin_target(self, host: str, path: str) -> tuple[PluginRoute, App | None] | None:
        """The plugin route that answers ``host`` and ``path`` (rule A) and its app, or
        None when the request goes elsewhere (``find_handler`` decides by this too)."""
        if host in self._kernel_hosts:
            split = split_app_path(path)
            if split is None:
                return None
            slug, inner = split
        else:
            named = host_slug(host, self._kernel.domain)
            if named is None or path.startswith(APP_PREFIX):
                return None
            slug, inner = named, path
        route = self._routes.get(inner)
        if route is None:
            return None
        return route, self._kernel.apps.by_slug(slug)

    def find_handler(
        self, request: tornado.httputil.HTTPServerRequest, **kwargs: Any
    ) -> tornado.httputil.HTTPMessageDelegate | None:
        path = request.path
        target = self.plugin_target(request.host, path)
        if target is not None:
            route, app = target
            return self._delegate(
                request, route.handler, kernel=self._kernel, app=app, **dict(route.kwargs)
            )
        if request.host in self._kernel_hosts:
            split = split_app_path(path)
            if split is None:
                return self._kernel_page(request, path)
            slug, inner = split
            if not inner:
                location = path + "/" + (f"?{request.query}" if request.query else "")
                return self._delegate(request, SlashRedirectHandler, location=location)
        else:
            host_named = host_slug(request.host, self._kernel.domain)
            if host_named is None:
                message = (
                    f"no app here: use http://<slug>.{self._kernel.domain}/, or the kernel's "
                    "own host (127.0.0.1, localhost) for the list of apps and /_app/<slug>/"
                )
                return self._delegate(request, NotFoundHandler, message=message)
            if path.startswith(APP_PREFIX):
                # Another app's files and scripts must never run on this app's origin.
                message = (
                    "/_app/<slug>/ answers only on the kernel's own host (127.0.0.1, "
                    f"localhost), not on the app host {host_named}.{self._kernel.domain}"
                )
                return self._delegate(request, NotFoundHandler, message=message)
            slug, inner = host_named, path
        app = self._kernel.apps.by_slug(slug)
        if app is None:
            return self._delegate(request, NotFoundHandler, message=f"unknown app {slug!r}")
        if inner == "/_fazt" or inner.startswith(ASSET_PREFIX):
            return self._delegate(request, AssetHandler, assets=self._kernel.assets, name=inner[7:])
        if inner == "/api" or inner.startswith("/api/"):
            name = inner[5:]
            return self._delegate(
                request, ApiHandler, endpoint=self._kernel.api, app=app, name=name
            )
        return self._delegate(request, StaticHandler, app=app, inner_path=inner)

    def _kernel_page(
        self, request: tornado.httputil.HTTPServerRequest, path: str
    ) -> tornado.httputil.HTTPMessageDelegate:
        """What the kernel's own host answers outside ``/_app/``."""
        if path.startswith(ASSET_PREFIX):
            name = path[len(ASSET_PREFIX) :]
            return self._delegate(request, AssetHandler, assets=self._kernel.assets, name=name)
        if path == "/":
            return self._delegate(request, IndexHandler, kernel=self._kernel)
        return self._not_here(request)
