"""Which handler answers a request: host/path -> app -> reserved path or file.

An app is named either by the Host header (``<slug>.<domain>``, port ignored)
or by a ``/_app/<slug>/`` path prefix, which works on any host and wins over
the Host header. Inside the app, in this order:

1. a plugin route (exact path, e.g. ``/_ws``): the plugin's handler, even when
   the app is unknown (``app=None``), so it can answer in its own protocol;
2. unknown app: 404 JSON;
3. ``/_fazt/<name>``: kernel and plugin assets;
4. ``/api`` and ``/api/...``: JS handlers;
5. anything else: the app's static files.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

import tornado.httputil
import tornado.routing
import tornado.web

from fazt.kernel.handlers import (
    ApiEndpoint,
    ApiHandler,
    AssetHandler,
    NotFoundHandler,
    SlashRedirectHandler,
    StaticHandler,
)
from fazt.kernel.plugin import PluginHost, PluginRoute
from fazt.kernel.registry import AppRegistry


class RouterHost(PluginHost, Protocol):
    """What the router uses of the kernel (``Kernel`` is one); plugin routes get it as
    ``kernel=``, seen as a ``PluginHost``."""

    @property
    def domain(self) -> str: ...
    @property
    def apps(self) -> AppRegistry: ...
    @property
    def assets(self) -> Mapping[str, Path]: ...
    @property
    def api(self) -> ApiEndpoint: ...


APP_PREFIX = "/_app/"


def host_slug(host: str, domain: str) -> str | None:
    """The slug a Host header names under ``domain``, or None.

    ``chat.localhost:8080`` -> ``chat``; only one label is accepted, so
    ``a.b.localhost`` names no app.
    """
    host = host.strip().lower()
    if host.startswith("["):
        return None  # an IPv6 literal never names an app
    host = host.rsplit(":", 1)[0] if ":" in host else host
    host = host.rstrip(".")
    suffix = "." + domain.lower()
    if not host.endswith(suffix):
        return None
    label = host[: -len(suffix)]
    return label if label and "." not in label else None


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

    def _delegate(
        self,
        request: tornado.httputil.HTTPServerRequest,
        handler: type[tornado.web.RequestHandler],
        **kwargs: Any,
    ) -> tornado.httputil.HTTPMessageDelegate:
        return self._application.get_handler_delegate(request, handler, kwargs)

    def find_handler(
        self, request: tornado.httputil.HTTPServerRequest, **kwargs: Any
    ) -> tornado.httputil.HTTPMessageDelegate | None:
        path = request.path
        split = split_app_path(path)
        if split is not None:
            slug, inner = split
            if not inner:
                location = path + "/" + (f"?{request.query}" if request.query else "")
                return self._delegate(request, SlashRedirectHandler, location=location)
        else:
            host_named = host_slug(request.host, self._kernel.domain)
            if host_named is None:
                message = f"no app here: use http://<slug>.{self._kernel.domain}/ or /_app/<slug>/"
                return self._delegate(request, NotFoundHandler, message=message)
            slug, inner = host_named, path
        app = self._kernel.apps.by_slug(slug)
        route = self._routes.get(inner)
        if route is not None:
            return self._delegate(
                request, route.handler, kernel=self._kernel, app=app, **dict(route.kwargs)
            )
        if app is None:
            return self._delegate(request, NotFoundHandler, message=f"unknown app {slug!r}")
        if inner == "/_fazt" or inner.startswith("/_fazt/"):
            return self._delegate(request, AssetHandler, assets=self._kernel.assets, name=inner[7:])
        if inner == "/api" or inner.startswith("/api/"):
            name = inner[5:]
            return self._delegate(
                request, ApiHandler, endpoint=self._kernel.api, app=app, name=name
            )
        return self._delegate(request, StaticHandler, app=app, inner_path=inner)
